"""The run directory: what a run writes, and how to load a trained run back.

Layout::

    RUN/recipe.resolved.json   the validated recipe with every default filled in (re-runnable)
    RUN/run.json               ganreg / torch / plugin versions, component ids, build context
    RUN/vocab.json             the captions' vocabulary (every run: generate and eval tokenise with it)
    RUN/checkpoints/           latest.pt + step_N.pt (atomic, weights_only-loadable)
    RUN/metrics.jsonl          one JSON line per logging step
    RUN/samples/step_N.png     fixed-noise, fixed-caption grids (+ step_N.txt with the captions)
    RUN/loss_curves.png        written at the end
    RUN/params.json, params.md parameter table per network
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
import re
import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

import ganreg
from ganreg.atomic import atomic_write_text, make_folder
from ganreg.errors import UserError
from ganreg.interfaces import BuildContext
from ganreg.kinds import SECTION_KINDS
from ganreg.recipe import Recipe, validate_recipe
from ganreg.registry import Registry
from ganreg.runfiles import (
    BEST_CHECKPOINT, BEST_FILE, CHECKPOINT_DIR, RECIPE_FILE, checkpoint_dir, latest_checkpoint, read_json_or_none,
    read_recipe_json, step_of,
)

RUN_FILE = "run.json"
VOCAB_FILE = "vocab.json"


def run_dir_path(recipe: Recipe, out: str | None) -> Path:
    """``--out`` if given, else ``output.dir/output.name`` or ``output.dir/<recipe>-<time>``; ``~`` is the
    home folder, as in the recipe's other paths (a shell leaves ``--out=~/x`` and a recipe's ``~`` alone, and
    a folder named ``~`` invites a later ``rm -rf ~``)."""
    if out:
        return Path(out).expanduser()
    name = recipe.output.name or f"{recipe.name or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(recipe.output.dir).expanduser() / name


RUN_ENTRIES = frozenset({
    RECIPE_FILE, RUN_FILE, VOCAB_FILE, CHECKPOINT_DIR, BEST_FILE, "metrics.jsonl", "params.json", "params.md",
    "samples", "loss_curves.png", "eval.json", "evals", "eval_during_training.json", "report", "tensorboard", "discarded",
})
"""What ``ganreg run`` and the commands after it write into a run directory."""


def claim_timestamped_dir(path: Path) -> Path:
    """``path`` or, when that exists, ``path-2``, ``path-3``, ...: the first folder this process creates itself.
    Two jobs of one recipe started in the same second (an array job) get a folder each, instead of one
    folder in which the second is refused as "being trained by another process"."""
    make_folder(path.parent)
    for n in itertools.count(1):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def new_run_dir(path: Path) -> Path:
    """Create the run directory ``path``, refusing one that already holds a run, and an existing folder that
    holds anything a run does not write (the run's params.md, samples/, ... would replace the user's files)."""
    if latest_checkpoint(path).exists():
        raise UserError(f"{path} already holds a run",
                        f"resume it with `ganreg run --resume {shlex.quote(str(path))}` or pick another --out")
    log = path / "metrics.jsonl"
    if log.is_file() and log.stat().st_size > 0:  # a run that stopped before its first checkpoint
        raise UserError(f"{path} holds the log of a run that saved no checkpoint (metrics.jsonl)",
                        "pick another --out, or delete that folder to start afresh there")
    entries = [e.name for e in path.iterdir() if not e.name.startswith(".")] if path.is_dir() else []
    written_by_a_run = RUN_FILE in entries or RECIPE_FILE in entries  # e.g. a start that failed after writing them
    # without them, even a params.md or samples/ is the user's own (a run would replace it)
    foreign = sorted(name for name in entries if name not in RUN_ENTRIES or not written_by_a_run)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(
            f"{path} already holds files that are not a ganreg run ({shown})",
            "pick a new or empty folder for --out (e.g. runs/my_run): a run writes params.md, samples/, "
            "checkpoints/, ... into it",
        )
    return make_folder(path)


RESUME_SETTABLE = ("train.steps", "train.epochs", "train.max_minutes", "train.num_threads", "train.device",
                   "data.num_workers", "data.path", "data.cache_dir", "intervals.", "eval.")
"""Recipe keys ``--set`` may change on ``--resume``: how long and where the run goes on, where its data now
lies (the same data, moved to another folder or machine), what it logs. Everything else (networks, data,
losses, optimisers, batch size, seed) is the checkpoint's."""


