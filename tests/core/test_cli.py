"""The CLI as a user runs it: output, exit codes, no tracebacks on user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).parents[2] / "recipes"


def ganreg(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("GANREG_NO_PLUGIN_AUTOLOAD", None)
    return subprocess.run(
        [sys.executable, "-m", "ganreg.cli", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300
    )


def test_list_json_and_filter() -> None:
    res = ganreg("list", "generator:*", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert rows and all(r["kind"] == "generator" for r in rows)
    assert {"dfgan:dfgan", "dcgan_cls:dcgan_cls"} <= {r["id"] for r in rows}
    table = ganreg("list")
    assert "core:lstm" in table.stdout and "dfgan:magp" in table.stdout


def test_plugins_lists_status() -> None:
    res = ganreg("plugins", "--json")
    rows = {p["name"]: p for p in json.loads(res.stdout)}
    assert rows["core"]["status"] == "loaded" and "text_encoder:core:lstm" in rows["core"]["components"]
    assert rows["dfgan"]["distribution"] == "ganreg-dfgan"


def test_show_prints_params_and_paper() -> None:
    res = ganreg("show", "lstm")
    assert res.returncode == 0, res.stderr
    assert "core:lstm" in res.stdout and "hidden" in res.stdout and "DAMSM" in res.stdout
    both = ganreg("show", "dfgan:dfgan")  # a generator and a discriminator share the id: both are shown
    assert both.returncode == 0 and "generator dfgan:dfgan" in both.stdout and "discriminator dfgan:dfgan" in both.stdout
    assert "gate_init" in both.stdout  # the discriminator's own parameter
    gen = ganreg("show", "generator:dfgan")
    assert gen.returncode == 0 and "nf" in gen.stdout


def test_show_says_what_a_loss_trains_and_needs() -> None:
    """The requirements a recipe is refused for (a U-Net D, input gradients, wrong images) are in `show`."""
    lines = {name: " ".join(ganreg("show", name).stdout.split()) for name in ("unet:cutmix", "dfgan:magp", "dcgan_cls:matching_bce", "dfgan:hinge_generator")}
    assert "trains: the discriminator" in lines["unet:cutmix"] and "needs, with its default params: the discriminator unet:unet" in lines["unet:cutmix"]
    assert "gradient with respect to the real images and sentences" in lines["dfgan:magp"]
    assert "real images of another class in every batch" in lines["dcgan_cls:matching_bce"]
    assert "trains: the generator" in lines["dfgan:hinge_generator"] and "needs: nothing beyond" in lines["dfgan:hinge_generator"]


def test_show_unknown_suggests() -> None:
    res = ganreg("show", "dfgn")
    assert res.returncode == 2
    assert "dfgan" in res.stderr and "Traceback" not in res.stderr
    assert "'dfgan:hinge'" in ganreg("show", "dfgan:hinj").stderr  # the closest of every kind, not the first kind's
    wrong_kind = ganreg("show", "dfgan:hinge", "--kind", "generator")
    assert wrong_kind.returncode == 2 and "it is a loss" in wrong_kind.stderr
    blocked = ganreg("validate", str(RECIPES / "dfgan.json"), env={"GANREG_BLOCK_PLUGINS": "dfgan"})
    assert blocked.returncode == 2 and "plugin 'dfgan' is blocked" in " ".join(blocked.stderr.split())


def test_validate_reports_all_problems_exit_2(tmp_path: Path) -> None:
    recipe = json.loads((RECIPES / "dfgan.json").read_text())
    recipe["generator"]["name"] = "dfgn"
    recipe["train"]["batch_size"] = 0
    recipe["train"]["bogus"] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(recipe))
    res = ganreg("validate", str(bad))
    assert res.returncode == 2
    assert "generator.name" in res.stderr and "did you mean 'dfgan'" in res.stderr
    assert "train.batch_size" in res.stderr and "train.bogus" in res.stderr
    assert "Traceback" not in res.stderr
    ok = ganreg("validate", str(RECIPES / "dfgan.json"))
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["data.image_size=48"], "power-of-two image size"),
        (["data.source=hdf5", "data.path=nowhere.h5"], "HDF5 file not found"),
        (['losses=[{"name": "dfgan:hinge"}]'], "no loss that trains the generator"),
        (["train.batchsize=8"], "did you mean 'batch_size'"),
        (["$schema=https://example.org/recipe.schema.json"], None),
    ],
)
def test_validate_catches_what_run_would_refuse(sets: list[str], needle: str | None, tmp_path: Path) -> None:
    args = [a for s in sets for a in ("--set", s)]
    res = ganreg("validate", str(RECIPES / "dfgan.json"), *args, cwd=tmp_path)
    if needle is None:  # an editor's "$schema" link is allowed
        assert res.returncode == 0, res.stderr
        return
    assert res.returncode == 2 and needle in " ".join(res.stderr.split()), res.stderr
    assert "Traceback" not in res.stderr


def test_list_of_a_misspelt_name_suggests_the_close_ones() -> None:
    res = ganreg("list", "generator:dfgn")
    assert res.returncode == 0 and "Did you mean 'generator:dfgan'?" in " ".join(res.stderr.split()), res.stderr


def test_schema_is_json_schema() -> None:
    res = ganreg("schema")
    schema = json.loads(res.stdout)
    assert schema["title"] == "ganreg recipe" and "losses" in schema["properties"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "missing.json"], "recipe file not found"),
        (["run", "recipes/dfgan.json"], f"did you mean the bundled {RECIPES / 'dfgan.json'}?"),  # outside the checkout
        (["run", "dfgan"], f"did you mean the bundled {RECIPES / 'dfgan.json'}?"),
        (["run", "."], "is a folder, not a recipe file"),
        (["generate", "not_a_run", "--captions", "."], "captions file . is a folder"),
        (["generate", "not_a_run", "a red circle"], "not_a_run does not exist"),
        (["run", "--resume", "not_a_run"], "not_a_run does not exist"),
        (["run", str(RECIPES / "dfgan.json"), "--set", "nokeyvalue"], "key=value"),
        (["generate", "not_a_run", "a red circle", "-n", "0"], "'-n' / '--num'"),
        (["generate", "not_a_run", "a red circle", "--truncation", "-1"], "--truncation"),
        (["eval", "not_a_run", "--batch-size", "0"], "--batch-size"),
        (["eval", "not_a_run", "--threads", "0"], "--threads"),
        (["report", "not_a_run", "--tsne-samples", "0"], "--tsne-samples"),
        (["run", str(RECIPES / "dfgan.json"), "--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["run", "x.json"], ""),
    ],
)
def test_user_errors_exit_2_without_traceback(args: list[str], needle: str, tmp_path: Path) -> None:
    res = ganreg(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_a_full_disk_is_a_message_not_a_traceback() -> None:
    """torch wraps a failed checkpoint write in its own RuntimeError: the OSError below it names the problem."""
    import errno

    from ganreg.cli import _system_error

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "runs/r/checkpoints/.latest.pt.tmp")
        except OSError as low:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from low
    except RuntimeError as exc:
        message, fix = _system_error(exc)  # type: ignore[misc]
    assert message == "No space left on device: runs/r/checkpoints/.latest.pt.tmp" and "free some disk space" in fix
    assert _system_error(RuntimeError("a bug")) is None  # anything else keeps its traceback
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            res = subprocess.run([sys.executable, "-m", "ganreg.cli", "schema"], stdout=full, stderr=subprocess.PIPE,
                                 text=True, timeout=120)
        assert res.returncode == 2 and "No space left on device" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_output_a_terminal_cannot_show_is_escaped_not_a_crash(encoding: str, tmp_path: Path) -> None:
    """Windows with output redirected (cp1252), or a legacy locale: `list` crashed on a summary's arrow, `show` on a
    docstring's lambda, anything printing a path or caption in another script."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": encoding}
    env.pop("GANREG_NO_PLUGIN_AUTOLOAD", None)
    for args in (["list"], ["show", "dcgan_cls:wgan_gp"], ["run", "recipes/dfgan.json", "--out", str(tmp_path / "数据"),
                                                            "--set", "train.steps=true"]):
        res = subprocess.run([sys.executable, "-m", "ganreg.cli", *args], capture_output=True, cwd=RECIPES.parent, env=env,
                             timeout=300, encoding=encoding, errors="replace")
        assert "Traceback" not in res.stderr and "UnicodeEncodeError" not in res.stderr, args
        assert res.returncode == (2 if args[0] == "run" else 0), res.stderr
        if args[0] == "show":
            assert "\\u03bb" in res.stdout  # the lambda, escaped


