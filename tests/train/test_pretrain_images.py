"""Text-encoder pretraining by matching captions to their images (``pretrain.objective: images``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganreg.text_encoders.matching import GAMMA3, ImageFeatures, sentence_match_loss


def test_the_loss_is_damsm_sentence_loss() -> None:
    torch.manual_seed(0)
    s, v = torch.randn(6, 8), torch.randn(6, 8)
    loss, acc = sentence_match_loss(s, v)
    cos = torch.tensor([[float(F.cosine_similarity(s[i], v[j], dim=0)) for j in range(6)] for i in range(6)])
    logp_rows = torch.log_softmax(GAMMA3 * cos, dim=1).diagonal()
    logp_cols = torch.log_softmax(GAMMA3 * cos, dim=0).diagonal()
    assert torch.allclose(loss, -(logp_rows.mean() + logp_cols.mean()), atol=1e-5)
    assert float(acc) == float((cos.argmax(1) == torch.arange(6)).float().mean())
    aligned, acc1 = sentence_match_loss(v * 3, v)  # same directions: every caption finds its image
    assert float(acc1) == 1.0 and float(aligned) < float(loss)
    assert ImageFeatures(16)(torch.randn(2, 3, 64, 64)).shape == (2, 16)


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 220), "yellow": (230, 220, 30),
           "purple": (150, 40, 200), "white": (245, 245, 245)}


def test_pretraining_on_images_teaches_what_the_captions_say(make_recipe, registry, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Photos in no classes, each captioned with its colour: afterwards captions naming one colour lie
    closer together than captions of different colours (they did not before), with no label anywhere.
    The encoder is cached where the data's caches are, ``~`` expanded (not a folder named ``~``)."""
    import numpy as np
    from PIL import Image

    from ganreg.interfaces import TextBatch
    from ganreg.text_encoders.pretrain import _key, pretrain_text_encoder
    from ganreg.train.networks import build_networks
    from ganreg.train.setup import prepare_data

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANREG_CACHE", "~/gc")
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(36):
        name = list(COLOURS)[i % 6]
        arr = np.clip(np.array(COLOURS[name]) + rng.normal(0, 10, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"p{i:02d}.png")
        (root / f"p{i:02d}.txt").write_text(f"a {name} photo\nthis one is {name}\n")
    recipe = make_recipe(**{
        "data": {"source": "folder", "path": str(root), "image_size": 32}, "text_encoder.mode": "pretrain",
        "text_encoder.pretrain": {"objective": "images", "epochs": 60, "batch_size": 16, "lr": 0.003},
    })
    data = prepare_data(recipe)
    encoder = build_networks(recipe, registry, data.context).text_encoder
    caps = [f"{prefix} {name} {suffix}" for name in COLOURS for prefix, suffix in (("a", "photo"), ("this one is", ""))]
    same = torch.arange(len(caps))[:, None] // 2 == torch.arange(len(caps))[None, :] // 2

    def separation() -> float:
        with torch.no_grad():
            e = F.normalize(encoder(TextBatch(*data.vocab.encode_batch(caps, 18))).sentence, dim=1)
        sim = e @ e.t()
        return float(sim[same].mean() - sim[~same].mean())

    encoder.eval()
    before = separation()
    torch.manual_seed(0)
    path = pretrain_text_encoder(encoder, recipe, data, torch.device("cpu"))
    encoder.eval()
    after = separation()
    assert after > before + 0.15, (before, after)  # 0.26 here
    assert path.is_file() and path.is_relative_to(tmp_path / "home" / "gc" / "text_encoders")
    other = make_recipe(**{"data": {"source": "folder", "path": str(root), "image_size": 32},
                           "text_encoder.pretrain": {"objective": "class", "epochs": 60}})
    assert _key(recipe, data) != _key(other, data)


@pytest.mark.parametrize("objective", ["class", "images"])
def test_image_settings_key_the_cache_only_for_the_image_objective(make_recipe, objective: str) -> None:  # type: ignore[no-untyped-def]
    from ganreg.text_encoders.pretrain import _key
    from ganreg.train.setup import prepare_data

    recipe = make_recipe(**{"text_encoder.pretrain.objective": objective})
    data = prepare_data(recipe)
    flipped = make_recipe(**{"text_encoder.pretrain.objective": objective, "data.seed": 0, "data.num_workers": 1})
    assert _key(recipe, data) == _key(flipped, data)  # loader workers never change what is learnt
    cropped = recipe.model_copy(deep=True)
    cropped.data.random_crop = 1.5  # (the shapes source refuses it; the key is all that is compared)
    assert (_key(recipe, data) != _key(cropped, data)) == (objective == "images")
