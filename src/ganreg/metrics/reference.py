"""Reference statistics of the real data: computed once per (dataset, split, resolution,
extractor weights), cached; or supplied by the user as an npz of ``mu`` and ``sigma``.

The cache file (``<cache>/eval/refstats/<key>.npz``) holds the raw features
(KID needs them), their ``mu`` and ``sigma`` (DF-GAN's npz layout, so the file
can be handed to other tools) and ``n``. A user npz with only ``mu`` and
``sigma`` (e.g. DF-GAN's ``bird_val256_FIDK0.npz``) gives FID only: KID needs
the features themselves. Such a file only makes sense with the extractor it
was computed with: DF-GAN's files come from torchvision's ImageNet
InceptionV3 (reference §2.5), not from the TF-FID weights ganreg's
``inception`` extractor uses, so a FID against them is comparable with
neither protocol; the file's sha256 goes into the protocol id.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganreg.atomic import atomic_write_bytes
from ganreg.data.build import worker_count
from ganreg.data.config import DataConfig
from ganreg.errors import UserError
from ganreg.metrics.cache import EVAL_CACHE_VERSION, data_key, eval_cache_dir, sha256_file, short_hash
from ganreg.metrics.features import FeatureExtractor
from ganreg.metrics.fid import GaussianStats


@dataclass
class Reference:
    """Real-data side of FID/KID: features (when known) and their statistics."""

    stats: GaussianStats
    features: torch.Tensor | None
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.stats.n)


def gaussian(features: np.ndarray) -> GaussianStats:
    """Mean and (unbiased) covariance of ``[N, D]`` features, for export in DF-GAN's npz layout."""
    feats = np.asarray(features, dtype=np.float64)
    return GaussianStats(feats.mean(axis=0), np.cov(feats, rowvar=False), int(feats.shape[0]))


def save_npz(path: Path, features: np.ndarray | None, stats: GaussianStats, meta: dict[str, Any]) -> None:
    """Atomic write of ``mu``, ``sigma``, ``n``, optional ``features`` and a JSON ``meta``."""
    arrays: dict[str, Any] = {"mu": stats.mu, "sigma": stats.sigma, "n": np.asarray(stats.n), "meta": np.asarray(json.dumps(meta))}
    if features is not None:
        arrays["features"] = np.asarray(features, dtype=np.float32)
    atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))


def load_npz(path: Path, dim: int | None = None) -> Reference:
    """A reference npz: ganreg's cache files, or any npz with ``mu`` ``[D]`` and ``sigma`` ``[D, D]``."""
    path = Path(path)
    fix = "pass an .npz with arrays mu [D] and sigma [D, D] computed with the same feature extractor"
    if not path.is_file():
        raise UserError(f"reference statistics file not found: {path}", fix)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise UserError(f"cannot read reference statistics {path} ({type(exc).__name__}: {exc})", fix) from None
    if "mu" not in data or "sigma" not in data:
        raise UserError(f"{path} has no 'mu' and 'sigma' arrays (it has: {', '.join(sorted(data)) or 'nothing'})", fix)
    mu, sigma = np.asarray(data["mu"], dtype=np.float64).reshape(-1), np.asarray(data["sigma"], dtype=np.float64)
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UserError(f"{path}: sigma has shape {sigma.shape}, expected {(mu.shape[0], mu.shape[0])}", fix)
    if dim is not None and mu.shape[0] != dim:
        raise UserError(
            f"{path} holds {mu.shape[0]}-d statistics but the extractor gives {dim}-d features",
            "use the extractor the file was computed with (Inception pool3 is 2048-d: --extractor inception)",
        )
    n = int(data["n"]) if "n" in data else 2
    feats = torch.from_numpy(np.asarray(data["features"], dtype=np.float32)) if "features" in data else None
    meta: dict[str, Any] = {}
    if "meta" in data:
        with contextlib.suppress(ValueError):
            meta = json.loads(str(data["meta"]))
    return Reference(GaussianStats(mu, sigma, n), feats, meta)


