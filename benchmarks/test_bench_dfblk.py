"""DFBLK (and conditional-BatchNorm apply) kernel benchmarks: eager reference vs torch.compile(reference) vs Triton.

Run with ``pytest benchmarks/ --benchmark-enable`` (pyproject's addopts
disable benchmarks by default: without the flag each case runs once, as a
smoke test). See benchmarks/README.md.

GPU: the DF-GAN generator's activation shapes (batch 32), fp32 and bf16,
NCHW for all three implementations, channels_last for eager and Triton.
CPU: two small shapes, eager only (no CUDA for Triton; torch.compile is
skipped on CPU unless ``GANREG_BENCH_CPU_COMPILE=1`` -- compiling costs more
than the whole CPU run is allowed).
"""

from __future__ import annotations

import itertools
import math
import os
import time

import pytest
import torch

from ganreg.ops import cbn_apply, cbn_apply_reference, dfblk, dfblk_reference, set_fused
from ganreg.testing import torch_threads

CUDA = torch.cuda.is_available()
GPU_SHAPES = [(32, 256, 8, 8), (32, 256, 16, 16), (32, 256, 32, 32), (32, 128, 64, 64), (32, 64, 128, 128),
              (32, 32, 256, 256)]
CPU_SHAPES = [(8, 64, 16, 16), (4, 32, 64, 64)]
SHAPES = GPU_SHAPES if CUDA else CPU_SHAPES
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
IMPLS = ["eager", "compile", "triton"]
MODES = ["fwd", "fwdbwd"]
L2_BYTES = 50 << 20  # H100; inputs are rotated so that one round touches > 3x this

PARAMS = [
    pytest.param(mode, dt, impl, layout, shape, id=f"{mode}-{dt}-{impl}-{layout}-{'x'.join(map(str, shape))}")
    for mode in MODES for dt in DTYPES for layout in ("nchw", "nhwc") for shape in SHAPES for impl in IMPLS
    if not (layout == "nhwc" and impl == "compile")
]


CBN_SHAPES = [(32, 256, 16, 16), (32, 128, 64, 64), (32, 64, 128, 128)] if CUDA else CPU_SHAPES
"""Conditional-BatchNorm apply (cbn-resnet's generator): the same kernel with one affine and ReLU; a few
DFBLK shapes, NCHW (what its BatchNorm hands it), forward+backward only (what training runs; the GPU
check's one call stays within its time limit)."""
CBN_PARAMS = [
    pytest.param("fwdbwd", dt, impl, "nchw", shape, id=f"fwdbwd-{dt}-{impl}-nchw-{'x'.join(map(str, shape))}")
    for dt in DTYPES for shape in CBN_SHAPES for impl in IMPLS
]


def min_bytes(mode: str, shape, dtype: torch.dtype, n_vectors: int = 4) -> int:
    """Fewest bytes the op must move: fwd reads x, writes y, reads the ``n_vectors`` float32 [B,C] vectors
    (DFBLK's 4, CBN apply's 2); fwd+bwd adds reading x and dy, writing dx, and writing the vector grads."""
    B, C, H, W = shape
    e = torch.empty((), dtype=dtype).element_size()
    n = B * C * H * W
    fwd = 2 * n * e + n_vectors * B * C * 4
    return fwd if mode == "fwd" else fwd + 3 * n * e + n_vectors * B * C * 4




@pytest.fixture(scope="module", autouse=True)
def _cpu_single_thread():
    """On the CPU, time with one intra-op thread (:func:`ganreg.testing.torch_threads`)."""
    if CUDA:
        yield
        return
    with torch_threads(1):
        yield



OPS = {"dfblk": (dfblk_reference, dfblk, 4), "cbn_apply": (cbn_apply_reference, cbn_apply, 2)}
"""op -> (reference, public entry point, number of [B, C] vectors)."""


def _impl_fn(op: str, impl: str):
    reference, entry, _n = OPS[op]
    if impl == "eager":
        return reference
    if impl == "compile":
        # one compiled graph per (shape, dtype, grad mode): reset so that dynamo's
        # recompile limit and automatic-dynamic shapes never kick in across cases
        torch._dynamo.reset()
        return torch.compile(reference, dynamic=False)

    return entry  # the public entry point; the test forces the fused path with set_fused("on")


