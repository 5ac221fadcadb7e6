"""Atomic checkpoints that never execute code when loaded.

Written through :func:`ganreg.atomic.atomic_save` (a temporary file, fsynced,
then renamed over the target): a crash mid-write leaves the previous checkpoint
intact. Loaded with ``torch.load(weights_only=True)``: only tensors and plain
containers, no pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganreg.atomic import atomic_save
from ganreg.errors import UserError
from ganreg.runfiles import BEST_CHECKPOINT, CHECKPOINT_DIR, LATEST_CHECKPOINT, RECIPE_FILE, checkpoint_dir, step_file, step_of


def save_checkpoint(state: dict[str, Any], ckpt_dir: Path, step: int, keep: int) -> Path:
    """Write ``step_N.pt`` and ``latest.pt``; keep the newest ``keep`` numbered ones."""
    numbered = ckpt_dir / step_file(step, ".pt")
    atomic_save(state, numbered)
    atomic_save(state, ckpt_dir / LATEST_CHECKPOINT)
    for old in numbered_checkpoints(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return numbered


def numbered_checkpoints(ckpt_dir: Path) -> list[Path]:
    found = [p for p in ckpt_dir.glob("step_*.pt") if step_of(p) is not None]
    return sorted(found, key=lambda p: step_of(p) or 0)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a broken file is a UserError naming it and the fallback."""
    if not path.is_file():
        in_run = path.parent.name == CHECKPOINT_DIR and (path.parent.parent / RECIPE_FILE).is_file()
        if not in_run:
            raise UserError(f"checkpoint not found: {path}", "check the path (or give a step number of the run)")
        run_dir, kept = path.parent.parent, numbered_checkpoints(path.parent)
        if not kept and not (path.parent / LATEST_CHECKPOINT).is_file():
            raise UserError(
                f"{run_dir} holds no checkpoint: the run stopped before it saved one",
                f"start it again: ganreg run {run_dir / RECIPE_FILE} --out {run_dir}-2 (or delete {run_dir} "
                "and use its name); intervals.checkpoint sets how often a run saves",
            )
        steps = ", ".join(str(step_of(p)) for p in kept)
        options = [name for name, file in (("latest", LATEST_CHECKPOINT), ("best", BEST_CHECKPOINT))
                   if name != path.stem and (path.parent / file).is_file()]
        if path.name == BEST_CHECKPOINT:
            what = "eval.keep_best was not set, so no best checkpoint was kept"
        elif path.name == LATEST_CHECKPOINT:
            what = f"its {LATEST_CHECKPOINT} is missing (deleted, or lost when a disk filled up)"
        else:
            what = f"no {path.name} (older numbered checkpoints are removed past intervals.keep_checkpoints)"
        choices = [*(f"--checkpoint {o}" for o in options), *([f"--checkpoint N, a step it kept ({steps})"] if steps else [])]
        raise UserError(f"{run_dir}: {what}", "use " + ", or ".join(choices) if choices else "start the run again")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad magic, foreign pickle
        in_run = path.parent.name == CHECKPOINT_DIR
        others = [p for p in numbered_checkpoints(path.parent) if p.resolve() != path.resolve()] if in_run else []
        step = step_of(path)
        earlier = [p for p in others if step is None or (step_of(p) or 0) < step]
        if others:
            pick, which = (earlier[-1], "an earlier one") if earlier else (others[-1], "a later one")
            fix = f"use {which} of the run: --checkpoint {step_of(pick)} (or --checkpoint {pick})"
        elif in_run:
            fix = f"{path.parent} holds no other checkpoint: start the run again"
        else:
            fix = "pass a checkpoint that `ganreg run` wrote (RUN/checkpoints/*.pt)"
        raise UserError(f"checkpoint {path} is corrupted or not a ganreg checkpoint ({type(exc).__name__})", fix) from None
    if not isinstance(state, dict) or state.get("format") != 1:
        raise UserError(f"{path} is not a ganreg checkpoint", "pick a file written by `ganreg run`")
    return state


def find_checkpoint(run_dir: Path, which: str | int | None = None) -> Path:
    """``latest`` (default), ``best`` (kept by ``eval.keep_best``), a step number, or a path (a relative
    one that is not there from the current directory is taken in the run: ``checkpoints/best.pt``)."""
    ckpt_dir = checkpoint_dir(run_dir)
    if which is None or which == "latest":
        return ckpt_dir / LATEST_CHECKPOINT
    if which == "best":
        return ckpt_dir / BEST_CHECKPOINT
    if isinstance(which, int) or str(which).isdigit():
        return ckpt_dir / step_file(int(which), ".pt")
    path = Path(which)
    if not path.is_absolute() and not path.exists() and (run_dir / path).exists():
        return run_dir / path
    return path


def load_weights(module: Any, state: dict[str, Any], network: str, source: Path) -> None:
    """``module.load_state_dict(state)``; a checkpoint of other networks (another recipe's run) is a
    user error naming it, not a page of size mismatches."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise UserError(
            f"{source} does not fit this run's {network} ({first}): it was saved by a run of another recipe",
            "give a checkpoint of this run (--checkpoint latest, best or a step number)",
        ) from None
