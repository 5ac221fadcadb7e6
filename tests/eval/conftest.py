"""Shared fixtures of the evaluation tests: a trained real-data classifier and a tiny trained run.

Everything is small (32 px shapes, a few hundred images, a 2-step run) and built
once per session; one torch thread keeps small convolutions fast on a busy CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ganreg.data.config import DataConfig
from ganreg.metrics.classifier import ClassifierSpec, TrainedClassifier, load_classifier
from ganreg.testing import torch_threads

CLASSIFIER_DATA = {"source": "shapes", "image_size": 32, "num_images": 1920}
CLASSIFIER_SPEC = ClassifierSpec(epochs=12, batch_size=64, holdout=0.2)

RUN_RECIPE: dict[str, Any] = {
    "version": 1,
    "name": "tiny-eval",
    "data": {"source": "shapes", "image_size": 32, "num_images": 192},
    "text_encoder": {"name": "lstm", "mode": "joint", "params": {"hidden": 16, "embedding_dim": 8}},
    "generator": {"name": "dfgan:dfgan", "params": {"nf": 4, "z_dim": 8}},
    "discriminator": {"name": "dfgan:dfgan", "params": {"nf": 4}},
    "losses": [{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}, {"name": "dfgan:magp"}],
    "train": {"steps": 2, "batch_size": 8, "ema_decay": 0.9, "seed": 1},
    "intervals": {"log": 1, "samples": 1, "checkpoint": 2},
    "samples": {"captions": 4, "per_caption": 3},
    "eval": {"every_epochs": 1, "metrics": ["fid", "kid", "is", "align"], "samples": 16, "keep_best": "fid"},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder shared by the session's classifier and reference statistics."""
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="session")
def classifier_config(eval_cache: Path) -> DataConfig:
    return DataConfig(**CLASSIFIER_DATA, cache_dir=str(eval_cache))


@pytest.fixture(scope="session")
def classifier(classifier_config: DataConfig) -> TrainedClassifier:
    with torch_threads(1):  # session fixtures are set up before the module's autouse one
        return load_classifier(classifier_config, CLASSIFIER_SPEC)


@pytest.fixture(scope="session")
def registry() -> Any:
    from ganreg.plugins import load_entry_points
    from ganreg.registry import Registry

    reg = Registry()
    load_entry_points(reg, strict=True)
    return reg


def make_trainer(registry: Any, run_dir: Path, cache: Path, **overrides: Any) -> Any:
    import copy

    from ganreg.recipe import set_dotted, validate_recipe
    from ganreg.train.trainer import start_or_resume

    raw = copy.deepcopy(RUN_RECIPE)
    raw["data"]["cache_dir"] = str(cache)
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    return start_or_resume(validate_recipe(raw, registry), registry, run_dir, "cpu", resume=False)


@pytest.fixture(scope="session")
def tiny_run(registry: Any, tmp_path_factory: pytest.TempPathFactory, eval_cache: Path) -> Path:
    """A finished 2-step DF-GAN run on 32 px shapes."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    with torch_threads(1):
        trainer = make_trainer(registry, run, eval_cache)
        assert trainer.fit() == "finished"
    return run


@pytest.fixture
def autoload(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The process registry with the installed plugins (what `load_run` and the CLI use)."""
    from ganreg import plugins

    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    yield plugins.get_registry()
    plugins.reset_registry()
