"""Figures for reports and comparisons (matplotlib, no display needed).

Every figure is a bare :class:`matplotlib.figure.Figure`, never a pyplot one: pyplot would need a global
backend (``matplotlib.use("Agg")`` on import replaced a notebook's inline backend, so its own plots stopped
showing once a run had trained), and would keep each figure until closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ganreg.atomic import atomic_path
from ganreg.report.runinfo import RunInfo


def new_figure(columns: int, size: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure of ``columns`` panels side by side (constrained layout) and its ``[1, columns]`` axes."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(1, columns, squeeze=False)


def save_figure(fig: Figure, out: Path, dpi: int = 100) -> Path:
    """Save as PNG atomically (:func:`ganreg.atomic.atomic_path`)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return out


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(float(r["step"]), float(r[key])) for r in rows if key in r and "step" in r and isinstance(r[key], (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def metric_groups(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``eval/*`` keys grouped into panels: one per metric, the alignment accuracies together."""
    keys = sorted({k for r in rows for k in r if k.startswith("eval/") and k != "eval/time_s" and not k.endswith("_std")})
    groups: dict[str, list[str]] = {}
    for key in keys:
        name = key[5:]
        groups.setdefault("alignment accuracy" if name.startswith("align") else name, []).append(key)
    return groups


def plot_metric_curves(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """One panel per evaluation metric against the step (``eval/*`` lines of metrics.jsonl)."""
    groups = metric_groups(rows)
    if not groups:
        return None
    fig, axes = new_figure(len(groups), (4.2 * len(groups), 3.6))
    for ax, (title, keys) in zip(axes[0], groups.items()):
        for key in keys:
            xs, ys = _series(rows, key)
            std_x, std = _series(rows, f"{key}_std")
            if std and len(std) == len(ys):
                ax.errorbar(xs, ys, yerr=std, marker="o", ms=3, capsize=2, label=key[5:])
            else:
                ax.plot(xs, ys, marker="o", ms=3, label=key[5:])
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    return save_figure(fig, out)


def plot_comparison(runs: list[RunInfo], out: Path) -> Path:
    """Loss curves of several runs overlaid (D total, G total), plus FID when any run has it."""
    panels = [("d/total", "discriminator total loss"), ("g/total", "generator total loss")]
    if any("eval/fid" in r for run in runs for r in run.metrics):
        panels.append(("eval/fid", "FID during training"))
    fig, axes = new_figure(len(panels), (5.0 * len(panels), 3.8))
    for ax, (key, title) in zip(axes[0], panels):
        for run in runs:
            xs, ys = _series(run.metrics, key)
            if xs:
                ax.plot(xs, ys, lw=1.2, marker="o" if key.startswith("eval/") or len(xs) < 20 else None, ms=3, label=run.name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, out)
