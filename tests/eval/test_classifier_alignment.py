"""The real-data classifier: accurate on unseen real images, cached, and the alignment metric
it gives is near its ceiling on real images and near chance on shuffled captions."""

from __future__ import annotations

import pytest
import torch

from ganreg.data import Collator, build_dataset
from ganreg.data.config import DataConfig
from ganreg.metrics.alignment import AlignmentMeter
from ganreg.metrics.classifier import load_classifier
from ganreg.metrics.fid import fid
from ganreg.metrics.samples import real_batches

from .conftest import CLASSIFIER_DATA, CLASSIFIER_SPEC


def unseen_config(cache: str | None) -> DataConfig:
    """Same drawing process, another seed: none of these images was seen in training."""
    return DataConfig(**{**CLASSIFIER_DATA, "num_images": 480, "seed": 1}, cache_dir=cache)


def alignment(classifier, dataset, shuffle: bool):  # type: ignore[no-untyped-def]
    meter = AlignmentMeter(classifier.model.head_sizes)
    with torch.no_grad():
        for b in real_batches(dataset, Collator(None), 300, seed=0, shuffle_captions=shuffle):
            _, logits = classifier.model(b.images)
            meter.update(logits, b.labels, b.attributes)
    return meter.result()


def test_classifier_is_accurate_on_held_out_images(classifier) -> None:  # type: ignore[no-untyped-def]
    acc = classifier.meta["heldout_accuracy"]
    assert set(acc) == {"class", "shape", "colour", "size", "position"}
    assert acc["colour"] > 0.95 and acc["position"] > 0.95 and acc["size"] > 0.9
    assert acc["shape"] > 0.75 and acc["class"] > 0.7
    assert classifier.meta["trained_on"]["splits"] == ["train", "test"]


def test_classifier_is_cached_per_data_config(classifier, classifier_config) -> None:  # type: ignore[no-untyped-def]
    again = load_classifier(classifier_config, CLASSIFIER_SPEC)
    assert again.sha256 == classifier.sha256 and again.path == classifier.path
    other = classifier_config.model_copy(update={"seed": 5})
    from ganreg.metrics.classifier import classifier_dir

    assert classifier_dir(other, CLASSIFIER_SPEC) != classifier_dir(classifier_config, CLASSIFIER_SPEC)


def test_alignment_near_ceiling_on_real_images_and_near_chance_on_shuffled_captions(classifier, eval_cache) -> None:  # type: ignore[no-untyped-def]
    dataset = build_dataset(unseen_config(str(eval_cache)), "train")
    real = alignment(classifier, dataset, shuffle=False)
    shuffled = alignment(classifier, dataset, shuffle=True)
    assert set(real.accuracy) == {"align", "align_shape", "align_colour", "align_size", "align_position"}
    for name in ("align_colour", "align_size", "align_position"):
        assert real.accuracy[name] > 0.9, (name, real.accuracy)
    assert real.accuracy["align"] > 0.65 and real.accuracy["align_shape"] > 0.7
    for name, acc in shuffled.accuracy.items():
        assert abs(acc - shuffled.chance[name]) < 0.1, (name, acc, shuffled.chance[name])
        assert real.accuracy[name] > shuffled.chance[name] + 0.3
    assert shuffled.chance["align_size"] == pytest.approx(0.5, abs=0.05)


def test_fid_real_vs_real_is_small_and_real_vs_noise_large(classifier, classifier_config, eval_cache) -> None:  # type: ignore[no-untyped-def]
    from ganreg.data.shapes import ShapesDataset

    def feats(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return classifier.model.features(images).double()

    a = ShapesDataset("all", image_size=32, num_images=480, seed=0, cache_dir=str(eval_cache))
    b = ShapesDataset("all", image_size=32, num_images=480, seed=1, cache_dir=str(eval_cache))
    fa = feats(torch.stack([a[i]["image"] for i in range(len(a))]))
    fb = feats(torch.stack([b[i]["image"] for i in range(len(b))]))
    noise = feats(torch.rand(480, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    same = fid(fa, fa)
    real_real = fid(fa, fb)
    real_noise = fid(fa, noise)
    assert abs(same) < 1e-6
    assert real_noise > 20 * real_real, (real_real, real_noise)
