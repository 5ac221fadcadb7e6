"""ganreg from Python (a notebook, a script): what the CLI commands do, as functions with the CLI's defaults.

::

    import ganreg
    outcome = ganreg.run("recipes/dfgan.json", overrides=["train.steps=200"], out="runs/try")
    run = ganreg.load_run(outcome.run_dir)                      # the EMA generator of checkpoints/latest.pt
    images = run.generate(["a large red star in the center"], per_caption=8, seed=0)   # as `ganreg generate`
    result = ganreg.evaluate_run(outcome.run_dir, ganreg.EvalOptions(samples=2000, metrics=["align", "diversity"]))
    log = ganreg.read_metrics(outcome.run_dir)                 # the rows of metrics.jsonl

Each is the code the CLI itself runs, so a notebook and a terminal give the same images and numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganreg.train.cli_run import RunOutcome


def run(
    recipe: str | Path | dict[str, Any] | None = None,
    *,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    device: str | None = None,
    resume: str | Path | None = None,
    checkpoint: str | int | None = None,
    quiet: bool = False,
) -> RunOutcome:
    """``ganreg run``: train ``recipe`` (a recipe file, or a recipe as a dict) with ``overrides`` (``--set``'s
    ``"train.steps=200"`` strings), or continue the run ``resume``; show the progress unless ``quiet``. Returns
    the run directory and how training ended. Ctrl-C (a notebook's interrupt) stops after the current step and
    saves, as in a terminal. A mistake in the recipe or data raises :class:`ganreg.errors.UserError`, whose
    text says what to fix."""
    from rich.console import Console

    from ganreg.train.cli_run import run_recipe

    if recipe is not None and not isinstance(recipe, dict):
        recipe = Path(recipe)
    return run_recipe(
        recipe, list(overrides), Path(out) if out is not None else None, device,
        Path(resume) if resume is not None else None, False, Console(quiet=quiet),
        str(checkpoint) if checkpoint is not None else None,
    )
