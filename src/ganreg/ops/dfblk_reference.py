"""Plain PyTorch definitions of the fused ops. These *define* the semantics.

``dfblk_reference`` is DF-GAN's DFBLK without its affine MLPs::

    y = lrelu(g2 * lrelu(g1 * x + b1, slope) + b2, slope)

with ``x`` of shape ``[B, C, H, W]`` and ``g1, b1, g2, b2`` per-sample,
per-channel modulation of shape ``[B, C]`` (the MLP outputs).

``cbn_apply_reference`` is the apply step of conditional BatchNorm::

    y = relu(g * xhat + b)

The output has ``x``'s dtype. The modulations may be wider (float32 ones with
a bfloat16 ``x`` under autocast) and are applied without rounding gamma to
x's dtype: a gamma near 1 in bfloat16 moves in steps of 2**-8 to 2**-7, the
same step for every pixel of a channel -- a bias as large as gamma's
text-dependent spread, where the rounding of each output is unbiased over
the pixels. The Triton kernels compute in float32 and round the output once;
the reference splits gamma into its rounding and the remainder (see ``affine``).

Both work on any device / dtype / memory format and are differentiable to any
order (gradcheck runs on them in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dfblk_reference", "cbn_apply_reference", "affine", "as_bc11"]


def as_bc11(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a ``[B, C]`` (or ``[B, C, 1, 1]``) modulation so it broadcasts over ``x``."""
    if p.dim() == 2:
        return p[:, :, None, None]
    if p.dim() == 4 and p.shape[2:] == (1, 1):
        return p
    raise ValueError(
        f"modulation must have shape [B, C] or [B, C, 1, 1], got {tuple(p.shape)} for x {tuple(x.shape)}"
    )


def affine(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``g * x + b`` with per-(sample, channel) g/b.

    A ``g`` wider than ``x`` (float32 with a bf16 ``x`` under autocast) is split into ``g_hi = g`` rounded
    to x's dtype and the remainder ``g_lo = g - g_hi`` (exact in float32, then rounded with its own
    relative precision), applied as ``g_hi * x + (g_lo * x + b)`` in x's dtype. ``g`` rounded alone would
    be off by up to 2**-9 of itself -- near 1, where DF-GAN's gammas start, steps of 2**-8, one error for
    every pixel of a channel and as large as gamma's text-dependent spread. What is left is the rounding
    of each result, as with any bf16 arithmetic, for any ``g`` (``1 + (g - 1)`` was as good near 1 but
    worse than a rounded ``g`` below 0.5). On the CPU, where this is the path taken, ``dfgan.json``'s
    step was about 4 % slower than with a bf16 ``g`` (medians of interleaved runs, within their noise);
    mixing the dtypes in one op instead (float32 arithmetic) cost 7-13 %.

    For a channels_last ``x`` one ``addcmul`` does ``g * x + b`` in one pass: on this project's 2-core
    CPU its forward was 1.3-13x faster there than ``g * x + b``, but up to 3x slower on NCHW, so NCHW
    keeps the two ops."""
    g, b = as_bc11(g, x), as_bc11(b, x)
    wide = torch.promote_types(g.dtype, x.dtype) != x.dtype
    if wide:  # x * g_lo + b first: the small terms together, so that only the sum with g_hi * x rounds
        g_hi = g.detach().to(x.dtype)  # a constant to autograd: g's gradient flows through g_lo, one reduction
        g, b = (g - g_hi).to(x.dtype), b.to(x.dtype)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        y = torch.addcmul(b, g, x)
    else:
        y = g * x + b
    return y.addcmul_(g_hi, x) if wide else y


def dfblk_reference(
    x: torch.Tensor,
    g1: torch.Tensor,
    b1: torch.Tensor,
    g2: torch.Tensor,
    b2: torch.Tensor,
    slope: float = 0.2,
) -> torch.Tensor:
    """``lrelu(g2 * lrelu(g1 * x + b1) + b2)``; per-(sample, channel) g/b; x's dtype out.

    The activations run in place on ``affine``'s fresh result: autograd allows it, as ``mul``, ``add``
    and ``addcmul`` save their inputs, not their output -- but not for a negative ``slope``, whose
    in-place backward PyTorch does not implement."""
    inplace = slope >= 0
    h = F.leaky_relu(affine(x, g1, b1), slope, inplace=inplace)
    return F.leaky_relu(affine(h, g2, b2), slope, inplace=inplace).to(x.dtype)


def cbn_apply_reference(xhat: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``relu(g * xhat + b)``; per-(sample, channel) g/b (conditional BN apply); xhat's dtype out."""
    return torch.relu_(affine(xhat, g, b)).to(xhat.dtype)
