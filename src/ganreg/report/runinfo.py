"""What a run directory holds, read from its files alone (no network is built).

Reports and comparisons of many runs stay fast, and work on a run whose
plugins are no longer installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganreg.errors import UserError
from ganreg.runfiles import BEST_FILE, read_json_or_none, read_metrics, read_recipe_json, step_of


@dataclass
class SampleGrid:
    step: int
    image: Path
    captions: list[str]


@dataclass
class EvalRecord:
    """One ``ganreg eval`` kept in ``RUN/evals/``."""

    path: Path
    record: dict[str, Any]
    mtime: float
    """When it was written (the records hold no date of their own): orders evaluations of one step."""

    @property
    def protocol(self) -> dict[str, Any]:
        p = self.record.get("protocol")
        return p if isinstance(p, dict) else {}

    @property
    def run(self) -> dict[str, Any]:
        r = self.protocol.get("run")
        return r if isinstance(r, dict) else {}

    @property
    def step(self) -> int | None:
        step = self.run.get("step")
        return step if isinstance(step, int) and not isinstance(step, bool) else None


@dataclass
class RunInfo:
    """Files of one run, parsed; missing files are empty values."""

    path: Path
    recipe: dict[str, Any]
    meta: dict[str, Any]
    params: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    eval: dict[str, Any] | None
    best: dict[str, Any] | None
    grids: list[SampleGrid] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    """Every record in evals/, newest step first (then the most recently written)."""
    damaged_evals: list[Path] = field(default_factory=list)
    """Files in evals/ that are no evaluation record: named in the report, never a reason to fail it."""
    training_eval: dict[str, Any] | None = None
    """eval_during_training.json: the protocol of the ``eval/*`` values in metrics.jsonl."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def loss_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.metrics if any(k.startswith(("d/", "g/")) for k in r)]

    @property
    def eval_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.metrics if any(k.startswith("eval/") for k in r)]

    @property
    def last_step(self) -> int:
        """The run's last step: its last log line's, or its last sample grid's (a run writes one when it ends,
        also between two logging intervals)."""
        logged = max((int(r.get("step", 0)) for r in self.metrics), default=0)
        return max(logged, max((g.step for g in self.grids), default=0))

    @property
    def wall_time_s(self) -> float | None:
        times = [r["time_s"] for r in self.metrics if "time_s" in r]
        return float(times[-1]) if times else None

    def final_losses(self) -> dict[str, float]:
        """The last logged value of every loss term (``d/...``, ``g/...``)."""
        out: dict[str, float] = {}
        for row in self.loss_rows:
            for k, v in row.items():
                if k.startswith(("d/", "g/")) and isinstance(v, (int, float)):
                    out[k] = float(v)
        return out

    @property
    def trained_on(self) -> str | None:
        """Where and how it trained, from run.json's ``sessions`` (device, autocast dtype, processes; one
        part per start or resume where these changed); None for runs written before they were recorded."""
        sessions = [x for x in self.meta.get("sessions") or [] if isinstance(x, dict)]
        parts: list[str] = []
        last = None
        for x in sessions:
            what = (f"{x.get('device')} ({x.get('device_name')}), amp {x.get('amp')}"
                    + (f", {x.get('processes')} processes" if (x.get("processes") or 1) > 1 else ""))
            if what != last:
                parts.append(what if not parts else f"from step {x.get('from_step')}: {what}")
            last = what
        return "; ".join(parts) or None

    def latest_eval(self) -> dict[str, float]:
        """eval.json's metrics, else the last ``eval/*`` line of metrics.jsonl."""
        if self.eval and isinstance(self.eval.get("metrics"), dict):
            return {k: float(v) for k, v in self.eval["metrics"].items()}
        rows = self.eval_rows
        if not rows:
            return {}
        return {k[5:]: float(v) for k, v in rows[-1].items() if k.startswith("eval/") and k != "eval/time_s"}


def _is_record(value: Any) -> bool:
    """Whether ``value`` is an evaluation record (eval.json, evals/*.json) or best.json: an object whose
    metrics, and value, are numbers."""
    metrics = value.get("metrics", {}) if isinstance(value, dict) else None
    numbers = isinstance(metrics, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    return isinstance(value, dict) and numbers and not ("value" in value and not isinstance(value["value"], (int, float)))


def _record(path: Path) -> dict[str, Any] | None:
    """eval.json / best.json, or None when absent; a file that is there but is no such record is named."""
    if not path.exists():
        return None
    value = read_json_or_none(path)
    if not _is_record(value):
        raise UserError(
            f"{path} is damaged (not a ganreg evaluation record)",
            f"delete it and write it again: ganreg eval {path.parent}" if path.name == "eval.json"
            else "delete it (training writes it again at its next evaluation with eval.keep_best)",
        )
    return value


def eval_records(run_dir: Path) -> tuple[list[EvalRecord], list[Path]]:
    """The records in ``RUN/evals/``, newest step first (then the most recently written), and the files
    there that are no such record. One damaged old record must not hide the others from the report."""
    good, damaged = [], []
    for path in sorted((run_dir / "evals").glob("*.json")):
        value = read_json_or_none(path)
        if _is_record(value) and isinstance(value.get("metrics"), dict):
            good.append(EvalRecord(path, value, path.stat().st_mtime))
        else:
            damaged.append(path)
    good.sort(key=lambda r: (r.step if r.step is not None else -1, r.mtime), reverse=True)
    return good, damaged


def sample_grids(run_dir: Path) -> list[SampleGrid]:
    out = []
    for png in (run_dir / "samples").glob("step_*.png"):
        step = step_of(png)
        if step is None:
            continue
        txt = png.with_suffix(".txt")
        caps = txt.read_text(encoding="utf-8").splitlines() if txt.is_file() else []
        out.append(SampleGrid(step, png, caps))
    return sorted(out, key=lambda g: g.step)


def read_run_info(run_dir: Path) -> RunInfo:
    run_dir = Path(run_dir)
    recipe = read_recipe_json(run_dir)
    evals, damaged = eval_records(run_dir)
    training_eval = read_json_or_none(run_dir / "eval_during_training.json")
    return RunInfo(
        path=run_dir,
        recipe=recipe,
        meta=read_json_or_none(run_dir / "run.json") or {},
        params=read_json_or_none(run_dir / "params.json") or [],
        metrics=read_metrics(run_dir / "metrics.jsonl"),
        eval=_record(run_dir / "eval.json"),
        best=_record(run_dir / BEST_FILE),
        grids=sample_grids(run_dir),
        evals=evals,
        damaged_evals=damaged,
        training_eval=training_eval if _is_record(training_eval) else None,
    )
