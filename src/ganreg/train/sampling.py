"""Noise and image grids shared by training samples and ``ganreg generate``."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from ganreg.atomic import atomic_path, atomic_write_text


def make_noise(n: int, dim: int, generator: torch.Generator, truncation: float | None = None) -> torch.Tensor:
    """Standard normal noise on the CPU; with ``truncation`` t, resampled into
    [-2, 2] and scaled by t (DF-GAN samples with t = 0.88)."""
    z = torch.randn(n, dim, generator=generator)
    if truncation is not None:
        bad = z.abs() > 2
        while bool(bad.any()):
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
            bad = z.abs() > 2
        z = z * truncation
    return z


def grid_images(generator: torch.nn.Module, cond: torch.Tensor, z: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Every caption's sentence ``cond`` (``[C, D]``) with every noise vector ``z`` (``[N, Z]``): float
    ``[C * N, 3, S, S]``, row-major by caption (a grid row per caption), G run on ``chunk`` images at a time
    so that a large grid fits in memory."""
    n_cap, n_z = cond.shape[0], z.shape[0]
    cond = cond.repeat_interleave(n_z, dim=0)
    z = z.to(cond.device).repeat(n_cap, 1)
    return torch.cat([generator(z[i : i + chunk], cond[i : i + chunk]).images.float() for i in range(0, z.shape[0], chunk)])


def save_grid(images: torch.Tensor, path: Path, nrow: int, captions: list[str] | None = None) -> None:
    """Save images in [-1, 1] as a grid (one row per caption), PNG unless ``path`` ends in ``.jpg`` /
    ``.jpeg`` (the temporary file's name hides the suffix from PIL, so the format is given), and the
    captions, one per row, in a ``.txt`` beside it."""
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)
    image_format = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format=image_format)
    if captions is not None:
        atomic_write_text(path.with_suffix(".txt"), "".join(f"row {i + 1}: {c}\n" for i, c in enumerate(captions)))
