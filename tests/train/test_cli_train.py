"""`ganreg run` / `generate` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganreg import plugins
from ganreg.cli import cli
from ganreg.errors import UserError


def _runner(monkeypatch) -> CliRunner:  # type: ignore[no-untyped-def]
    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    return CliRunner()


def test_dry_run_prints_recipe_and_parameter_counts(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = _runner(monkeypatch).invoke(cli, ["run", str(write_recipe()), "--dry-run", "--set", "train.batch_size=4"])
    assert res.exit_code == 0, res.output
    assert '"batch_size": 4' in res.output and "generator" in res.output and "discriminator" in res.output
    assert not (tmp_path / "runs").exists()


def test_validate_and_dry_run_refuse_what_the_first_step_would(write_recipe, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch larger than the training split passed `validate` and `--dry-run`, and `run` refused it only after
    pretraining the text encoder: all three refuse it now, before anything slow."""
    recipe = str(write_recipe(**{"train.batch_size": 500}))  # the tiny recipe's split holds fewer images
    for args in (["validate", recipe], ["run", recipe, "--dry-run"]):
        res = _runner(monkeypatch).invoke(cli, args)
        assert isinstance(res.exception, UserError) and "fewer than one batch of 500" in res.exception.message, args
    res = _runner(monkeypatch).invoke(cli, ["validate", recipe, "--set", "train.batch_size=1"])
    assert isinstance(res.exception, UserError) and "BatchNorm1d needs 2 or more" in res.exception.message


