"""``ganreg run``: resolve the recipe, show progress, train, report where things went."""

from __future__ import annotations

import contextlib
import json
import math
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ganreg.errors import UserError
from ganreg.plugins import get_registry
from ganreg.recipe import apply_overrides, load_recipe, validate_recipe
from ganreg.runfiles import checkpoint_dir, latest_checkpoint


def eta_seconds(
    steps_done: int, seconds_spent: float, steps_left: int, elapsed: float, limit_minutes: float | None
) -> tuple[float, bool] | None:
    """(seconds until the run stops, whether ``train.max_minutes`` is what stops it), from this
    session's pace; None before the first measured step."""
    if steps_done <= 0 or seconds_spent <= 0:
        return None
    by_steps = steps_left * seconds_spent / steps_done
    if limit_minutes is not None:
        by_limit = max(0.0, limit_minutes * 60 - elapsed)
        if by_limit < by_steps:
            return by_limit, True
    return by_steps, False


def format_eta(eta: tuple[float, bool] | None) -> str:
    if eta is None:
        return "-"
    seconds, limited = eta
    s = int(round(seconds))
    text = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{text} (time limit)" if limited else text


def _param_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="parameters")
    for col in ("network", "total", "trainable", "MB"):
        table.add_column(col, justify="right" if col != "network" else "left")
    for r in rows:
        table.add_row(str(r["network"]), f"{r['total']:,}", f"{r['trainable']:,}", f"{r['mb']:.2f}")
    return table


@dataclass(frozen=True)
class RunOutcome:
    """How a ``ganreg run`` (or :func:`ganreg.run`) ended."""

    run_dir: Path | None
    """The run directory (None after ``--dry-run``)."""
    status: str
    """"finished", "time limit", "interrupted" (Ctrl-C or SIGTERM), "already finished" (a resume with nothing
    left), or "dry run"."""
    step: int

    @property
    def exit_code(self) -> int:
        return 130 if self.status == "interrupted" else 0  # 130 after Ctrl-C, as a shell expects


def run_recipe(
    recipe: Path | dict[str, Any] | None,
    overrides: list[str],
    out: Path | None,
    device: str | None,
    resume_dir: Path | None,
    dry_run: bool,
    console: Console,
    checkpoint: str | None = None,
) -> RunOutcome:
    """``ganreg run`` (and :func:`ganreg.run`): start a run from a recipe (a file, or a dict from Python) or
    resume one, and train it with a progress bar."""
    from ganreg.train.distributed import from_environment, process_device

    procs = from_environment(device)  # one process, or one of torchrun's
    device = process_device(device, procs)
    if not procs.main:
        console = Console(quiet=True)  # process 0 reports
    registry = get_registry()
    if checkpoint is not None and resume_dir is None:
        raise UserError("--checkpoint picks where a resumed run continues from", "add --resume RUN_DIR")
    resolved = _resolve_recipe(recipe, resume_dir, overrides, registry)
    if dry_run:
        if procs.main:
            _dry_run(resolved, registry, console)
        return RunOutcome(None, "dry run", 0)
    with contextlib.ExitStack() as held:  # the run's lock (process 0), for as long as it trains
        return _run(resolved, registry, out, device, resume_dir, checkpoint, procs, overrides, console, held)


