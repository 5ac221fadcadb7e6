"""The run directory: what a run writes, and how to load a trained run back.

Layout::

    RUN/recipe.resolved.json   the validated recipe with every default filled in (re-runnable)
    RUN/run.json               ganreg / torch / plugin versions, component ids, build context
    RUN/vocab.json             the captions' vocabulary (when the text encoder uses one)
    RUN/checkpoints/           latest.pt + step_N.pt (atomic, weights_only-loadable)
    RUN/metrics.jsonl          one JSON line per logging step
    RUN/samples/step_N.png     fixed-noise, fixed-caption grids (+ step_N.txt with the captions)
    RUN/loss_curves.png        written at the end
    RUN/params.json, params.md parameter table per network
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

import ganreg
from ganreg.errors import UserError
from ganreg.interfaces import BuildContext
from ganreg.recipe import Recipe, validate_recipe
from ganreg.registry import Registry
from ganreg.atomic import atomic_write_text

RECIPE_FILE = "recipe.resolved.json"
RUN_FILE = "run.json"
VOCAB_FILE = "vocab.json"


def run_dir_path(recipe: Recipe, out: str | None) -> Path:
    """``--out`` if given, else ``output.dir/output.name`` or ``output.dir/<recipe>-<time>``."""
    if out:
        return Path(out)
    name = recipe.output.name or f"{recipe.name or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(recipe.output.dir) / name


def new_run_dir(path: Path) -> Path:
    """Create the run directory ``path`` (refusing one that already holds a run)."""
    if (path / "checkpoints" / "latest.pt").exists():
        raise UserError(f"{path} already holds a run", f"resume it with `ganreg run --resume {path}` or pick another --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_run_files(run_dir: Path, recipe: Recipe, registry: Registry, infos: dict[str, Any], ctx: BuildContext) -> None:
    atomic_write_text(run_dir / RECIPE_FILE, json.dumps(recipe.model_dump(mode="json"), indent=2) + "\n")
    meta = {
        "ganreg_version": ganreg.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "components": {
            key: {"id": info.qualified, "plugin": info.plugin, "distribution": info.distribution, "version": info.version}
            for key, info in infos.items()
        },
        "plugins": {
            name: {"distribution": st.distribution, "version": st.version, "status": st.status}
            for name, st in sorted(registry.plugins.items())
        },
        "build_context": dataclasses.asdict(ctx),
    }
    atomic_write_text(run_dir / RUN_FILE, json.dumps(meta, indent=2) + "\n")


def read_run(run_dir: Path, registry: Registry) -> tuple[Recipe, dict[str, Any]]:
    """The recipe and metadata of an existing run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / RECIPE_FILE).is_file() or not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir} is not a ganreg run directory (no {RECIPE_FILE} / {RUN_FILE})", "pass the directory `ganreg run` wrote")
    raw = json.loads((run_dir / RECIPE_FILE).read_text())
    meta = json.loads((run_dir / RUN_FILE).read_text())
    return validate_recipe(raw, registry, str(run_dir / RECIPE_FILE)), meta


def build_context_from(meta: dict[str, Any]) -> BuildContext:
    return BuildContext(**meta["build_context"])
