"""A whole DF-GAN training step (D with hinge + MA-GP, then G on the same fakes), through the real Trainer.

Compares, in the same run, eager fp32 (reference DFBLK) with the fastest
configuration: bf16 autocast, channels_last, the fused DFBLK kernel and a
compiled G; on a GPU also that plus D compiled for its first-order passes
(``train.compile_discriminator``: the fakes, in D's step and G's; the real pass
stays eager, since MA-GP's double backward is not supported by torch.compile).
Records images/s in ``extra_info``.

On the CPU the shapes are tiny (so CI is not slowed); on a GPU they are the
real ones: batch 32, nf 32, at 64 and 256 px.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ganreg.ops import set_fused
from ganreg.plugins import load_entry_points
from ganreg.recipe import set_dotted, validate_recipe
from ganreg.registry import Registry
from ganreg.train.trainer import Trainer

CUDA = torch.cuda.is_available()
SIZES = [64, 256] if CUDA else [32]
BATCH = 32 if CUDA else 4
NF = 32 if CUDA else 4
CONFIGS = {
    "eager_fp32": {"train.amp": "off", "train.channels_last": False, "train.compile_generator": False, "fused": "off"},
    "fast": {
        "train.amp": "bf16",
        "train.channels_last": True,
        "train.compile_generator": CUDA,
        "data.num_workers": 4 if CUDA else 0,
        "fused": "auto",
    },
}
if CUDA:  # D's first-order passes compiled too: not yet measured against "fast" on a GPU (stop 22)
    CONFIGS["fast_compiled_d"] = {**CONFIGS["fast"], "train.compile_discriminator": True}


def _recipe(size: int, config: dict[str, Any]) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "version": 1,
        "data": {"source": "shapes", "image_size": size, "num_images": 1024 if CUDA else 4 * BATCH + 64},
        "text_encoder": {"name": "lstm", "mode": "frozen"},
        "generator": {"name": "dfgan", "params": {"nf": NF}},
        "discriminator": {"name": "dfgan", "params": {"nf": NF}},
        "losses": [{"name": "hinge"}, {"name": "hinge_generator"}, {"name": "magp"}],
        "optim": {
            "generator": {"lr": 1e-4, "betas": [0.0, 0.9]},
            "discriminator": {"lr": 4e-4, "betas": [0.0, 0.9]},
        },
        "train": {"steps": 1000, "batch_size": BATCH, "ema_decay": None, "seed": 0, "reuse_fake": True},
        "intervals": {"samples": 10**6, "checkpoint": 10**6, "log": 10**6},
        "samples": {"captions": 1, "per_caption": 1},
    }
    for key, value in config.items():
        if "." in key:  # recipe keys; "fused" is the ops switch, not a recipe key
            set_dotted(recipe, key, value)
    return recipe


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    load_entry_points(reg, strict=True)
    return reg


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_dfgan_train_step(benchmark, registry: Registry, tmp_path: Path, size: int, name: str) -> None:  # type: ignore[no-untyped-def]
    config = CONFIGS[name]
    recipe = validate_recipe(_recipe(size, config), registry)
    with set_fused(config["fused"]):
        trainer = Trainer(recipe, registry, tmp_path, device="cuda" if CUDA else "cpu")

        def step() -> None:
            trainer.train_step()
            if CUDA:
                torch.cuda.synchronize()

        for _ in range(3 if CUDA else 1):  # warm-up (and compilation)
            step()
        benchmark.pedantic(step, rounds=10 if CUDA else 3, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable: a smoke run, nothing measured
        return
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {"images_per_s": BATCH / mean, "batch": BATCH, "nf": NF, "image_size": size, "config": name, "device": str(trainer.device)}
    )
