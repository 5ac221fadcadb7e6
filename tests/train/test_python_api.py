"""ganreg from a notebook: `ganreg.run`, `load_run`, `evaluate_run`, `read_metrics` give what the CLI gives, with
the CLI's defaults (generating and evaluating from Python used plain noise where the CLI used the run's truncation)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganreg
from ganreg import plugins
from ganreg.cli import cli
from ganreg.errors import RecipeError, UserError
from ganreg.train.sampling import save_grid

from .conftest import tiny_recipe


@pytest.fixture
def autoloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's registry with every installed plugin, as a user's session has it."""
    plugins.reset_registry()
    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture
def trained(autoloaded: None, tmp_path: Path) -> Path:
    recipe = tiny_recipe(**{"samples.truncation": 0.5})
    outcome = ganreg.run(recipe, overrides=["train.steps=2"], out=tmp_path / "run", device="cpu", quiet=True)
    assert (outcome.status, outcome.step, outcome.exit_code) == ("finished", 2, 0)
    assert recipe["train"]["steps"] == 4  # the caller's dict is left as it was
    return Path(outcome.run_dir)  # type: ignore[arg-type]


def test_a_notebook_trains_generates_and_reads_as_the_cli_does(trained: Path, tmp_path: Path) -> None:
    run = ganreg.load_run(trained, device="cpu")
    assert repr(run) == "TrainedRun('tiny', step 2, ema generator weights, 32 px, on cpu)"
    captions = ["a big red circle in the center", "a small blue star in the top left"]
    images = run.generate(captions, per_caption=3, seed=1)
    assert images.shape == (6, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, run.generate(captions, 3, seed=1, truncation=0.5))  # the run's own truncation
    assert not torch.equal(images, run.generate(captions, 3, seed=1, truncation=None))
    # `ganreg generate` with no noise options draws the same noise, and says so in its record
    res = CliRunner().invoke(cli, ["generate", str(trained), *captions, "-n", "3", "--seed", "1", "-o", str(tmp_path / "g.png"),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["truncation"] == 0.5 and record["seed"] == 1
    save_grid(images, tmp_path / "api.png", nrow=3)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "api.png")), np.asarray(Image.open(tmp_path / "g.png")))
    # walking from one caption to the other: blended sentence vectors, the same noise
    ends = run.sentences(captions)
    walk = run.images(torch.stack([torch.lerp(ends[0], ends[1], t) for t in (0.0, 0.5, 1.0)]), run.noise(1, seed=1))
    torch.testing.assert_close(walk[[0, 2]], images[[0, 3]], atol=1e-3, rtol=0)  # the ends: the captions' own images (another batch size)
    with pytest.raises(TypeError, match="not one string"):  # it drew one image per letter
        run.generate("a big red circle", per_caption=2)
    rows = ganreg.read_metrics(str(trained))  # the run directory, as a str
    assert [r["step"] for r in rows] == [1, 2] and "d/total" in rows[0]
    assert ganreg.read_metrics(trained / "metrics.jsonl") == rows
    with pytest.raises(UserError, match="not found"):
        ganreg.read_metrics(tmp_path / "no-such-run")


def test_evaluate_run_scores_under_the_runs_truncation_as_ganreg_eval_does(trained: Path) -> None:
    options = dict(metrics=["diversity"], samples=8, batch_size=8)
    result = ganreg.evaluate_run(trained, ganreg.EvalOptions(**options), device="cpu", write=False)
    assert result.protocol["truncation"] == 0.5
    res = CliRunner().invoke(cli, ["eval", str(trained), "--metrics", "diversity", "--samples", "8", "--batch-size", "8",
                                   "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["metrics"] == result.metrics
    plain = ganreg.evaluate_run(trained, ganreg.EvalOptions(truncation=None, **options), device="cpu", write=False)
    assert plain.protocol["truncation"] is None and plain.metrics != result.metrics


def test_mistakes_raise_the_clis_messages_and_resume_continues(trained: Path) -> None:
    with pytest.raises(RecipeError, match="train.steps: true is not a number"):
        ganreg.run(tiny_recipe(**{"train.steps": True}), quiet=True)
    with pytest.raises(UserError, match="cannot name a 'base' recipe"):  # relative to which file?
        ganreg.run({"base": "dfgan.json", "train": {"steps": 2}}, quiet=True)
    with pytest.raises(UserError, match="already holds a run"):
        ganreg.run(tiny_recipe(), out=trained, quiet=True)
    outcome = ganreg.run(resume=trained, overrides=["train.steps=3"], quiet=True)
    assert (outcome.status, outcome.step, outcome.run_dir) == ("finished", 3, trained)


def test_import_ganreg_stays_light() -> None:
    """The API is imported on first use: `import ganreg` (and `ganreg --help`) must not pay for torch."""
    code = "import sys, ganreg; print('torch' in sys.modules, sorted(ganreg.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith("False ") and "'load_run'" in out and "'run'" in out


def test_a_plugin_tests_trainer_makes_a_run_that_loads(autoloaded: None, tmp_path: Path) -> None:
    """`ganreg.testing.trainer_for` wrote no recorded recipe, run.json or vocabulary: its run could not be loaded."""
    from ganreg.testing import trainer_for

    trainer = trainer_for(tiny_recipe(), tmp_path / "run")
    trainer.train_step()
    trainer.save()
    run = ganreg.load_run(tmp_path / "run", device="cpu")
    assert run.step == 1 and run.generate(["a big red circle in the center"], 2).shape == (2, 3, 32, 32)


def test_runs_recorded_with_true_for_a_number_still_load_and_resume(trained: Path) -> None:
    """Runs trained before true / false were refused as numbers trained with 1 / 0, and must still load; only the new
    values of a resume are checked."""
    recorded = json.loads((trained / "recipe.resolved.json").read_text())
    recorded["losses"][0]["params"]["wrong_weight"] = True  # pydantic read it as 1.0 then
    recorded["train"]["ema_decay"] = False
    (trained / "recipe.resolved.json").write_text(json.dumps(recorded))
    assert ganreg.load_run(trained, device="cpu").recipe.train.ema_decay == 0.0
    with pytest.raises(RecipeError, match="train.steps: true is not a number"):
        ganreg.run(resume=trained, overrides=["train.steps=true"], quiet=True)
    assert ganreg.run(resume=trained, overrides=["train.steps=3"], quiet=True).step == 3