def check_resume_overrides(overrides: list[str]) -> None:
    """Refuse ``--set`` keys a resumed run cannot honour (its state comes from the checkpoint)."""
    for item in overrides:
        if "=" not in item:
            continue  # apply_overrides names the format error
        key = item.split("=", 1)[0].strip()
        _check_recipe_key(key)
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_SETTABLE):
            raise UserError(
                f"--set {key} cannot change a resumed run: its networks, data, losses and optimiser state come "
                "from the checkpoint",
                "on --resume only train.steps / epochs / max_minutes / num_threads / device, data.num_workers, "
                "data.path / cache_dir (the same data, moved), intervals.* and eval.* change; for anything else "
                "start a new run from this one's weights: ganreg run RECIPE --set generator.weights=RUN/checkpoints/latest.pt ...",
            )


def _check_recipe_key(key: str) -> None:
    """A misspelt key is named as such (with the closest valid one), not as a key a resume cannot change."""
    from pydantic import BaseModel

    from ganreg.recipe import Recipe
    from ganreg.registry import unknown_key_fix

    model: Any = Recipe
    for part in key.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return  # below a component's params, a list or a dict: validation after merging names it
        field = model.model_fields.get(part)
        if field is None:
            raise UserError(f"--set {key}: unknown key {part!r}", unknown_key_fix(part, list(model.model_fields)))
        model = field.annotation


