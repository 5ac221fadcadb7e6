"""Tests for ganreg.ops: the DFBLK / CBN-apply reference, the Triton kernels, dispatch.

The Triton kernels are checked on the CPU through Triton's interpreter. Triton
(3.x) decides at *decoration* time -- when the module holding the kernels is
imported -- whether ``@triton.jit`` builds a compiled or an interpreted kernel,
reading ``TRITON_INTERPRET`` then. Setting the variable inside a pytest process
where something may already have imported triton (or where GPU tests need the
compiled kernels) is therefore unreliable, so the interpreter cases run in ONE
subprocess (this file, run as a script with ``TRITON_INTERPRET=1``) and the
tests here assert on the JSON it prints. With CUDA, the same cases (and the
real DF-GAN shapes) also run in-process against the compiled kernels
(``@pytest.mark.gpu``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

try:
    import ganreg.ops  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    import ganreg.ops  # noqa: F401

from ganreg.ops import (
    cbn_apply,
    cbn_apply_reference,
    dfblk,
    dfblk_reference,
    get_fused_mode,
    set_fused,
    will_use_fused,
)
from ganreg.ops import dispatch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# ||fused - ref64|| / ||ref64||, ref64 = the reference in float64 on the same (rounded) inputs.
# fp32 lands near 1e-7, fp16 near 3e-4, bf16 near 3e-3 (one rounding of the output).
REL_BOUND = {"float32": 1e-5, "float16": 3e-3, "bfloat16": 2e-2}
HAVE_CUDA = torch.cuda.is_available()
HAVE_TRITON = importlib.util.find_spec("triton") is not None


def _case(name, shape, dtype="float32", op="dfblk", x_layout="nchw", dy_layout=None, params="bc",
          grads="all", overrides=None):
    return {
        "name": name, "shape": list(shape), "dtype": dtype, "op": op, "x_layout": x_layout,
        "dy_layout": dy_layout or x_layout, "params": params, "grads": grads, "overrides": overrides or {},
    }


# Small enough for the interpreter (the whole subprocess takes a few seconds).
# The overrides shrink tiles so that the backward loop runs several iterations
# and the spatial split (nsplit > 1) and ragged channel blocks are exercised.
SPLIT = {"fwd_block_s": 8, "fwd_block_c": 2, "bwd_block_s": 4, "bwd_block_c": 2, "nsplit": 3}
CPU_CASES = [
    _case("ragged_b1_c3_7x5_nchw_f32", (1, 3, 7, 5)),
    _case("ragged_b1_c3_7x5_nhwc_f32", (1, 3, 7, 5), x_layout="nhwc"),
    _case("ragged_b1_c3_7x5_nchw_bf16", (1, 3, 7, 5), dtype="bfloat16"),
    _case("ragged_b1_c3_7x5_nhwc_f16", (1, 3, 7, 5), dtype="float16", x_layout="nhwc"),
    _case("split_b2_c5_9x7_nchw_f32", (2, 5, 9, 7), overrides=SPLIT),
    _case("split_b2_c5_9x7_nhwc_f32", (2, 5, 9, 7), x_layout="nhwc", overrides=SPLIT),
    _case("split_b2_c5_9x7_nchw_bf16", (2, 5, 9, 7), dtype="bfloat16", overrides=SPLIT),
    _case("split_b2_c5_9x7_nhwc_f16", (2, 5, 9, 7), dtype="float16", x_layout="nhwc", overrides=SPLIT),
    _case("b3_c16_8x8_nchw_f16", (3, 16, 8, 8), dtype="float16"),
    _case("b2_c32_4x4_nhwc_bf16", (2, 32, 4, 4), dtype="bfloat16", x_layout="nhwc"),
    _case("b2_c8_4x4_nhwc_f32", (2, 8, 4, 4), x_layout="nhwc"),
    _case("mixed_x_nchw_dy_nhwc", (2, 6, 5, 3), x_layout="nchw", dy_layout="nhwc"),
    _case("mixed_x_nhwc_dy_nchw", (2, 6, 5, 3), x_layout="nhwc", dy_layout="nchw", overrides=SPLIT),
    _case("sliced_x_non_mergeable", (2, 4, 5, 6), x_layout="sliced"),
    _case("h1_row", (2, 4, 1, 9)),
    _case("w1_col_nhwc", (2, 4, 9, 1), x_layout="nhwc"),
    _case("params_bc11", (2, 4, 3, 3), params="bc11"),
    _case("params_chunked_views", (2, 4, 3, 3), params="chunked"),
    _case("params_fp32_x_bf16", (2, 4, 3, 3), dtype="bfloat16", params="fp32"),
    _case("grad_x_only", (2, 4, 3, 5), grads="x"),
    _case("grad_params_only", (2, 4, 3, 5), grads="params", overrides=SPLIT),
    _case("empty_batch", (0, 4, 3, 3)),
    _case("cbn_b2_c5_6x6_nchw_f32", (2, 5, 6, 6), op="cbn"),
    _case("cbn_b1_c3_7x5_nhwc_bf16", (1, 3, 7, 5), op="cbn", dtype="bfloat16", x_layout="nhwc"),
    _case("cbn_split_nchw_f16", (2, 5, 9, 7), op="cbn", dtype="float16", overrides=SPLIT),
]

# Real DF-GAN activation shapes (batch cut to 4 to keep the GPU test quick),
# plus ragged ones; run against the compiled kernels when CUDA is present.
GPU_SHAPES = [(4, 256, 8, 8), (4, 256, 16, 16), (4, 256, 32, 32), (4, 128, 64, 64), (4, 64, 128, 128),
              (4, 32, 256, 256), (1, 3, 7, 5), (3, 67, 33, 17), (5, 1000, 3, 3), (2, 7, 1, 4099)]
GPU_CASES = [
    _case(f"gpu_{'x'.join(map(str, s))}_{lay}_{dt}", s, dtype=dt, x_layout=lay)
    for s in GPU_SHAPES for lay in ("nchw", "nhwc") for dt in ("float32", "bfloat16", "float16")
] + [c for c in CPU_CASES if not c["overrides"]]


# --------------------------------------------------------------------------- the check itself


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "nhwc":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "sliced":  # W axis with stride 2: H and W can't merge into one strided axis
        return torch.repeat_interleave(t, 2, dim=3)[..., ::2]
    return t.contiguous()


def _make_inputs(case, device):
    B, C, H, W = case["shape"]
    dt = DTYPES[case["dtype"]]
    x = _layout(torch.randn(B, C, H, W, device=device), case["x_layout"]).to(dt)
    dy = _layout(torch.randn(B, C, H, W, device=device), case["dy_layout"]).to(dt)
    n_params = 4 if case["op"] == "dfblk" else 2
    pdt = torch.float32 if case["params"] == "fp32" else dt
    # gammas around 1 (as the affine MLPs are initialised), betas around 0: both signs of z occur
    if case["params"] == "chunked":  # views into one [B, 2C] tensor, stride (2C, 1)
        raw = [torch.randn(B, 2 * C, device=device).to(pdt) for _ in range(n_params // 2)]
        params = [h for r in raw for h in r.chunk(2, dim=1)]
    else:
        params = [torch.randn(B, C, device=device).to(pdt) for _ in range(n_params)]
    params = [p + 1 if i % 2 == 0 else p for i, p in enumerate(params)]
    if case["params"] == "bc11":
        params = [p[:, :, None, None] for p in params]
    return x, params, dy


def check_case(case, device) -> dict:
    """Run fused and float64 reference on fresh random inputs; return relative errors."""
    from ganreg.ops import dfblk_triton

    seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    dfblk_triton.OVERRIDES.clear()
    dfblk_triton.OVERRIDES.update(case["overrides"])
    try:
        x, params, dy = _make_inputs(case, device)
        want_x = case["grads"] in ("all", "x")
        want_p = case["grads"] in ("all", "params")
        x.requires_grad_(want_x)
        for p in params:
            p.requires_grad_(want_p)
        fused, ref = (dfblk, dfblk_reference) if case["op"] == "dfblk" else (cbn_apply, cbn_apply_reference)
        if device == "cuda":  # poison the caching allocator so unwritten outputs show up as NaN
            torch.full((1 << 24,), float("nan"), device=device)
        with set_fused("on"):
            y = fused(x, *params)
        inputs = ([x] if want_x else []) + (params if want_p else [])
        grads = torch.autograd.grad(y, inputs, dy) if y.numel() else [torch.zeros_like(t) for t in inputs]

        x64 = x.detach().double().requires_grad_(want_x)
        p64 = [p.detach().double().requires_grad_(want_p) for p in params]
        y64 = ref(x64, *p64)
        in64 = ([x64] if want_x else []) + (p64 if want_p else [])
        g64 = torch.autograd.grad(y64, in64, dy.double()) if y64.numel() else [torch.zeros_like(t) for t in in64]
    finally:
        dfblk_triton.OVERRIDES.clear()

    names = (["dx"] if want_x else []) + ([f"d{n}" for n in ("g1", "b1", "g2", "b2")[: len(params)]] if want_p else [])
    errs, finite, shapes_ok = {}, True, True
    for name, got, exp in [("y", y, y64), *zip(names, grads, g64)]:
        finite &= bool(torch.isfinite(got).all())
        shapes_ok &= tuple(got.shape) == tuple(exp.shape) and got.dtype == (
            x.dtype if name in ("y", "dx") else params[0].dtype)
        den = exp.norm().item()
        errs[name] = (got.double() - exp).norm().item() / den if den > 0 else (got.double() - exp).norm().item()
    layout_ok = True
    if case["x_layout"] in ("nchw", "nhwc") and x.numel():
        layout_ok = y.stride() == x.stride() and (not want_x or grads[0].stride() == x.stride())
    return {"name": case["name"], "dtype": case["dtype"], "seed": seed, "errs": errs, "finite": finite,
            "shapes_ok": shapes_ok, "layout_ok": layout_ok}


def assert_result(res: dict) -> None:
    assert "error" not in res, f"{res['name']} raised: {res.get('error')}"
    bound = REL_BOUND[res["dtype"]]
    ctx = f"{res['name']} (seed {res['seed']}): {res['errs']}"
    assert res["finite"], f"non-finite output/gradient in {ctx}"
    assert res["shapes_ok"], f"wrong shape/dtype in {ctx}"
    assert res["layout_ok"], f"output memory format differs from the input's in {ctx}"
    bad = {k: v for k, v in res["errs"].items() if not v <= bound}
    assert not bad, f"relative error over {bound:g} for {bad} in {ctx}"


# --------------------------------------------------------------------------- interpreter (CPU, CI)


def _interpreter_worker() -> None:
    """Entry point of the TRITON_INTERPRET=1 subprocess: run CPU_CASES, print JSON."""
    from ganreg.ops import dfblk_triton

    out = {"interpret": dfblk_triton.INTERPRET, "results": []}
    for case in CPU_CASES:
        try:
            out["results"].append(check_case(case, "cpu"))
        except Exception as e:  # report, don't stop: the parent asserts per case
            out["results"].append({"name": case["name"], "error": f"{type(e).__name__}: {e}"})
    print("@@RESULTS@@" + json.dumps(out))


def _old_interpreter_with_numpy2() -> bool:
    from importlib.metadata import version

    def major_minor(v):
        return tuple(int(p) for p in v.split(".")[:2])

    try:
        return major_minor(version("triton")) < (3, 7) and major_minor(version("numpy")) >= (2, 0)
    except Exception:
        return False


@pytest.fixture(scope="module")
def interpreter_results():
    if not HAVE_TRITON:
        pytest.skip("triton is not installed")
    if _old_interpreter_with_numpy2():
        pytest.skip("triton < 3.7's interpreter cannot run loops with run-time bounds under numpy >= 2")
    src = str(Path(ganreg.ops.__file__).resolve().parents[2])
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(
        [src] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("GANREG_FUSED_OPS", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--interpreter-worker"],
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULTS@@")]
    assert proc.returncode == 0 and lines, (
        f"interpreter subprocess failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    out = json.loads(lines[-1][len("@@RESULTS@@"):])
    assert out["interpret"], "TRITON_INTERPRET=1 did not produce interpreted kernels"
    out["seconds"] = time.perf_counter() - t0
    return {r["name"]: r for r in out["results"]}


@pytest.mark.parametrize("case", CPU_CASES, ids=[c["name"] for c in CPU_CASES])
def test_fused_matches_reference_interpreter(interpreter_results, case):
    assert_result(interpreter_results[case["name"]])


# --------------------------------------------------------------------------- GPU (compiled kernels)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("case", GPU_CASES, ids=[c["name"] for c in GPU_CASES])
def test_fused_matches_reference_cuda(case):
    assert_result(check_case(case, "cuda"))


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs CUDA")
def test_cuda_auto_dispatch_uses_triton_and_is_deterministic():
    x = torch.randn(4, 64, 32, 32, device="cuda", requires_grad=True)
    ps = [torch.randn(4, 64, device="cuda", requires_grad=True) for _ in range(4)]
    with set_fused("auto"):
        assert will_use_fused(x)
        y = dfblk(x, *ps)
    assert y.grad_fn is not None and "AffineAct" in type(y.grad_fn).__name__
    dy = torch.randn_like(y)
    g_a = torch.autograd.grad(dfblk(x, *ps), [x, *ps], dy)
    g_b = torch.autograd.grad(dfblk(x, *ps), [x, *ps], dy)
    for a, b in zip(g_a, g_b):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- reference + dispatch (CPU)


def test_reference_gradcheck_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    ps = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    assert torch.autograd.gradcheck(dfblk_reference, (x, *ps))
    assert torch.autograd.gradgradcheck(dfblk_reference, (x, *ps))
    assert torch.autograd.gradcheck(cbn_apply_reference, (x, ps[0], ps[1]))


def test_reference_matches_formula():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    g1, b1, g2, b2 = (torch.randn(2, 3, dtype=torch.float64) for _ in range(4))
    e = lambda t: t[:, :, None, None]  # noqa: E731
    h = g1[:, :, None, None] * x + e(b1)
    h = torch.where(h > 0, h, 0.2 * h)
    z = e(g2) * h + e(b2)
    assert torch.allclose(dfblk_reference(x, g1, b1, g2, b2), torch.where(z > 0, z, 0.2 * z))
    assert torch.allclose(cbn_apply_reference(x, g1, b1), (e(g1) * x + e(b1)).clamp_min(0))


def test_dispatch_cpu_auto_uses_reference(monkeypatch):
    monkeypatch.delenv("GANREG_FUSED_OPS", raising=False)
    x = torch.randn(2, 3, 4, 4)
    ps = [torch.randn(2, 3) for _ in range(4)]
    assert get_fused_mode() == "auto"
    assert not will_use_fused(x)
    assert torch.equal(dfblk(x, *ps), dfblk_reference(x, *ps))
    assert torch.equal(cbn_apply(x, ps[0], ps[1]), cbn_apply_reference(x, ps[0], ps[1]))


def test_dispatch_forced_off_uses_reference(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "dfblk_reference", lambda *a: calls.append(a) or dfblk_reference(*a))
    monkeypatch.setattr(dispatch, "_fused_module", lambda: pytest.fail("fused path taken while forced off"))
    x = torch.randn(1, 2, 3, 3)
    ps = [torch.randn(1, 2) for _ in range(4)]
    monkeypatch.setenv("GANREG_FUSED_OPS", "off")
    assert get_fused_mode() == "off"
    dfblk(x, *ps)
    monkeypatch.setenv("GANREG_FUSED_OPS", "on")
    with set_fused("off"):  # set_fused beats the env var
        assert get_fused_mode() == "off"
        dfblk(x, *ps)
        if HAVE_CUDA:
            assert not will_use_fused(x.cuda())
    assert len(calls) == 2


def test_dispatch_modes_and_env(monkeypatch):
    monkeypatch.delenv("GANREG_FUSED_OPS", raising=False)
    for raw, mode in [("on", "on"), ("OFF", "off"), ("auto", "auto"), ("1", "on"), ("0", "off"), ("", "auto")]:
        monkeypatch.setenv("GANREG_FUSED_OPS", raw)
        assert get_fused_mode() == mode
    monkeypatch.setenv("GANREG_FUSED_OPS", "sometimes")
    with pytest.raises(ValueError):
        get_fused_mode()
    monkeypatch.setenv("GANREG_FUSED_OPS", "off")
    with set_fused("on"):
        assert get_fused_mode() == "on"
        with set_fused("auto"):
            assert get_fused_mode() == "auto"
        assert get_fused_mode() == "on"
    assert get_fused_mode() == "off"
    set_fused("on")  # plain call: sticks until cleared
    try:
        assert get_fused_mode() == "on"
    finally:
        set_fused(None)
    assert get_fused_mode() == "off"
    with pytest.raises(ValueError):
        set_fused("maybe")


def test_dispatch_forced_on_cpu_without_interpreter_raises(monkeypatch):
    if not HAVE_TRITON:
        pytest.skip("triton is not installed")
    from ganreg.ops import dfblk_triton

    if dfblk_triton.INTERPRET:
        pytest.skip("this process imported triton in interpreter mode")
    x = torch.randn(1, 2, 3, 3)
    ps = [torch.randn(1, 2) for _ in range(4)]
    with set_fused("on"), pytest.raises(RuntimeError, match="CUDA"):
        dfblk(x, *ps)


def test_dispatch_auto_uses_reference_under_torch_compile(monkeypatch):
    monkeypatch.delenv("GANREG_FUSED_OPS", raising=False)
    monkeypatch.setattr(dispatch, "fused_available", lambda: True)
    x = torch.randn(1, 2, 3, 3)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert will_use_fused(x)  # a "CUDA" tensor in auto mode
    monkeypatch.setattr(dispatch, "_is_compiling", lambda: True)
    assert not will_use_fused(x)
    with set_fused("on"):
        assert will_use_fused(x)


def test_dispatch_forced_on_without_triton_raises(monkeypatch):
    monkeypatch.setattr(dispatch, "_triton", lambda: None)
    with set_fused("on"), pytest.raises(RuntimeError, match="triton"):
        dfblk(torch.randn(1, 1, 2, 2), *(torch.randn(1, 1) for _ in range(4)))
    with set_fused("auto"):  # auto silently falls back
        assert not dispatch.fused_available()


if __name__ == "__main__" and "--interpreter-worker" in sys.argv:
    _interpreter_worker()
