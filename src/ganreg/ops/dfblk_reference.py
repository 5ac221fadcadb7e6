"""Plain PyTorch definitions of the fused ops. These *define* the semantics.

``dfblk_reference`` is DF-GAN's DFBLK without its affine MLPs::

    y = lrelu(g2 * lrelu(g1 * x + b1, slope) + b2, slope)

with ``x`` of shape ``[B, C, H, W]`` and ``g1, b1, g2, b2`` per-sample,
per-channel modulation of shape ``[B, C]`` (the MLP outputs).

``cbn_apply_reference`` is the apply step of conditional BatchNorm::

    y = relu(g * xhat + b)

The output has ``x``'s dtype. The modulations may be wider (float32 ones with
a bfloat16 ``x`` under autocast); the arithmetic then runs in the wider type
and only the result is rounded. That keeps the text's modulation exact: a
gamma near 1 rounded to bfloat16 moves in steps of 2**-8 to 2**-7, the same
step for every pixel of a channel -- a bias that erases small text-dependent
differences, where rounding the output is noise that the next conv averages.

Both work on any device / dtype / memory format and are differentiable to any
order (gradcheck runs on them in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dfblk_reference", "cbn_apply_reference", "as_bc11"]


def as_bc11(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a ``[B, C]`` (or ``[B, C, 1, 1]``) modulation so it broadcasts over ``x``."""
    if p.dim() == 2:
        return p[:, :, None, None]
    if p.dim() == 4 and p.shape[2:] == (1, 1):
        return p
    raise ValueError(
        f"modulation must have shape [B, C] or [B, C, 1, 1], got {tuple(p.shape)} for x {tuple(x.shape)}"
    )


def dfblk_reference(
    x: torch.Tensor,
    g1: torch.Tensor,
    b1: torch.Tensor,
    g2: torch.Tensor,
    b2: torch.Tensor,
    slope: float = 0.2,
) -> torch.Tensor:
    """``lrelu(g2 * lrelu(g1 * x + b1) + b2)``; per-(sample, channel) g/b; x's dtype out."""
    h = F.leaky_relu(as_bc11(g1, x) * x + as_bc11(b1, x), slope)
    return F.leaky_relu(as_bc11(g2, x) * h + as_bc11(b2, x), slope).to(x.dtype)


def cbn_apply_reference(xhat: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``relu(g * xhat + b)``; per-(sample, channel) g/b (conditional BN apply); xhat's dtype out."""
    return torch.relu(as_bc11(g, xhat) * xhat + as_bc11(b, xhat)).to(xhat.dtype)