def trim_metrics(path: Path, step: int) -> None:
    """Drop the lines of ``metrics.jsonl`` after ``step`` (and a line cut short by a kill): a run resumed
    from a checkpoint retrains those steps, and its log must not hold them twice."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = _log_lines(lines, lambda logged: logged <= step)
    if kept != lines:
        atomic_write_text(path, "".join(kept))


def _log_lines(lines: list[str], keep: Callable[[int], bool]) -> list[str]:
    """The whole lines of a ``metrics.jsonl`` (each a JSON object with an integer ``step``) whose step
    ``keep`` accepts, each ending in a newline; a line cut short by a kill is none of them."""
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and keep(record["step"]):
            out.append(line if line.endswith("\n") else line + "\n")
    return out


def as_recorded(recipe: Recipe, registry: Registry) -> Recipe:
    """The recipe as a run records it: components by qualified id, file paths absolute.

    A bare name (``"hinge"``) resolves only while it is unique, so a plugin installed later that
    registers the same name would make the run's own recipe ambiguous (resume, generate and eval would
    refuse it); a relative path resolves from the current directory, which changes. Recorded this way,
    recipe.resolved.json re-creates the run from anywhere, whatever else is installed by then."""
    out = with_absolute_paths(recipe)
    for kind in SECTION_KINDS:
        spec = getattr(out, kind)
        if spec is not None:
            spec.name = registry.resolve(kind, spec.name).qualified
    for spec in out.losses:
        spec.name = registry.resolve("loss", spec.name).qualified
    return out


def with_absolute_paths(recipe: Recipe) -> Recipe:
    """The recipe with its file paths (data, cache, weights, vocabulary) made absolute, as they resolve from
    the current directory now: the run's recipe.resolved.json then works from any directory (resume,
    generate, eval)."""
    out = recipe.model_copy(deep=True)

    def absolute(value: str | None) -> str | None:
        return os.path.abspath(os.path.expanduser(value)) if value else value

    out.data.path = absolute(out.data.path)
    out.data.cache_dir = absolute(out.data.cache_dir)
    out.text_encoder.weights = absolute(out.text_encoder.weights)
    out.text_encoder.vocabulary = absolute(out.text_encoder.vocabulary)
    out.generator.weights = absolute(out.generator.weights)
    out.discriminator.weights = absolute(out.discriminator.weights)
    if out.image_encoder is not None:
        out.image_encoder.weights = absolute(out.image_encoder.weights)
    return out


DISCARDED_DIR = "discarded"
"""Where ``--resume --checkpoint N`` moves what came after step N: set aside, not deleted."""
_EVAL_STEP = re.compile(r"-step(\d+)-")


def discard_after(run_dir: Path, step: int) -> Path | None:
    """Move what came after ``step`` out of the run: numbered checkpoints and sample grids, the best
    checkpoint when it was found later, evaluation records of later steps, and the log lines after it.
    They go to ``RUN/discarded/after_step_<step>/`` (same relative paths), which is returned (None when
    nothing came after ``step``): going back is one command, and must not destroy hours of training."""
    later = [p for p in (*checkpoint_dir(run_dir).glob("step_*.pt"), *(run_dir / "samples").glob("step_*.*"))
             if (step_of(p) or 0) > step]
    best = run_dir / BEST_FILE
    record = _read_json(best) if best.is_file() else None
    if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step:
        later += [p for p in (best, checkpoint_dir(run_dir) / BEST_CHECKPOINT) if p.is_file()]
    later += [p for p in (run_dir / "evals").glob("*.json") if (m := _EVAL_STEP.search(p.name)) and int(m.group(1)) > step]
    for name in ("eval.json", "eval_during_training.json"):
        evaluated = read_json_or_none(run_dir / name)
        if isinstance(evaluated, dict) and _evaluated_step(evaluated) > step:
            later.append(run_dir / name)
    log_lines = _lines_after(run_dir / "metrics.jsonl", step)
    if not later and not log_lines:
        return None
    target = set_aside(run_dir, later, f"after_step_{step:07d}")
    if log_lines:
        atomic_write_text(target / "metrics.jsonl", "".join(log_lines))
    return target


def set_aside(run_dir: Path, files: list[Path], name: str) -> Path:
    """Move ``files`` of the run into ``RUN/discarded/<name>/`` (their paths relative to the run kept; a
    second set of the same name goes to ``<name>-2``), and return that folder."""
    base = run_dir / DISCARDED_DIR / name
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    make_folder(target)
    for p in files:
        dest = target / p.relative_to(run_dir)
        make_folder(dest.parent)
        os.replace(p, dest)
    return target


def _evaluated_step(record: dict[str, Any]) -> int:
    """The step an evaluation record scored: ``ganreg eval``'s ``protocol.run.step``, or the ``step`` that
    an evaluation during training writes beside its protocol."""
    run = (record.get("protocol") or {}).get("run") or {}
    step = run.get("step", record.get("step", 0))
    return step if isinstance(step, int) else 0


def _lines_after(path: Path, step: int) -> list[str]:
    """The lines of ``metrics.jsonl`` logged after ``step``."""
    if not path.is_file():
        return []
    return _log_lines(path.read_text(encoding="utf-8").splitlines(keepends=True), lambda logged: logged > step)


def write_recipe(run_dir: Path, recipe: Recipe) -> None:
    """The resolved recipe: every default filled in, so `ganreg run` on it re-creates the run."""
    atomic_write_text(run_dir / RECIPE_FILE, json.dumps(recipe.model_dump(mode="json"), indent=2) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(
            f"cannot read {path}: {type(exc).__name__}: {exc}",
            "the run directory is damaged; restore the file from a copy, or re-create it with `ganreg run` on the recipe",
        ) from None


def write_run_files(
    run_dir: Path, recipe: Recipe, registry: Registry, infos: dict[str, Any], ctx: BuildContext, data: dict[str, Any]
) -> None:
    """recipe.resolved.json, and run.json: versions, components, plugins, the build context and ``data``, the
    data's fingerprint (:meth:`ganreg.train.setup.DataBundle.fingerprint`)."""
    write_recipe(run_dir, recipe)
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
        "data": data,
    }
    _write_run_json(run_dir, meta)


