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
The output dtype is x's, as the reference's; the modulations may come in
another dtype (fp32 ones under bf16 autocast) and are read as they are.
Offsets are int32 within a sample (int64 for the batch term); tensors whose
in-sample span needs more get an int64 variant of the kernels (``IDX64``).
Batches over the 65535 grid limit are launched in chunks.
The kernels' backward is first-order only; under ``create_graph=True``
(a double backward will follow -- e.g. a path-length or R1 penalty taken
through G) the backward is the reference's autograd instead (correct to any
order, at the reference's cost). DF-GAN's MA-GP differentiates twice through
D only, which has no DFBLK.

Cost outside the kernels: one fused fwd+bwd is two Triton launches plus a
Python ``autograd.Function`` -- a few hundred microseconds of host time on a
slow host, which bounds small activations (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
import triton.language as tl

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
    IDX64: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2)
    if IDX64:  # an in-sample offset reaches 2**31 (see _needs_int64); the batch term is always int64
        pid_s = pid_s.to(tl.int64)
        pid_c = pid_c.to(tl.int64)

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
    IDX64: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    split = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2)
    if IDX64:  # see the forward kernel
        split = split.to(tl.int64)
        pid_c = pid_c.to(tl.int64)

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
    bc = max(bc, _min_block_c(C))
    bs = max(1, min(bs, FWD_TILE * 4 // bc))  # only > 65535 channels make the tile grow
    return OVERRIDES.get("fwd_block_c", bc), OVERRIDES.get("fwd_block_s", bs)


def _min_block_c(C: int) -> int:
    """Fewest channels per program that keep the channel-block grid axis within MAX_GRID_YZ."""
    return _np2(_cdiv(C, MAX_GRID_YZ))


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
    if bc < _min_block_c(C):  # > 65535 channels only
        bc = _min_block_c(C)
        bs = max(1, min(bs, tile * 4 // bc))
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
    """The modulation as a contiguous [B, C] tensor (broadcast ones are expanded: a [B, C] copy)."""
    if p.dim() == 4 and p.shape[2] == 1 and p.shape[3] == 1:
        p = p.reshape(p.shape[0], p.shape[1])
    if p.dim() != 2 or p.shape[0] not in (1, B) or p.shape[1] not in (1, C):
        raise ValueError(f"modulation must be [B, C] = [{B}, {C}] (or [B, C, 1, 1], or broadcastable "
                         f"to it: [1, C], [B, 1], ...), got {tuple(p.shape)}")
    if p.device != x.device:
        raise ValueError(f"modulation on {p.device}, x on {x.device}")
    if p.shape[0] != B or p.shape[1] != C:
        p = p.expand(B, C)
    return p if p.is_contiguous() else p.contiguous()


_I32_MAX = 2**31 - 1


def _needs_int64(*ts: torch.Tensor) -> bool:
    """Whether some in-sample element offset (channel and spatial terms) of these [B, C, H, W]
    tensors exceeds int32. The batch term is int64 in the kernels anyway, so this is about the
    per-sample span -- not numel: a 2**31-element batch of ordinary tensors stays int32."""
    for t in ts:
        if t is None or t.numel() == 0:
            continue
        span = sum((n - 1) * abs(st) for n, st in zip(t.shape[1:], t.stride()[1:]))
        # (masked-off lanes past the end may wrap: they are never dereferenced.) The spatial *index*
        # runs up to a tile past S, also with zero strides (an expanded dy): keep it in range too.
        if span > _I32_MAX or t.shape[2] * t.shape[3] + 4 * FWD_TILE > _I32_MAX:
            return True
    return False


def _batch_chunks(B: int):
    """(start, stop) ranges of at most MAX_GRID_YZ samples (grid axis 2 limit on CUDA)."""
    step = MAX_GRID_YZ
    return [(b0, min(B, b0 + step)) for b0 in range(0, B, step)]


def _device_guard(x: torch.Tensor):
    """Triton launches on the *current* CUDA device, whatever device the tensors are on: make it x's."""
    if x.is_cuda and x.device.index is not None and x.device.index != torch.cuda.current_device():
        return torch.cuda.device(x.device)
    return contextlib.nullcontext()


def _launch_fwd(x, g1, b1, g2, b2, slope, two_stage):
    B, C, H, W = x.shape
    S = H * W
    x, sxb, sxc, sxs = _bsc(x)
    y = torch.empty_like(x)
    y, syb, syc, sys_ = _bsc(y)
    c_fast = sxc == 1 and sxs != 1
    key = ("f", C, S, c_fast, MAX_GRID_YZ, bool(OVERRIDES) and tuple(OVERRIDES.items()))
    cfg = _cfg_cache.get(key)
    if cfg is None:
        cfg = _cfg_cache[key] = _fwd_config(C, S, c_fast)
    bc, bs = cfg
    idx64 = bool(OVERRIDES.get("idx64")) or B * C > _I32_MAX or _needs_int64(x, y)

    def launch(nb, *ptrs):
        _affine_act_fwd_kernel[(_cdiv(S, bs), _cdiv(C, bc), nb)](
            *ptrs, C, S,
            sxb, sxc, sxs, syb, syc, sys_, slope,
            TWO_STAGE=two_stage, IDX64=idx64, BLOCK_C=bc, BLOCK_S=bs, num_warps=FWD_WARPS,
        )

    with _device_guard(x):
        if B <= MAX_GRID_YZ:
            launch(B, x, y, g1, b1, g2, b2)
        else:  # grid axis 2 is limited: launch on views of at most MAX_GRID_YZ samples
            for b0, b1_ in _batch_chunks(B):
                launch(b1_ - b0, *(t[b0:b1_] for t in (x, y, g1, b1, g2, b2)))
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
    key = ("b", B, C, S, c_fast, n_sm, MAX_GRID_YZ, bool(OVERRIDES) and tuple(OVERRIDES.items()))
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
        part = None
    spk = B * C * nsplit  # stride of the grad axis of `part`
    idx64 = bool(OVERRIDES.get("idx64")) or 4 * spk > _I32_MAX or _needs_int64(x, dy, dx)

    def launch(nb, x_, dy_, dx_, g1_, b1_, g2_, b2_, part_):
        _affine_act_bwd_kernel[(nsplit, _cdiv(C, bc), nb)](
            x_, dy_, x_ if dx_ is None else dx_, g1_, b1_, g2_, b2_, x_ if part_ is None else part_, C, S,
            sxb, sxc, sxs, sdb, sdc, sds, sob, soc, sos,
            spk, nsplit, tps, slope,
            TWO_STAGE=two_stage, WRITE_DX=write_dx, REDUCE=reduce, IDX64=idx64,
            BLOCK_C=bc, BLOCK_S=bs, num_warps=warps,
        )

    with _device_guard(x):
        if B <= MAX_GRID_YZ:
            launch(B, x, dy, dx, g1, b1, g2, b2, part)
        else:  # see _launch_fwd; `part` keeps its full-batch strides (spk), its view starts at b0
            for b0, e in _batch_chunks(B):
                launch(e - b0, *(None if t is None else t[b0:e] for t in (x, dy, dx, g1, b1, g2, b2)),
                       None if part is None else part[:, b0:e])
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
    if x.is_cuda and torch.version.hip is None:
        from ganreg.ops.dispatch import device_capability

        cap = device_capability(x.device)
        if cap < (7, 0):
            raise RuntimeError(f"fused op needs a GPU of compute capability >= 7.0 (Triton), got {cap}; "
                               "use GANREG_FUSED_OPS=auto or off")


MAX_GRID_YZ = 65535  # CUDA limit of grid axes 1 and 2 (channel blocks, samples); larger batches are chunked


# --------------------------------------------------------------------------- autograd


class _AffineActFn(torch.autograd.Function):
    """Fused ``act(g2 * act(g1 * x + b1) + b2)`` (or one stage when g2 is None).

    Output dtype: x's, as the reference's. Backward: the one-pass kernel;
    under ``create_graph=True`` (a double backward will follow) it is the
    reference's autograd instead, so that second derivatives are exact.
    """

    @staticmethod
    def forward(ctx, x, g1, b1, g2, b2, slope):
        _check_x(x)
        B, C = x.shape[0], x.shape[1]
        two_stage = g2 is not None
        params = (g1, b1, g2, b2) if two_stage else (g1, b1)
        flat = [_param(p, B, C, x) for p in params]
        g1p, b1p = flat[0], flat[1]
        g2p, b2p = (flat[2], flat[3]) if two_stage else (g1p, b1p)  # unused pointers for one stage
        slope = float(slope)
        y = _launch_fwd(x, g1p, b1p, g2p, b2p, slope, two_stage) if x.numel() else torch.empty_like(x)
        # the modulations as given (not the [B, C] copies): a double backward must reach them
        ctx.save_for_backward(x, *params)
        ctx.slope = slope
        ctx.two_stage = two_stage
        return y

    @staticmethod
    def backward(ctx, dy):
        x, *params = ctx.saved_tensors
        n = len(params)
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiable (reference) backward
            return _AffineActFn._backward_reference(ctx, dy, x, params)
        need_dx = needs[0]
        need_p = any(needs[1 : 1 + n])
        B, C = x.shape[0], x.shape[1]
        dx = red = None
        if x.numel() == 0:
            dx = torch.zeros_like(x) if need_dx else None
            red = x.new_zeros((n, B, C), dtype=torch.float32) if need_p else None
        elif need_dx or need_p:
            flat = [_param(p, B, C, x) for p in params]
            g1, b1 = flat[0], flat[1]
            g2, b2 = (flat[2], flat[3]) if ctx.two_stage else (g1, b1)
            dt0 = params[0].dtype
            # the kernel writes the final grads in their own dtype when all agree and none is broadcast
            direct = all(p.dtype is dt0 and tuple(p.shape[:2]) == (B, C) for p in params)
            dx, red = _launch_bwd(x, dy, g1, b1, g2, b2, ctx.slope, ctx.two_stage, need_dx, need_p,
                                  dt0 if direct else torch.float32)
        grads = [None, None, None, None]
        if red is not None:
            for k, gk in enumerate(red.unbind(0)):
                if needs[1 + k]:
                    p = params[k]
                    if p.dim() == 4:
                        gk = gk[:, :, None, None]
                    if gk.shape != p.shape:  # a broadcast modulation: sum over the axes it was expanded along
                        gk = gk.sum_to_size(p.shape)
                    grads[k] = gk if gk.dtype is p.dtype else gk.to(p.dtype)
        return dx, grads[0], grads[1], grads[2], grads[3], None

    @staticmethod
    def _backward_reference(ctx, dy, x, params):
        from .dfblk_reference import cbn_apply_reference, dfblk_reference

        n = len(params)
        needs = ctx.needs_input_grad
        inputs = [t for t, need in zip([x, *params], needs) if need]
        y = dfblk_reference(x, *params, ctx.slope) if ctx.two_stage else cbn_apply_reference(x, *params)
        got = iter(torch.autograd.grad(y, inputs, dy, create_graph=True, allow_unused=True)) if inputs else iter(())
        out = [next(got) if need else None for need in needs[: 1 + n]]
        out += [None] * (6 - len(out))
        return tuple(out)


def fused_dfblk(x, g1, b1, g2, b2, slope: float = 0.2) -> torch.Tensor:
    """Triton DFBLK: ``lrelu(g2 * lrelu(g1 * x + b1) + b2)``; see the module doc."""
    return _AffineActFn.apply(x, g1, b1, g2, b2, slope)


def fused_cbn_apply(xhat, g, b) -> torch.Tensor:
    """Triton conditional-BN apply step: ``relu(g * xhat + b)``."""
    return _AffineActFn.apply(xhat, g, b, None, None, 0.0)
