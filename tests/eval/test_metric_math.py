"""FID, KID and IS through torchmetrics agree with independent numpy/scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ganreg.metrics.classifier import ImageClassifier, TrainedClassifier
from ganreg.metrics.features import ClassifierFeatures
from ganreg.metrics.fid import GaussianStats, fid, inception_score, kid
from ganreg.metrics.reference import gaussian


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), as pytorch-fid / DF-GAN compute it."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def numpy_kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al.)."""
    d, m = a.shape[1], a.shape[0]
    k = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12))
    mix = rng.normal(size=(12, 12)) * 0.3
    b = rng.normal(loc=0.4, size=(300, 12)) @ (np.eye(12) + mix)
    return a, b


def test_fid_matches_scipy_on_fixed_features(features: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = features
    ours = fid(torch.from_numpy(a), torch.from_numpy(b))
    assert ours == pytest.approx(scipy_fid(a, b), rel=1e-6)
    assert fid(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0.0, abs=1e-6)


def test_fid_from_statistics_equals_fid_from_features(features: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = features
    stats = gaussian(a)
    assert fid(stats, torch.from_numpy(b)) == pytest.approx(fid(torch.from_numpy(a), torch.from_numpy(b)), rel=1e-9)
    unknown_n = GaussianStats(stats.mu, stats.sigma)  # DF-GAN npz: no sample count
    assert fid(unknown_n, torch.from_numpy(b)) == pytest.approx(scipy_fid(a, b), rel=1e-6)


def test_kid_matches_numpy_unbiased_mmd(features: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = features
    # one subset of every sample: the value no longer depends on the random subsets
    mean, std, size = kid(torch.from_numpy(a), torch.from_numpy(b), subsets=1, subset_size=len(a))
    assert size == len(a) and std == 0.0
    assert mean == pytest.approx(numpy_kid(a, b), rel=1e-6)


def test_inception_score_matches_numpy() -> None:
    logits = torch.randn(200, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    p = torch.softmax(logits, 1).numpy()
    expected = float(np.exp((p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean()))
    mean, _ = inception_score(logits, splits=1)
    assert mean == pytest.approx(expected, rel=1e-6)


def test_inception_score_std_over_splits_is_the_population_std() -> None:
    """Salimans et al.'s code and torch-fidelity report np.std of the split scores (ddof 0)."""
    logits = torch.randn(200, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    torch.manual_seed(0)
    order = torch.randperm(200)  # torchmetrics shuffles before splitting; inception_score seeds it with 0
    scores = []
    for part in torch.softmax(logits[order], 1).chunk(4):
        p = part.numpy()
        scores.append(float(np.exp((p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean())))
    mean, std = inception_score(logits, splits=4, seed=0)
    assert mean == pytest.approx(np.mean(scores), rel=1e-6)
    assert std == pytest.approx(np.std(scores), rel=1e-6)


def test_torchmetrics_with_the_extractor_module_matches_scipy() -> None:
    """The extractor wrapper is a plain nn.Module torchmetrics accepts as ``feature``."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    model = ImageClassifier({"class": 5}, input_size=32, width=4, feature_dim=6).eval()
    extractor = ClassifierFeatures(TrainedClassifier(model, path=None, sha256="test", meta={"class_names": list("abcde")}))  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(2)
    real = torch.rand(64, 3, 32, 32, generator=g) * 2 - 1
    fake = (torch.rand(64, 3, 32, 32, generator=g) * 2 - 1) * 0.5 + 0.3
    metric = FrechetInceptionDistance(feature=extractor)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.no_grad():
        fr, ff = extractor(real).double().numpy(), extractor(fake).double().numpy()
    assert float(metric.compute()) == pytest.approx(scipy_fid(fr, ff), rel=1e-4)


def test_inception_score_cuts_exactly_the_asked_splits_of_near_equal_size() -> None:
    """25 samples in 10 splits: parts of 2 or 3 (``i * n // splits``), as Salimans et al. and torch-fidelity cut
    them; ``torch.chunk`` made 9 parts, the last of one image (whose score is exactly 1)."""
    logits = torch.randn(25, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 3
    torch.manual_seed(0)
    p_all = torch.softmax(logits[torch.randperm(25)], 1).numpy()
    scores = []
    for i in range(10):
        p = p_all[i * 25 // 10 : (i + 1) * 25 // 10]
        scores.append(float(np.exp((p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean())))
    mean, std = inception_score(logits, splits=10, seed=0)
    assert mean == pytest.approx(np.mean(scores), rel=1e-9) and std == pytest.approx(np.std(scores), rel=1e-9)
    assert min(scores) > 1.0  # no part of a single image


def test_a_capped_reference_is_a_seeded_subset_of_every_part_of_the_split() -> None:
    """``real_max``: the first N images of a folder or HDF5 split are its first few classes; the reference draws
    N across the whole split instead, the same N every time."""
    from ganreg.metrics.reference import reference_indices

    drawn = reference_indices(1000, 100)
    assert len(drawn) == 100 and drawn == sorted(set(drawn)) and drawn == reference_indices(1000, 100)
    assert min(drawn) < 100 and max(drawn) > 900  # from the start to the end of the split, not its first 100
    assert reference_indices(50, 100) == list(range(50)) and reference_indices(50, None) == list(range(50))
