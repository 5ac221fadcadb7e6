"""CLI commands ``eval``, ``report`` and ``compare`` (added to the ``ganreg`` group by ``ganreg.cli``).

Thin: each parses options, calls :mod:`ganreg.metrics` / :mod:`ganreg.report`
and prints. Heavy imports stay inside the commands so ``ganreg --help`` is instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

EXTRACTOR_CHOICES = ("classifier", "inception", "inception-torchvision")
"""``ganreg.metrics.features.EXTRACTORS``, spelled out so that ``ganreg --help`` never imports torch (a test
keeps the two equal)."""


def _log(msg: str) -> None:
    err_console.print(f"[dim]{msg}[/dim]", highlight=False)


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _eval_table(result: Any) -> Table:
    from ganreg.metrics.rows import COLUMNS, metric_rows

    table = Table(title="evaluation")
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for row in metric_rows(result.metrics, result.chance, result.metric_protocol):
        table.add_row(*row)
    return table


def _protocol_lines(result: Any) -> list[str]:
    p = result.protocol
    lines = []
    run = p.get("run") or {}
    if run:
        lines.append(f"checkpoint: {run.get('checkpoint')} (step {run.get('step')}, {run.get('generator_weights')} generator weights)")
    if any(m != "diversity" for m in result.metric_protocol):
        lines.append(f"generated: {p['generated_samples']} images from '{p['split']}' captions, seed {p['seed']}, "
                     f"truncation {p['truncation']}")
    if "diversity" in result.metric_protocol:  # its own images: --samples does not count them
        div = p["diversity"]
        lines.append(f"diversity: {div['captions'] * div['per_caption']} images generated from {div['captions']} "
                     f"'{p['split']}' captions, {div['per_caption']} each, seed {p['seed']}, truncation {p['truncation']}")
    ext = p.get("extractor")
    if ext:
        lines.append(f"features: {ext['name']} ({ext.get('feature_dim')}-d), weights {ext['weights']} sha256 {ext['sha256'][:16]}…, "
                     f"resize: {ext['resize']}")
    ref = p.get("reference")
    if ref:
        lines.append(f"real: {ref.get('real_samples')} '{p['split']}' images ({ref.get('source')}: {ref.get('path')})")
    cls = p.get("alignment_classifier")
    if cls:
        acc = cls.get("heldout_accuracy") or {}
        lines.append("alignment classifier held-out accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    for warning in result.warnings:
        lines.append(f"[yellow]warning: {escape(warning)}[/yellow]")
    lines.append(f"took {p['seconds']} s")
    return lines


@click.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--checkpoint", help="latest (default), best, a step number, or a file.")
@click.option("--samples", default=10000, show_default=True, type=click.IntRange(2), help="Generated images (DF-GAN: ~30k).")
@click.option(
    "--metrics", default="fid,kid,is,align,diversity", show_default=True,
    help="Comma-separated: fid, kid, is, align, diversity.",
)
@click.option("--extractor", type=click.Choice(EXTRACTOR_CHOICES), default="classifier", show_default=True,
              help="classifier: a CNN trained on the dataset's real images (offline, cached); "
                   "inception: TF-FID InceptionV3 (torch-fidelity; weights downloaded once); "
                   "inception-torchvision: torchvision's ImageNet InceptionV3 with DF-GAN's preprocessing "
                   "(DF-GAN's FID protocol; weights downloaded once).")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True,
              help="Captions to generate from and real images to compare with.")
@click.option("--ref-stats", type=click.Path(path_type=Path),
              help="Reference statistics .npz (mu [D], sigma [D, D]) computed with the SAME extractor: "
                   "DF-GAN's published *_val256_FIDK0.npz go with --extractor inception-torchvision.")
@click.option("--truncation", type=click.FloatRange(0, min_open=True),
              help="Truncate noise to [-2, 2] times this (DF-GAN evaluates with 0.88). Default: the run's "
                   "samples.truncation, as its sample grids and in-training evaluation use.")
@click.option("--no-truncation", is_flag=True, help="Plain N(0, 1) noise, whatever the run's recipe says.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw generator weights even when EMA weights exist.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch (on a busy machine 1 can be fastest).")
@click.option("--json", "as_json", is_flag=True, help="Print eval.json instead of the table.")
def eval_cmd(
    run_dir: Path, checkpoint: str | None, samples: int, metrics: str, extractor: str, split: str, ref_stats: Path | None,
    truncation: float | None, no_truncation: bool, seed: int, batch_size: int, no_ema: bool, device: str,
    threads: int | None, as_json: bool,
) -> None:
    """FID / KID / IS, text-image alignment and noise diversity of a trained run; writes RUN_DIR/eval.json
    (the latest, shown by report and compare) and RUN_DIR/evals/<split>-step<N>-<protocol>.json (kept per split, step and protocol).

    Every number is printed with its protocol (feature extractor and the sha256 of its weights,
    sample counts, split, resize, truncation, checkpoint step): FIDs computed under different
    protocols are not comparable.
    """
    from ganreg.generate import truncation_option
    from ganreg.metrics.evaluate import EvalOptions, eval_record_path, evaluate_run, parse_metrics

    _threads(threads)
    options = EvalOptions(
        metrics=parse_metrics(metrics), samples=samples, extractor=extractor, split=split, seed=seed,
        truncation=truncation_option(truncation, no_truncation), ref_stats=ref_stats, batch_size=batch_size,
    )
    result = evaluate_run(run_dir, options, checkpoint, not no_ema, device, log=_log)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    console.print(_eval_table(result))
    for line in _protocol_lines(result):
        console.print(line, highlight=False)
    console.print(f"wrote {Path(run_dir) / 'eval.json'} and {eval_record_path(Path(run_dir), result)}")


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="HTML file (default RUN_DIR/report/index.html).")
@click.option("--no-tsne", is_flag=True, help="Skip the t-SNE maps (they load the run and the evaluation classifier).")
@click.option("--tsne-samples", default=300, show_default=True, type=click.IntRange(10), help="Points per t-SNE map.")
@click.option("--max-grids", default=8, show_default=True, type=click.IntRange(1),
              help="Sample grids shown, evenly spaced over training.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch.")
def report(run_dir: Path, out: Path | None, no_tsne: bool, tsne_samples: int, max_grids: int, device: str,
           threads: int | None) -> None:
    """A self-contained HTML report of a run: recipe, parameters, loss and metric curves,
    sample grids over time, t-SNE maps, evaluation."""
    from ganreg.report.html import build_report

    _threads(threads)
    path = build_report(run_dir, out, not no_tsne, tsne_samples, device, max_grids, log=_log)
    console.print(f"wrote {path}")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("compare.png"), show_default=True,
              help="PNG with the runs' loss curves overlaid.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable table.")
def compare(runs: tuple[Path, ...], out: Path, as_json: bool) -> None:
    """Runs side by side: final losses, evaluation metrics, parameters, wall time."""
    from ganreg.report.compare import compare_runs, comparison_json, fmt

    cmp = compare_runs(list(runs), out)
    if as_json:
        click.echo(json.dumps(comparison_json(cmp), indent=2))
        return
    table = Table(title=f"comparison of {len(cmp.runs)} run(s)")
    for i, col in enumerate(cmp.header):
        table.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
    for row in cmp.rows:
        table.add_row(*(fmt(v) for v in row))
    console.print(table)
    for w in cmp.warnings:
        console.print(f"[yellow]warning: {w}[/yellow]", highlight=False)
    if cmp.plot:
        console.print(f"wrote {cmp.plot}")


EVAL_COMMANDS = (eval_cmd, report, compare)
"""Added to the ``ganreg`` group by :mod:`ganreg.cli`."""
