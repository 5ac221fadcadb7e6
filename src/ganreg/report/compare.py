"""``ganreg compare``: several runs side by side (final losses, evaluation, parameters,
wall time) and their loss curves overlaid.

Evaluation numbers of runs evaluated under different protocols (another
extractor, weights, sample count or split) are flagged: they are not
comparable, whatever the table shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganreg.errors import UserError
from ganreg.report.figures import plot_comparison
from ganreg.report.runinfo import RunInfo, read_run_info


Cell = str | int | float | None
"""A table value as measured (``None``: the run has none); :func:`fmt` turns it into text."""


@dataclass
class Comparison:
    runs: list[RunInfo]
    header: list[str]
    rows: list[list[Cell]]
    """``[label, value of run 1, value of run 2, ...]``: numbers stay numbers (``--json``)."""
    warnings: list[str]
    plot: Path | None


def fmt(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _eval_protocol(run: RunInfo) -> dict[str, Any]:
    """The protocol of the run's latest ``ganreg eval`` (empty without one)."""
    return (run.eval or {}).get("protocol") or {}


def eval_source(run: RunInfo) -> str | None:
    """Where the run's evaluation numbers in the table come from (what :meth:`RunInfo.latest_eval` reads)."""
    if run.eval and isinstance(run.eval.get("metrics"), dict):
        return "eval.json"
    return "metrics.jsonl (during training)" if run.eval_rows else None


def _source_record(run: RunInfo) -> dict[str, Any]:
    """The record behind the run's evaluation numbers: eval.json, or for numbers logged during training
    eval_during_training.json (the protocol of the latest in-training evaluation); empty without one."""
    source = eval_source(run)
    record = run.eval if source == "eval.json" else run.training_eval if source else None
    return record or {}


def protocol_ids(run: RunInfo) -> dict[str, str]:
    """Each metric's protocol id, from the record behind the run's numbers."""
    mp = _source_record(run).get("metric_protocol")
    return {m: p.get("id", "") for m, p in mp.items() if isinstance(p, dict)} if isinstance(mp, dict) else {}


def comparison_json(cmp: Comparison) -> dict[str, Any]:
    """``ganreg compare --json``: the table, and per run what a script needs to judge comparability itself
    (the protocol id of each metric; split, step, weights, truncation, seed and samples of the evaluation)."""
    runs = []
    for run, name in zip(cmp.runs, cmp.header[1:]):
        p = _source_record(run).get("protocol")
        p = p if isinstance(p, dict) else {}
        ev = p.get("run") if isinstance(p.get("run"), dict) else {}
        step = ev.get("step") if eval_source(run) == "eval.json" else (run.eval_rows[-1].get("step") if run.eval_rows else None)
        runs.append({
            "name": name, "path": str(run.path), "eval_source": eval_source(run), "protocol_ids": protocol_ids(run),
            "eval": {"split": p.get("split"), "step": step, "generator_weights": ev.get("generator_weights"),
                     "truncation": p.get("truncation"), "seed": p.get("seed"), "generated_samples": p.get("generated_samples")},
        })
    return {"header": cmp.header, "rows": cmp.rows, "runs": runs, "warnings": cmp.warnings,
            "plot": str(cmp.plot) if cmp.plot else None}


def compare_runs(run_dirs: list[Path], out: Path | None = None) -> Comparison:
    """The comparison table (rows: quantities, columns: runs) and the overlaid-curves PNG."""
    if len(run_dirs) < 1:
        raise UserError("no runs to compare", "pass one or more run directories")
    resolved = [Path(d).resolve() for d in run_dirs]
    twice = next((d for i, d in enumerate(resolved) if d in resolved[:i]), None)
    if twice is not None:
        raise UserError(f"{twice} is given twice", "compare different runs (each directory once)")
    runs = [read_run_info(Path(d)) for d in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same folder name in different parents: show more of the path
        names = [str(r.path) for r in runs]
    header = ["", *names]
    rows: list[list[Cell]] = []
    rows.append(["recipe", *[r.recipe.get("name") for r in runs]])
    rows.append(["steps", *[r.last_step for r in runs]])
    rows.append(["wall time (min)", *[r.wall_time_s / 60 if r.wall_time_s is not None else None for r in runs]])
    rows.append(["trained on", *[r.trained_on for r in runs]])
    for key in sorted({k for r in runs for k in r.final_losses()}):
        rows.append([f"final {key}", *[r.final_losses().get(key) for r in runs]])
    for key in sorted({k for r in runs for k in r.latest_eval() if not k.endswith("_std")}):
        rows.append([key, *[r.latest_eval().get(key) for r in runs]])
    rows.append(["eval split", *[_eval_protocol(r).get("split") for r in runs]])
    rows.append(["eval step", *[(_eval_protocol(r).get("run") or {}).get("step") for r in runs]])
    rows.append(["eval weights", *[(_eval_protocol(r).get("run") or {}).get("generator_weights") for r in runs]])
    for net in sorted({p.get("network") for r in runs for p in r.params if p.get("network")}):
        rows.append([f"params {net}", *[next((p.get("total") for p in r.params if p.get("network") == net), None) for r in runs]])
    warnings = []
    ids = [protocol_ids(r) for r in runs]
    for metric in sorted({m for i in ids for m in i}):
        distinct = {i[metric] for i in ids if metric in i}
        if len(distinct) > 1:
            warnings.append(f"{metric}: runs were evaluated under different protocols ({', '.join(sorted(distinct))}); "
                            "re-run `ganreg eval` with the same options before comparing")
    for r, name in zip(runs, names):
        weak = [w for w in (r.eval or {}).get("warnings") or [] if isinstance(w, str)]
        if weak:
            warnings.append(f"{name}: its evaluation (eval.json) carries {len(weak)} warning(s), the first: {weak[0]}")
        if not r.metrics:
            warnings.append(f"{name}: metrics.jsonl is missing or holds no record (no losses or wall time to compare)")
    weights = {w for r in runs if (w := (_eval_protocol(r).get("run") or {}).get("generator_weights"))}
    if len(weights) > 1:  # the same protocol id, but EMA weights against raw ones
        warnings.append("the runs' evaluations used different generator weights (EMA and raw); "
                        "re-run `ganreg eval` the same way (with or without --no-ema) before comparing")
    plot = None
    if out is not None:
        if out.suffix.lower() != ".png":
            raise UserError(f"comparison plot {out} must be a .png file", "use --out compare.png")
        plot = plot_comparison(runs, out)
    return Comparison(runs, header, rows, warnings, plot)