def _run(
    recipe: Any, registry: Any, out: Path | None, device: str | None, resume_dir: Path | None, checkpoint: str | None,
    procs: Any, overrides: list[str], console: Console, held: contextlib.ExitStack,
) -> RunOutcome:
    """Start or resume the run, train it, and say where everything went."""
    run_dir, trainer = _start_trainer(recipe, registry, out, device, resume_dir, checkpoint, procs, held, console)
    if trainer.discarded_to is not None and procs.main:
        console.print(f"back at step {trainer.step}: what came after it (checkpoints, sample grids, evaluations, log "
                      f"lines) was moved to {trainer.discarded_to}; delete that folder once you no longer need it")
    if resume_dir is not None and overrides and trainer.step > trainer.total_steps:
        raise UserError(
            f"the run is at step {trainer.step}, past the {trainer.total_steps} steps asked for",
            f"ask for more (--set train.steps=N, N > {trainer.step}), or --checkpoint an earlier step",
        )
    if resume_dir is not None and overrides and procs.main:
        from ganreg.train.rundir import write_recipe

        # so the resolved recipe still re-creates the run (its new train.steps), and eval / generate find
        # its data where it now lies (data.path), even when there is nothing left to train
        write_recipe(run_dir, recipe)
    if resume_dir is not None and trainer.step >= trainer.total_steps:
        console.print(
            f"{run_dir} already finished: step {trainer.step}/{trainer.total_steps}. To train longer: "
            f"ganreg run --resume {shlex.quote(str(run_dir))} --set train.steps=N (N > {trainer.step})"
        )
        return RunOutcome(run_dir, "already finished", trainer.step)
    _print_start(trainer, recipe, run_dir, console)
    status = _train_with_progress(trainer, recipe, run_dir, console)
    curves = run_dir / "loss_curves.png"
    console.print(
        f"[bold]{status}[/bold] at step {trainer.step}/{trainer.total_steps} after {trainer.elapsed:.0f}s. "
        f"Run directory: {run_dir}\n  samples: {run_dir / 'samples'}  checkpoints: {checkpoint_dir(run_dir)}"
        + (f"  loss curves: {curves}" if curves.is_file() else "")
    )
    if status != "finished":
        console.print(f"continue with: ganreg run --resume {shlex.quote(str(run_dir))}")
    return RunOutcome(run_dir, status, trainer.step)


def _resolve_recipe(
    recipe: Path | dict[str, Any] | None, resume_dir: Path | None, overrides: list[str], registry: Any
) -> Any:
    """The recipe to train: a recipe file's or a dict's, with the --set overrides, or the resumed run's own
    (the overrides a resume allows applied to it)."""
    from ganreg.errors import RecipeError
    from ganreg.recipe import Recipe
    from ganreg.registry import bool_problems
    from ganreg.train.rundir import RECIPE_FILE, as_recorded, check_resume_overrides, read_run

    if resume_dir is None:
        if recipe is None:
            raise UserError("no recipe given", "ganreg run recipes/dfgan.json")
        if isinstance(recipe, dict):
            if "base" in recipe:  # a file's base is read relative to that file; a dict has none
                raise UserError("a recipe given as a dict cannot name a 'base' recipe",
                                "pass the recipe file's path instead, or merge the base into the dict")
            return as_recorded(validate_recipe(apply_overrides(recipe, overrides), registry, "the recipe dict"), registry)
        return as_recorded(load_recipe(recipe, registry, overrides), registry)
    if recipe is not None:
        raise UserError("give either a recipe or --resume RUN_DIR, not both", "ganreg run --resume RUN_DIR")
    recorded, _ = read_run(resume_dir, registry)
    check_resume_overrides(overrides)
    if not overrides:
        return recorded
    given = bool_problems(Recipe, apply_overrides({}, overrides), "")  # the new values; the recorded ones stand
    if given:
        raise RecipeError(given, f"--resume {resume_dir} with --set")
    raw = apply_overrides(recorded.model_dump(mode="json"), overrides)
    source = str(resume_dir / RECIPE_FILE)
    return as_recorded(validate_recipe(raw, registry, source, check_bools=False), registry)  # paths absolute


def _dry_run(recipe: Any, registry: Any, console: Console) -> None:
    """``--dry-run``: the resolved recipe, then the data opened and the networks built and checked on two
    items, with their parameter table; nothing is written."""
    from ganreg.train.contracts import PROBE_ITEMS, check_contracts
    from ganreg.train.networks import build_networks, check_trainable, parameter_table
    from ganreg.train.setup import prepare_data

    console.print_json(json.dumps(recipe.model_dump(mode="json")))
    data = prepare_data(recipe)
    nets = build_networks(recipe, registry, data.context)
    check_trainable(nets, data.train, recipe.train.batch_size)
    check_contracts(nets, data.probe_batch(PROBE_ITEMS), recipe.data.image_size)
    console.print(_param_table(parameter_table(nets.modules())))
    classes = (
        f"{len(set(data.train.labels()))} training classes (of {data.context.num_classes} in all splits)"
        if data.train.has_classes else "no classes (each image its own)"
    )
    console.print(
        f"data: {len(data.train)} training images, {len(data.test) if data.test is not None else 0} held out, "
        f"{len(data.vocab)} words, {classes}"
    )