def test_a_path_too_long_for_the_file_system_is_a_message(tmp_path: Path) -> None:
    res = ganreg("run", str(RECIPES / "dfgan.json"), "--out", str(tmp_path / ("x" * 300)), "--dry-run")
    assert res.returncode == 0  # a dry run writes nothing
    res = ganreg("run", str(RECIPES / "dfgan.json"), "--out", str(tmp_path / ("x" * 300)), "--set", "train.steps=1")
    assert res.returncode == 2 and "use a shorter path or run name" in res.stderr and "Traceback" not in res.stderr


def test_a_recipe_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a BOM; json.loads called it a syntax error."""
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + (RECIPES / "dfgan.json").read_bytes())
    res = ganreg("validate", "bom.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_a_binary_file_given_as_text_is_named(tmp_path: Path) -> None:
    (tmp_path / "data.h5").write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe\x00")
    for args in (["validate", "data.h5"], ["run", "data.h5"]):
        res = ganreg(*args, cwd=tmp_path)
        assert res.returncode == 2 and "not a text file" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_broken_plugin_does_not_take_the_cli_down(tmp_path: Path) -> None:
    """A plugin that raises on import is listed as failed; other commands work."""
    dist = tmp_path / "site" / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ganreg]\nbroken = broken_plugin_mod\n")
    (tmp_path / "site" / "broken_plugin_mod.py").write_text("raise RuntimeError('plugin exploded on import')\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    res = ganreg("plugins", "--json", env=env)
    assert res.returncode == 0, res.stderr
    rows = {p["name"]: p for p in json.loads(res.stdout)}
    assert rows["broken"]["status"] == "failed" and "plugin exploded" in rows["broken"]["error"]
    assert ganreg("list", "--json", env=env).returncode == 0
    blocked = ganreg("plugins", "--json", env={**env, "GANREG_BLOCK_PLUGINS": "broken"})
    assert {p["name"]: p for p in json.loads(blocked.stdout)}["broken"]["status"] == "blocked"
    strict = ganreg("list", env={**env, "GANREG_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and "plugin exploded" in strict.stderr


def test_error_text_is_printed_as_it_is(tmp_path: Path) -> None:
    """File names and library messages are not rich markup: "[copy]" stays, ":train:" is no emoji."""
    odd = tmp_path / "flowers [copy]" / "a:train:b.h5"
    res = ganreg("data", "info", str(odd))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "flowers [copy]/a:train:b.h5" in " ".join(res.stderr.split()).replace(" /", "/")


def test_a_plugin_name_lists_its_components() -> None:
    rows = json.loads(ganreg("list", "losses", "--json").stdout)
    assert rows and {r["plugin"] for r in rows} == {"losses"}
    res = ganreg("show", "losses")
    assert res.returncode == 2 and "'losses' is a plugin" in " ".join(res.stderr.split())
    res = ganreg("list", "losses", env={"GANREG_BLOCK_PLUGINS": "losses"})
    assert "plugin 'losses' is blocked" in " ".join(res.stderr.split())