def user_reference(path: Path, extractor_protocol: dict[str, Any], dim: int) -> Reference:
    """``--ref-stats FILE.npz``: the user's statistics; the protocol names the file and its hash. A file
    ganreg wrote names its extractor: another network's (or another resize's) statistics are refused, as
    their FID would be no distance (a DF-GAN npz names none and is taken as it is)."""
    ref = load_npz(path, dim)
    made_with = ref.protocol.get("extractor")
    if isinstance(made_with, dict) and made_with.get("sha256"):
        differs = [k for k in ("name", "sha256", "resize") if k in made_with and made_with[k] != extractor_protocol.get(k)]
        if differs:
            raise UserError(
                f"{path} holds features of another extractor ({made_with.get('name')}, weights "
                f"{str(made_with['sha256'])[:8]}) than this evaluation's ({extractor_protocol.get('name')}, weights "
                f"{str(extractor_protocol.get('sha256'))[:8]}; differing: {', '.join(differs)})",
                (f"evaluate with --extractor {made_with.get('name')}, or leave" if "name" in differs else
                 "the file was made by an earlier ganreg or with other weights: leave")
                + " --ref-stats out: ganreg computes and caches the statistics of the split with this extractor",
            )
    ref.protocol = {
        "source": "user file",
        "path": str(Path(path).resolve()),
        "sha256": sha256_file(Path(path)),
        "real_samples": ref.n if ref.n > 2 else "unknown",
        **{f"file_{k}": v for k, v in ref.protocol.items() if k in ("split", "extractor", "data")},
    }
    return ref


class _FirstPass(torch.utils.data.Dataset):
    """Items ``(0, i)`` of a dataset for the given indices: epoch 0's choices, without touching the dataset's
    own epoch (the trainer's datasets are shared with its batch stream)."""

    def __init__(self, dataset: Any, indices: list[int]) -> None:
        self.dataset, self.indices = dataset.view(wrong_images=False, augment=False), indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.dataset[(0, self.indices[i])]


def reference_indices(size: int, max_images: int | None) -> list[int]:
    """The real images a reference is made of: all of them, or ``max_images`` drawn with a fixed seed (in
    index order). The first ones would be a few classes only: folders and HDF5 files list images by class."""
    if max_images is None or max_images >= size:
        return list(range(size))
    return sorted(torch.randperm(size, generator=torch.Generator().manual_seed(0))[:max_images].tolist())


def _images_only(items: list[dict[str, Any]]) -> torch.Tensor:
    return torch.stack([it["image"] for it in items])


@torch.no_grad()
def extract_dataset(
    extractor: FeatureExtractor, dataset: Any, device: torch.device, batch_size: int = 128, max_images: int | None = None,
    num_workers: int = 0,
) -> torch.Tensor:
    """Features of the dataset's real images, in index order."""
    from ganreg.data.build import DataLoaderWithErrors

    items = _FirstPass(dataset, reference_indices(len(dataset), max_images))
    loader = DataLoaderWithErrors(items, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_images_only)
    out = [extractor(images.to(device)).float().cpu() for images in loader]
    return torch.cat(out) if out else torch.empty(0, extractor.num_features)


def reference_path(config: DataConfig, split: str, extractor_protocol: dict[str, Any], max_images: int | None) -> Path:
    key = short_hash({
        "v": EVAL_CACHE_VERSION, "data": data_key(config), "split": split, "size": config.image_size,
        "extractor": extractor_protocol["name"], "weights": extractor_protocol["sha256"], "max": max_images, "subset": "seeded",
        "resize": extractor_protocol.get("resize"),
    })
    name = f"{config.source}-{split}-px{config.image_size}-{extractor_protocol['name']}-{key}.npz"
    return eval_cache_dir(config) / "refstats" / name


def dataset_reference(
    config: DataConfig, split: str, dataset: Any, extractor: FeatureExtractor, device: torch.device,
    max_images: int | None = None, log: Callable[[str], None] | None = None,
) -> Reference:
    """The cached real features of ``split`` under ``extractor``; computed and cached on first use."""
    proto = extractor.protocol()
    path = reference_path(config, split, proto, max_images)
    if path.is_file():
        with contextlib.suppress(UserError):
            ref = load_npz(path, extractor.num_features)
            if ref.features is not None:
                ref.protocol = {"source": "cache", "path": str(path), "real_samples": ref.n}
                return ref
    if log:
        log(f"reference statistics: extracting {proto['name']} features of the real '{split}' images (cached after)")
    feats = extract_dataset(extractor, dataset, device, max_images=max_images, num_workers=worker_count(config.num_workers))
    if feats.shape[0] < 2:
        raise UserError(f"the '{split}' split has {feats.shape[0]} image(s); FID needs at least 2", "use another --split")
    stats = gaussian(feats.numpy())
    meta = {"split": split, "data": config.model_dump(mode="json"), "extractor": proto, "images": int(feats.shape[0])}
    with contextlib.suppress(OSError):
        save_npz(path, feats.numpy(), stats, meta)
    return Reference(stats, feats, {"source": "computed", "path": str(path), "real_samples": int(feats.shape[0])})
