"""The ``ganreg`` command line: thin; every command calls into the library.

Heavy imports (torch, the registry) happen inside commands so that
``ganreg --help`` stays instant. A :class:`ganreg.errors.UserError` becomes a
short message with its fix and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import errno
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ganreg.kinds import KINDS

console = Console()
err_console = Console(stderr=True)


def _registry() -> Any:
    from ganreg.plugins import get_registry

    return get_registry()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ganreg")
def cli() -> None:
    """ganreg: compose text-to-image GAN components from recipes, train, sample, evaluate.

    \b
    Start with:  ganreg run recipes/dfgan.json
    Components:  ganreg list, ganreg show NAME, ganreg plugins
    Recipes:     ganreg validate RECIPE.json, ganreg schema
    """


# ----------------------------------------------------------------- registry
@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(pattern: str, as_json: bool) -> None:
    """Every registered component, optionally filtered: ganreg list 'generator:*' (or just: generator)."""
    reg = _registry()
    if pattern in KINDS:
        pattern = f"{pattern}:*"
    elif pattern in reg.plugins:  # `ganreg list dfgan`: that plugin's components
        pattern = f"{pattern}:*"
    items = reg.match(pattern)
    if as_json:
        rows = [
            {"kind": c.kind, "id": c.qualified, "name": c.name, "plugin": c.plugin, "distribution": c.distribution,
             "version": c.version, "summary": c.summary}
            for c in items
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not items:
        status = reg.plugins.get(pattern.removesuffix(":*"))
        if status is not None and status.status != "loaded":  # `ganreg list myplugin` for a plugin that did not load
            err_console.print(f"plugin {status.name!r} is {status.status}: {status.error} (see `ganreg plugins`)", markup=False)
            return
        head, _, tail = pattern.rpartition(":")  # the name part, compared with the names of the kind or plugin named
        names = sorted({c.name for c in reg.components() if not head or head in (c.kind, c.plugin)})
        close = difflib.get_close_matches(tail, names, n=3, cutoff=0.6)
        guess = " Did you mean " + " or ".join(repr(f"{head}:{n}" if head else n) for n in close) + "?" if close else ""
        err_console.print(f"nothing matches {pattern!r}: patterns are KIND:ID globs, e.g. 'generator:*', '*:dfgan:*', "
                          f"'*hinge*'.{guess}", markup=False)
        return
    wide = console.width >= 120  # below that the summaries need the room more than plugin and version do
    table = Table(title=f"ganreg components ({len(items)})", show_lines=False)
    for col in ("kind", "id", *(("plugin", "version") if wide else ())):
        table.add_column(col, no_wrap=True)
    table.add_column("summary", overflow="fold", ratio=1, min_width=24)
    for c in items:
        table.add_row(*map(Text, (c.kind, c.qualified, *((c.plugin, c.version) if wide else ()), c.summary)))  # plugins' text, not markup
    console.print(table)
    failed = [p for p in reg.plugins.values() if p.status == "failed"]
    if failed:
        names = escape(", ".join(p.name for p in failed))
        err_console.print(f"[yellow]{len(failed)} plugin(s) failed to load: {names} (see `ganreg plugins`)[/yellow]")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """Installed plugins: distribution, version, status and what each registers."""
    reg = _registry()
    items = sorted(reg.plugins.values(), key=lambda p: p.name)
    if as_json:
        click.echo(json.dumps([p.__dict__ for p in items], indent=2))
        return
    wide = console.width >= 120  # below that, the ids need the room more than distribution and version do
    table = Table(title="ganreg plugins")
    for col in ("plugin", *(("distribution", "version") if wide else ()), "status", "registers"):
        table.add_column(col, overflow="fold")
    for p in items:
        status = Text("loaded", style="green") if p.status == "loaded" else Text.assemble((p.status, "red"), f": {p.error}")
        # one component a line, as "kind plugin:name": the id a recipe uses, never cut in the middle
        registers = "\n".join(c.replace(":", " ", 1) for c in p.components)
        table.add_row(*map(Text, (p.name, *((p.distribution, p.version) if wide else ()))), status, Text(registers))
    console.print(table)


@cli.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS))
def show(name: str, kind: str | None) -> None:
    """A component's description, paper, and parameters (types, defaults, constraints)."""
    from ganreg.errors import ComponentError
    from ganreg.schema_docs import params_rows

    reg = _registry()
    found = []
    head, _, rest = name.partition(":")
    if kind is None and head in KINDS and rest:  # `ganreg show generator:dfgan` (the `ganreg list` form)
        kind, name = head, rest
    for k in [kind] if kind else KINDS:
        try:
            found.append(reg.resolve(k, name))
        except ComponentError as exc:
            if "ambiguous" in exc.message:
                raise
    if not found:
        kinds = [kind] if kind else list(KINDS)
        elsewhere = [k for k in KINDS if k not in kinds and (k, name) in reg]
        status = reg.plugins.get(name)
        if status is not None:
            ids = ", ".join(status.components) or "nothing"
            fix = f"{name!r} is a plugin ({status.status}); it registers {ids}: show one of them, or `ganreg list {name}`"
        elif elsewhere:
            fix = f"it is a {elsewhere[0]}: drop --kind or use --kind {elsewhere[0]}"
        else:
            fix = reg.suggest(kinds, name)
        failed = [p.name for p in reg.plugins.values() if p.status == "failed"]
        if failed and status is None:
            fix += f" ({len(failed)} plugin(s) failed to load: {', '.join(failed)}; see `ganreg plugins`)"
        raise ComponentError(f"no {kind or 'component'} named {name!r}", fix)
    for c in found:  # one id may name a generator and a discriminator (`dfgan:dfgan`): show each
        _show_component(c, params_rows)