@pytest.mark.parametrize("mode,dt,impl,layout,shape", PARAMS)
def test_dfblk(benchmark, bench_device, copy_bandwidth, device_timer, bench_table, mode, dt, impl, layout, shape):
    _bench_op("dfblk", benchmark, bench_device, copy_bandwidth, device_timer, bench_table, mode, dt, impl, layout, shape)


@pytest.mark.parametrize("mode,dt,impl,layout,shape", CBN_PARAMS)
def test_cbn_apply(benchmark, bench_device, copy_bandwidth, device_timer, bench_table, mode, dt, impl, layout, shape):
    _bench_op("cbn_apply", benchmark, bench_device, copy_bandwidth, device_timer, bench_table, mode, dt, impl, layout,
              shape)


def _bench_op(op, benchmark, bench_device, copy_bandwidth, device_timer, bench_table, mode, dt, impl, layout, shape):
    if impl == "triton" and bench_device != "cuda":
        pytest.skip("Triton kernel benchmarks need CUDA (the CPU interpreter is for correctness only)")
    if impl == "compile" and bench_device == "cpu" and os.environ.get("GANREG_BENCH_CPU_COMPILE") != "1":
        pytest.skip("torch.compile on CPU skipped (set GANREG_BENCH_CPU_COMPILE=1)")
    dtype = DTYPES[dt]
    B, C, H, W = shape
    dev = bench_device
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    need_grad = mode == "fwdbwd"
    n_vectors = OPS[op][2]
    nbytes = min_bytes(mode, shape, dtype, n_vectors)
    per_set = 2 * B * C * H * W * dtype.itemsize
    n_sets = 1 if dev == "cpu" else max(1, min(64, math.ceil(3 * L2_BYTES / per_set)))

    def make():
        x = torch.randn(shape, device=dev, dtype=dtype).contiguous(memory_format=fmt).requires_grad_(need_grad)
        # float32 modulations at every x dtype, as the generators give them (their MLPs run outside autocast)
        ps = [(torch.randn(B, C, device=dev) + (1.0 if i % 2 == 0 else 0.0)).requires_grad_(need_grad)
              for i in range(n_vectors)]
        dy = torch.randn(shape, device=dev, dtype=dtype).contiguous(memory_format=fmt)
        return x, ps, dy

    sets = [make() for _ in range(n_sets)]
    cyc = itertools.cycle(sets)
    fn = _impl_fn(op, impl)

    if mode == "fwd":
        def run():
            x, ps, _ = next(cyc)
            return fn(x, *ps)
    else:
        def run():
            x, ps, dy = next(cyc)
            return torch.autograd.grad(fn(x, *ps), [x, *ps], dy)

    # warm up (compiles Triton / Inductor kernels), then size a round to >= ~2 ms
    with set_fused("on" if impl == "triton" else "off"):
        t_compile = time.perf_counter()
        run()
        device_timer()
        t_compile = time.perf_counter() - t_compile
        t0 = device_timer()
        for _ in range(3):
            run()
        est = (device_timer() - t0) / 3
    iterations = max(1, min(1000, math.ceil(2e-3 / max(est, 1e-7))))
    rounds = 15 if dev == "cuda" else 7

    benchmark._timer = device_timer  # sync before each clock read on CUDA (see conftest)
    benchmark.group = f"{op}-{mode}-{dt}-{layout}-{'x'.join(map(str, shape))}"
    benchmark.extra_info.update({
        "op": op, "impl": impl, "mode": mode, "dtype": dt, "layout": layout, "shape": list(shape),
        "min_bytes": nbytes, "copy_gbps": copy_bandwidth["copy_gbps"], "device": copy_bandwidth["device"],
        "input_sets": n_sets, "first_call_s": t_compile, "threads": torch.get_num_threads(),
    })
    with set_fused("on" if impl == "triton" else "off"):
        benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=1)

    if benchmark.stats is not None:  # None under --benchmark-disable
        med = benchmark.stats.stats.median
        gbps = nbytes / med / 1e9
        pct = 100.0 * gbps / copy_bandwidth["copy_gbps"]
        benchmark.extra_info.update({"median_s": med, "gbps": gbps, "pct_copy": pct})
        bench_table.append({"op": op, "impl": impl, "mode": mode, "dtype": dt, "layout": layout, "shape": list(shape),
                            "median_s": med, "gbps": gbps, "pct_copy": pct, "min_bytes": nbytes})
