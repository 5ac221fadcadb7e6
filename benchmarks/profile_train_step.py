"""Where the time of one DF-GAN training step goes: a torch.profiler table of the benchmark's step.

    python benchmarks/profile_train_step.py [--size 256] [--config fast] [--steps 2] [--out profile.txt]

Builds the same trainer as ``test_bench_train_step.py`` (same recipe, same configurations), warms it
up, profiles ``--steps`` steps and writes:

* the time per step and its split into broad categories (copies and casts, convolutions, the fused
  DFBLK kernels, elementwise, optimiser, other), so a change can be judged by the category it targets;
* the top operators and kernels by self time, once plain and once grouped by input shape (which
  convolution, which copy).

On a GPU the times are device (kernel) times; on the CPU they are CPU times of the small CPU shapes
(a dry run of the script, and a rough guide to where eager time goes). Why it exists: the 2x target of
issue 6 was missed by 6-10 % (stop 9), and the next lever has to be found in a trace, in the same call
that measures (``gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bench_train_step import CONFIGS, CUDA, SIZES, _recipe  # noqa: E402

from ganreg.ops import set_fused  # noqa: E402
from ganreg.plugins import load_entry_points  # noqa: E402
from ganreg.recipe import validate_recipe  # noqa: E402
from ganreg.registry import Registry  # noqa: E402
from ganreg.train.trainer import Trainer  # noqa: E402

# First match wins; names are lower-cased operator or kernel names.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("dfblk (fused)", ("_dfblk", "dfblk_")),
    ("copies and casts", ("copy", "contiguous", "clone", "to_copy", "memcpy", "memset")),
    ("convolution", ("conv", "cudnn", "xmma", "implicit_gemm", "wgrad", "dgrad", "fprop", "im2col", "col2im")),
    ("matmul", ("gemm", "addmm", "aten::mm", "bmm", "cutlass", "nvjet")),
    ("optimiser", ("adam", "multi_tensor", "foreach", "lerp")),
    ("elementwise", ("elementwise", "vectorized", "leaky", "mul", "add", "reduce", "sum", "upsample", "pow", "sqrt")),
]


def category(name: str) -> str:
    low = name.lower()
    for label, keys in CATEGORIES:
        if any(k in low for k in keys):
            return label
    return "other"


def build_trainer(size: int, config_name: str, run_dir: Path) -> Trainer:
    registry = Registry()
    load_entry_points(registry, strict=True)
    config = CONFIGS[config_name]
    recipe = validate_recipe(_recipe(size, config), registry)
    return Trainer(recipe, registry, run_dir, device="cuda" if CUDA else "cpu")


def profile_steps(trainer: Trainer, steps: int) -> profile:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    for _ in range(3):  # warm-up, compilation, cuDNN's algorithm search
        trainer.train_step()
    if CUDA:
        torch.cuda.synchronize()
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            trainer.train_step()
        if CUDA:
            torch.cuda.synchronize()
    return prof


def summary(prof: profile, steps: int) -> str:
    """Per-step time by category. Kernels (device events) on a GPU; operators' self CPU time on the CPU."""
    key = "self_device_time_total" if CUDA else "self_cpu_time_total"
    totals: dict[str, float] = {}
    for evt in prof.key_averages():
        us = float(getattr(evt, key))
        if us <= 0 or (CUDA and evt.device_type != torch.autograd.DeviceType.CUDA):
            continue
        totals[category(evt.key)] = totals.get(category(evt.key), 0.0) + us
    whole = sum(totals.values()) or 1.0
    lines = [f"{'device' if CUDA else 'CPU (self)'} time per step: {whole / steps / 1000:.2f} ms", ""]
    lines += [f"  {label:<18} {us / steps / 1000:8.2f} ms  {100 * us / whole:5.1f} %" for label, us in sorted(totals.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=SIZES[-1], help="image size (the benchmark's: 64/256 on CUDA, 32 on the CPU)")
    parser.add_argument("--config", choices=list(CONFIGS), default="fast")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()

    sort = "self_device_time_total" if CUDA else "self_cpu_time_total"
    with tempfile.TemporaryDirectory() as tmp, set_fused(CONFIGS[args.config]["fused"]):
        trainer = build_trainer(args.size, args.config, Path(tmp))
        prof = profile_steps(trainer, args.steps)
    parts = [
        f"DF-GAN training step, {args.size} px, config {args.config!r} ({CONFIGS[args.config]}), "
        f"{args.steps} profiled steps, torch {torch.__version__}, "
        f"{torch.cuda.get_device_name() if CUDA else 'CPU'}",
        "",
        summary(prof, args.steps),
        "",
        "Top by self time:",
        prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=90),
        "Top by self time, grouped by input shapes:",
        prof.key_averages(group_by_input_shape=True).table(
            sort_by=sort, row_limit=args.rows, max_name_column_width=60, max_shapes_column_width=100
        ),
    ]
    report = "\n".join(parts)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
