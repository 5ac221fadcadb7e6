"""Images generated from held-out captions, batch by batch, with what the captions say.

Evaluation follows DF-GAN's protocol (reference §2.5): one image per caption
of the evaluation split, cycling over the split as many times as needed
(a new random caption of each image on each pass), with fixed-seed noise
(optionally truncated). Batches are yielded and dropped, so 10k samples
never sit in memory at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganreg.interfaces import TextBatch
from ganreg.train.sampling import make_noise


@dataclass
class EvalBatch:
    """Images in [-1, 1] and the targets their captions name."""

    images: torch.Tensor
    labels: torch.Tensor
    attributes: torch.Tensor | None
    captions: list[str]


def caption_keys(n_items: int, samples: int, seed: int) -> list[tuple[int, int]]:
    """``(pass, index)`` of each sample: a seeded order over the items, repeated as needed."""
    if n_items < 1:
        return []
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed)).tolist()
    return [(i // n_items, order[i % n_items]) for i in range(samples)]


def text_batch(batch: dict[str, Any], device: torch.device) -> TextBatch:
    def dev(key: str) -> torch.Tensor | None:
        value = batch.get(key)
        return value.to(device) if value is not None else None

    return TextBatch(tokens=dev("tokens"), lengths=dev("lengths"), embeddings=dev("embeddings"), captions=batch.get("captions"))


def captions_only(dataset: Any) -> Any:
    """The dataset's items without their pictures: what generating from its captions needs."""
    return dataset.view(images=False, wrong_images=False)


def _keyed_batches(dataset: Any, collator: Any, keys: list[tuple[int, int]], batch_size: int) -> Iterator[dict[str, Any]]:
    dataset = captions_only(dataset)
    for start in range(0, len(keys), batch_size):
        yield collator([dataset[key] for key in keys[start : start + batch_size]])


def _targets(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    return batch["labels"], batch.get("attributes")


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put the modules in eval mode and restore each one's mode afterwards (evaluation runs mid-training)."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def generate_images(
    generator: nn.Module, text_encoder: nn.Module, batch: dict[str, Any], z: torch.Tensor, device: torch.device,
) -> torch.Tensor:
    """One image per caption of a collated batch, in [-1, 1], the i-th from noise ``z[i]``."""
    cond = text_encoder(text_batch(batch, device)).sentence.float()
    return generator(z.to(device), cond).images.float().clamp(-1, 1)


@torch.no_grad()
def generated_batches(
    generator: nn.Module, text_encoder: nn.Module, dataset: Any, collator: Any, samples: int, device: torch.device,
    seed: int = 0, truncation: float | None = None, batch_size: int = 64,
) -> Iterator[EvalBatch]:
    """``samples`` generated images from the dataset's captions, ``batch_size`` at a time.

    The noise of all samples is drawn at once, so the images (and the numbers) do not depend on
    ``batch_size``: truncation resamples out-of-range values, which would shift a per-batch stream.
    Both networks are put in eval mode and restored afterwards (the trainer calls this mid-training)."""
    keys = caption_keys(len(dataset), samples, seed)
    z = make_noise(len(keys), generator.z_dim, torch.Generator().manual_seed(seed + 1), truncation)  # type: ignore[arg-type]
    start = 0
    with eval_mode(generator, text_encoder):
        for batch in _keyed_batches(dataset, collator, keys, batch_size):
            images = generate_images(generator, text_encoder, batch, z[start : start + batch_size], device)
            start += batch_size
            labels, attrs = _targets(batch)
            yield EvalBatch(images, labels, attrs, list(batch["captions"]))


def real_batches(
    dataset: Any, collator: Any, samples: int, seed: int = 0, batch_size: int = 64, shuffle_captions: bool = False,
) -> Iterator[EvalBatch]:
    """Real images with their own captions' targets, or (``shuffle_captions``) with those of
    another random item: the ceiling and the chance level of the alignment metric."""
    keys = caption_keys(len(dataset), samples, seed)
    dataset = dataset.view(wrong_images=False, augment=False)
    shuffled = captions_only(dataset)
    perm = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed + 7)) if shuffle_captions else None
    for start in range(0, len(keys), batch_size):
        items = [dataset[key] for key in keys[start : start + batch_size]]
        images = collator(items)["images"]
        if perm is not None:
            items = [shuffled[keys[int(j)]] for j in perm[start : start + batch_size]]
        batch = collator(items)
        labels, attrs = _targets(batch)
        yield EvalBatch(images, labels, attrs, list(batch["captions"]))