def _write_run_json(run_dir: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(run_dir / RUN_FILE, json.dumps(meta, indent=2) + "\n")


def record_session(run_dir: Path, step: int, device: torch.device, amp: torch.dtype | None, processes: int) -> None:
    """Append to run.json's ``sessions`` where and how training (re)started at ``step``: the device, its name,
    the autocast dtype ``train.amp: auto`` resolved to, the process and thread counts. The recipe says only
    ``auto``; a bf16 GPU run and an fp32 CPU run are told apart (report, ``compare``) by this."""
    meta = read_json_or_none(run_dir / RUN_FILE)
    if not isinstance(meta, dict):
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    session = {
        "from_step": int(step), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": str(device),
        "device_name": name, "amp": str(amp).removeprefix("torch.") if amp is not None else "off",
        "processes": int(processes), "threads": torch.get_num_threads(),
    }
    sessions = meta.get("sessions") if isinstance(meta.get("sessions"), list) else []
    meta["sessions"] = [*sessions, session]
    _write_run_json(run_dir, meta)


def check_same_data(run_dir: Path, data: dict[str, Any]) -> None:
    """A resumed run trains on the data it started with: refused when the recorded fingerprint differs (the
    data moved, and the copy at the new ``data.path`` is another or a partial one). Runs written before the
    fingerprint was recorded are not checked."""
    meta = read_json_or_none(run_dir / RUN_FILE)
    recorded = meta.get("data") if isinstance(meta, dict) else None
    if not isinstance(recorded, dict) or not recorded:
        return
    for split, was in recorded.items():
        now = data.get(split)
        if now != was:
            what = (f"{now['images']} images instead of {was['images']}" if now and now.get("images") != was.get("images")
                    else "other captions" if now else "no such split")
            raise UserError(
                f"the data is not the run's own: its {split} split has {what}",
                "point data.path at the data the run started with (--set data.path=...), or start a new run on this "
                "data from this one's weights: ganreg run RECIPE --set generator.weights=RUN/checkpoints/latest.pt",
            )


def read_run(run_dir: Path, registry: Registry, sections: Iterable[str] | None = None) -> tuple[Recipe, dict[str, Any]]:
    """The recipe and metadata of an existing run directory. ``sections``: the only component sections whose
    plugins must be installed (generating needs the text encoder and the generator, not D or the losses)."""
    run_dir = Path(run_dir)
    raw = read_recipe_json(run_dir)  # a missing or damaged recipe is worded as every other command words it
    if not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir} is not a ganreg run directory (it has no {RUN_FILE})", "pass the directory `ganreg run` wrote")
    meta = _read_json(run_dir / RUN_FILE)
    if not isinstance(meta, dict):
        raise UserError(f"{run_dir}: {RUN_FILE} is not a JSON object", "pass the directory `ganreg run` wrote")
    _check_recorded_plugins(run_dir, meta, registry, sections)
    data = raw.get("data")
    if isinstance(data, dict) and data.get("source", "shapes") == "shapes":
        data.pop("path", None)  # runs made before it was refused: the built-in source never read it
    # check_bools off: a run recorded before true / false were refused as numbers trained with them as 1 / 0
    recipe = validate_recipe(_pin_recorded_ids(raw, meta), registry, str(run_dir / RECIPE_FILE), sections, check_bools=False)
    return recipe, meta


def _check_recorded_plugins(run_dir: Path, meta: dict[str, Any], registry: Registry, sections: Iterable[str] | None) -> None:
    """A component whose plugin is not installed here (another machine, a fresh environment): named with the
    distribution and version run.json recorded, so the fix is one pip command, not a search."""
    wanted = set(sections) if sections is not None else None
    known = {c.plugin for c in registry.components()} | set(registry.plugins)  # a failed or blocked one: `ganreg plugins`
    for key, comp in (meta.get("components") or {}).items():
        if not isinstance(comp, dict) or (wanted is not None and key.partition(".")[0] not in wanted):
            continue
        plugin, dist, version = comp.get("plugin"), comp.get("distribution"), comp.get("version")
        if not isinstance(plugin, str) or not dist or plugin in known:
            continue
        raise UserError(
            f"{run_dir} was trained with {key} {comp.get('id')} from the distribution {dist} {version}, "
            "which is not installed here",
            f"pip install '{dist}=={version}' (or the plugin's source folder), then run the command again",
        )


def _pin_recorded_ids(raw: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Runs written before recipes recorded qualified ids: a bare component name becomes the id that
    run.json says was built, so plugins installed since cannot make it ambiguous."""
    ids = {key: c.get("id") for key, c in (meta.get("components") or {}).items() if isinstance(c, dict)}
    specs = [(key, raw.get(key)) for key in SECTION_KINDS]
    losses = raw.get("losses")
    if isinstance(losses, list):
        specs += [(f"losses.{i}", spec) for i, spec in enumerate(losses)]
    for key, spec in specs:
        recorded = ids.get(key)
        if isinstance(spec, dict) and isinstance(spec.get("name"), str) and ":" not in spec["name"] and (
            isinstance(recorded, str) and recorded.partition(":")[2] == spec["name"]
        ):
            spec["name"] = recorded
    return raw


def build_context_from(meta: dict[str, Any]) -> BuildContext:
    return BuildContext(**meta["build_context"])
