"""``ganreg report``: one self-contained HTML page per run.

Every image is embedded as a base64 data URI, so the page can be mailed,
attached to an issue or opened from any folder. Sections: summary, evaluation
(with each number's protocol), loss curves, metric curves, sample grids over
time with their captions, t-SNE maps, parameter tables, the recipe.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganreg.atomic import atomic_write_text
from ganreg.errors import UserError
from ganreg.report.figures import plot_metric_curves
from ganreg.report.runinfo import RunInfo, SampleGrid, read_run_info

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; image-rendering: pixelated; } .grid img { width: 520px; }
figure { display: inline-block; vertical-align: top; margin: 8px 16px 16px 0; }
figcaption { font-size: 13px; max-width: 520px; } pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; }
.muted { color: #777; font-size: 13px; }
"""


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:`` URI (the page needs no other file)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return esc(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{fmt(c)}</td>" if isinstance(c, (int, float)) else f"<td>{esc(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def img(path: Path, alt: str, cls: str = "") -> str:
    return f"<img class='{cls}' alt='{esc(alt)}' src='{data_uri(path)}'>"


def pick_grids(grids: list[SampleGrid], most: int) -> list[SampleGrid]:
    """At most ``most`` grids, evenly spaced over training, always the first and the last."""
    if len(grids) <= most:
        return grids
    if most == 1:
        return grids[-1:]
    idx = sorted({round(i * (len(grids) - 1) / (most - 1)) for i in range(most)})
    return [grids[i] for i in idx]


def _summary(info: RunInfo) -> str:
    r, m = info.recipe, info.meta
    rows = [
        ["recipe", r.get("name") or "-"],
        ["description", r.get("description") or "-"],
        ["steps", info.last_step],
        ["wall time", f"{info.wall_time_s / 60:.1f} min" if info.wall_time_s is not None else "-"],
        ["training log", f"{len(info.metrics)} records in metrics.jsonl" if info.metrics
         else "metrics.jsonl is missing or holds no record: no loss curves or wall time"],
        ["created", m.get("created", "-")],
        ["trained on", info.trained_on or "-"],
        ["ganreg / torch", f"{m.get('ganreg_version', '?')} / {m.get('torch_version', '?')}"],
    ]
    for key, comp in (m.get("components") or {}).items():
        rows.append([key, f"{comp.get('id')} ({comp.get('distribution') or comp.get('plugin')} {comp.get('version')})"])
    return table(["", ""], rows)


def _evaluation(info: RunInfo) -> str:
    if not info.eval:
        return "<p class='muted'>No eval.json: run <code>ganreg eval RUN_DIR</code> to add the evaluation.</p>"
    ev = info.eval
    from ganreg.metrics.rows import COLUMNS, metric_rows

    rows = metric_rows(ev.get("metrics", {}), ev.get("chance", {}), ev.get("metric_protocol", {}))
    proto = json.dumps(ev.get("protocol", {}), indent=2)
    p = ev.get("protocol") if isinstance(ev.get("protocol"), dict) else {}
    run = p.get("run") if isinstance(p.get("run"), dict) else {}
    step = run.get("step")
    stale = f" (the run is at step {info.last_step:,})" if isinstance(step, int) and step < info.last_step else ""
    what = (f"<p>The latest <code>ganreg eval</code>: step {esc(str(step))}{stale}, {esc(str(p.get('split')))} captions, "
            f"{esc(str(run.get('generator_weights')))} generator weights, truncation {esc(str(p.get('truncation')))}; "
            f"every evaluation is kept in <code>evals/</code>.</p>")
    warned = "".join(f"<li>{esc(w)}</li>" for w in ev.get("warnings") or [] if isinstance(w, str))
    return what + table(list(COLUMNS), rows) + (
        f"<p><b>warnings</b></p><ul>{warned}</ul>" if warned else ""
    ) + f"<details><summary>full protocol</summary><pre>{esc(proto)}</pre></details>"


def _training_eval_protocol(info: RunInfo) -> str:
    """Under the metric curves: how the latest evaluation during training measured (each metric's protocol
    id: samples, features, split) and what makes its numbers weak (its warnings)."""
    ev = info.training_eval if isinstance(info.training_eval, dict) else {}
    mp = ev.get("metric_protocol") if isinstance(ev.get("metric_protocol"), dict) else {}
    ids = [f"{name}: {p.get('id')}" for name, p in mp.items() if isinstance(p, dict) and p.get("id")]
    warned = "".join(f"<li>{esc(w)}</li>" for w in ev.get("warnings") or [] if isinstance(w, str))
    out = f"<p class='muted'>Measured as {esc('; '.join(ids))} (eval_during_training.json).</p>" if ids else ""
    return out + (f"<p><b>warnings</b></p><ul>{warned}</ul>" if warned else "")


def _metric_cell(name: str, value: Any) -> str:
    """A metric as the main evaluation table shows it (:func:`ganreg.metrics.rows.format_metric`)."""
    from ganreg.metrics.rows import format_metric

    return format_metric(name, float(value)) if isinstance(value, (int, float)) else ""


def _all_evaluations(info: RunInfo) -> str:
    """Every record in evals/ in one table, newest step first: the latest evaluation alone hides the others
    (the training captions after the held-out ones, another checkpoint, raw weights, no truncation)."""
    if not info.evals and not info.damaged_evals:
        return ""
    from ganreg.metrics.evaluate import METRICS, metric_family

    names = sorted({k for r in info.evals for k in r.record["metrics"] if not k.endswith("_std")},
                   key=lambda k: (METRICS.index(metric_family(k)) if metric_family(k) in METRICS else len(METRICS), k))
    rows = []
    for r in info.evals:
        p = r.protocol
        ext = (p.get("extractor") or {}).get("name") if isinstance(p.get("extractor"), dict) else None
        rows.append([
            "latest" if r.record == info.eval else "", r.step if r.step is not None else "?", p.get("split", "?"),
            r.run.get("generator_weights", "?"), "none" if p.get("truncation") is None else p.get("truncation"),
            p.get("seed", "?"), p.get("generated_samples", "?"), ext or "-",
            *[_metric_cell(n, r.record["metrics"].get(n)) for n in names],
        ])
    head = f"<h3>Every evaluation in evals/ ({len(info.evals)})</h3>"
    body = table(["", "step", "split", "weights", "truncation", "seed", "samples", "features", *names], rows) if rows else ""
    damaged = "".join(f"<li>{esc(p.name)}</li>" for p in info.damaged_evals)
    return head + body + (f"<p class='muted'>Not evaluation records (damaged?), skipped:</p><ul>{damaged}</ul>" if damaged else "")


def _grids(info: RunInfo, most: int) -> str:
    if not info.grids:
        return "<p class='muted'>No sample grids in samples/.</p>"
    parts = []
    for g in pick_grids(info.grids, most):
        caps = "".join(f"<li>{esc(c.split(': ', 1)[-1])}</li>" for c in g.captions)
        parts.append(f"<figure class='grid'>{img(g.image, f'samples at step {g.step}')}"
                     f"<figcaption><b>step {g.step:,}</b><ol>{caps}</ol></figcaption></figure>")
    return "".join(parts)


def _params(info: RunInfo) -> str:
    if not info.params:
        return "<p class='muted'>No params.json.</p>"
    return table(["network", "total", "trainable", "MB"],
                 [[r.get("network"), r.get("total"), r.get("trainable"), r.get("mb")] for r in info.params])


def build_report(
    run_dir: Path, out: Path | None = None, tsne: bool = True, tsne_samples: int = 300, device: str = "auto",
    max_grids: int = 8, log: Callable[[str], None] | None = None,
) -> Path:
    """Write the run's HTML report (default ``RUN/report/index.html``) and return its path."""
    from ganreg.train.plots import loss_term_names, plot_losses

    log = log or (lambda msg: None)
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    out = Path(out) if out is not None else run_dir / "report" / "index.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"report output {out} must be an .html file", "use --out report.html")
    sections: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ganreg-report-") as tmpdir:
        tmp = Path(tmpdir)
        sections.append(("Summary", _summary(info)))
        sections.append(("Evaluation", _evaluation(info) + _all_evaluations(info)))
        if info.best:
            sections[-1] = ("Evaluation", sections[-1][1] + "<p>Best checkpoint: " + esc(
                f"{info.best.get('metric')} = {info.best.get('value'):.4g} at step {info.best.get('step')} "
                f"({info.best.get('checkpoint')}), measured as {info.best.get('protocol')} during training") + "</p>")
        # drawn from metrics.jsonl as it is now, never RUN/loss_curves.png: that is written when a run ends, so it
        # misses the steps of a run in progress or killed, and shows the discarded steps of one resumed earlier
        loss_png = plot_losses(info.metrics, tmp / "loss_curves.png", loss_term_names(info.recipe)) if info.loss_rows else None
        sections.append(("Loss curves", img(loss_png, "loss curves") if loss_png else "<p class='muted'>No losses logged.</p>"))
        curves = plot_metric_curves(info.metrics, tmp / "metric_curves.png")
        sections.append(("Metric curves", img(curves, "metric curves") + _training_eval_protocol(info) if curves else
                         "<p class='muted'>No evaluation during training yet (recipe eval.every_epochs).</p>"))
        sections.append(("Samples over training", _grids(info, max_grids)))
        if tsne:
            sections.append(("t-SNE", _tsne(run_dir, tmp / "tsne.png", tsne_samples, device, log)))
        sections.append(("Parameters", _params(info)))
        sections.append(("Recipe", f"<pre>{esc(json.dumps(info.recipe, indent=2))}</pre>"))
        body = "".join(f"<h2>{esc(title)}</h2>\n{content}\n" for title, content in sections)
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>ganreg report: {esc(info.name)}</title>"
                f"<style>{CSS}</style></head><body><h1>{esc(info.name)}</h1>"
                f"<p class='muted'>{esc(run_dir.resolve())}</p>{body}</body></html>\n")
    atomic_write_text(out, page)
    return out


def _tsne(run_dir: Path, out: Path, n: int, device: str, log: Callable[[str], None]) -> str:
    from ganreg.metrics.tsne import tsne_for_run

    try:
        maps = tsne_for_run(run_dir, out, n, device, log)
    except UserError as exc:
        fix = f" (fix: {exc.fix})" if exc.fix else ""
        return f"<p class='muted'>t-SNE skipped: {esc(exc.message + fix)}</p>"
    return img(maps.path, "t-SNE maps") + f"<p class='muted'>{esc(maps.caption)}</p>"
