"""Triton kernels for the per-(sample, channel) affine + leaky-ReLU ops.

One kernel pair serves both ops (``TWO_STAGE`` selects which):

* DFBLK       ``y = lrelu(g2 * lrelu(g1 * x + b1) + b2)``  (``TWO_STAGE=True``)
* CBN apply   ``y = relu(g1 * x + b1)``                    (``TWO_STAGE=False``, slope 0)

Layout. ``x`` is ``[B, C, H, W]``; the kernels address it as ``[B, C, S]``
(``S = H*W``) through three strides, so NCHW-contiguous and channels_last
(NHWC) inputs are both read in place, without a copy: for NCHW the spatial
axis is the unit-stride one, for channels_last the channel axis is, and the
tile shape is chosen so that the unit-stride axis is the long one (Triton
specialises stride-1 arguments and vectorises along that axis). ``dy`` may
come in a different layout than ``x``; it has its own strides. The only
copy ever made is for tensors whose H and W axes cannot be merged into one
strided axis (e.g. ``x[..., ::2]`` slices), which DF-GAN never produces.

Forward: one pass, reads x once and writes y once (2-D tile per program).

Backward: one pass over x and dy. Each program owns a block of channels of
one sample and a contiguous range of spatial tiles; it recomputes the
intermediate from x (nothing but the inputs is saved), writes dx and
accumulates the four parameter-gradient partial sums in fp32 registers.
When the (sample, channel-block) rows alone cannot fill the GPU (few
channels, large images), the spatial axis is split into ``nsplit`` ranges;
each writes its own partial sums to a ``[4, B, C, nsplit]`` fp32 buffer that
a tiny ``sum(-1)`` finishes. No atomics, so results are deterministic.

All arithmetic is fp32 whatever the storage dtype (fp32 / fp16 / bf16).
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

__all__ = ["fused_dfblk", "fused_cbn_apply", "INTERPRET", "OVERRIDES"]


# --------------------------------------------------------------------------- kernels


@triton.jit
def _affine_act_fwd_kernel(
    X, Y, G1, B1, G2, B2,
    C, S,
    sxb, sxc, sxs,
    syb, syc, sys_,
    slope,
    TWO_STAGE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2)

    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    cm = c < C
    m = cm[:, None] & (s < S)[None, :]

    # modulation vectors are contiguous [B, C]
    p = b * C + c
    g1 = tl.load(G1 + p, mask=cm, other=0.0).to(tl.float32)[:, None]
    b1 = tl.load(B1 + p, mask=cm, other=0.0).to(tl.float32)[:, None]

    b64 = b.to(tl.int64)
    x = tl.load(X + b64 * sxb + c[:, None] * sxc + s[None, :] * sxs, mask=m, other=0.0).to(tl.float32)
    z = x * g1 + b1
    a = tl.where(z > 0, z, z * slope)
    if TWO_STAGE:
        g2 = tl.load(G2 + p, mask=cm, other=0.0).to(tl.float32)[:, None]
        b2 = tl.load(B2 + p, mask=cm, other=0.0).to(tl.float32)[:, None]
        z2 = a * g2 + b2
        a = tl.where(z2 > 0, z2, z2 * slope)
    tl.store(Y + b64 * syb + c[:, None] * syc + s[None, :] * sys_, a.to(Y.dtype.element_ty), mask=m)


@triton.jit
def _affine_act_bwd_kernel(
    X, DY, DX, G1, B1, G2, B2, P,
    C, S,
    sxb, sxc, sxs,
    sdb, sdc, sds,
    sob, soc, sos,
    spk, nsplit, tiles_per_split,
    slope,
    TWO_STAGE: tl.constexpr,
    WRITE_DX: tl.constexpr,
    REDUCE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    split = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2)

    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = c < C
    p = b * C + c
    g1 = tl.load(G1 + p, mask=cm, other=0.0).to(tl.float32)[:, None]
    b1 = tl.load(B1 + p, mask=cm, other=0.0).to(tl.float32)[:, None]
    if TWO_STAGE:
        g2 = tl.load(G2 + p, mask=cm, other=0.0).to(tl.float32)[:, None]
        b2 = tl.load(B2 + p, mask=cm, other=0.0).to(tl.float32)[:, None]

    b64 = b.to(tl.int64)
    xb = X + b64 * sxb + c[:, None] * sxc
    db = DY + b64 * sdb + c[:, None] * sdc
    ob = DX + b64 * sob + c[:, None] * soc

    acc_g1 = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    acc_b1 = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    acc_g2 = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    acc_b2 = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)

    t0 = split * tiles_per_split
    for t in range(t0, t0 + tiles_per_split):
        s = t * BLOCK_S + tl.arange(0, BLOCK_S)
        m = cm[:, None] & (s < S)[None, :]
        x = tl.load(xb + s[None, :] * sxs, mask=m, other=0.0).to(tl.float32)
        dy = tl.load(db + s[None, :] * sds, mask=m, other=0.0).to(tl.float32)
        z1 = x * g1 + b1
        if TWO_STAGE:
            a1 = tl.where(z1 > 0, z1, z1 * slope)
            z2 = a1 * g2 + b2
            dz2 = tl.where(z2 > 0, dy, dy * slope)
            if REDUCE:
                acc_g2 += dz2 * a1
                acc_b2 += dz2
            da1 = dz2 * g2
        else:
            da1 = dy
        dz1 = tl.where(z1 > 0, da1, da1 * slope)
        if REDUCE:
            acc_g1 += dz1 * x
            acc_b1 += dz1
        if WRITE_DX:
            tl.store(ob + s[None, :] * sos, (dz1 * g1).to(DX.dtype.element_ty), mask=m)

    if REDUCE:
        q = P + p * nsplit + split
        tl.store(q, tl.sum(acc_g1, axis=1), mask=cm)
        tl.store(q + spk, tl.sum(acc_b1, axis=1), mask=cm)
        if TWO_STAGE:
            tl.store(q + 2 * spk, tl.sum(acc_g2, axis=1), mask=cm)
            tl.store(q + 3 * spk, tl.sum(acc_b2, axis=1), mask=cm)


# --------------------------------------------------------------------------- launch config

try:  # the kernels are InterpretedFunctions when TRITON_INTERPRET=1 was set at import
    from triton.runtime.interpreter import InterpretedFunction as _InterpretedFunction

    INTERPRET: bool = isinstance(_affine_act_fwd_kernel, _InterpretedFunction)
except Exception:  # pragma: no cover - very old/new triton layouts
    INTERPRET = False

# Test hooks: force tile sizes / split count to exercise loops and splits at
# tiny shapes (keys: "fwd_block_c", "fwd_block_s", "bwd_block_c", "bwd_block_s",
# "nsplit"). Empty in normal use.
OVERRIDES: dict[str, int] = {}

FWD_TILE = 4096  # elements per forward program
BWD_TILE = 2048  # elements per backward loop iteration
FWD_WARPS = 4
BWD_WARPS = 4
PROGRAMS_PER_SM = 8  # backward: aim for this many programs per SM before splitting S
MAX_GRID_YZ = 65535


def _np2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@functools.lru_cache(maxsize=None)
def _num_sms(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _sm_count(t: torch.Tensor) -> int:
    if t.is_cuda:
        return _num_sms(t.device.index if t.device.index is not None else torch.cuda.current_device())
    return 1  # interpreter on CPU: few, fat programs are the quick ones


def _tiles(C: int, S: int, c_fast: bool, target: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_S) with the unit-stride axis the long one."""
    if c_fast:
        bc = min(_np2(C), 256, target)
        bs = max(1, min(_np2(S), target // bc))
    else:
        bs = min(_np2(S), target)
        bc = max(1, min(_np2(C), target // bs))
    return bc, bs


def _bsc_strides(t: torch.Tensor):
    """Strides of ``t`` [B, C, H, W] viewed as [B, C, H*W], or None if H, W don't merge."""
    _, _, H, W = t.shape
    sb, sc, sh, sw = t.stride()
    if H == 1:
        return sb, sc, sw
    if W == 1 or sh == sw * W:
        return sb, sc, (sw if W != 1 else sh)
    return None


def _as_bsc(t: torch.Tensor):
    st = _bsc_strides(t)
    if st is None:  # rare, non-mergeable spatial strides: the one documented copy
        t = t.contiguous()
        st = _bsc_strides(t)
    return t, st


def _param(p: torch.Tensor, B: int, C: int) -> torch.Tensor:
    p = p.reshape(B, C)
    return p if p.is_contiguous() else p.contiguous()


def _launch_fwd(x, g1, b1, g2, b2, slope, two_stage):
    B, C, H, W = x.shape
    S = H * W
    x, (sxb, sxc, sxs) = _as_bsc(x)
    y = torch.empty_like(x)
    y, (syb, syc, sys_) = _as_bsc(y)
    c_fast = sxc == 1 and sxs != 1
    bc, bs = _tiles(C, S, c_fast, FWD_TILE)
    bc = OVERRIDES.get("fwd_block_c", bc)
    bs = OVERRIDES.get("fwd_block_s", bs)
    grid = (triton.cdiv(S, bs), triton.cdiv(C, bc), B)
    _affine_act_fwd_kernel[grid](
        x, y, g1, b1, g2, b2, C, S,
        sxb, sxc, sxs, syb, syc, sys_, float(slope),
        TWO_STAGE=two_stage, BLOCK_C=bc, BLOCK_S=bs, num_warps=FWD_WARPS,
    )
    return y


def _launch_bwd(x, dy, g1, b1, g2, b2, slope, two_stage, write_dx, reduce):
    B, C, H, W = x.shape
    S = H * W
    x, (sxb, sxc, sxs) = _as_bsc(x)
    dy, (sdb, sdc, sds) = _as_bsc(dy)
    dx = torch.empty_like(x) if write_dx else None
    if dx is not None:
        _, (sob, soc, sos) = _as_bsc(dx)
    else:
        sob = soc = sos = 0
    c_fast = sxc == 1 and sxs != 1
    bc, bs = _tiles(C, S, c_fast, BWD_TILE)
    bc = OVERRIDES.get("bwd_block_c", bc)
    bs = OVERRIDES.get("bwd_block_s", bs)
    n_cblk = triton.cdiv(C, bc)
    n_tiles = triton.cdiv(S, bs)
    rows = B * n_cblk
    want = _sm_count(x) * PROGRAMS_PER_SM
    nsplit = min(n_tiles, max(1, triton.cdiv(want, rows)))
    nsplit = OVERRIDES.get("nsplit", nsplit)
    tps = triton.cdiv(n_tiles, nsplit)
    nsplit = triton.cdiv(n_tiles, tps)
    n_grads = 4 if two_stage else 2
    part = torch.empty((n_grads, B, C, nsplit), dtype=torch.float32, device=x.device) if reduce else x
    grid = (nsplit, n_cblk, B)
    _affine_act_bwd_kernel[grid](
        x, dy, dx if dx is not None else x, g1, b1, g2, b2, part, C, S,
        sxb, sxc, sxs, sdb, sdc, sds, sob, soc, sos,
        B * C * nsplit, nsplit, tps, float(slope),
        TWO_STAGE=two_stage, WRITE_DX=write_dx, REDUCE=reduce,
        BLOCK_C=bc, BLOCK_S=bs, num_warps=BWD_WARPS,
    )
    if not reduce:
        return dx, None
    red = part[..., 0] if nsplit == 1 else part.sum(-1)
    return dx, red


def _check(x: torch.Tensor, params):
    if x.dim() != 4:
        raise ValueError(f"fused op expects x of shape [B, C, H, W], got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"fused op supports float32/float16/bfloat16, got {x.dtype}")
    if not (x.is_cuda or INTERPRET):
        raise RuntimeError("fused op needs CUDA tensors (or TRITON_INTERPRET=1 set before triton is imported)")
    B, C = x.shape[:2]
    if B > MAX_GRID_YZ:
        raise ValueError(f"batch {B} exceeds the launch grid limit {MAX_GRID_YZ}")
    if math.prod(x.shape[1:]) >= 2**31:
        raise ValueError("per-sample tensor too large for 32-bit in-sample indexing")
    for p in params:
        if p.numel() != B * C or p.shape[:2] != (B, C):
            raise ValueError(f"modulation must be [B, C] = [{B}, {C}] (or [B, C, 1, 1]), got {tuple(p.shape)}")
        if p.device != x.device:
            raise ValueError(f"modulation on {p.device}, x on {x.device}")


# --------------------------------------------------------------------------- autograd


class _AffineActFn(torch.autograd.Function):
    """Fused ``act(g2 * act(g1 * x + b1) + b2)`` (or one stage when g2 is None)."""

    @staticmethod
    def forward(ctx, x, g1, b1, g2, b2, slope):
        two_stage = g2 is not None
        given = (g1, b1, g2, b2) if two_stage else (g1, b1)
        _check(x, given)
        B, C = x.shape[:2]
        ps = [_param(p, B, C) for p in given]
        if not two_stage:
            ps += [ps[0], ps[1]]  # unused pointers
        if x.numel() == 0:
            y = torch.empty_like(x)
        else:
            y = _launch_fwd(x, *ps, slope, two_stage)
        ctx.save_for_backward(x, *ps)
        ctx.slope = float(slope)
        ctx.two_stage = two_stage
        ctx.meta = [(p.shape, p.dtype) for p in given]
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, g1, b1, g2, b2 = ctx.saved_tensors
        n = len(ctx.meta)
        need_dx = ctx.needs_input_grad[0]
        need_p = any(ctx.needs_input_grad[1 : 1 + n])
        dx, red = None, None
        if x.numel() == 0:
            dx = torch.zeros_like(x) if need_dx else None
            red = torch.zeros((n,) + tuple(x.shape[:2]), dtype=torch.float32, device=x.device) if need_p else None
        elif need_dx or need_p:
            dx, red = _launch_bwd(x, dy, g1, b1, g2, b2, ctx.slope, ctx.two_stage, need_dx, need_p)
        grads = [None] * 4
        if red is not None:
            dtypes = {dt for _, dt in ctx.meta}
            if len(dtypes) == 1:
                red = red.to(dtypes.pop())
            for k, (shape, dt) in enumerate(ctx.meta):
                if ctx.needs_input_grad[1 + k]:
                    grads[k] = red[k].to(dt).reshape(shape)
        return (dx, *grads, None)


def fused_dfblk(x, g1, b1, g2, b2, slope: float = 0.2) -> torch.Tensor:
    """Triton DFBLK: ``lrelu(g2 * lrelu(g1 * x + b1) + b2)``; see the module doc."""
    return _AffineActFn.apply(x, g1, b1, g2, b2, slope)


def fused_cbn_apply(xhat, g, b) -> torch.Tensor:
    """Triton conditional-BN apply step: ``relu(g * xhat + b)``."""
    return _AffineActFn.apply(xhat, g, b, None, None, 0.0)


def describe_config(x_shape, channels_last: bool = False, device_sms: int = 132) -> dict:
    """Launch parameters the wrappers would pick (for notes and benchmarks)."""
    B, C, H, W = x_shape
    S = H * W
    fbc, fbs = _tiles(C, S, channels_last, FWD_TILE)
    bbc, bbs = _tiles(C, S, channels_last, BWD_TILE)
    n_tiles = math.ceil(S / bbs)
    rows = B * math.ceil(C / bbc)
    nsplit = min(n_tiles, max(1, math.ceil(device_sms * PROGRAMS_PER_SM / rows)))
    tps = math.ceil(n_tiles / nsplit)
    return {
        "fwd_block": (fbc, fbs),
        "bwd_block": (bbc, bbs),
        "bwd_nsplit": math.ceil(n_tiles / tps),
        "bwd_tiles_per_program": tps,
    }
