"""Noise diversity: do different noise vectors give different images for one caption?

FID and alignment both miss the failure GAN-INT-CLS is known for: a
generator that draws one image per caption, whatever the noise, can follow
the text perfectly. This metric makes that visible.

For each of ``captions`` captions of the split, ``per_caption`` images are
generated from the same sentence embedding and different noise; the score is
their mean pairwise pixel distance (mean absolute difference, pixels in
[0, 1]), averaged over captions.

The reference is the same statistic on real images that one caption fits
equally well: real images whose class and attributes (everything the captions
state; the built-in shapes have them) are identical. ``diversity`` is then
generated / real: 0 is a collapsed generator, about 1 is as varied as the
data. Data without attributes (one caption per image) has no such group, so
only the raw ``diversity_pixels`` is reported.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganreg.metrics.samples import caption_keys, captions_only, eval_mode, generate_images
from ganreg.train.sampling import make_noise

DIVERSITY = "diversity"
DIVERSITY_PIXELS = "diversity_pixels"


@dataclass(frozen=True)
class DiversitySpec:
    captions: int = 64
    per_caption: int = 8


def mean_pairwise_l1(images: torch.Tensor) -> float:
    """Mean over all pairs ``i < j`` of ``mean |x_i - x_j|`` for images ``[N, C, H, W]`` in [-1, 1],
    in units of [0, 1] pixels (so identical images give 0, black vs white 1)."""
    n = images.shape[0]
    if n < 2:
        raise ValueError("need at least 2 images for a pairwise distance")
    flat = images.reshape(n, -1).cpu().double()  # on the CPU: some devices (Apple's MPS) have no float64
    dist = torch.cdist(flat, flat, p=1) / flat.shape[1] / 2.0
    return float(dist.sum() / (n * (n - 1)))


@torch.no_grad()
def generated_diversity(
    generator: nn.Module,
    text_encoder: nn.Module,
    dataset: Any,
    collator: Any,
    spec: DiversitySpec,
    device: torch.device,
    seed: int = 0,
    truncation: float | None = None,
) -> float:
    """Mean over captions of the pairwise distance between images generated from one caption."""
    noise = torch.Generator().manual_seed(seed + 3)
    scores = []
    captions = captions_only(dataset)
    with eval_mode(generator, text_encoder):
        for key in caption_keys(len(dataset), spec.captions, seed + 3):
            batch = collator([captions[key]] * spec.per_caption)  # one caption, per_caption noise vectors
            z = make_noise(spec.per_caption, generator.z_dim, noise, truncation)  # type: ignore[arg-type]
            scores.append(mean_pairwise_l1(generate_images(generator, text_encoder, batch, z, device)))
    return sum(scores) / len(scores)


def same_caption_groups(dataset: Any) -> list[list[int]]:
    """Indices of real images that share class and every attribute (any caption of one fits all);
    empty when the data has no attributes."""
    if dataset.attributes is None:
        return []
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, label in enumerate(dataset.labels()):
        groups[(label, *dataset.attributes_of(index))].append(index)
    return [g for g in groups.values() if len(g) >= 2]


def real_diversity(dataset: Any, spec: DiversitySpec, seed: int = 0) -> float | None:
    """The same statistic on groups of real images that fit one caption, or None without attributes."""
    groups = same_caption_groups(dataset)
    if not groups:
        return None
    rng = random.Random(seed)
    picked = rng.sample(groups, min(spec.captions, len(groups)))
    scores = []
    for group in picked:
        members = rng.sample(group, min(spec.per_caption, len(group)))
        scores.append(mean_pairwise_l1(torch.stack([dataset.image(i) for i in members])))
    return sum(scores) / len(scores)


def diversity_metrics(
    generator: nn.Module,
    text_encoder: nn.Module,
    dataset: Any,
    collator: Any,
    spec: DiversitySpec,
    device: torch.device,
    seed: int = 0,
    truncation: float | None = None,
) -> tuple[dict[str, float], float | None]:
    """``({diversity_pixels, diversity (when a reference exists)}, real reference or None)``."""
    fake = generated_diversity(generator, text_encoder, dataset, collator, spec, device, seed, truncation)
    real = real_diversity(dataset, spec, seed)
    values = {DIVERSITY_PIXELS: fake}
    if real is not None and real > 0:
        values[DIVERSITY] = fake / real
    return values, real
