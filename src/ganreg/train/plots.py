"""Loss curves from ``metrics.jsonl`` (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganreg.report.figures import save_figure  # noqa: E402


def plot_losses(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """One panel per network with each loss term against the step, from the records of metrics.jsonl
    (:func:`ganreg.runfiles.read_metrics`); None when there are none."""
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, prefix, title in zip(axes, ("d/", "g/"), ("discriminator", "generator")):
        keys = sorted({k for r in rows for k in r if k.startswith(prefix)})
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key[2:], lw=1.5 if key.endswith("total") else 1)
        ax.set_title(f"{title} losses")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    return save_figure(fig, out)
