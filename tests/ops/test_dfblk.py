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
          grads="all", overrides=None, max_grid=None):
    return {
        "name": name, "shape": list(shape), "dtype": dtype, "op": op, "x_layout": x_layout,
        "dy_layout": dy_layout or x_layout, "params": params, "grads": grads, "overrides": overrides or {},
        "max_grid": max_grid,  # shrink the kernels' batch-grid limit (MAX_GRID_YZ) to exercise batch chunking
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
    _case("params_fp32_x_f16_nhwc", (2, 4, 3, 3), dtype="float16", params="fp32", x_layout="nhwc"),
    _case("params_bf16_x_f32", (2, 4, 3, 3), params="bf16"),
    _case("params_broadcast_1c", (3, 4, 3, 5), params="1c", overrides=SPLIT),
    _case("params_broadcast_mixed_bf16", (3, 4, 3, 5), dtype="bfloat16", params="bcast_mixed"),
    _case("cbn_params_broadcast_1c11", (2, 5, 3, 3), op="cbn", params="1c11"),
    _case("x_dy_permuted_bc", (3, 4, 5, 6), x_layout="permuted"),
    _case("x_nchw_dy_permuted_split", (3, 4, 5, 6), dy_layout="permuted", overrides=SPLIT),
    _case("dy_expanded_nhwc", (2, 4, 3, 5), x_layout="nhwc", dy_layout="expanded"),
    _case("dy_expanded_split", (2, 4, 3, 5), dy_layout="expanded", overrides=SPLIT),
    _case("nhwc_c1", (2, 1, 3, 5), x_layout="nhwc"),
    _case("nhwc_h1w1", (3, 6, 1, 1), x_layout="nhwc"),
    _case("nchw_h1w1_f16", (3, 6, 1, 1), dtype="float16"),
    _case("index64_forced", (2, 5, 9, 7), overrides=dict(SPLIT, idx64=1)),
    _case("index64_forced_nhwc_bf16", (2, 5, 9, 7), dtype="bfloat16", x_layout="nhwc", overrides={"idx64": 1}),
    _case("batch_chunked", (5, 3, 4, 3), max_grid=2),
    _case("batch_chunked_split_nhwc", (5, 3, 4, 3), x_layout="nhwc", max_grid=2, overrides=SPLIT),
    _case("grad_x_and_g2_only", (2, 4, 3, 5), grads="x+g2", overrides=SPLIT),
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
    if layout == "permuted":  # batch and channel axes swapped in memory: strides (H*W, B*H*W, W, 1)
        return t.transpose(0, 1).contiguous().transpose(0, 1)
    if layout == "expanded":  # one value per (sample, channel), broadcast over space: strides (C, 1, 0, 0)
        return t[:, :, :1, :1].expand(t.shape)
    return t.contiguous()


def _make_inputs(case, device):
    B, C, H, W = case["shape"]
    dt = DTYPES[case["dtype"]]
    x = _layout(torch.randn(B, C, H, W, device=device), case["x_layout"]).to(dt)
    dy = _layout(torch.randn(B, C, H, W, device=device), case["dy_layout"]).to(dt)
    n_params = 4 if case["op"] == "dfblk" else 2
    pdt = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(case["params"], dt)
    # shapes the reference broadcasts over x: [1, C] (one modulation for the batch), [B, 1], [1, 1], 4-D forms
    pshapes = {"1c": [(1, C)] * 4, "1c11": [(1, C, 1, 1)] * 4,
               "bcast_mixed": [(1, C), (B, 1), (1, C, 1, 1), (1, 1)]}.get(case["params"])
    # gammas around 1 (as the affine MLPs are initialised), betas around 0: both signs of z occur
    if case["params"] == "chunked":  # views into one [B, 2C] tensor, stride (2C, 1)
        raw = [torch.randn(B, 2 * C, device=device).to(pdt) for _ in range(n_params // 2)]
        params = [h for r in raw for h in r.chunk(2, dim=1)]
    elif pshapes is not None:
        params = [torch.randn(pshapes[i], device=device).to(pdt) for i in range(n_params)]
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
    max_grid0 = dfblk_triton.MAX_GRID_YZ
    dfblk_triton.OVERRIDES.clear()
    dfblk_triton.OVERRIDES.update(case["overrides"])
    try:
        x, params, dy = _make_inputs(case, device)
        pnames = ["g1", "b1", "g2", "b2"][: len(params)]
        want_x = case["grads"] in ("all", "x", "x+g2")
        want = {n: case["grads"] in ("all", "params") or (case["grads"] == "x+g2" and n == "g2") for n in pnames}
        x.requires_grad_(want_x)
        for n, p in zip(pnames, params):
            p.requires_grad_(want[n])
        fused, ref = (dfblk, dfblk_reference) if case["op"] == "dfblk" else (cbn_apply, cbn_apply_reference)
        # the reference defines the output dtype too (type promotion over x and the modulation)
        y_dtype = ref(x.detach(), *(p.detach() for p in params)).dtype
        dy = dy.to(y_dtype)
        if device == "cuda":  # poison the caching allocator so unwritten outputs show up as NaN
            torch.full((1 << 24,), float("nan"), device=device)
        if case["max_grid"]:
            dfblk_triton.MAX_GRID_YZ = case["max_grid"]
        with set_fused("on"):
            y = fused(x, *params)
        names = (["dx"] if want_x else []) + [f"d{n}" for n in pnames if want[n]]
        inputs = ([x] if want_x else []) + [p for n, p in zip(pnames, params) if want[n]]
        grads = torch.autograd.grad(y, inputs, dy) if y.numel() else [torch.zeros_like(t) for t in inputs]

        x64 = x.detach().double().requires_grad_(want_x)
        p64 = [p.detach().double().requires_grad_(want[n]) for n, p in zip(pnames, params)]
        y64 = ref(x64, *p64)
        in64 = ([x64] if want_x else []) + [p for n, p in zip(pnames, p64) if want[n]]
        g64 = torch.autograd.grad(y64, in64, dy.double()) if y64.numel() else [torch.zeros_like(t) for t in in64]
    finally:
        dfblk_triton.OVERRIDES.clear()
        dfblk_triton.MAX_GRID_YZ = max_grid0

    errs, max_errs, bounds, finite, shapes_ok = {}, {}, {}, True, True
    for name, got, exp, want_dtype in [("y", y, y64, y_dtype), *zip(names, grads, g64, [t.dtype for t in inputs])]:
        # bound by the coarser of the op's storage dtype and this tensor's own (a bf16 gamma's grad is bf16)
        bounds[name] = max(REL_BOUND[case["dtype"]], REL_BOUND[str(want_dtype).replace("torch.", "")])
        finite &= bool(torch.isfinite(got).all())
        shapes_ok &= tuple(got.shape) == tuple(exp.shape) and got.dtype == want_dtype
        diff = got.double() - exp
        den = exp.norm().item()
        errs[name] = diff.norm().item() / den if den > 0 else diff.norm().item()
        # elementwise too: one wrong element (a missed tail, a bad offset) hides in the norm of a large tensor
        top = exp.abs().max().item() if exp.numel() else 0.0
        worst = diff.abs().max().item() if exp.numel() else 0.0
        max_errs[name] = worst / top if top > 0 else worst
    layout_ok = True
    if case["x_layout"] in ("nchw", "nhwc") and x.numel():
        layout_ok = y.stride() == x.stride() and (not want_x or grads[0].stride() == x.stride())
    return {"name": case["name"], "dtype": case["dtype"], "seed": seed, "errs": errs, "max_errs": max_errs,
            "bounds": bounds, "finite": finite, "shapes_ok": shapes_ok, "layout_ok": layout_ok}


def assert_result(res: dict) -> None:
    assert "error" not in res, f"{res['name']} raised: {res.get('error')}"
    bounds = res["bounds"]
    ctx = f"{res['name']} (seed {res['seed']}): {res['errs']}"
    assert res["finite"], f"non-finite output/gradient in {ctx}"
    assert res["shapes_ok"], f"wrong shape/dtype in {ctx}"
    assert res["layout_ok"], f"output memory format differs from the input's in {ctx}"
    bad = {k: v for k, v in res["errs"].items() if not v <= bounds[k]}
    assert not bad, f"relative error over {bounds} for {bad} in {ctx}"
    # max |fused - ref64| / max |ref64|, per tensor: an isolated wrong element fails this one
    bad = {k: v for k, v in res["max_errs"].items() if not v <= 2 * bounds[k]}
    assert not bad, f"elementwise error over 2x {bounds} (of the largest value) for {bad} in {ctx}; {res['max_errs']}"


# --------------------------------------------------------------------------- interpreter (CPU, CI)


def _interpreter_worker() -> None:
    """Entry point of the TRITON_INTERPRET=1 subprocess: run CPU_CASES, print JSON."""
    from ganreg.ops import dfblk_triton

    out = {"interpret": dfblk_triton.INTERPRET, "results": [], "checks": {}}
    for case in CPU_CASES:
        try:
            out["results"].append(check_case(case, "cpu"))
        except Exception as e:  # report, don't stop: the parent asserts per case
            out["results"].append({"name": case["name"], "error": f"{type(e).__name__}: {e}"})
    for name, check in WORKER_CHECKS.items():
        try:
            out["checks"][name] = check("cpu")
        except Exception as e:
            out["checks"][name] = f"{type(e).__name__}: {e}"
    print("@@RESULTS@@" + json.dumps(out))


def check_double_backward(device) -> str:
    """Second derivatives through the fused op (create_graph=True) must be right -- not raise lazily
    only under .backward() and come back as None / missing terms under autograd.grad, as a
    once_differentiable backward does. Compared with the float64 reference; returns "ok" or the problems."""
    torch.manual_seed(0)
    problems = []
    for op in ("dfblk", "cbn"):
        fused, ref = (dfblk, dfblk_reference) if op == "dfblk" else (cbn_apply, cbn_apply_reference)
        n = 4 if op == "dfblk" else 2
        x0 = torch.randn(2, 3, 4, 5, device=device)
        p0 = [torch.randn(2, 3, device=device) + (1 if i % 2 == 0 else 0) for i in range(n)]
        p0[1] = p0[1][:1]  # a broadcast [1, C] beta too
        w = torch.randn(2, 3, 4, 5, device=device)
        for wrt in ("x", "params", "x+params"):
            out = {}
            for impl, dt in (("fused", torch.float32), ("ref64", torch.float64)):
                x = x0.to(dt).requires_grad_()
                ps = [p.to(dt).requires_grad_() for p in p0]
                if impl == "fused":
                    with set_fused("on"):
                        y = fused(x, *ps)
                else:
                    y = ref(x, *ps)
                inputs = {"x": [x], "params": ps, "x+params": [x, *ps]}[wrt]
                # a path-length-style penalty: |d<y, w>/d inputs|^2, then its gradient wrt everything
                gs = torch.autograd.grad((y * w.to(dt)).sum(), inputs, create_graph=True)
                pen = sum(g.square().sum() for g in gs)
                out[impl] = torch.autograd.grad(pen, [x, *ps], allow_unused=True, materialize_grads=True)
            for k, (a, b) in enumerate(zip(out["fused"], out["ref64"])):
                den = b.norm().item()
                err = (a.double() - b).norm().item() / (den if den > 0 else 1.0)
                if not err <= 1e-5:
                    problems.append(f"{op} d(penalty wrt {wrt})/d input{k}: rel err {err:.3g} (|ref| {den:.3g})")
    return "ok" if not problems else "; ".join(problems)


def check_first_order_backward_uses_kernel(device) -> str:
    """The cases above only test the kernels if a plain backward runs them (the reference backward
    is reserved for create_graph=True): count which one ran."""
    from ganreg.ops import dfblk_triton

    calls = []
    real_launch, real_ref = dfblk_triton._launch_bwd, dfblk_triton._AffineActFn._backward_reference
    dfblk_triton._launch_bwd = lambda *a, **k: calls.append("kernel") or real_launch(*a, **k)
    dfblk_triton._AffineActFn._backward_reference = staticmethod(
        lambda *a: calls.append("reference") or real_ref(*a))
    try:
        x = torch.randn(2, 3, 4, 5, device=device, requires_grad=True)
        ps = [torch.randn(2, 3, device=device, requires_grad=True) for _ in range(4)]
        with set_fused("on"):
            dfblk(x, *ps).square().sum().backward()
            torch.autograd.grad(dfblk(x, *ps).sum(), [x, *ps])
            torch.autograd.grad(dfblk(x, *ps).sum(), [x], create_graph=True)
    finally:
        dfblk_triton._launch_bwd = real_launch
        dfblk_triton._AffineActFn._backward_reference = staticmethod(real_ref)
    return "ok" if calls == ["kernel", "kernel", "reference"] else f"backward paths taken: {calls}"


WORKER_CHECKS = {"double_backward": check_double_backward,
                 "first_order_backward_uses_kernel": check_first_order_backward_uses_kernel}


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
    return {**{r["name"]: r for r in out["results"]}, "@checks": out.get("checks", {})}


@pytest.mark.parametrize("case", CPU_CASES, ids=[c["name"] for c in CPU_CASES])
def test_fused_matches_reference_interpreter(interpreter_results, case):
    assert_result(interpreter_results[case["name"]])


@pytest.mark.parametrize("name", ["double_backward", "first_order_backward_uses_kernel"])
def test_interpreter_checks(interpreter_results, name):
    assert interpreter_results["@checks"].get(name) == "ok", interpreter_results["@checks"].get(name)


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
    assert torch.autograd.gradgradcheck(cbn_apply_reference, (x, ps[0], ps[1]))


def test_reference_matches_formula():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    g1, b1, g2, b2 = (torch.randn(2, 3, dtype=torch.float64) for _ in range(4))
    e = lambda t: t[:, :, None, None]  # noqa: E731
    h = g1[:, :, None, None] * x + e(b1)
    h = torch.where(h > 0, h, 0.2 * h)
    z = e(g2) * h + e(b2)
    assert torch.allclose(dfblk_reference(x, g1, b1, g2, b2), torch.where(z > 0, z, 0.2 * z))
    assert torch.allclose(cbn_apply_reference(x, g1, b1), (e(g1) * x + e(b1)).clamp_min(0))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])  # mul + add, and addcmul
def test_reference_keeps_x_dtype_and_does_not_round_wider_gammas(layout):
    """A bf16 x with float32 modulations (DF-GAN's MLPs under autocast): the output is bf16, and gamma is not
    rounded to bf16 first. A gamma near 1 in bf16 moves in steps of 2**-8, one error for every pixel of a
    channel; the reference's split of gamma (its bf16 rounding + the remainder) leaves only the rounding of
    each output, which averages out over the pixels. Measured on the per-(sample, channel) mean of the output
    against float64."""
    torch.manual_seed(0)
    x = _layout(torch.randn(4, 16, 16, 16), layout).bfloat16()
    g1, b1, g2, b2 = (torch.randn(4, 16) * 0.003 + (1 - i % 2) for i in range(4))
    want = dfblk_reference(x.double(), *(p.double() for p in (g1, b1, g2, b2)))

    def channel_bias(y: torch.Tensor) -> float:
        return ((y.double() - want).mean((2, 3)).norm() / want.mean((2, 3)).norm()).item()

    y = dfblk_reference(x, g1, b1, g2, b2)
    assert y.dtype == torch.bfloat16 and y.stride() == x.stride()
    torch.testing.assert_close(y.double(), want, rtol=2e-2, atol=2e-2)
    rounded = dfblk_reference(x, *(p.bfloat16() for p in (g1, b1, g2, b2)))
    assert channel_bias(y) < 0.5 * channel_bias(rounded), (channel_bias(y), channel_bias(rounded))
    # gradients too: g's flows through the remainder of its split alone, and must still be the whole of it
    xg, pg = x.detach().requires_grad_(), [p.detach().requires_grad_() for p in (g1, b1, g2, b2)]
    x64, p64 = x.detach().double().requires_grad_(), [p.detach().double().requires_grad_() for p in (g1, b1, g2, b2)]
    dy = torch.randn(x.shape)
    got = torch.autograd.grad(dfblk_reference(xg, *pg), [xg, *pg], dy.bfloat16())
    exp = torch.autograd.grad(dfblk_reference(x64, *p64), [x64, *p64], dy.double())
    for a, e in zip(got, exp):
        assert ((a.double() - e).norm() / e.norm()).item() < 2e-2
    yc = cbn_apply_reference(x, g1, b1)
    want_c = cbn_apply_reference(x.double(), g1.double(), b1.double())
    bias_c = lambda y: ((y.double() - want_c).mean((2, 3)).norm() / want_c.mean((2, 3)).norm()).item()  # noqa: E731
    assert yc.dtype == torch.bfloat16
    assert bias_c(yc) < 0.5 * bias_c(cbn_apply_reference(x, g1.bfloat16(), b1.bfloat16()))


@pytest.mark.parametrize("centre", [0.3, 0.01, -0.9])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_reference_wider_gammas_far_from_one_are_no_worse_than_rounded(layout, centre):
    """Trained gammas need not stay near 1. Splitting gamma into its bf16 rounding and the remainder keeps the
    reference at least as accurate as a bf16 gamma for any gamma (a ``1 + (gamma - 1)`` split was 76x worse in
    per-channel bias at gamma 0.01, where ``gamma - 1`` rounds to steps of 2**-9 and x cancels most of it)."""
    torch.manual_seed(0)
    x = _layout(torch.randn(8, 16, 16, 16), layout).bfloat16()
    g, b = torch.randn(8, 16) * 0.003 + centre, torch.zeros(8, 16)
    want = cbn_apply_reference(x.double(), g.double(), b.double())

    def errors(y: torch.Tensor) -> tuple[float, float]:
        diff = y.double() - want
        return (diff.mean((2, 3)).norm() / want.mean((2, 3)).norm()).item(), (diff.norm() / want.norm()).item()

    bias, rms = errors(cbn_apply_reference(x, g, b))
    bias_rounded, rms_rounded = errors(cbn_apply_reference(x, g.bfloat16(), b.bfloat16()))
    assert bias <= 1.1 * bias_rounded and rms <= 1.1 * rms_rounded, (bias, bias_rounded, rms, rms_rounded)


def test_reference_takes_a_negative_slope_under_autograd():
    """The in-place activations are for slope >= 0 only: PyTorch has no in-place leaky_relu backward below 0."""
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    ps = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    assert torch.autograd.gradcheck(lambda x, *ps: dfblk_reference(x, *ps, -0.2), (x, *ps))


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
    x = torch.randn(1, 2, 3, 3)
    _fake_cuda(monkeypatch)
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


def _fake_cuda(monkeypatch, capability=(9, 0)):
    """Make CPU tensors look like CUDA ones to the dispatcher (no kernel runs in these tests)."""
    monkeypatch.delenv("GANREG_FUSED_OPS", raising=False)
    monkeypatch.setattr(dispatch, "fused_available", lambda: True)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    monkeypatch.setattr(dispatch, "device_capability", lambda device: capability)


def test_dispatch_auto_falls_back_for_float64_and_pre_volta(monkeypatch):
    _fake_cuda(monkeypatch)
    x = torch.randn(1, 2, 3, 3)
    assert will_use_fused(x)
    assert not will_use_fused(x.double())  # no float64 kernels
    assert not will_use_fused(x[0])  # not 4-D
    _fake_cuda(monkeypatch, capability=(6, 0))  # P100: Triton does not compile for sm < 70
    assert not will_use_fused(x)
    with set_fused("on"):  # forced: the fused module gives its own clear error on such a GPU
        assert will_use_fused(x)


def test_dispatch_auto_uses_reference_when_params_broadcast_x(monkeypatch):
    """[B, C] modulation with a batch-1 x: the reference broadcasts x to [B, C, H, W]; the kernels can't."""
    _fake_cuda(monkeypatch)
    monkeypatch.setattr(dispatch, "_fused_module", lambda: pytest.fail("fused path taken for a broadcast x"))
    x = torch.randn(1, 3, 2, 2)
    ps = [torch.randn(4, 3) for _ in range(4)]
    y = dfblk(x, *ps)
    assert y.shape == (4, 3, 2, 2) and torch.equal(y, dfblk_reference(x, *ps))
    assert cbn_apply(x, ps[0], ps[1]).shape == (4, 3, 2, 2)
    # float64 modulation: the reference applies it at float64 precision (split gamma), the kernels only at float32
    x4 = torch.randn(4, 3, 2, 2)
    y = dfblk(x4, ps[0].double(), *ps[1:])
    assert y.dtype == torch.float32 and torch.equal(y, dfblk_reference(x4, ps[0].double(), *ps[1:]))
    torch.testing.assert_close(y, dfblk_reference(x4.double(), ps[0].double(), *ps[1:]).float())

    class ReachedFused(Exception):
        pass

    def fused_module():
        raise ReachedFused

    monkeypatch.setattr(dispatch, "_fused_module", fused_module)
    # ... while every shape the kernels take (here [1, C] and [B, 1, 1, 1]) still goes to them
    with pytest.raises(ReachedFused):
        dfblk(torch.randn(4, 3, 2, 2), torch.randn(1, 3), torch.randn(4, 1, 1, 1), *ps[2:])


def _triton_module():
    if not HAVE_TRITON:
        pytest.skip("triton is not installed")
    from ganreg.ops import dfblk_triton

    return dfblk_triton


def test_int64_indexing_chosen_from_strides_not_numel():
    """In-sample offsets are int32 in the kernels unless a tensor's in-sample span needs more.

    The batch term is always int64, so a 2**31+ element batch of normal tensors stays on int32; a
    per-sample span >= 2**31 (huge sample, or a batch/channel-permuted view whose channel stride is
    B*H*W) must switch to int64 rather than wrap around (no allocation here: meta tensors)."""
    T = _triton_module()
    big = torch.empty(256, 32, 512, 512, device="meta")  # 2.1e9 elements, 8.4e6 per sample
    assert not T._needs_int64(big)
    assert not T._needs_int64(big.contiguous(memory_format=torch.channels_last))
    assert T._needs_int64(torch.empty(1, 16, 16384, 16384, device="meta"))  # 4.3e9 in one sample
    perm = torch.empty(32, 512, 512, 512, device="meta").transpose(0, 1)  # [512, 32, ...], channel stride 512*H*W
    assert perm.shape[1] * perm.shape[2] * perm.shape[3] < 2**31  # the old per-sample numel check passed it
    assert T._needs_int64(perm)
    assert T._needs_int64(big, perm)  # any of the tensors (x, dy, y/dx) decides


def test_launch_grid_fits_for_many_channels():
    """Grid axes 1 and 2 are limited to 65535 programs on CUDA: channel blocks must fit."""
    T = _triton_module()
    for C in (65536, 70000, 300000):
        for S in (1, 7, 4096, 65536):
            for c_fast in (False, True):
                bc, _ = T._fwd_config(C, S, c_fast)
                assert -(-C // bc) <= T.MAX_GRID_YZ, ("fwd", C, S, c_fast, bc)
                bc, _, nsplit, _, _ = T._bwd_config(2, C, S, c_fast, 132)
                assert -(-C // bc) <= T.MAX_GRID_YZ, ("bwd", C, S, c_fast, bc)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs CUDA")
def test_double_backward_cuda():
    assert check_double_backward("cuda") == "ok"
    assert check_first_order_backward_uses_kernel("cuda") == "ok"


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs CUDA")
def test_forced_fused_under_torch_compile_matches_eager():
    """``on`` keeps the Triton path under torch.compile (dynamo may break the graph): same values."""
    x = torch.randn(2, 8, 16, 16, device="cuda", requires_grad=True)
    ps = [torch.randn(2, 8, device="cuda", requires_grad=True) for _ in range(4)]
    f = lambda x, *ps: dfblk(x, *ps) * 2  # noqa: E731
    with set_fused("on"):
        y_e = f(x, *ps)
        g_e = torch.autograd.grad(y_e.sum(), [x, *ps])
        torch._dynamo.reset()
        y_c = torch.compile(f)(x, *ps)
        g_c = torch.autograd.grad(y_c.sum(), [x, *ps])
    torch.testing.assert_close(y_c, y_e)
    for a, b in zip(g_c, g_e):
        torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_fused_on_a_non_current_device():
    """Triton launches on the *current* device: tensors on cuda:1 while cuda:0 is current must still work."""
    torch.cuda.set_device(0)
    x = torch.randn(2, 8, 16, 16, device="cuda:1", requires_grad=True)
    ps = [torch.randn(2, 8, device="cuda:1", requires_grad=True) for _ in range(4)]
    with set_fused("on"):
        y = dfblk(x, *ps)
    g = torch.autograd.grad(y.sum(), [x, *ps])
    torch.testing.assert_close(y, dfblk_reference(x, *ps))
    g_ref = torch.autograd.grad(dfblk_reference(x, *ps).sum(), [x, *ps])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


if __name__ == "__main__" and "--interpreter-worker" in sys.argv:
    _interpreter_worker()