def _show_component(c: Any, params_rows: Any) -> None:
    description = c.description  # imports the factory: a broken plugin fails before anything is printed
    console.print(f"[bold]{escape(c.kind + ' ' + c.qualified)}[/bold]  ({escape(f'{c.distribution or c.plugin} {c.version}')})")
    if c.paper:
        console.print(f"[italic]follows:[/italic] {escape(c.paper)}")
    if description:
        console.print(description, markup=False, emoji=False)  # a docstring's "[B, C, H, W]" is no markup
    rows = params_rows(c.params)
    if c.kind == "loss":
        for line in _loss_facts(c, has_params=bool(rows)):
            console.print(line, markup=False, emoji=False)
    if not rows:
        console.print("parameters: none")
        return
    table = Table(title="parameters")
    for col in ("name", "type", "default", "constraints", "description"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    console.print(table)


def _loss_facts(c: Any, has_params: bool) -> list[str]:
    """What a recipe must give a loss term (which network it trains, the inputs and components it reads):
    they are attributes of the built term, so it is built with its default params, the values a recipe
    entry gets when it sets none. A term that needs params to build says so instead."""
    from ganreg.errors import UserError
    from ganreg.kinds import BuildContext

    try:
        loss = c.build({}, BuildContext(cond_dim=16))
    except UserError:
        return ["trains and needs: depends on its params (it does not build without them)"]
    needs = [
        *(["D's gradient with respect to the real images and sentences (a gradient penalty)"] if loss.needs_input_grad else []),
        *(["real images of another class in every batch (classes in the data)"] if loss.needs_wrong_images else []),
        *(["an image_encoder section in the recipe"] if loss.needs_image_encoder else []),
        *([f"the discriminator {' or '.join(loss.needs_discriminator)}"] if loss.needs_discriminator else []),
    ]
    return [
        f"trains: the {getattr(loss, 'network', None) or 'network a recipe entry names'} "
        "(a recipe entry's \"trains\" can change it)",
        ("needs, with its default params: " if has_params else "needs: ")
        + ("; ".join(needs) if needs else "nothing beyond a generator and a discriminator"),
    ]


# ------------------------------------------------------------------ recipes
@cli.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
def validate(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Check a recipe: its keys and values (all problems at once, each with its JSON path and a fix),
    then that its data opens, its networks and losses build and the networks keep their contracts on two
    of its items (shapes, value range), as `ganreg run` checks before training."""
    from ganreg.recipe import load_recipe
    from ganreg.train.contracts import PROBE_ITEMS, check_contracts
    from ganreg.train.networks import build_networks, check_trainable
    from ganreg.train.setup import prepare_data

    registry = _registry()
    checked = load_recipe(recipe, registry, list(overrides))
    data = prepare_data(checked)
    nets = build_networks(checked, registry, data.context)
    check_trainable(nets, data.train, checked.train.batch_size)
    check_contracts(nets, data.probe_batch(PROBE_ITEMS), checked.data.image_size)
    probed = "text encoder, image encoder, generator and discriminator" if nets.image_encoder is not None else (
        "text encoder, generator and discriminator"
    )
    console.print(
        f"[green]{recipe}: valid[/green] (data opens; networks and losses build; "
        f"{probed} give the right shapes on {PROBE_ITEMS} items)"
    )


@cli.command()
def schema() -> None:
    """Print the recipes' JSON Schema (for editors: "$schema" or json.schemas)."""
    from ganreg.recipe import recipe_schema

    click.echo(json.dumps(recipe_schema(), indent=2))


# ----------------------------------------------------------------- training
@cli.command()
@click.argument("recipe", required=False, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. train.batch_size=16.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default: output.dir/<name>-<time>).")
@click.option("--device", help="auto, cpu, cuda, cuda:N (default: the recipe's train.device).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), help="Continue the run in this directory.")
@click.option("--checkpoint", help="With --resume: latest (default), best (kept by eval.keep_best), a step number, or a file of the run.")
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and parameter counts, then exit.")
def run(
    recipe: Path | None,
    overrides: tuple[str, ...],
    out: Path | None,
    device: str | None,
    resume_dir: Path | None,
    checkpoint: str | None,
    dry_run: bool,
) -> None:
    """Train a recipe (or --resume a run)."""
    from ganreg.train.cli_run import run_recipe
    from ganreg.train.distributed import exit_finished, from_environment

    code = run_recipe(recipe, list(overrides), out, device, resume_dir, dry_run, console, checkpoint).exit_code
    if from_environment(device).distributed:  # joined in run_recipe: this returns the same processes
        exit_finished(code)
    sys.exit(code)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("captions", nargs=-1)
@click.option("--captions", "captions_file", type=click.Path(path_type=Path), help="A text file, one caption a line.")
@click.option("-n", "--num", type=click.IntRange(1), help="Images per caption, one noise vector each  [default: 8]")
@click.option("--source", "sources", multiple=True, type=click.Path(path_type=Path),
              help="A source image (repeatable): with a run trained with an image encoder, each source's latent "
                   "replaces the noise of one column.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("generated.png"), show_default=True)
@click.option("--checkpoint", help="latest (default), best (kept by eval.keep_best), a step number, or a file.")
@click.option("--seed", type=int, help="Seed of the noise  [default: 0]")
@click.option("--truncation", type=click.FloatRange(0, min_open=True),
              help="Truncate noise to [-2, 2] times this (DF-GAN: 0.88). Default: the run's samples.truncation, "
                   "as its sample grids use.")
@click.option("--no-truncation", is_flag=True, help="Plain N(0, 1) noise, whatever the run's recipe says.")
@click.option("--no-ema", is_flag=True, help="Use the raw generator weights even when EMA weights exist.")
@click.option("--device", default="auto", show_default=True)
def generate(
    run_dir: Path,
    captions: tuple[str, ...],
    captions_file: Path | None,
    num: int | None,
    sources: tuple[Path, ...],
    out: Path,
    checkpoint: str | None,
    seed: int | None,
    truncation: float | None,
    no_truncation: bool,
    no_ema: bool,
    device: str,
) -> None:
    """Images from new text with a trained generator: one grid row per caption."""
    from ganreg.errors import UserError
    from ganreg.generate import generate_grid, truncation_option

    blank = [i for i, c in enumerate(captions, 1) if not c.strip()]
    if blank:
        raise UserError(f"caption {blank[0]} of the command line is empty", "give each caption some words, in quotes")
    texts = list(captions)
    if captions_file is not None:
        if not captions_file.is_file():
            raise UserError(f"captions file {captions_file} is a folder" if captions_file.is_dir()
                            else f"captions file not found: {captions_file}", "pass a text file with one caption a line")
        try:
            lines = captions_file.read_text(encoding="utf-8-sig").splitlines()  # a BOM (Notepad) is no word
        except UnicodeDecodeError:
            raise UserError(f"{captions_file} is not a UTF-8 text file", "pass a text file with one caption a line") from None
        from_file = [line.strip() for line in lines if line.strip()]
        if not from_file:
            raise UserError(f"{captions_file} holds no captions (every line is blank)", "write one caption a line")
        texts += from_file
    if not texts:
        raise UserError("no captions given", 'pass captions as arguments or --captions FILE')
    noise_options = {"-n": num is not None, "--seed": seed is not None, "--truncation": truncation is not None,
                     "--no-truncation": no_truncation}
    if sources and any(noise_options.values()):
        given = next(name for name, used in noise_options.items() if used)
        raise UserError(
            f"{given} and --source contradict each other: with --source each column is one source image's latent, "
            "not noise", f"drop {given}",
        )
    if not sources:
        truncation = truncation_option(truncation, no_truncation)
    num = len(sources) if sources else num or 8
    made = generate_grid(run_dir, texts, num, out, checkpoint, seed or 0, truncation, not no_ema, device, list(sources))
    console.print(f"wrote {out} ({len(texts)} caption(s) x {num}), its captions in {out.with_suffix('.txt')} and how it "
                  f"was made (checkpoint, seed, truncation, the command that makes it again) in {made.record}", markup=False)
    for caption, words in made.unknown.items():
        lacks = escape(f"{', '.join(repr(w) for w in words)} (in {caption!r})")
        err_console.print(
            f"[yellow]note:[/yellow] the run's vocabulary lacks {lacks}: the generator cannot read those words",
            highlight=False, emoji=False,
        )


def _register_command_groups() -> None:
    from ganreg.cli_data import data
    from ganreg.cli_eval import EVAL_COMMANDS

    for command in (data, *EVAL_COMMANDS):
        cli.add_command(command)


_register_command_groups()


def main() -> None:
    """Entry point: user errors -> exit 2 with a message; Ctrl-C -> 130."""
    from ganreg.errors import UserError

    for stream in (sys.stdout, sys.stderr):  # a caption, a path or a docstring's "→" on a cp1252 or ASCII
        if hasattr(stream, "reconfigure"):  # terminal (Windows, a pipe, a legacy locale) is escaped, not a crash
            stream.reconfigure(errors="backslashreplace")
    try:
        cli.main(standalone_mode=False)
    except UserError as exc:
        # file names and library errors are printed as they are: "[copy]" is no markup, ":train:" no emoji
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False, emoji=False)
        if exc.fix:
            err_console.print(f"[bold]fix:[/bold] {escape(exc.fix)}", highlight=False, emoji=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        found = _system_error(exc)
        if found is None:
            raise
        message, fix = found
        err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, emoji=False)
        err_console.print(f"[bold]fix:[/bold] {escape(fix)}", highlight=False, emoji=False)
        sys.exit(2)


_SYSTEM_FIXES = {
    errno.ENOSPC: "free some disk space (files are written to a temporary name first: what was saved before is "
                  "intact), then run the command again (`ganreg run --resume RUN` for a run)",
    errno.EDQUOT: "free some of your disk quota, then run the command again (`ganreg run --resume RUN` for a run)",
    errno.EACCES: "fix the file's or its folder's permissions, or use a copy in a place of your own",
    errno.EPERM: "fix the file's or its folder's permissions, or use a copy in a place of your own",
    errno.EROFS: "the file system is read-only: write to a folder on another one",
    errno.ENAMETOOLONG: "use a shorter path or run name (most file systems allow 255 bytes a name)",
}


def _system_error(exc: BaseException) -> tuple[str, str] | None:
    """A full disk, a read-only or forbidden folder, met anywhere in ``exc``'s chain (torch wraps a failed
    write in its own RuntimeError): the message and fix to print instead of a traceback; None otherwise."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _SYSTEM_FIXES:
            where = f": {cur.filename}" if cur.filename else ""
            return f"{cur.strerror or cur}{where}", _SYSTEM_FIXES[cur.errno]
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)  # `from None` hides it
    return None


if __name__ == "__main__":
    main()
