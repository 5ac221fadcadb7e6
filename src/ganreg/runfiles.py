"""Names of a run's per-step files (``checkpoints/step_0001000.pt``, ``samples/step_0001000.png``), and
the reading of its recorded recipe and its training log that every command shares.

Torch-free, so the report and compare commands read run directories without importing torch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ganreg.errors import UserError

_STEP = re.compile(r"step_(\d+)")
RECIPE_FILE = "recipe.resolved.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "latest.pt"
BEST_CHECKPOINT = "best.pt"
"""Kept by ``eval.keep_best``, beside ``latest.pt`` and the numbered ones."""
BEST_FILE = "best.json"
"""Which evaluation made ``best.pt`` (metric, value, step)."""
METRICS_FILE = "metrics.jsonl"
"""One JSON line per logging step (:func:`read_metrics`)."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def latest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resumed run, ``eval`` and ``generate`` start from unless told otherwise."""
    return checkpoint_dir(run_dir) / LATEST_CHECKPOINT


def is_in_run(run_dir: Path, path: Path) -> bool:
    """Whether ``path`` lies in ``run_dir``, as written (absolute, not resolved) or resolved, or in the real
    folder behind its checkpoints/ (a symlink to scratch storage: the run still owns what is there)."""
    run, file = Path(run_dir).absolute(), Path(path).absolute()
    real = file.resolve()
    return file.is_relative_to(run) or real.is_relative_to(run.resolve()) or real.is_relative_to(
        checkpoint_dir(run).resolve())


def step_file(step: int, suffix: str) -> str:
    """The file name of ``step``'s file with ``suffix`` (".pt", ".png", ".txt")."""
    return f"step_{step:07d}{suffix}"


def step_of(path: Path) -> int | None:
    """The step in a run file's name (``step_0001000.pt``, ``samples/step_0001000.png``), or None."""
    match = _STEP.fullmatch(Path(path).stem)
    return int(match.group(1)) if match else None


def read_json_or_none(path: Path) -> Any:
    """A JSON file's value, or None when it is missing or damaged: for files that are only a record or a
    cache (a report shows what is left; a cache entry is rebuilt), never for ones a command cannot do without."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def read_recipe_json(run_dir: Path) -> dict[str, Any]:
    """The run's ``recipe.resolved.json`` as a JSON object. ``eval``, ``generate``, ``report`` and ``compare``
    all read it through here first, so a missing or damaged file is worded one way whichever command met it."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir} does not exist", "pass the run directory `ganreg run` wrote (it prints it when it ends)")
    path = run_dir / RECIPE_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} is not a ganreg run directory (it has no {RECIPE_FILE})", "pass the directory `ganreg run` wrote")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise _damaged(path, "not UTF-8 text") from None
    except OSError as exc:
        raise _damaged(path, f"unreadable: {exc.strerror or exc}") from None
    if not isinstance(value, dict):
        raise _damaged(path, "not a JSON object")
    return value


def _damaged(path: Path, reason: str) -> UserError:
    return UserError(
        f"{path} is damaged ({reason}): the run's recorded recipe cannot be read",
        "restore the file from a copy of the run; without one, re-create the run: `ganreg run` the recipe it was "
        "started from, with the same --set options",
    )


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (``path``: the file, or the run directory): objects with an integer
    ``step``, keeping their numeric values. A line that is no such record (a torn last line of a run killed
    mid-write, or a damaged one) is skipped, and so is a value that is not a number: a report of a damaged
    log shows what is left, never a traceback. A run that has logged nothing yet has no rows; a folder that
    does not exist is an error, not an empty log."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    elif path.suffix != ".jsonl" or not path.parent.is_dir():
        raise UserError(f"{path} not found", "give a run directory (or its metrics.jsonl)")
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and not isinstance(row["step"], bool):
            rows.append({k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return rows
