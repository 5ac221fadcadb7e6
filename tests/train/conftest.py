"""Tiny recipes and runs shared by the training tests."""

from __future__ import annotations

import copy
import json
import pickle
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ganreg.plugins import load_entry_points
from ganreg.recipe import set_dotted, validate_recipe
from ganreg.registry import Registry


def tiny_recipe(**over: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "version": 1,
        "name": "tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 96},
        "text_encoder": {"name": "lstm", "mode": "joint", "params": {"hidden": 16, "embedding_dim": 8}},
        "generator": {"name": "dcgan_cls", "params": {"ngf": 8, "z_dim": 8, "proj_dim": 8}},
        "discriminator": {"name": "dcgan_cls", "params": {"ndf": 8, "proj_dim": 8}},
        "losses": [
            {"name": "matching_bce", "params": {"wrong_weight": 0.5, "fake_weight": 0.5}},
            {"name": "generator_bce"},
            {"name": "feature_matching", "weight": 2.0},
        ],
        "train": {"steps": 4, "batch_size": 8, "ema_decay": 0.9, "seed": 3},
        "intervals": {"log": 1, "samples": 2, "checkpoint": 2},
        "samples": {"captions": 4, "per_caption": 3},
    }
    for key, value in over.items():
        set_dotted(recipe, key, copy.deepcopy(value))  # callers' dicts stay theirs
    return recipe


@pytest.fixture(scope="session")
def registry() -> Registry:
    reg = Registry()
    load_entry_points(reg, strict=True)
    return reg


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(**over: Any) -> Path:
        path = tmp_path / "recipe.json"
        path.write_text(json.dumps(tiny_recipe(**over)))
        return path

    return write


@pytest.fixture
def make_recipe(registry: Registry):
    """A validated tiny recipe with dotted-key overrides."""

    def make(**over: Any):
        return validate_recipe(tiny_recipe(**over), registry)

    return make


def write_damsm_pickle(path: Path, train: list[str], test: list[str]) -> dict[str, int]:
    """captions_DAMSM.pickle as DF-GAN's TextImgDataset.build_dictionary writes it (protocol 2):
    every word of train + test in first-seen order, 0 = '<end>'."""
    def tok(c: str) -> list[str]:
        return [t.encode("ascii", "ignore").decode("ascii") for t in re.findall(r"\w+", c.lower())]

    counts: dict[str, float] = defaultdict(float)
    for sent in map(tok, train + test):
        for w in sent:
            counts[w] += 1
    wordtoix, ixtoword = {"<end>": 0}, {0: "<end>"}
    for ix, w in enumerate(counts, 1):
        wordtoix[w], ixtoword[ix] = ix, w
    ids = [[[wordtoix[w] for w in tok(c)] for c in caps] for caps in (train, test)]
    with open(path, "wb") as fh:
        pickle.dump([ids[0], ids[1], ixtoword, wordtoix], fh, protocol=2)
    return wordtoix


@pytest.fixture
def damsm_pickle():  # type: ignore[no-untyped-def]
    """:func:`write_damsm_pickle`, for the test modules."""
    return write_damsm_pickle
