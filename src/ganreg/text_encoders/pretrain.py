"""Pretrain a text encoder once per dataset, cache it, and reuse it frozen.

DF-GAN freezes a DAMSM encoder pretrained on the dataset's captions. ganreg
cannot download DAMSM weights, so it pretrains the encoder itself on what the
data knows about each caption: its image's class, or each of its attributes
(colour, shape, size, position for the built-in shapes), from the captions
alone; or, with ``objective: images``, by matching captions to their images
as DAMSM does (:mod:`ganreg.text_encoders.matching`), which needs no labels.
Either stops once the objective is met. The result is cached under the data
cache keyed by the dataset, vocabulary, encoder and pretraining settings.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from torch import nn

from ganreg.atomic import atomic_save
from ganreg.data._util import mix_seed, resolve_cache_dir
from ganreg.data.tokenizer import ordered_word_subset
from ganreg.interfaces import TextBatch, TextEncoder
from ganreg.recipe import Recipe

if TYPE_CHECKING:
    from ganreg.train.setup import DataBundle


def _targets(recipe: Recipe, data: DataBundle) -> tuple[list[str], torch.Tensor, list[int], str]:
    """Every training caption with its targets (``[N, A]`` indices), the size of each head, and what the
    targets are: the attributes (built-in shapes), else the class, which on data without classes is the
    image itself (a head over every image, which pulls an image's captions together)."""
    ds = data.train
    use_attrs = recipe.text_encoder.pretrain.objective == "attributes" and ds.attributes
    what = "attributes" if use_attrs else "class" if ds.has_classes else "image (the data has no classes)"
    labels = ds.labels()
    captions: list[str] = []
    rows: list[list[int]] = []
    for i, label in enumerate(labels):
        target = [int(v) for v in ds.attributes_of(i)] if use_attrs else [int(label)]
        for cap in ds.captions_of(i):
            captions.append(cap)
            rows.append(target)
    sizes = [len(v) for v in ds.attributes.values()] if use_attrs else [len(ds.class_names)]
    return captions, torch.tensor(rows, dtype=torch.long), sizes, what


def _train_on_labels(
    encoder: TextEncoder, recipe: Recipe, data: DataBundle, device: torch.device
) -> tuple[int, float, int, str]:
    """Captions only: predict each caption's attributes or class (see :func:`_targets`). Returns
    ``(batches, accuracy over the last 20 batches, captions, what was predicted)``."""
    spec = recipe.text_encoder.pretrain
    captions, targets, sizes, objective = _targets(recipe, data)
    max_words, subsets = recipe.data.max_words, recipe.data.long_captions == "random"
    if not subsets:  # the same tokens every epoch; with subsets each epoch encodes its own below
        tokens, lengths = data.vocab.encode_batch(captions, max_words)
    gen = torch.Generator().manual_seed(recipe.train.seed + 3)
    heads = nn.ModuleList(nn.Linear(encoder.out_dim, s) for s in sizes).to(device)
    encoder.to(device).train()
    opt = torch.optim.Adam(list(encoder.parameters()) + list(heads.parameters()), lr=spec.lr)
    n = len(captions)
    recent: list[float] = []  # accuracy of the last 20 batches
    batches = 0
    for epoch in range(spec.epochs):
        perm = torch.randperm(n, generator=gen)
        if subsets:  # long captions as the GAN will see them: a fresh ordered subset of words each epoch
            rng = random.Random(mix_seed("pretrain-words", recipe.train.seed, epoch))
            tokens, lengths = data.vocab.encode_batch([ordered_word_subset(c, max_words, rng) for c in captions], max_words)
        if len(recent) == 20 and sum(recent) / 20 >= spec.target_accuracy:
            break
        for start in range(0, n, spec.batch_size):
            idx = perm[start : start + spec.batch_size]
            out = encoder(TextBatch(tokens=tokens[idx].to(device), lengths=lengths[idx])).sentence
            tgt = targets[idx].to(device)
            logits = [head(out) for head in heads]
            loss = sum(nn.functional.cross_entropy(lg, tgt[:, j]) for j, lg in enumerate(logits))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            hits = sum(int((lg.argmax(1) == tgt[:, j]).sum()) for j, lg in enumerate(logits))
            recent = (recent + [hits / tgt.numel()])[-20:]
            batches += 1
            if len(recent) == 20 and sum(recent) / 20 >= spec.target_accuracy:
                break
    return batches, sum(recent) / max(len(recent), 1), n, objective


def matching_version() -> list[float]:
    """What the image-matching objective's code fixes (its image size, CNN width, scale): a change retrains."""
    from ganreg.text_encoders.matching import GAMMA3, MATCH_SIZE, MATCH_WIDTH

    return [MATCH_SIZE, MATCH_WIDTH, GAMMA3]


def _key(recipe: Recipe, data: DataBundle) -> str:
    images = recipe.text_encoder.pretrain.objective == "images"
    # the captions and labels: image-only settings would retrain the encoder for nothing, unless it learns from images
    ignored = {"num_workers", "cache_dir"} | (set() if images else {"flip", "random_crop", "crop"})
    payload = {
        "data": recipe.data.model_dump(mode="json", exclude=ignored),
        "captions": data.train.captions_sha256(),
        "vocab": hashlib.sha256("\n".join(data.vocab.words).encode()).hexdigest(),
        "encoder": [recipe.text_encoder.name, recipe.text_encoder.params],
        "pretrain": recipe.text_encoder.pretrain.model_dump(mode="json"),
        "seed": recipe.train.seed,
    }
    if images:  # only then: the other objectives keep the keys of the encoders users already cached
        payload["matching"] = matching_version()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def pretrain_text_encoder(encoder: TextEncoder, recipe: Recipe, data: DataBundle, device: torch.device) -> Path:
    """Load the cached pretrained weights, or train and cache them."""
    path = resolve_cache_dir(recipe.data.cache_dir) / "text_encoders" / f"{recipe.text_encoder.name.replace(':', '_')}-{_key(recipe, data)}.pt"
    console = Console(stderr=True)
    if path.is_file():
        try:
            encoder.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            console.print(f"[dim]text encoder: pretrained weights from cache {path}[/dim]")
            return path
        except Exception:  # a broken cache entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    spec = recipe.text_encoder.pretrain
    torch_state = torch.get_rng_state()
    torch.manual_seed(recipe.train.seed + 3)
    if spec.objective == "images":
        from ganreg.text_encoders.matching import train_on_images

        batches, accuracy, n = train_on_images(encoder, recipe, data, device)
        what, score = f"{n} images by matching each to one of its captions", "top-1 match in the batch"
    else:
        batches, accuracy, n, objective = _train_on_labels(encoder, recipe, data, device)
        what, score = f"{n} captions to predict their {objective}", "accuracy"
    torch.set_rng_state(torch_state)
    encoder.cpu()
    atomic_save(encoder.state_dict(), path)
    console.print(
        f"[dim]text encoder: pretrained {batches} batches of {spec.batch_size} on {what}; {score} over the last "
        f"batches {accuracy:.1%}; cached at {path}[/dim]"
    )
    encoder.to(device)
    return path