def _start_trainer(
    recipe: Any, registry: Any, out: Path | None, device: str | None, resume_dir: Path | None,
    checkpoint: str | None, procs: Any, held: contextlib.ExitStack, console: Console,
) -> tuple[Path, Any]:
    """The run directory (a new one, named by process 0, or the resumed one) and its trainer. Process 0
    locks the run in ``held`` first (:mod:`ganreg.train.runlock`), so a second process on it stops here,
    before it moves or writes anything. A new run whose start fails (missing data or weights) leaves no
    empty folders behind."""
    from ganreg.runfiles import is_in_run
    from ganreg.train.checkpoint import find_checkpoint
    from ganreg.train.distributed import broadcast_object
    from ganreg.train.rundir import claim_timestamped_dir, new_run_dir, run_dir_path
    from ganreg.train.runlock import LOCK_FILE, remove_leftover_temporaries, training_lock
    from ganreg.train.trainer import start_or_resume

    made: list[Path] = []
    was_empty = False
    if resume_dir is not None:
        run_dir = resume_dir
    else:
        if procs.main:
            run_dir = run_dir_path(recipe, str(out) if out else None)
            made = [d for d in run_dir.absolute().parents if not d.exists()]  # the folders this start makes, deepest first
            was_empty = run_dir.is_dir() and not any(run_dir.iterdir())  # a failed start leaves it so
            if out is None and recipe.output.name is None:  # named by the time: never another job's folder
                run_dir = claim_timestamped_dir(run_dir)  # made by this process, always
                made.insert(0, run_dir)
            elif not run_dir.exists():
                made.insert(0, run_dir)
            new_run_dir(run_dir)
        run_dir = Path(broadcast_object(str(run_dir) if procs.main else None, procs))  # the name has process 0's time
    lock_is_ours = False  # a refused second process must not remove the first one's lock file
    try:
        if procs.main:
            problem = held.enter_context(training_lock(run_dir))
            lock_is_ours = True
            if problem is not None:
                console.print(f"[yellow]note:[/yellow] {problem}")
            # unlocked, another trainer's file in flight would look the same
            freed = remove_leftover_temporaries(run_dir) if resume_dir is not None and problem is None else 0
            if freed:
                console.print(f"removed {freed / 2**20:.1f} MiB of temporary files that a killed run left in {run_dir}")
        ckpt = find_checkpoint(run_dir, checkpoint) if resume_dir is not None else None
        if ckpt is not None and not is_in_run(run_dir, ckpt):
            raise UserError(
                f"{ckpt} is not a checkpoint of {run_dir}: resuming from it would join two runs' logs, and the "
                "run's own checkpoints would be rotated away",
                f"if it is this run's own (a backup), put it back in {run_dir}/checkpoints/ and pass that path; if "
                "another run's, resume that run (ganreg run --resume THAT_RUN) or start a new one from its weights: "
                f"ganreg run RECIPE --set generator.weights={ckpt} --set discriminator.weights={ckpt}",
            )
        with _out_of_memory_named(recipe, run_dir, lambda: 0):  # moving the networks to the GPU, the contract check
            trainer = start_or_resume(
                recipe, registry, run_dir, device, resume=resume_dir is not None, checkpoint=ckpt, procs=procs
            )
    except BaseException:
        with contextlib.suppress(OSError):  # never let the clean-up hide the real error
            if lock_is_ours and (was_empty or run_dir in made):  # a folder this start made, or found empty
                (run_dir / LOCK_FILE).unlink(missing_ok=True)
        for d in made:
            with contextlib.suppress(OSError):
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
        raise
    return run_dir, trainer


