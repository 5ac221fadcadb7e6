"""Shared fixtures for the kernel benchmarks (pytest-benchmark).

* ``bench_device``: "cuda" when available, else "cpu".
* ``copy_bandwidth``: the device's measured copy bandwidth (``y.copy_(x)`` of a
  large tensor, GB/s = (bytes read + bytes written) / median time), measured
  once per session; every benchmark records it and its percentage of it.
* ``device_timer``: a timer that synchronises CUDA before reading the clock,
  installed as the benchmark's timer, so a round of N back-to-back launches is
  timed from the first launch to the end of the last kernel (one sync per
  round, not per call: launch latency overlaps GPU work as in training).
* ``bench_table``: rows collected for the markdown summary printed at the end
  (also written to ``$GANREG_BENCH_TABLE`` when set).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import pytest
import torch

try:
    import ganreg.ops  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

_SESSION: dict = {"rows": [], "copy": None}


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def sync_perf_counter() -> float:
    torch.cuda.synchronize()
    return time.perf_counter()


@pytest.fixture(scope="session")
def bench_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="session")
def copy_bandwidth(bench_device) -> dict:
    """Measured device copy bandwidth in GB/s (1e9 bytes/s), read + write bytes."""
    if bench_device == "cuda":
        n = 1 << 28  # 1 GiB of fp32 each way
        x = torch.randn(n, device="cuda")
        y = torch.empty_like(x)
        for _ in range(3):
            y.copy_(x)
        times = []
        for _ in range(20):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            y.copy_(x)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        del x, y
        torch.cuda.empty_cache()
    else:
        n = 1 << 24  # 64 MiB of fp32
        x = torch.randn(n)
        y = torch.empty_like(x)
        y.copy_(x)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            y.copy_(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    nbytes = 2 * n * 4
    res = {"copy_gbps": nbytes / med / 1e9, "copy_bytes": nbytes, "copy_median_s": med, "device": device_name()}
    res.update(_host_floor(bench_device))
    _SESSION["copy"] = res
    return res


def _host_floor(dev: str) -> dict:
    """Per-call host cost of one tiny op, and of a minimal autograd fwd+bwd (one op each way).

    Small shapes are bound by these (launch + autograd engine), not by memory.
    """
    x = torch.randn(8, device=dev, requires_grad=True)
    dy = torch.randn(8, device=dev)
    timer = sync_perf_counter if dev == "cuda" else time.perf_counter
    out = {}
    for name, fn in (("host_floor_op_us", lambda: x.detach().mul(2.0)),
                     ("host_floor_autograd_us", lambda: torch.autograd.grad(x.mul(2.0), x, dy))):
        for _ in range(20):
            fn()
        t0 = timer()
        for _ in range(200):
            fn()
        out[name] = (timer() - t0) / 200 * 1e6
    return out


@pytest.fixture
def device_timer(bench_device):
    return sync_perf_counter if bench_device == "cuda" else time.perf_counter


@pytest.fixture
def bench_table():
    return _SESSION["rows"]


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    try:
        import triton

        machine_info["triton"] = triton.__version__
    except Exception:  # pragma: no cover
        machine_info["triton"] = None
    machine_info["device"] = device_name()
    machine_info["cuda"] = torch.version.cuda
    if _SESSION["copy"]:
        machine_info["copy_gbps"] = _SESSION["copy"]["copy_gbps"]


def _fmt_ms(v):
    return "-" if v is None else f"{v * 1e3:.3f}"


def render_table(rows, copy) -> str:
    """Markdown table: one line per (mode, dtype, layout, shape), impls side by side."""
    try:
        import triton

        tv = triton.__version__
    except Exception:  # pragma: no cover
        tv = "n/a"
    head = [
        f"device: {copy['device'] if copy else device_name()}; torch {torch.__version__}; triton {tv}; "
        f"measured copy bandwidth {copy['copy_gbps']:.0f} GB/s; host floor: one tiny op "
        f"{copy['host_floor_op_us']:.0f} us, minimal autograd fwd+bwd {copy['host_floor_autograd_us']:.0f} us"
        if copy else "",
        "",
        "times are medians per call (ms); GB/s = minimum bytes / median time; "
        "%copy = GB/s over the measured copy bandwidth",
        "",
        "| op | mode | dtype | layout | shape (B,C,H,W) | eager ms | compile ms | triton ms "
        "| eager GB/s (%copy) | compile GB/s (%copy) | triton GB/s (%copy) | triton x eager | triton x compile |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for r in rows:
        key = (r.get("op", "dfblk"), r["mode"], r["dtype"], r["layout"], tuple(r["shape"]))
        groups.setdefault(key, {})[r["impl"]] = r
    lines = []
    for key in sorted(groups, key=lambda k: (k[0] != "dfblk", k[0], k[1], k[2], k[3], k[4][2], k[4][1])):
        g = groups[key]
        t = {k: g[k]["median_s"] if k in g else None for k in ("eager", "compile", "triton")}
        sp_e = f"{t['eager'] / t['triton']:.2f}" if t["eager"] and t["triton"] else "-"
        sp_c = f"{t['compile'] / t['triton']:.2f}" if t["compile"] and t["triton"] else "-"
        gb = lambda k: f"{g[k]['gbps']:.0f} ({g[k]['pct_copy']:.0f}%)" if k in g else "-"  # noqa: E731
        cells = [key[0], key[1], key[2], key[3], ",".join(map(str, key[4])), _fmt_ms(t["eager"]), _fmt_ms(t["compile"]),
                 _fmt_ms(t["triton"]), gb("eager"), gb("compile"), gb("triton"), sp_e, sp_c]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(head + lines) + "\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = _SESSION["rows"]
    if not rows:
        return
    table = render_table(rows, _SESSION["copy"])
    terminalreporter.write_sep("=", "DFBLK / CBN apply benchmark table")
    terminalreporter.write(table)
    out = os.environ.get("GANREG_BENCH_TABLE")
    if out:
        Path(out).write_text(table)
        Path(out).with_suffix(".json").write_text(json.dumps({"copy": _SESSION["copy"], "rows": rows}, indent=1))
