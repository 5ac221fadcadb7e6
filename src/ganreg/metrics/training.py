"""Evaluation during training: every ``eval.every_epochs`` epochs, one line of ``eval/*``
metrics in ``metrics.jsonl``, the best checkpoint kept, TensorBoard scalars.

The trainer calls :func:`ganreg.metrics.evaluate.evaluate_during_training`
(which lands in :func:`evaluate_trainer`); nothing here knows a model.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ganreg.atomic import atomic_save, atomic_write_text
from ganreg.errors import UserError
from ganreg.metrics.evaluate import (
    LOWER_IS_BETTER,
    EvalOptions,
    Log,
    evaluate_generator,
    metric_family,
    needs_classifier,
    parse_metrics,
)
from ganreg.runfiles import BEST_CHECKPOINT, BEST_FILE, CHECKPOINT_DIR, checkpoint_dir, read_json_or_none


TRAINING_EXTRACTOR = "classifier"
"""Evaluation during training works offline: FID / KID / IS in the evaluation classifier's features."""


def should_evaluate(recipe: Any, step: int, steps_per_epoch: int) -> bool:
    """True when ``step`` ends an epoch that is a multiple of ``eval.every_epochs``."""
    every = recipe.eval.every_epochs
    if not every or step <= 0 or step % max(1, steps_per_epoch):
        return False
    return (step // max(1, steps_per_epoch)) % every == 0


def check_eval_spec(spec: Any, has_classes: bool = True) -> list[str]:
    """The recipe's ``eval`` section, validated (metrics, keep_best, and on data without classes the
    metrics that need the evaluation classifier, which learns classes); returns the metric names."""
    metrics = parse_metrics(spec.metrics)
    if needs_classifier(metrics, TRAINING_EXTRACTOR) and not has_classes:
        named = [m for m in metrics if m != "diversity"]
        raise UserError(
            f"eval.metrics {', '.join(named)} are computed during training with the evaluation classifier, "
            "which learns classes, and the data has none (captions in no class folders)",
            'set eval.metrics to ["diversity"], or eval.every_epochs to null and evaluate the checkpoints afterwards '
            "with ganreg eval RUN --extractor inception --metrics fid,kid,is,diversity",
        )
    if spec.keep_best is not None:
        key = spec.keep_best.removeprefix("eval/")
        if metric_family(key) not in metrics:
            raise UserError(
                f"eval.keep_best is {spec.keep_best!r}, which eval.metrics ({', '.join(metrics)}) does not compute",
                f"set eval.keep_best to one of {', '.join(metrics)}, or add it to eval.metrics",
            )
    return metrics


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One line, one write() on an O_APPEND descriptor: safe beside the trainer's own open handle."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def keep_best(
    trainer: Any, metric: str, values: dict[str, float], protocol: str, log: Log | None = None,
    state: dict[str, Any] | None = None,
) -> bool:
    """Copy the trainer's state (``state``, else ``trainer.state_dict()``: under torchrun every process
    must make that together, so the trainer passes it) to ``checkpoints/best.pt`` (atomically) when ``metric`` improved;
    ``best.json`` records the value, the step and the protocol id. A value under another protocol (a resumed
    run with other eval settings) is not comparable: tracking starts again from it, and ``log`` says so."""
    key = metric.removeprefix("eval/")
    if key not in values:
        return False
    value = float(values[key])
    if not math.isfinite(value):  # NaN compares false with everything: it would pass for an improvement
        if log is not None:
            log(f"eval: {key} is {value} at step {int(trainer.step)}: not a candidate for the best checkpoint")
        return False
    lower = metric_family(key) in LOWER_IS_BETTER
    best_path = Path(trainer.run_dir) / BEST_FILE
    previous = read_json_or_none(best_path)
    if not isinstance(previous, dict):  # none yet, or damaged: this evaluation starts the record again
        previous = None
    if previous is not None and previous.get("metric") == key and previous.get("protocol") == protocol:
        old = float(previous["value"])
        if (value >= old) if lower else (value <= old):
            return False
    elif previous is not None:  # another metric or protocol: the old best is set aside, not overwritten
        from ganreg.train.rundir import set_aside

        old = [p for p in (best_path, checkpoint_dir(trainer.run_dir) / BEST_CHECKPOINT) if p.is_file()]
        aside = set_aside(Path(trainer.run_dir), old, f"best_until_step_{int(trainer.step):07d}")
        if log is not None:
            log(f"eval: the best {previous.get('metric')} so far ({previous.get('value')} at step {previous.get('step')}) was "
                f"measured as {previous.get('protocol')}, this one as {protocol}: not comparable, best tracking starts "
                f"again (the old best is kept in {aside})")
    atomic_save(state if state is not None else trainer.state_dict(), checkpoint_dir(trainer.run_dir) / BEST_CHECKPOINT)
    record = {"metric": key, "value": value, "step": int(trainer.step), "mode": "min" if lower else "max", "protocol": protocol,
              "checkpoint": f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}"}
    atomic_write_text(best_path, json.dumps(record, indent=2) + "\n")
    return True


