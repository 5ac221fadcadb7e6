"""Loss curves from ``metrics.jsonl`` (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganreg.report.figures import new_figure, save_figure


def loss_term_names(recipe: dict[str, Any]) -> set[str]:
    """The names the recipe's loss terms log under (``d/<name>``, ``g/<name>``: the component's name; a
    loss listed twice gets a suffix, ``hinge.g1``): what :func:`plot_losses` tells from logged diagnostics."""
    return {str(spec.get("name", "")).rpartition(":")[2] for spec in recipe.get("losses", []) if isinstance(spec, dict)}


def _is_term(key: str, terms: set[str] | None) -> bool:
    name = key[2:]
    return terms is None or name == "total" or any(name == t or name.startswith(t + ".") for t in terms)


def plot_losses(rows: list[dict[str, Any]], out: Path, terms: set[str] | None = None) -> Path | None:
    """One panel per network with each loss term against the step, from the records of metrics.jsonl
    (:func:`ganreg.runfiles.read_metrics`); None when there are none. Each point is a mean over its logging
    interval. With ``terms`` (:func:`loss_term_names`), what the losses log besides their terms (D(real),
    a gradient norm, a saturated fraction) is dashed, so it does not read as a term of ``total``."""
    if not rows:
        return None
    fig, axes = new_figure(2, (11, 4))
    for ax, prefix, title in zip(axes[0], ("d/", "g/"), ("discriminator", "generator")):
        keys = sorted({k for r in rows for k in r if k.startswith(prefix)})
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            term = _is_term(key, terms)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key[2:] if term else f"{key[2:]} (logged)",
                    lw=1.5 if key.endswith("total") else 1, ls="-" if term else "--")
        ax.set_title(f"{title}: loss terms" + (" (solid) and logged values (dashed)" if terms is not None else ""))
        ax.set_xlabel("step")
        ax.set_ylabel("mean over the logging interval")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    return save_figure(fig, out)
