"""Noise diversity: the pairwise distance, the real reference groups, and that a generator that
ignores its noise scores 0 while one that uses it does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ganreg.data import Collator, build_dataset
from ganreg.data.config import DataConfig
from ganreg.interfaces import GeneratorOutput, TextOutput
from ganreg.metrics.diversity import (
    DiversitySpec,
    diversity_metrics,
    mean_pairwise_l1,
    real_diversity,
    same_caption_groups,
)
from ganreg.metrics.evaluate import EvalOptions, evaluate_run, metric_family

OPTIONS_SMALL = {"samples": 4, "batch_size": 4}


def test_mean_pairwise_l1_in_zero_one_pixel_units() -> None:
    black, white, grey = -torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    assert mean_pairwise_l1(torch.cat([black, black, black])) == 0.0
    assert mean_pairwise_l1(torch.cat([black, white])) == pytest.approx(1.0)
    # pairs: (b, w) 1, (b, g) 0.5, (w, g) 0.5 -> mean 2/3
    assert mean_pairwise_l1(torch.cat([black, white, grey])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        mean_pairwise_l1(black)


@pytest.fixture(scope="module")
def shapes(eval_cache: Path) -> Any:
    return build_dataset(DataConfig(source="shapes", image_size=32, num_images=960, cache_dir=str(eval_cache)), "train")


def test_real_groups_share_class_and_every_attribute(shapes: Any) -> None:
    groups = same_caption_groups(shapes)
    assert len(groups) > 50 and all(len(g) >= 2 for g in groups)
    labels = shapes.labels()
    for g in groups[:20]:
        assert len({labels[i] for i in g}) == 1
        assert len({tuple(shapes.attributes_of(i)) for i in g}) == 1
    # real images that fit one caption still differ (background tint and style, jitter), but far less
    # than random pairs do
    spec = DiversitySpec(captions=16, per_caption=4)
    within = real_diversity(shapes, spec)
    random_pairs = mean_pairwise_l1(torch.stack([shapes[(0, i)]["image"] for i in range(0, 64, 4)]))
    assert within is not None and 0.01 < within < random_pairs


class _Text(nn.Module):
    out_dim = 4

    def forward(self, text: Any) -> TextOutput:
        return TextOutput(sentence=torch.zeros(len(text.captions), 4))


class _Gen(nn.Module):
    """Paints every pixel with the first noise value (``use_noise``) or a constant."""

    z_dim = 3

    def __init__(self, use_noise: bool) -> None:
        super().__init__()
        self.use_noise = use_noise

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        value = torch.tanh(z[:, :1]) if self.use_noise else torch.zeros(z.shape[0], 1)
        return GeneratorOutput(images=value[:, :, None, None].expand(-1, 3, 32, 32))


def test_collapsed_generator_scores_zero_and_a_noise_driven_one_does_not(shapes: Any) -> None:
    spec = DiversitySpec(captions=4, per_caption=5)
    collator = Collator(None)
    collapsed, real = diversity_metrics(_Gen(False), _Text(), shapes, collator, spec, torch.device("cpu"))
    varied, _ = diversity_metrics(_Gen(True), _Text(), shapes, collator, spec, torch.device("cpu"))
    assert collapsed["diversity_pixels"] == 0.0 and collapsed["diversity"] == 0.0
    assert varied["diversity_pixels"] > 0.1 and real is not None
    assert varied["diversity"] == pytest.approx(varied["diversity_pixels"] / real)


def test_eval_reports_diversity_with_its_reference(tiny_run: Path, autoload: Any) -> None:
    spec = DiversitySpec(captions=3, per_caption=4)
    result = evaluate_run(tiny_run, EvalOptions(metrics=["diversity"], diversity=spec, **OPTIONS_SMALL), device="cpu", write=False)
    assert set(result.metrics) == {"diversity", "diversity_pixels"}
    proto = result.metric_protocol["diversity"]
    assert proto["id"] == "diversity3x4-pixels-test-32px" and proto["real_pixels"] > 0 and proto["generated_samples"] == 12
    assert result.metrics["diversity"] == pytest.approx(result.metrics["diversity_pixels"] / proto["real_pixels"])
    assert metric_family("diversity_pixels") == "diversity" and metric_family("align_colour") == "align"
