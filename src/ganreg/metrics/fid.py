"""FID, KID and IS from features, through torchmetrics (no hand-written Fréchet or kernel math).

Features are extracted once per image (:mod:`ganreg.metrics.features`) and
handed to torchmetrics' metrics through a pass-through "feature extractor",
so FID and KID share one pass over the images and the real features can come
from the cache or from published statistics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10


class Passthrough(nn.Module):
    """A torchmetrics "feature extractor" that receives features already extracted."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@dataclass
class GaussianStats:
    """Mean and covariance of features (what DF-GAN's published npz files hold)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int = 2
    """Samples behind the statistics; only their ratio matters to FID, 2 when unknown."""


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        yield


def fid(real: torch.Tensor | GaussianStats, fake: torch.Tensor) -> float:
    """Fréchet distance between real features (or their statistics) and generated features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    dim = fake.shape[1]
    metric = FrechetInceptionDistance(feature=Passthrough(dim))
    if isinstance(real, GaussianStats):
        if real.mu.shape != (dim,) or real.sigma.shape != (dim, dim):
            raise ValueError(f"statistics of dimension {real.mu.shape} do not match features of dimension {dim}")
        # torchmetrics keeps sums; encode mean and covariance as the sums that give them back exactly.
        n = max(int(real.n), 2)
        mu = torch.as_tensor(real.mu, dtype=torch.float64)
        sigma = torch.as_tensor(real.sigma, dtype=torch.float64)
        metric.real_features_sum = mu * n
        metric.real_features_cov_sum = sigma * (n - 1) + n * torch.outer(mu, mu)
        metric.real_features_num_samples = torch.tensor(n, dtype=torch.long)
    else:
        metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kid(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float, int]:
    """KID (unbiased MMD², cubic polynomial kernel): mean and std over random subsets,
    and the subset size used (capped by the smaller set)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = int(min(subset_size, real.shape[0], fake.shape[0]))
    if size < 2:
        raise ValueError("KID needs at least 2 real and 2 generated samples")
    with _quiet():
        metric = KernelInceptionDistance(feature=Passthrough(fake.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def inception_score(logits: torch.Tensor, splits: int = IS_SPLITS, seed: int = 0) -> tuple[float, float]:
    """IS (exp of the mean KL between p(y|x) and p(y)) from class logits: mean and std over splits.

    As Salimans et al.'s code and torch-fidelity: the (seeded) shuffled samples are cut into ``splits``
    parts of ``n // splits`` or one more (``i * n // splits``), and the std is the population std (ddof 0)
    of the split scores. Written here rather than with torchmetrics' ``InceptionScore``, whose
    ``torch.chunk`` makes fewer, unequal parts when ``n`` is not a multiple of ``splits`` (25 samples: 9
    parts, the last of one image, whose score is 1) and whose std is the sample std."""
    n = logits.shape[0]
    splits = max(1, min(splits, n))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order = torch.randperm(n)
    log_p = torch.log_softmax(logits.double()[order], dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = torch.logsumexp(part, dim=0) - math.log(part.shape[0])
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))
