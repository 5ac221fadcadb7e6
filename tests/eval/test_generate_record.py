"""``ganreg generate`` writes beside its grid how it was made, so that the images can be made again."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ganreg.cli import cli
from ganreg.errors import UserError


def _generate(args: list[str]) -> None:
    res = CliRunner().invoke(cli, ["generate", *args])
    assert res.exit_code == 0, res.output


def test_generate_records_checkpoint_seed_truncation_and_the_command(tiny_run: Path, autoload: Any, tmp_path: Path) -> None:
    png = tmp_path / "grid.png"
    _generate([str(tiny_run), "a red circle", "a big blue star", "-n", "2", "-o", str(png), "--seed", "5",
               "--truncation", "0.6", "--device", "cpu"])
    assert png.with_suffix(".txt").read_text().splitlines() == ["row 1: a red circle", "row 2: a big blue star"]  # as before
    made = json.loads(png.with_suffix(".json").read_text())
    assert made["checkpoint"] == {"path": str((tiny_run / "checkpoints" / "latest.pt").resolve()), "step": 2, "generator_weights": "ema"}
    assert made["seed"] == 5 and made["truncation"] == 0.6 and made["captions"] == ["a red circle", "a big blue star"]
    assert made["noise"]["z_dim"] == 8 and made["noise"]["count"] == 2 and made["device"] == "cpu"
    command = shlex.split(made["command"])
    # latest.pt moves on as a run goes on: the command names the step, whose file the run keeps
    assert command[command.index("--checkpoint") + 1] == "2" and "--no-ema" not in command
    first = png.read_bytes()
    png.unlink()
    _generate(command[2:])  # the recorded command makes the same image
    assert png.read_bytes() == first

    raw = tmp_path / "raw.png"
    _generate([str(tiny_run), "a red circle", "-n", "3", "-o", str(raw), "--no-ema", "--no-truncation", "--device", "cpu"])
    made = json.loads(raw.with_suffix(".json").read_text())
    assert made["checkpoint"]["generator_weights"] == "raw" and made["truncation"] is None and made["seed"] == 0
    command = shlex.split(made["command"])
    assert "--no-ema" in command and "--no-truncation" in command
    first = raw.read_bytes()
    raw.unlink()
    _generate(command[2:])
    assert raw.read_bytes() == first


def test_generate_writes_the_format_its_output_name_says(tiny_run: Path, autoload: Any, tmp_path: Path) -> None:
    from PIL import Image

    for name, fmt in (("grid.jpg", "JPEG"), ("grid.JPEG", "JPEG"), ("grid.png", "PNG")):
        _generate([str(tiny_run), "a red circle", "-n", "2", "-o", str(tmp_path / name), "--device", "cpu"])
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt, name


def test_generate_never_overwrites_a_file_it_did_not_write(tiny_run: Path, autoload: Any, tmp_path: Path) -> None:
    """``-o recipes/dfgan.png`` must not replace ``recipes/dfgan.json``: a sidecar name taken by another file is
    refused before anything is generated; generate's own sidecars are rewritten."""
    for name, content in (("mine.json", '{"version": 1, "name": "a recipe"}\n'), ("notes.txt", "my notes\n")):
        (tmp_path / name).write_text(content)
        out = tmp_path / name.replace(".json", ".png").replace(".txt", ".png")
        res = CliRunner().invoke(cli, ["generate", str(tiny_run), "a red circle", "-o", str(out)])
        assert isinstance(res.exception, UserError) and "was not written by ganreg generate" in res.exception.message
        assert (tmp_path / name).read_text() == content and not out.exists()
    again = tmp_path / "again.png"
    for _ in range(2):
        _generate([str(tiny_run), "a red circle", "-o", str(again)])


def test_the_recorded_command_survives_a_caption_that_starts_with_a_dash(tiny_run: Path, autoload: Any, tmp_path: Path) -> None:
    captions = tmp_path / "captions.txt"
    captions.write_text("-a red circle\n")
    png = tmp_path / "dash.png"
    _generate([str(tiny_run), "--captions", str(captions), "-o", str(png)])
    made = json.loads(png.with_suffix(".json").read_text())
    assert made["captions"] == ["-a red circle"]
    first = png.read_bytes()
    png.unlink()
    _generate(shlex.split(made["command"])[2:])
    assert png.read_bytes() == first
