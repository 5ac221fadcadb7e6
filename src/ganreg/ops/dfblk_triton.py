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
a tiny ``sum(-1)`` finishes; without a split the kernel writes the final
gradients, already in their dtype. No atomics, so results are deterministic.

All arithmetic is fp32 whatever the storage dtype (fp32 / fp16 / bf16).
The backward is not itself differentiable (``once_differentiable``: a double
backward through it raises); DF-GAN's MA-GP differentiates twice through D,
which has no DFBLK.

Cost outside the kernels: one fused fwd+bwd is two Triton launches plus a
Python ``autograd.Function`` -- a few hundred microseconds of host time on a
slow host, which bounds small activations (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools

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
    for i in range(0, tiles_per_split):
        s = (t0 + i) * BLOCK_S + tl.arange(0, BLOCK_S)
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
        pty = P.dtype.element_ty  # fp32 partials, or the grads' own dtype when nsplit == 1
        tl.store(q, tl.sum(acc_g1, axis=1).to(pty), mask=cm)
        tl.store(q + spk, tl.sum(acc_b1, axis=1).to(pty), mask=cm)
        if TWO_STAGE:
            tl.store(q + 2 * spk, tl.sum(acc_g2, axis=1).to(pty), mask=cm)
            tl.store(q + 3 * spk, tl.sum(acc_b2, axis=1).to(pty), mask=cm)


# --------------------------------------------------------------------------- launch config

try:  # the kernels are InterpretedFunctions when TRITON_INTERPRET=1 was set at import
    from triton.runtime.interpreter import InterpretedFunction as _InterpretedFunction

    INTERPRET: bool = isinstance(_affine_act_fwd_kernel, _InterpretedFunction)
except Exception:  # pragma: no cover - other triton layouts
    INTERPRET = False

# Test hooks: force tile sizes / split count to exercise loops and splits at
# tiny shapes (keys: "fwd_block_c", "fwd_block_s", "bwd_block_c", "bwd_block_s",
# "nsplit"). Empty in normal use.
OVERRIDES: dict[str, int] = {}

# Launch parameters (H100 sweeps: see benchmarks/RESULTS.md). "nchw" means the
# spatial axis has unit stride, "nhwc" (channels_last) the channel axis.
FWD_TILE = 4096  # elements per forward program
FWD_WARPS = 8
BWD_TILE = {"nchw": 2048, "nhwc": 1024}  # elements per backward loop iteration
BWD_WARPS = {"nchw": 8, "nhwc": 4}
BWD_NHWC_MAX_BC = 32  # channels per backward program for channels_last
MIN_CONTIG = 128  # keep at least this many unit-stride elements per tile row
PROGRAMS_PER_SM = 8  # backward: aim for about this many programs per SM

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_cfg_cache: dict = {}


def _np2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@functools.lru_cache(maxsize=None)
def _num_sms(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _sm_count(t: torch.Tensor) -> int:
    if t.is_cuda:
        idx = t.device.index
        return _num_sms(idx if idx is not None else torch.cuda.current_device())
    return 1  # interpreter on CPU: few, fat programs are the quick ones


def _fwd_config(C: int, S: int, c_fast: bool):
    """(BLOCK_C, BLOCK_S) with the unit-stride axis the long one."""
    if c_fast:
        bc = min(_np2(C), 256, FWD_TILE)
        bs = max(1, min(_np2(S), FWD_TILE // bc))
    else:
        bs = min(_np2(S), FWD_TILE)
        bc = max(1, min(_np2(C), FWD_TILE // bs))
    return OVERRIDES.get("fwd_block_c", bc), OVERRIDES.get("fwd_block_s", bs)


def _bwd_config(B: int, C: int, S: int, c_fast: bool, n_sm: int):
    """(BLOCK_C, BLOCK_S, nsplit, tiles_per_split, num_warps) for the backward kernel.

    Each program owns BLOCK_C channels of one sample and ``tiles_per_split``
    consecutive [BLOCK_C, BLOCK_S] tiles. Channel blocks are made as wide as
    keeps about ``PROGRAMS_PER_SM * n_sm`` programs (more work per program,
    fewer partial sums); when even one channel per program gives too few
    programs, the spatial axis is split ``nsplit`` ways.
    """
    want = n_sm * PROGRAMS_PER_SM
    lay = "nhwc" if c_fast else "nchw"
    tile = BWD_TILE[lay]
    if c_fast:
        bc = min(_np2(C), BWD_NHWC_MAX_BC, tile)
        bs = max(1, min(_np2(S), tile // bc))
    else:
        bs = min(_np2(S), tile)
        bc = max(1, tile // bs)  # fill the tile when S is small
        rows_bc = 1
        while B * C // (rows_bc * 2) >= want:
            rows_bc *= 2
        bc = min(_np2(C), max(bc, rows_bc), max(1, tile // min(_np2(S), MIN_CONTIG)))
        bs = max(1, min(_np2(S), tile // bc))
    bc = OVERRIDES.get("bwd_block_c", bc)
    bs = OVERRIDES.get("bwd_block_s", bs)
    rows = B * _cdiv(C, bc)
    n_tiles = _cdiv(S, bs)
    nsplit = min(n_tiles, max(1, _cdiv(want, rows)))
    nsplit = OVERRIDES.get("nsplit", nsplit)
    tps = _cdiv(n_tiles, nsplit)
    nsplit = _cdiv(n_tiles, tps)
    return bc, bs, nsplit, tps, BWD_WARPS[lay]


def _bsc(t: torch.Tensor):
    """``t`` [B, C, H, W] as [B, C, H*W]: (t, sb, sc, ss); copies only if H, W can't merge."""
    _, _, H, W = t.shape
    sb, sc, sh, sw = t.stride()
    if W == 1:
        return t, sb, sc, sh
    if H == 1 or sh == sw * W:
        return t, sb, sc, sw
    t = t.contiguous()  # rare, non-mergeable spatial strides: the one documented copy
    sb, sc, _, sw = t.stride()
    return t, sb, sc, sw


def _param(p: torch.Tensor, B: int, C: int, x: torch.Tensor) -> torch.Tensor:
    if p.dim() == 4 and p.shape[2] == 1 and p.shape[3] == 1:
        p = p.reshape(p.shape[0], p.shape[1])
    if p.dim() != 2 or p.shape[0] != B or p.shape[1] != C:
        raise ValueError(f"modulation must be [B, C] = [{B}, {C}] (or [B, C, 1, 1]), got {tuple(p.shape)}")
    if p.device != x.device:
        raise ValueError(f"modulation on {p.device}, x on {x.device}")
    return p if p.is_contiguous() else p.contiguous()


def _launch_fwd(x, g1, b1, g2, b2, slope, two_stage):
    B, C, H, W = x.shape
    S = H * W
    x, sxb, sxc, sxs = _bsc(x)
    y = torch.empty_like(x)
    y, syb, syc, sys_ = _bsc(y)
    c_fast = sxc == 1 and sxs != 1
    key = ("f", C, S, c_fast, bool(OVERRIDES) and tuple(OVERRIDES.items()))
    cfg = _cfg_cache.get(key)
    if cfg is None:
        cfg = _cfg_cache[key] = _fwd_config(C, S, c_fast)
    bc, bs = cfg
    _affine_act_fwd_kernel[(_cdiv(S, bs), _cdiv(C, bc), B)](
        x, y, g1, b1, g2, b2, C, S,
        sxb, sxc, sxs, syb, syc, sys_, slope,
        TWO_STAGE=two_stage, BLOCK_C=bc, BLOCK_S=bs, num_warps=FWD_WARPS,
    )
    return y


def _launch_bwd(x, dy, g1, b1, g2, b2, slope, two_stage, write_dx, reduce, grad_dtype=torch.float32):
    """Returns (dx or None, [n_grads, B, C] sums or None).

    The sums come in ``grad_dtype`` when the kernel can write them final
    (no spatial split), else in fp32 (a ``sum(-1)`` over the split partials).
    """
    B, C, H, W = x.shape
    S = H * W
    x, sxb, sxc, sxs = _bsc(x)
    dy, sdb, sdc, sds = _bsc(dy)
    if write_dx:
        dx = torch.empty_like(x)
        dx, sob, soc, sos = _bsc(dx)
    else:
        dx, sob, soc, sos = None, 0, 0, 0
    c_fast = sxc == 1 and sxs != 1
    n_sm = _sm_count(x)
    key = ("b", B, C, S, c_fast, n_sm, bool(OVERRIDES) and tuple(OVERRIDES.items()))
    cfg = _cfg_cache.get(key)
    if cfg is None:
        cfg = _cfg_cache[key] = _bwd_config(B, C, S, c_fast, n_sm)
    bc, bs, nsplit, tps, warps = cfg
    n_grads = 4 if two_stage else 2
    if reduce:
        if nsplit == 1:  # final values straight from the kernel, already in the grads' dtype
            part = torch.empty((n_grads, B, C), dtype=grad_dtype, device=x.device)
        else:
            part = torch.empty((n_grads, B, C, nsplit), dtype=torch.float32, device=x.device)
    else:
        part = x
    _affine_act_bwd_kernel[(nsplit, _cdiv(C, bc), B)](
        x, dy, x if dx is None else dx, g1, b1, g2, b2, part, C, S,
        sxb, sxc, sxs, sdb, sdc, sds, sob, soc, sos,
        B * C * nsplit, nsplit, tps, slope,
        TWO_STAGE=two_stage, WRITE_DX=write_dx, REDUCE=reduce,
        BLOCK_C=bc, BLOCK_S=bs, num_warps=warps,
    )
    if not reduce:
        return dx, None
    return dx, (part if nsplit == 1 else part.sum(-1))


def _check_x(x: torch.Tensor):
    if x.dim() != 4:
        raise ValueError(f"fused op expects x of shape [B, C, H, W], got {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"fused op supports float32/float16/bfloat16, got {x.dtype}")
    if not (x.is_cuda or INTERPRET):
        raise RuntimeError("fused op needs CUDA tensors (or TRITON_INTERPRET=1 set before triton is imported)")
    B, C, H, W = x.shape
    if B > MAX_GRID_YZ:
        raise ValueError(f"batch {B} exceeds the launch grid limit {MAX_GRID_YZ}")
    if C * H * W >= 2**31:
        raise ValueError("per-sample tensor too large for 32-bit in-sample indexing")


MAX_GRID_YZ = 65535


# --------------------------------------------------------------------------- autograd


class _AffineActFn(torch.autograd.Function):
    """Fused ``act(g2 * act(g1 * x + b1) + b2)`` (or one stage when g2 is None)."""

    @staticmethod
    def forward(ctx, x, g1, b1, g2, b2, slope):
        _check_x(x)
        B, C = x.shape[0], x.shape[1]
        two_stage = g2 is not None
        g1p, b1p = _param(g1, B, C, x), _param(b1, B, C, x)
        if two_stage:
            g2p, b2p = _param(g2, B, C, x), _param(b2, B, C, x)
            ctx.meta = ((g1.shape, g1.dtype), (b1.shape, b1.dtype), (g2.shape, g2.dtype), (b2.shape, b2.dtype))
        else:
            g2p, b2p = g1p, b1p  # unused pointers
            ctx.meta = ((g1.shape, g1.dtype), (b1.shape, b1.dtype))
        slope = float(slope)
        y = _launch_fwd(x, g1p, b1p, g2p, b2p, slope, two_stage) if x.numel() else torch.empty_like(x)
        ctx.save_for_backward(x, g1p, b1p, g2p, b2p)
        ctx.slope = slope
        ctx.two_stage = two_stage
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, g1, b1, g2, b2 = ctx.saved_tensors
        meta = ctx.meta
        n = len(meta)
        needs = ctx.needs_input_grad
        need_dx = needs[0]
        need_p = any(needs[1 : 1 + n])
        dx = red = None
        if x.numel() == 0:
            dx = torch.zeros_like(x) if need_dx else None
            red = x.new_zeros((n, x.shape[0], x.shape[1]), dtype=torch.float32) if need_p else None
        elif need_dx or need_p:
            dt0 = meta[0][1]
            same = all(dt is dt0 for _, dt in meta)
            dx, red = _launch_bwd(x, dy, g1, b1, g2, b2, ctx.slope, ctx.two_stage, need_dx, need_p,
                                  dt0 if same else torch.float32)
            if red is not None and same and red.dtype is not dt0:
                red = red.to(dt0)
        grads = [None, None, None, None]
        if red is not None:
            for k, gk in enumerate(red.unbind(0)):
                if needs[1 + k]:
                    shape, dt = meta[k]
                    if gk.dtype is not dt:
                        gk = gk.to(dt)
                    grads[k] = gk if len(shape) == 2 else gk.reshape(shape)
        return dx, grads[0], grads[1], grads[2], grads[3], None


def fused_dfblk(x, g1, b1, g2, b2, slope: float = 0.2) -> torch.Tensor:
    """Triton DFBLK: ``lrelu(g2 * lrelu(g1 * x + b1) + b2)``; see the module doc."""
    return _AffineActFn.apply(x, g1, b1, g2, b2, slope)


def fused_cbn_apply(xhat, g, b) -> torch.Tensor:
    """Triton conditional-BN apply step: ``relu(g * xhat + b)``."""
    return _AffineActFn.apply(xhat, g, b, None, None, 0.0)


def describe_config(x_shape, channels_last: bool = False, n_sm: int = 132) -> dict:
    """Launch parameters the wrappers would pick (for notes and benchmarks)."""
    B, C, H, W = x_shape
    fbc, fbs = _fwd_config(C, H * W, channels_last)
    bc, bs, nsplit, tps, warps = _bwd_config(B, C, H * W, channels_last, n_sm)
    return {"fwd_block": (fbc, fbs), "fwd_warps": FWD_WARPS, "bwd_block": (bc, bs), "bwd_nsplit": nsplit,
            "bwd_tiles_per_program": tps, "bwd_warps": warps, "bwd_programs": nsplit * B * _cdiv(C, bc)}