def test_run_then_generate(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(monkeypatch)
    out = tmp_path / "run"
    res = runner.invoke(cli, ["run", str(write_recipe(**{"train.steps": 2})), "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "finished at step 2/2" in res.output
    caps = tmp_path / "caps.txt"
    caps.write_text("a big red circle in the center\n\na small blue star in the top left\n")
    png = tmp_path / "gen.png"
    res = runner.invoke(
        cli, ["generate", str(out), "a green square", "--captions", str(caps), "-n", "3", "-o", str(png), "--seed", "1", "--truncation", "0.8"]
    )
    assert res.exit_code == 0, res.output
    assert "lacks" not in res.output  # every word is a shapes word
    res = runner.invoke(cli, ["generate", str(out), "a green zebra square", "-n", "1", "-o", str(tmp_path / "z.png")])
    assert res.exit_code == 0 and "vocabulary lacks 'zebra'" in res.output, res.output
    from PIL import Image

    w, h = Image.open(png).size
    assert (w, h) == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)  # 3 captions x 3 images of 32 px, 2 px padding
    assert png.with_suffix(".txt").read_text().splitlines()[0] == "row 1: a green square"
    again = tmp_path / "again.png"
    runner.invoke(cli, ["generate", str(out), "a green square", "--captions", str(caps), "-n", "3", "-o", str(again), "--seed", "1", "--truncation", "0.8"])
    assert again.read_bytes() == png.read_bytes(), "a fixed seed gives the same images"
    # a file where a folder should be: a user's mistake (exit 2, named), not a FileExistsError traceback
    res = runner.invoke(cli, ["generate", str(out), "a green square", "-n", "1", "-o", str(png / "x.png")])
    assert isinstance(res.exception, UserError) and f"{png} is a file" in res.exception.message
    res = runner.invoke(cli, ["run", str(write_recipe(**{"train.steps": 2})), "--out", str(png), "--device", "cpu"])
    assert isinstance(res.exception, UserError) and f"{png} is a file" in res.exception.message
    assert again.read_bytes() == png.read_bytes()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_save_and_exit_cleanly(write_recipe, tmp_path: Path, stop: int) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM is what Slurm sends at the time limit or on preemption: it lost every step since the last checkpoint.
    Slurm, like a terminal's Ctrl-C, signals every process of the job: a data-loader worker killed by it stopped
    the run with a traceback before it saved."""
    recipe = write_recipe(**{"train.steps": 100000, "intervals.samples": 100000, "intervals.checkpoint": 100000,
                             "data.num_workers": 2})
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "GANREG_NO_PLUGIN_AUTOLOAD"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganreg.cli", "run", str(recipe), "--out", str(out), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.5)
    os.killpg(proc.pid, stop)  # the run and its loader workers, as a scheduler or a terminal signals them
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "ganreg run --resume" in stdout
    from ganreg.train.checkpoint import load_checkpoint

    step = load_checkpoint(out / "checkpoints" / "latest.pt")["step"]
    assert step >= 2
    last = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert last <= step


def test_eta_is_the_sooner_of_the_remaining_steps_and_the_time_limit() -> None:
    from ganreg.train.cli_run import eta_seconds, format_eta

    assert eta_seconds(0, 0.0, 100, 0.0, None) is None and format_eta(None) == "-"
    # 10 steps in 5 s this session: 90 steps left take 45 s
    assert eta_seconds(10, 5.0, 90, 5.0, None) == (45.0, False)
    # a 0.5-minute limit with 20 s elapsed stops it in 10 s, before the steps run out
    assert eta_seconds(10, 5.0, 90, 20.0, 0.5) == (10.0, True)
    assert eta_seconds(10, 5.0, 90, 20.0, 10.0) == (45.0, False)
    assert format_eta((3725.0, False)) == "1:02:05" and format_eta((10.0, True)) == "0:00:10 (time limit)"


def test_a_failed_start_leaves_no_empty_run_directory(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(monkeypatch)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["run", str(write_recipe()), "--set", f"generator.weights={tmp_path / 'missing.pt'}"])
    assert "generator weights not found" in str(res.exception)  # `ganreg` prints it and exits 2 (tests/core/test_cli.py)
    assert not (tmp_path / "runs").exists()  # neither the run nor the runs/ folder made for it
    res = runner.invoke(cli, ["run", str(write_recipe()), "--out", "new/deep/run", "--set", f"generator.weights={tmp_path / 'x.pt'}"])
    assert "generator weights not found" in str(res.exception) and not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()  # a folder the user made stays
    res = runner.invoke(cli, ["run", str(write_recipe()), "--out", str(mine), "--set", f"generator.weights={tmp_path / 'x.pt'}"])
    assert "generator weights not found" in str(res.exception) and mine.is_dir()
    assert not any(mine.iterdir())  # as empty as it was: not even the run's lock file is left


def flat(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def user_error(res) -> str:  # type: ignore[no-untyped-def]
    """Message and fix of the UserError a command raised (`ganreg` prints them and exits 2)."""
    assert isinstance(res.exception, UserError), res.output
    return f"{res.exception.message} fix: {res.exception.fix}"


def test_resume_settings_checkpoint_choice_and_log(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    recipe = write_recipe(**{"train.steps": 4, "intervals.checkpoint": 2, "intervals.log": 1, "data.cache_dir": "cache"})
    assert runner.invoke(cli, ["run", str(recipe), "--out", str(out), "--device", "cpu"]).exit_code == 0
    recorded = json.loads((out / "recipe.resolved.json").read_text())
    assert recorded["data"]["cache_dir"] == str(tmp_path / "cache")  # relative paths are recorded absolute
    res = runner.invoke(cli, ["run", "--resume", str(out)])
    assert res.exit_code == 0 and "already finished: step 4/4" in flat(res.output) and "train.steps=N" in flat(res.output)
    # the architecture, data and losses are the checkpoint's: refused, nothing written
    before = (out / "recipe.resolved.json").read_text()
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "generator.params.ngf=4"])
    assert "cannot change a resumed run" in user_error(res)
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=3"])
    assert "past the 3 steps asked for" in user_error(res)
    assert (out / "recipe.resolved.json").read_text() == before
    # back to step 2: the log loses steps 3-4 (retrained, not duplicated); train.steps lands in the recipe
    res = runner.invoke(cli, ["run", "--resume", str(out), "--checkpoint", "2", "--set", "train.steps=5"])
    assert res.exit_code == 0, res.output
    # set aside, and said so (rich wraps the long path anywhere)
    assert f"movedto{out / 'discarded' / 'after_step_0000002'};" in "".join(res.output.split())
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    assert json.loads((out / "recipe.resolved.json").read_text())["train"]["steps"] == 5
    res = runner.invoke(cli, ["run", str(recipe), "--checkpoint", "2"])
    assert "add --resume" in user_error(res)
    # another run's checkpoint file: refused before anything is rotated away or logged
    other = tmp_path / "other"
    shutil.copytree(out, other)
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    res = runner.invoke(cli, ["run", "--resume", str(out), "--checkpoint", str(other / "checkpoints" / "step_0000004.pt"),
                              "--set", "train.steps=9"])
    assert "is not a checkpoint of" in user_error(res) and "generator.weights=" in user_error(res)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == kept
    # the data moved (another folder or machine): a finished run records its new place for eval and generate
    shutil.move(str(tmp_path / "cache"), str(tmp_path / "moved-cache"))
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "data.cache_dir=moved-cache"])  # relative, from tmp_path
    assert res.exit_code == 0 and "already finished" in flat(res.output), res.output
    # recorded absolute, as a new run's paths are, so eval and generate find it from anywhere
    assert json.loads((out / "recipe.resolved.json").read_text())["data"]["cache_dir"] == str(tmp_path / "moved-cache")


def test_a_damaged_run_directory_is_named_not_a_traceback(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(monkeypatch)
    out = tmp_path / "run"
    assert runner.invoke(cli, ["run", str(write_recipe(**{"train.steps": 2, "intervals.checkpoint": 1})), "--out", str(out)]).exit_code == 0
    (out / "checkpoints" / "latest.pt").write_bytes(b"not a zip")
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=3"])
    assert "corrupted" in user_error(res) and "--checkpoint 2 " in user_error(res)
    res = runner.invoke(cli, ["generate", str(out), "a red circle", "--checkpoint", str(tmp_path / "run" / "recipe.resolved.json")])
    assert "that `ganreg run` wrote" in user_error(res)
    (out / "recipe.resolved.json").write_text('{"version": 1,')
    for args in (["run", "--resume", str(out)], ["generate", str(out), "a red circle"], ["eval", str(out)]):
        res = runner.invoke(cli, args)
        assert "recipe.resolved.json" in user_error(res), args


def test_recorded_paths_are_absolute_so_the_run_works_from_anywhere(make_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ganreg.train.rundir import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    recipe = make_recipe(**{"generator.weights": "start/g.pt", "data.cache_dir": "~/cache", "text_encoder.vocabulary": None})
    fixed = with_absolute_paths(recipe)
    assert fixed.generator.weights == str(tmp_path / "start" / "g.pt")
    assert fixed.data.cache_dir == str(Path("~/cache").expanduser())
    assert fixed.text_encoder.vocabulary is None and fixed.data.path is None
    assert recipe.generator.weights == "start/g.pt"  # the caller's recipe is left alone


def test_a_run_records_qualified_ids_and_generates_without_its_loss_plugins(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A plugin installed after the run must not make the run's own recipe ambiguous, and generating needs
    only the text encoder and the generator."""
    runner = _runner(monkeypatch)
    out = tmp_path / "run"
    assert runner.invoke(cli, ["run", str(write_recipe(**{"train.steps": 2})), "--out", str(out), "--device", "cpu"]).exit_code == 0
    recorded = json.loads((out / "recipe.resolved.json").read_text())
    assert recorded["generator"]["name"] == "dcgan_cls:dcgan_cls"
    assert [spec["name"] for spec in recorded["losses"]] == [
        "dcgan_cls:matching_bce", "dcgan_cls:generator_bce", "dcgan_cls:feature_matching"
    ]

    class SameNames:  # a later plugin registering the run's bare names again
        @plugins.hookimpl
        def ganreg_register(self, register) -> None:  # type: ignore[no-untyped-def]
            register("generator", "dcgan_cls", lambda params, ctx: None, summary="same bare name")
            register("loss", "generator_bce", lambda params, ctx: None, summary="same bare name")

    assert plugins.load_plugin(plugins.get_registry(), SameNames(), "later").status == "loaded"
    for bare in ("generator", "losses.1"):  # runs written before ids were recorded: run.json pins them
        node = recorded
        for key in bare.split("."):
            node = node[int(key)] if key.isdigit() else node[key]
        node["name"] = node["name"].partition(":")[2]
    (out / "recipe.resolved.json").write_text(json.dumps(recorded))
    res = runner.invoke(cli, ["generate", str(out), "a red circle", "-n", "2", "-o", str(tmp_path / "a.png")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=3"])
    assert res.exit_code == 0, res.output

    # a shapes run recorded with a data.path (made before that was refused) still generates
    recorded = json.loads((out / "recipe.resolved.json").read_text())
    recorded["data"]["path"] = str(tmp_path / "never-read")
    (out / "recipe.resolved.json").write_text(json.dumps(recorded))
    res = runner.invoke(cli, ["generate", str(out), "a red circle", "-n", "2", "-o", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output

    # the losses' plugin is gone: generating still works, resuming names what is missing
    recorded = json.loads((out / "recipe.resolved.json").read_text())
    assert recorded["generator"]["name"] == "dcgan_cls:dcgan_cls"  # the resume wrote ids again
    for spec in recorded["losses"]:
        spec["name"] = "uninstalled:" + spec["name"].partition(":")[2]
    (out / "recipe.resolved.json").write_text(json.dumps(recorded))
    res = runner.invoke(cli, ["generate", str(out), "a red circle", "-n", "2", "-o", str(tmp_path / "b.png")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=4"])
    assert "unknown loss 'uninstalled:matching_bce'" in user_error(res) and "no plugin named 'uninstalled'" in user_error(res)

    # run.json names the distribution of a plugin not installed here: the fix is one pip command
    meta = json.loads((out / "run.json").read_text())
    meta["components"]["losses.0"].update(id="gone:matching_bce", plugin="gone", distribution="ganreg-gone", version="1.2")
    (out / "run.json").write_text(json.dumps(meta))
    res = runner.invoke(cli, ["generate", str(out), "a red circle", "-n", "2", "-o", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output  # generating needs no loss
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=4"])
    assert "losses.0 gone:matching_bce from the distribution ganreg-gone 1.2, which is not installed" in user_error(res)
    assert "pip install 'ganreg-gone==1.2'" in user_error(res)


def test_messages_for_runs_that_cannot_go_on(tmp_path: Path) -> None:
    import torch

    from ganreg.interfaces import TextBatch
    from ganreg.text_encoders.precomputed import PrecomputedTextEncoder
    from ganreg.train.checkpoint import load_checkpoint

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)  # stopped by an error before its first checkpoint
    (tmp_path / "run" / "recipe.resolved.json").write_text("{}")
    try:
        load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    except UserError as exc:
        assert "holds no checkpoint" in exc.message and "ganreg run" in (exc.fix or "")
    else:
        raise AssertionError("a run without checkpoints must be a user error")
    new_text = TextBatch(tokens=torch.ones(1, 3, dtype=torch.long), lengths=torch.tensor([3]), captions=["a red flower"])
    try:
        PrecomputedTextEncoder(8)(new_text)
    except UserError as exc:
        assert "cannot embed new text" in exc.message and "lstm" in (exc.fix or "")
    else:
        raise AssertionError("new text through a precomputed encoder must be a user error")


def test_generate_uses_the_runs_truncation_and_refuses_empty_captions(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(monkeypatch)
    out = tmp_path / "run"
    recipe = write_recipe(**{"train.steps": 1, "samples.truncation": 0.3})
    assert runner.invoke(cli, ["run", str(recipe), "--out", str(out), "--device", "cpu"]).exit_code == 0

    def grid(name: str, *args: str) -> bytes:
        res = runner.invoke(cli, ["generate", str(out), "a red circle", "-n", "4", "-o", str(tmp_path / name), *args])
        assert res.exit_code == 0, res.output
        return (tmp_path / name).read_bytes()

    assert grid("default.png") == grid("same.png", "--truncation", "0.3")  # the run's own truncation
    assert grid("plain.png", "--no-truncation") != grid("default2.png")
    assert "caption 2 of the command line is empty" in user_error(runner.invoke(cli, ["generate", str(out), "a red circle", " "]))
    res = runner.invoke(cli, ["generate", str(out), "a red star [/b] zzz :train:", "-n", "1", "-o", str(tmp_path / "m.png")])
    assert res.exit_code == 0 and "'zzz'" in res.output and ":train:" in res.output, res.output  # text, not markup
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert "holds no captions" in user_error(runner.invoke(cli, ["generate", str(out), "--captions", str(blank)]))


def test_out_of_memory_is_a_setting_to_change(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from ganreg.train.trainer import Trainer

    def no_memory(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train_step", no_memory)
    res = _runner(monkeypatch).invoke(cli, ["run", str(write_recipe()), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert "out of GPU memory at step 1 (batch 8 at 32 px" in user_error(res) and "train.batch_size" in user_error(res)


def test_checkpoint_choices_that_cannot_work_are_named(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(monkeypatch)
    a, b = tmp_path / "a", tmp_path / "b"
    assert runner.invoke(cli, ["run", str(write_recipe(**{"train.steps": 2, "intervals.checkpoint": 1})), "--out", str(a)]).exit_code == 0
    wider = write_recipe(**{"train.steps": 1, "generator.params.ngf": 16})
    assert runner.invoke(cli, ["run", str(wider), "--out", str(b)]).exit_code == 0
    other = str(b / "checkpoints" / "latest.pt")
    res = runner.invoke(cli, ["generate", str(a), "a red circle", "--checkpoint", other, "-o", str(tmp_path / "x.png")])
    assert "does not fit this run's generator" in user_error(res) and "another recipe" in user_error(res)
    before = (a / "metrics.jsonl").read_text()
    res = runner.invoke(cli, ["run", "--resume", str(a), "--checkpoint", other, "--set", "train.steps=3"])
    assert "is not a checkpoint of" in user_error(res) and (a / "metrics.jsonl").read_text() == before  # nothing changed
    res = runner.invoke(cli, ["generate", str(a), "a red circle", "--checkpoint", "7"])
    assert "no step_0000007.pt" in user_error(res) and "1, 2" in user_error(res)
    res = runner.invoke(cli, ["generate", str(a), "a red circle", "--checkpoint", "best"])
    assert "eval.keep_best was not set" in user_error(res)
    res = runner.invoke(cli, ["generate", str(a), "a red circle", "--checkpoint", str(tmp_path / "nowhere" / "checkpoints" / "latest.pt")])
    assert "checkpoint not found" in user_error(res)


def test_a_misspelt_key_on_resume_is_named_as_misspelt() -> None:
    """Not "cannot change a resumed run", which sends the user looking for another way to set train.stepz."""
    from ganreg.train.rundir import check_resume_overrides

    with pytest.raises(UserError) as caught:
        check_resume_overrides(["train.stepz=8"])
    assert caught.value.message == "--set train.stepz: unknown key 'stepz'" and caught.value.fix == "did you mean 'steps'?"
    check_resume_overrides(["train.steps=8", "data.path=elsewhere", "eval.metrics=fid"])
    with pytest.raises(UserError, match="cannot change a resumed run"):
        check_resume_overrides(["train.batch_size=8"])


def test_a_run_trains_in_one_process_at_a_time(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A requeued cluster job, or a --resume in a second terminal, while the run still trains: both would append to
    metrics.jsonl and rotate away each other's checkpoints. The second is refused before it moves or writes anything."""
    from ganreg.train.runlock import LOCK_FILE, training_lock

    runner = _runner(monkeypatch)
    out = tmp_path / "run"
    recipe = write_recipe(**{"train.steps": 2, "intervals.checkpoint": 1, "intervals.log": 1})
    assert runner.invoke(cli, ["run", str(recipe), "--out", str(out), "--device", "cpu"]).exit_code == 0
    log = (out / "metrics.jsonl").read_text()
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    with training_lock(out) as problem:  # another process training it (flock: per open file, so this one counts)
        assert problem is None
        for args in (["--set", "train.steps=4"], ["--checkpoint", "1", "--set", "train.steps=4"]):
            res = runner.invoke(cli, ["run", "--resume", str(out), *args])
            assert "is being trained by another ganreg process now" in user_error(res), args
            assert f"pid {os.getpid()}" in user_error(res)
        assert (out / "metrics.jsonl").read_text() == log
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == kept  # nothing set aside
        res = runner.invoke(cli, ["run", str(recipe), "--out", str(out)])
        assert "already holds a run" in user_error(res)
    # a run killed while it wrote a checkpoint left its temporary file; the next resume removes it
    leftover = out / "checkpoints" / ".latest.pt.k1ll3d.tmp"
    leftover.write_bytes(b"\0" * 2**20)
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=3"])
    assert res.exit_code == 0, res.output
    assert "removed 1.0 MiB of temporary files that a killed run left" in flat(res.output)
    assert not leftover.exists() and (out / "checkpoints" / "latest.pt").is_file()
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert (out / LOCK_FILE).is_file()  # a dot file: the folder still holds nothing but the run's own files
    # a file system without locks (ENOLCK on some NFS mounts): said, and a temporary file is no longer known to be
    # a killed run's (another trainer may be writing it), so it stays
    import errno
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    leftover.write_bytes(b"\0" * 100)
    res = runner.invoke(cli, ["run", "--resume", str(out), "--set", "train.steps=4"])
    assert res.exit_code == 0, res.output
    assert "could not be locked (No locks available)" in flat(res.output) and leftover.exists()


def test_a_killed_process_leaves_no_stale_lock(tmp_path: Path) -> None:
    """The operating system releases the lock with the process, however it ends: no lock file to delete by hand."""
    from ganreg.train.runlock import training_lock

    code = ("import os, sys; from pathlib import Path; from ganreg.train.runlock import training_lock\n"
            "with training_lock(Path(sys.argv[1])): os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "pid" in (tmp_path / ".ganreg-run.lock").read_text()
    with training_lock(tmp_path) as problem:
        assert problem is None


def test_a_device_this_pytorch_cannot_use_is_named_before_anything_slow() -> None:
    """--device mps / xpu printed a traceback, after the text encoder had been pretrained."""
    import torch

    from ganreg.train.setup import resolve_device

    for name in ("mps", "xpu"):
        try:
            torch.empty(1, device=name)
        except (RuntimeError, AssertionError):
            with pytest.raises(UserError, match=f"device '{name}' asked for, but this PyTorch cannot use it") as err:
                resolve_device(name)
            assert err.value.fix == "use --device cpu, or auto" and len(err.value.message) < 250
        else:
            assert resolve_device(name).type == name
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="device 'meta' holds no data"):
        resolve_device("meta")


def test_runs_named_by_the_time_never_share_a_folder_and_tilde_is_home(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two jobs of an array started in the same second trained into one folder (or, with the lock, the second was
    refused); `--out ~/x` made a folder named '~' in the current one."""
    import ganreg.train.rundir as rundir

    runner = _runner(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt: "20261125-120000")  # the same second, twice
    recipe = str(write_recipe(**{"train.steps": 1, "output.dir": str(tmp_path / "runs")}))
    for _ in range(2):
        assert runner.invoke(cli, ["run", recipe, "--device", "cpu"]).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny-20261125-120000", "tiny-20261125-120000-2"]
    res = runner.invoke(cli, ["run", recipe, "--device", "cpu", "--set", "generator.weights=missing.pt"])
    assert "generator weights not found" in str(res.exception)
    assert not (tmp_path / "runs" / "tiny-20261125-120000-3").exists()  # a failed start leaves no folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runner.invoke(cli, ["run", recipe, "--device", "cpu", "--out", "~/first"]).exit_code == 0
    assert (tmp_path / "home" / "first" / "checkpoints" / "latest.pt").is_file() and not (tmp_path / "~").exists()


def test_a_log_file_gets_plain_progress_lines(write_recipe, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """rich draws its bar only on a terminal: a cluster job's log said nothing between start and end."""
    import ganreg.train.cli_run as cli_run

    monkeypatch.setattr(cli_run, "LOG_LINE_SECONDS", 0.0)  # a line at every logging step, for the test
    res = _runner(monkeypatch).invoke(cli, ["run", str(write_recipe()), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[1] for line in lines] == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    assert all(" img/s " in line and " elapsed  ETA " in line and "  D " in line and "  G " in line for line in lines)


@pytest.mark.parametrize("where", ["step", "worker"])
def test_a_run_that_crashes_with_loader_workers_exits(write_recipe, tmp_path: Path, where: str) -> None:  # type: ignore[no-untyped-def]
    """Loader workers leave a scheduler's SIGTERM to the main process, but not their parent's: a bug raised mid-run
    (in a step, or inside a worker) keeps the loader alive in its traceback, and at exit multiprocessing ends the
    workers with SIGTERM. Ignoring it hung the process forever, holding the GPU and the run's lock."""
    recipe = write_recipe(**{"train.steps": 50, "data.num_workers": 1})
    patched = ("from ganreg.train import trainer as module\nname, original = 'train_step', module.Trainer.train_step\n"
               "target = module.Trainer\n") if where == "step" else (
               "from ganreg.data import tokenizer as module\nname, original = '__call__', module.Collator.__call__\n"
               "target = module.Collator\n")
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\n" + patched +
        "calls = []\n"
        "def bug(self, *args):\n"
        "    calls.append(1)\n"
        "    if len(calls) >= 3:\n"
        "        raise RuntimeError('a plugin bug')\n"
        "    return original(self, *args)\n"
        "setattr(target, name, bug)\n"
        "from ganreg.cli import main\n"
        f"sys.argv = ['ganreg', 'run', {str(recipe)!r}, '--out', {str(tmp_path / 'run')!r}, '--device', 'cpu']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GANREG_NO_PLUGIN_AUTOLOAD"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 1 and "RuntimeError: a plugin bug" in proc.stderr, proc.stderr[-2000:]


def test_a_loader_left_alive_at_exit_lets_the_process_exit(tmp_path: Path) -> None:
    """A notebook or script that peeks at one batch and ends (or raises) leaves the workers to multiprocessing's
    exit, which ends them with SIGTERM: they must obey their parent's."""
    script = tmp_path / "peek.py"
    script.write_text(
        "import sys\n"
        "from ganreg.data import DataConfig, Vocabulary, build_dataset, make_loader\n"
        "train = build_dataset(DataConfig(source='shapes', image_size=32, num_images=48), 'train')\n"
        "loader = make_loader(train, batch_size=4, vocab=Vocabulary.build(train.all_captions(), 1), num_workers=1)\n"
        "it = iter(loader)\n"
        "print(next(it)['images'].shape, flush=True)\n"
        "if len(sys.argv) > 1:\n"
        "    raise RuntimeError('a bug after peeking')\n"
    )
    for args, code in (([], 0), (["raise"], 1)):
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == code and "torch.Size([4, 3, 32, 32])" in proc.stdout, proc.stderr[-2000:]