def _print_start(trainer: Any, recipe: Any, run_dir: Path, console: Console) -> None:
    """Notes on settings that may not do what the user meant, then the run's line and parameter table."""
    from ganreg.train.networks import parameter_table

    limit = recipe.train.max_minutes
    if recipe.train.steps is not None and recipe.train.epochs is not None:
        console.print(
            f"[yellow]note:[/yellow] train.steps ({recipe.train.steps}) wins over train.epochs ({recipe.train.epochs}); "
            "to train by epochs, --set train.steps=null"
        )
    if trainer.nets.image_encoder is not None and not any(t.module.needs_image_encoder for t in trainer.nets.losses):
        console.print(
            "[yellow]note:[/yellow] no loss keeps the image encoder's latents near N(0, I) (e.g. source_encoder:latent_kl): "
            "sample grids and `ganreg eval` draw the noise from N(0, I), which G may never learn to read; "
            "`ganreg generate --source IMAGE` draws from pictures"
        )
    amp = str(trainer.amp_dtype).removeprefix("torch.") if trainer.amp_dtype is not None else "off"
    console.print(
        f"[bold]run[/bold] {run_dir}  device={trainer.device}  steps={trainer.total_steps} "
        f"({trainer.steps_per_epoch} per epoch)  amp={amp}"
        + (f"  stops after {limit:g} min (train.max_minutes) wherever it is" if limit else "")
    )
    console.print(_param_table(parameter_table(trainer.nets.modules())))


LOG_LINE_SECONDS = 30.0
"""Where the output is no terminal (a cluster job's log file, a pipe), a plain progress line at most this often."""


def _train_with_progress(trainer: Any, recipe: Any, run_dir: Path, console: Console) -> str:
    """``trainer.fit()`` under a progress bar (epoch, images/s, ETA, the last logged D and G losses); where the
    output is no terminal, where rich draws no bar, the same as a plain line every :data:`LOG_LINE_SECONDS` (a
    10-hour job's log said nothing between its start and its end). Returns fit's status."""
    limit = recipe.train.max_minutes
    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[ips]} img/s"),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("{task.fields[losses]}"),
    )
    lines = not (console.is_terminal or console.is_jupyter)  # a notebook draws the bar
    with Progress(*columns, console=console, transient=False, disable=lines) as progress:
        task = progress.add_task(
            "train", total=trainer.total_steps, completed=trainer.step, epoch=0, ips="-", losses="", eta="-"
        )
        first_step, first_elapsed = trainer.step, trainer.elapsed
        last_line = -math.inf

        def report(tr: Any, record: dict[str, Any]) -> None:
            nonlocal last_line
            fields = {
                "eta": format_eta(
                    eta_seconds(
                        tr.step - first_step, tr.elapsed - first_elapsed, tr.total_steps - tr.step, tr.elapsed, limit
                    )
                ),
                "epoch": max(1, math.ceil(record["epoch"] - 1e-9)),  # the epoch this step belongs to: step 5 of 5 ends epoch 1
                "ips": f"{record['images_per_s']:.0f}",
                "losses": f"D {record.get('d/total', float('nan')):.3f}  G {record.get('g/total', float('nan')):.3f}",
            }
            progress.update(task, completed=tr.step, **fields)
            if lines and (tr.elapsed - last_line >= LOG_LINE_SECONDS or tr.step >= tr.total_steps):
                last_line = tr.elapsed
                console.print(
                    f"epoch {fields['epoch']}  step {tr.step}/{tr.total_steps}  {fields['ips']} img/s  "
                    f"{format_eta((tr.elapsed, False))} elapsed  ETA {fields['eta']}  {fields['losses']}",
                    markup=False, highlight=False, soft_wrap=True,  # one line each, whatever the width: grep-able
                )

        with _out_of_memory_named(recipe, run_dir, lambda: trainer.step):
            status = trainer.fit(progress=report)
        progress.update(task, completed=trainer.step)
    return status


@contextlib.contextmanager
def _out_of_memory_named(recipe: Any, run_dir: Path, step: Any) -> Iterator[None]:
    """Running out of GPU memory is a setting to change, not a crash: say which, and what is kept."""
    import torch  # here: `ganreg --help` must not import torch

    try:
        yield
    except torch.OutOfMemoryError:
        t = recipe.train
        kept = "the last checkpoint is kept" if latest_checkpoint(run_dir).is_file() else "no checkpoint was saved yet"
        raise UserError(
            f"out of GPU memory at step {step() + 1} (batch {t.batch_size} at {recipe.data.image_size} px, "
            f"amp {t.amp}); {kept}",
            "lower train.batch_size (train.grad_accum keeps the effective batch), use train.amp bf16, or free the GPU "
            "(nvidia-smi); then ganreg run --resume the run if it has a checkpoint, or start it again with another --out",
        ) from None
