"""The rows of an evaluation's table, one way for the terminal (``ganreg eval``) and the report alike: a
number shown without its chance level and real-image ceiling reads as a verdict on the generator."""

from __future__ import annotations

from typing import Any

from ganreg.metrics.evaluate import metric_family

COLUMNS = ("metric", "value", "chance", "real ceiling", "protocol")


def format_metric(name: str, value: float, std: float | None = None) -> str:
    """One metric's value as every table shows it: accuracies as percentages, diversity to 2 decimals, pixel
    diversity to 4, others to 4 significant digits with their ``± std`` when there is one."""
    base = metric_family(name)
    if base == "align":
        return f"{value:.1%}"
    if name == "diversity":
        return f"{value:.2f}"
    if name == "diversity_pixels":
        return f"{value:.4f}"
    return f"{value:.4g} ± {std:.2g}" if std is not None else f"{value:.4g}"


def metric_rows(metrics: dict[str, float], chance: dict[str, float], metric_protocol: dict[str, Any]) -> list[list[str]]:
    """``[metric, value, chance, real ceiling, protocol id]`` for each metric (its ``_std`` beside the value).
    The ceiling is what real images score: the classifier's held-out accuracy for alignment, 1 for diversity."""
    ceiling = (metric_protocol.get("align") or {}).get("ceiling") or {}
    rows = []
    for name, value in metrics.items():
        if name.endswith("_std"):
            continue
        base = metric_family(name)
        shown, ceil = format_metric(name, value, metrics.get(f"{name}_std")), ""
        if base == "align":
            head = "class" if name == "align" else name.removeprefix("align_")
            ceil = f"{ceiling[head]:.1%}" if head in ceiling else ""
        elif name == "diversity":  # generated / real: 1 is as varied as the real images one caption fits
            ceil = "1.00"
        elif name == "diversity_pixels":
            real = (metric_protocol.get("diversity") or {}).get("real_pixels")
            ceil = f"{real:.4f}" if real is not None else ""
        rows.append([name, shown, f"{chance[name]:.1%}" if name in chance else "", ceil,
                     (metric_protocol.get(base) or {}).get("id", "")])
    return rows