def evaluate_trainer(trainer: Any, log: Log | None = None, state: dict[str, Any] | None = None) -> dict[str, float]:
    """Evaluate the trainer's sampling generator (EMA when there is one) now.

    Uses ``trainer.recipe.eval`` (metrics, samples, keep_best, tensorboard),
    the held-out split (``trainer.data.test``, else train), the classifier
    extractor (offline) and the recipe's sample truncation. Appends one line
    ``{"step", "epoch", "eval/<metric>": ...}`` to ``RUN/metrics.jsonl``,
    writes the protocol to ``RUN/eval_during_training.json``, keeps the best
    checkpoint when ``eval.keep_best`` is set, logs to TensorBoard when
    ``eval.tensorboard`` is on, and returns the ``eval/*`` values. The
    trainer's random state is not touched. ``state``: the trainer's state as a best checkpoint keeps it
    (see :func:`keep_best`)."""
    if log is None:
        from rich.console import Console

        console = Console(stderr=True)
        log = lambda msg: console.print(f"[dim]{msg}[/dim]")  # noqa: E731
    recipe, run_dir = trainer.recipe, Path(trainer.run_dir)
    spec = recipe.eval
    metrics = check_eval_spec(spec)
    data = trainer.data
    dataset, split = (data.test, "test") if data.test is not None and len(data.test) > 0 else (data.train, "train")
    options = EvalOptions(
        metrics=metrics, samples=spec.samples, extractor=TRAINING_EXTRACTOR, split=split, seed=recipe.train.seed,
        truncation=recipe.samples.truncation,
    )
    t0 = time.perf_counter()
    result = evaluate_generator(
        trainer.sample_generator(), trainer.nets.text_encoder, dataset, data.collator, recipe.data, options, trainer.device, log
    )
    values = {f"eval/{k}": float(v) for k, v in result.metrics.items()}
    seconds = round(time.perf_counter() - t0, 2)
    record = {"step": int(trainer.step), "epoch": trainer.step / max(1, trainer.steps_per_epoch), **values, "eval/time_s": seconds}
    _append_jsonl(run_dir / "metrics.jsonl", record)
    record_with_step = {**result.to_json(), "step": int(trainer.step)}  # the step: set aside when a resume goes back
    atomic_write_text(run_dir / "eval_during_training.json", json.dumps(record_with_step, indent=2) + "\n")
    if spec.keep_best:
        key = spec.keep_best.removeprefix("eval/")
        protocol = result.metric_protocol.get(metric_family(key), {}).get("id", "")
        if keep_best(trainer, key, result.metrics, protocol, log, state):
            log(f"eval: new best {key} {result.metrics[key]:.4g} at step {trainer.step}: {CHECKPOINT_DIR}/{BEST_CHECKPOINT}")
    if spec.tensorboard:
        from ganreg.metrics.tensorboard import logger_for_run

        tb = logger_for_run(run_dir)
        tb.log_scalars(trainer.step, values)
        grids = sorted((run_dir / "samples").glob("step_*.png"))
        if grids:
            tb.log_image(trainer.step, grids[-1])
    shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if not k.endswith("_std"))
    log(f"eval @ step {trainer.step} ({split}, {result.protocol['generated_samples']} samples, {seconds} s): {shown}")
    for warning in result.warnings:
        log(f"eval warning: {warning}")
    return values
