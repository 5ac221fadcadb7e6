"""``ganreg eval`` on a trained run, its protocol, user statistics, the offline Inception error,
and evaluation during training (metrics.jsonl, keep-best, TensorBoard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ganreg.errors import UserError
from ganreg.metrics.evaluate import EvalOptions, evaluate_run, parse_metrics
from ganreg.metrics.training import should_evaluate

from .conftest import make_trainer

OPTIONS = {"samples": 24, "batch_size": 12}


def test_eval_writes_eval_json_with_the_protocol(tiny_run: Path, autoload: Any) -> None:
    result = evaluate_run(tiny_run, EvalOptions(**OPTIONS), device="cpu")
    saved = json.loads((tiny_run / "eval.json").read_text())
    assert saved["metrics"] == pytest.approx(result.metrics)
    # 24 samples and a few dozen real images (small on purpose): computed all the same, each weak metric warned
    # about in the record, the real side first (KID's subsets are limited by the 24 generated images: said once),
    # after the weak classifier of this tiny dataset (in the record too: the report shows it)
    assert [w.split(" ", 2)[:2] for w in saved["warnings"]] == [
        ["the", "evaluation"], ["FID", "against"], ["FID", "from"], ["KID", "from"], ["alignment", "from"]
    ]
    (record,) = (tiny_run / "evals").glob("test-step0000002-*.json")  # kept per split, step and protocol
    assert json.loads(record.read_text()) == saved
    m = saved["metrics"]
    assert {"fid", "kid", "kid_std", "is", "is_std", "align", "align_colour", "align_shape", "align_size", "align_position"} <= set(m)
    assert m["fid"] >= 0 and 1.0 <= m["is"] <= 48 and all(0 <= m[k] <= 1 for k in m if k.startswith("align"))
    p = saved["protocol"]
    assert p["generated_samples"] == 24 and p["split"] == "test" and p["image_size"] == 32 and p["truncation"] is None
    assert p["run"]["step"] == 2 and p["run"]["generator_weights"] == "ema"
    ext = p["extractor"]
    assert ext["name"] == "classifier" and len(ext["sha256"]) == 64 and "bilinear" in ext["resize"]
    assert p["reference"]["real_samples"] > 10
    ids = {k: v["id"] for k, v in saved["metric_protocol"].items()}
    real = p["reference"]["real_samples"]
    assert ids["fid"] == f"fid24-classifier:{ext['sha256'][:8]}-test-32px-real{real}:{p['data']['data_key'][:8]}"
    assert saved["chance"]["align_size"] == pytest.approx(0.5, abs=0.25)
    # the reference statistics are cached: a second evaluation reads them back and agrees
    again = evaluate_run(tiny_run, EvalOptions(**OPTIONS), device="cpu", write=False)
    assert again.protocol["reference"]["source"] == "cache"
    assert again.metrics["fid"] == pytest.approx(result.metrics["fid"], rel=1e-6)


def test_user_reference_statistics(tiny_run: Path, autoload: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = evaluate_run(tiny_run, EvalOptions(metrics=["fid"], **OPTIONS), device="cpu", write=False)
    with np.load(base.protocol["reference"]["path"]) as cached:
        mu, sigma = cached["mu"], cached["sigma"]
    npz = tmp_path / "dfgan_style.npz"
    np.savez(npz, mu=mu, sigma=sigma)  # DF-GAN's layout: no sample count, no features
    user = evaluate_run(tiny_run, EvalOptions(metrics=["fid"], ref_stats=npz, **OPTIONS), device="cpu", write=False)
    assert user.metrics["fid"] == pytest.approx(base.metrics["fid"], rel=1e-6)
    assert user.protocol["reference"]["source"] == "user file" and user.metric_protocol["fid"]["id"].endswith(
        f"ref:{user.protocol['reference']['sha256'][:8]}"
    )
    with monkeypatch.context() as m, pytest.raises(UserError, match="KID needs the real features"):
        m.setattr("ganreg.metrics.evaluate.load_classifier", lambda *a, **k: pytest.fail("said after loading a classifier"))
        evaluate_run(tiny_run, EvalOptions(metrics=["fid", "kid", "align"], ref_stats=npz, **OPTIONS), device="cpu", write=False)
    np.savez(npz, mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(UserError, match="2048-d statistics"):
        evaluate_run(tiny_run, EvalOptions(metrics=["fid"], ref_stats=npz, **OPTIONS), device="cpu", write=False)
    # a file ganreg wrote names its extractor: its own cache file is taken, another network's statistics refused
    cached_path = Path(base.protocol["reference"]["path"])
    own = evaluate_run(tiny_run, EvalOptions(metrics=["fid"], ref_stats=cached_path, **OPTIONS), device="cpu", write=False)
    assert own.metrics["fid"] == pytest.approx(base.metrics["fid"], rel=1e-6)
    with np.load(cached_path) as cached:
        arrays = {k: cached[k] for k in cached.files}
    meta = json.loads(str(arrays["meta"]))
    meta["extractor"] = {**meta["extractor"], "name": "inception", "sha256": "f" * 64}
    np.savez(tmp_path / "other.npz", **{**arrays, "meta": np.asarray(json.dumps(meta))})
    with pytest.raises(UserError, match="another extractor") as exc:
        evaluate_run(tiny_run, EvalOptions(metrics=["fid"], ref_stats=tmp_path / "other.npz", **OPTIONS), device="cpu", write=False)
    assert "--extractor inception" in (exc.value.fix or "")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(UserError, match="cannot read"):
        evaluate_run(tiny_run, EvalOptions(metrics=["fid"], ref_stats=tmp_path / "bad.npz", **OPTIONS), device="cpu", write=False)


def test_unknown_metric_names_the_closest() -> None:
    with pytest.raises(UserError) as exc:
        parse_metrics("fid,algn")
    assert "align" in (exc.value.fix or "")


def test_inception_offline_says_where_to_put_the_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("torch_fidelity")  # without it the message says to install it (the optional extra)
    from ganreg.data.config import DataConfig
    from ganreg.metrics import features

    def offline(*args: Any, **kwargs: Any) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(UserError) as exc:
        features.build_extractor("inception", cfg)
    assert str(tmp_path / "cache" / "weights" / features.INCEPTION_FILE) in (exc.value.fix or "")
    assert "--extractor classifier" in (exc.value.fix or "")


def test_inception_extractor_wiring_with_stand_in_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Shapes and hashing of the Inception path, with random weights standing in for the real file."""
    pytest.importorskip("torch_fidelity")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ganreg.data.config import DataConfig
    from ganreg.metrics import features

    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {})
    blank = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    weights = tmp_path / "cache" / "weights" / features.INCEPTION_FILE
    weights.parent.mkdir(parents=True)
    torch.save(blank.state_dict(), weights)
    ext = features.build_extractor("inception", DataConfig(cache_dir=str(tmp_path / "cache")))
    with torch.no_grad():
        f, logits = ext.features_and_logits(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert f.shape == (2, 2048) and logits is not None and logits.shape == (2, 1008)
    assert ext.protocol()["sha256"] == features.sha256_file(weights) and ext.protocol()["input_size"] == 299
    # resized as torch-fidelity resizes (TF1-style bilinear), not with torchmetrics' default antialiasing: the
    # same features as torch-fidelity's own network, on the same weights, from 64-px images
    from ganreg.metrics.classifier import to_uint8

    fidelity = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=str(weights)).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours, _ = ext.features_and_logits(images)
        theirs, _ = fidelity(to_uint8(images))
    theirs = theirs.reshape(2, -1)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()  # random weights: features near 1e-8


def test_should_evaluate_at_epoch_boundaries() -> None:
    class R:
        class eval:  # noqa: N801
            every_epochs = 2

    assert [s for s in range(1, 13) if should_evaluate(R, s, 3)] == [6, 12]
    R.eval.every_epochs = None  # type: ignore[assignment]
    assert not should_evaluate(R, 6, 3)


def test_evaluate_during_training_logs_keeps_best_and_leaves_rng_alone(registry: Any, tmp_path: Path, eval_cache: Path) -> None:
    from ganreg.metrics.evaluate import evaluate_during_training
    from ganreg.train.checkpoint import load_checkpoint

    tensorboard = True
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        tensorboard = False
    trainer = make_trainer(registry, tmp_path / "run", eval_cache, **{"eval.tensorboard": tensorboard})
    trainer.fit(stop_after=1)
    state = torch.get_rng_state()
    values = evaluate_during_training(trainer, log=lambda msg: None)
    assert torch.equal(state, torch.get_rng_state())
    assert {"eval/fid", "eval/kid", "eval/is", "eval/align", "eval/align_colour"} <= set(values)
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and rows[-1]["eval/fid"] == pytest.approx(values["eval/fid"])
    during = json.loads((trainer.run_dir / "eval_during_training.json").read_text())
    assert any(w.startswith("FID from") for w in during["warnings"])  # a few samples: said with the numbers
    from ganreg.report.html import build_report

    page = build_report(trainer.run_dir, tmp_path / "r.html", False).read_text()
    assert f"fid: {during['metric_protocol']['fid']['id']}" in page and "FID from" in page
    best = json.loads((trainer.run_dir / "best.json").read_text())
    assert best["metric"] == "fid" and best["step"] == 1 and best["mode"] == "min"
    assert load_checkpoint(trainer.run_dir / "checkpoints" / "best.pt")["step"] == 1
    # a worse value later keeps the old best; a better one replaces it
    from ganreg.metrics.training import keep_best

    trainer.step = 2
    assert not keep_best(trainer, "fid", {"fid": best["value"] + 1}, best["protocol"])
    assert not keep_best(trainer, "fid", {"fid": float("nan")}, best["protocol"])  # a diverged G is never the best
    assert keep_best(trainer, "fid", {"fid": best["value"] - 1e-3}, best["protocol"])
    assert json.loads((trainer.run_dir / "best.json").read_text())["step"] == 2
    said: list[str] = []  # a worse value under another protocol (a resume with other eval.samples) is no comparison
    trainer.step = 3
    assert keep_best(trainer, "fid", {"fid": best["value"] + 50}, "fid1k-" + best["protocol"], said.append)
    assert "not comparable, best tracking starts again" in said[0]
    # the old best is set aside, not overwritten (a resumed run whose protocol id changed kept only the new one)
    aside = trainer.run_dir / "discarded" / "best_until_step_0000003"
    assert json.loads((aside / "best.json").read_text())["step"] == 2
    assert load_checkpoint(aside / "checkpoints" / "best.pt")["step"] == 2
    assert load_checkpoint(trainer.run_dir / "checkpoints" / "best.pt")["step"] == 3
    if tensorboard:
        assert list((trainer.run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_keep_best_must_name_a_computed_metric(registry: Any, tmp_path: Path, eval_cache: Path) -> None:
    # the trainer checks the eval section when it is built, before any training
    with pytest.raises(UserError, match="keep_best"):
        make_trainer(registry, tmp_path / "run", eval_cache, **{"eval.keep_best": "is", "eval.metrics": ["fid"]})


def test_tensorboard_missing_is_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    from ganreg.metrics.tensorboard import TensorBoardLogger

    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(UserError) as exc:
        TensorBoardLogger(tmp_path / "tb")
    assert "pip install tensorboard" in (exc.value.fix or "")


def test_cli_eval_prints_the_table(tiny_run: Path, autoload: Any) -> None:
    from click.testing import CliRunner

    from ganreg.cli import cli

    result = CliRunner().invoke(cli, ["eval", str(tiny_run), "--samples", "20", "--metrics", "fid,align", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "fid20-classifier:" in result.output and "align_colour" in result.output and "sha256" in result.output
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert "warning: FID from 20 images" in flat and "use --samples 2000 or more" in flat and "±22 points" in flat
    bad = CliRunner().invoke(cli, ["eval", str(tiny_run), "--metrics", "fdi"])
    assert isinstance(bad.exception, UserError) and bad.exception.exit_code == 2


def test_torchvision_inception_follows_dfgan_fid_preprocessing(tmp_path: Path) -> None:
    """DF-GAN's FID network: [-1, 1] -> [0, 1] -> bilinear 299 -> [-1, 1] -> InceptionV3 blocks
    (no transform_input) -> global average pool, written out block by block as the early pytorch-fid
    wrapper does; random weights stand in for the ImageNet file (same state-dict layout)."""
    import torch.nn.functional as F
    from torchvision.models import Inception3

    from ganreg.cli_eval import EXTRACTOR_CHOICES
    from ganreg.data.config import DataConfig
    from ganreg.metrics import features

    assert EXTRACTOR_CHOICES == features.EXTRACTORS
    torch.manual_seed(0)
    stand_in = Inception3(aux_logits=True, transform_input=False, init_weights=True).eval()
    weights = tmp_path / "cache" / "weights" / features.TORCHVISION_INCEPTION_FILE
    weights.parent.mkdir(parents=True)
    torch.save(stand_in.state_dict(), weights)
    ext = features.build_extractor("inception-torchvision", DataConfig(cache_dir=str(tmp_path / "cache")), download=False)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        got, logits = ext.features_and_logits(images)
        x = F.interpolate((images + 1) / 2, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = getattr(stand_in, name)(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = stand_in.Conv2d_4a_3x3(stand_in.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(stand_in, name)(x)
        expected = F.adaptive_avg_pool2d(x, 1).flatten(1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, stand_in.fc(expected), rtol=1e-4, atol=1e-5)
    assert ext.protocol()["sha256"] == features.sha256_file(weights) and ext.protocol()["name"] == "inception-torchvision"
    weights.write_bytes(b"truncated download")
    with pytest.raises(UserError, match="not torchvision's InceptionV3"):
        features.build_extractor("inception-torchvision", DataConfig(cache_dir=str(tmp_path / "cache")), download=False)


def test_weak_classifier_warning_names_the_fix_for_the_data_source() -> None:
    from ganreg.metrics.evaluate import weak_classifier_warning

    def protocol(acc: float, source: str) -> dict[str, Any]:
        return {"alignment_classifier": {"heldout_accuracy": {"class": acc}}, "data": {"source": source}}

    assert weak_classifier_warning(protocol(0.95, "shapes")) is None
    assert weak_classifier_warning({"alignment_classifier": None}) is None  # no classifier (inception features)
    shapes = weak_classifier_warning(protocol(0.0, "shapes"))
    assert shapes is not None and "0%" in shapes and "data.num_images" in shapes
    hdf5 = weak_classifier_warning(protocol(0.4, "hdf5"))
    assert hdf5 is not None and "40%" in hdf5 and "data.num_images" not in hdf5


def test_cli_eval_uses_the_runs_truncation_and_names_the_weights_it_loaded(tiny_run: Path, autoload: Any, tmp_path: Path) -> None:
    """`ganreg eval` scores under the protocol of the run's own grids and best.json unless told otherwise, and
    says "raw" when a run kept no EMA weights (it used to say "ema" whenever --no-ema was not given)."""
    import shutil

    import torch
    from click.testing import CliRunner

    from ganreg.cli import cli

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    recipe = json.loads((run / "recipe.resolved.json").read_text())
    recipe["samples"]["truncation"] = 0.7
    (run / "recipe.resolved.json").write_text(json.dumps(recipe))
    latest = run / "checkpoints" / "latest.pt"
    state = torch.load(latest, weights_only=True)
    del state["ema"]
    torch.save(state, latest)

    def protocol(*args: str) -> dict:
        res = CliRunner().invoke(cli, ["eval", str(run), "--samples", "12", "--metrics", "diversity", "--device", "cpu", "--json", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)["protocol"]

    assert protocol()["truncation"] == 0.7
    assert protocol("--truncation", "0.5")["truncation"] == 0.5
    plain = protocol("--no-truncation")
    assert plain["truncation"] is None and plain["run"]["generator_weights"] == "raw"
    both = CliRunner().invoke(cli, ["eval", str(run), "--truncation", "0.5", "--no-truncation"])
    assert isinstance(both.exception, UserError)
    # diversity alone: its own images are counted, not --samples (it said "generated: 12 images")
    res = CliRunner().invoke(cli, ["eval", str(run), "--samples", "12", "--metrics", "diversity", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "generated: 12" not in said and "diversity: 512 images generated from 64 'test' captions, 8 each" in said


def test_small_samples_are_warned_about_with_the_count_that_is_enough() -> None:
    from ganreg.metrics.evaluate import sample_size_warnings

    def said(metrics: list[str], n: int, dim: int | None = 128) -> str:
        return " | ".join(sample_size_warnings(metrics, n, dim))

    assert "singular covariance" in said(["fid"], 20) and "--samples 2000" in said(["fid"], 20)
    assert "inflated" in said(["fid"], 500) and "singular" not in said(["fid"], 500)
    assert "--samples 4096" in said(["fid"], 3000, 2048)  # twice Inception's 2048 dimensions
    assert said(["fid"], 2000) == "" and said(["fid"], 4096, 2048) == ""
    assert "subsets of 999" in said(["kid"], 999) and said(["kid"], 1000) == ""
    assert "±20 points" in said(["align"], 24) and said(["align"], 1000) == ""
    assert said(["is", "diversity"], 2) == ""  # only the metrics asked for
    # the real side: Oxford-102's 1155 test images against Inception's 2048 dimensions
    real = " | ".join(sample_size_warnings(["fid", "kid"], 5000, 2048, real_samples=1155))
    assert "1155 real images of 2048-d features rests on a singular real covariance" in real
    assert "subsets hold 1155 images" not in real  # 1155 >= KID's subset size
    assert "is inflated" in " | ".join(sample_size_warnings(["fid"], 5000, 2048, real_samples=3000))
    assert "subsets hold 999 images" in " | ".join(sample_size_warnings(["kid"], 5000, 2048, real_samples=999))
    # fewer generated than real images, both under 1000: the subsets hold the generated count, said by that warning
    assert [w.split(" ", 2)[:2] for w in sample_size_warnings(["kid"], 500, 2048, real_samples=999)] == [["KID", "from"]]
    assert sample_size_warnings(["fid", "kid"], 5000, 2048, real_samples=4096) == []


def test_eval_refuses_a_checkpoint_of_another_run(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ganreg eval RUN --checkpoint OTHER/checkpoints/...` used to file OTHER's numbers in RUN's evals/ as RUN's
    own step; it is refused before anything is loaded, with the command that evaluates it as its own run."""
    import shutil

    from ganreg.metrics.evaluate import resolve_checkpoint

    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval.json", "evals", "report"))
    monkeypatch.setattr("ganreg.generate.load_run", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(UserError) as exc:
        evaluate_run(a, EvalOptions(**OPTIONS), str(b / "checkpoints" / "step_0000002.pt"), device="cpu")
    assert f"checkpoint of the run {b}, not of {a}" in exc.value.message
    assert exc.value.fix == f"evaluate it in its own run: ganreg eval {b} --checkpoint 2"
    with pytest.raises(UserError) as exc:
        resolve_checkpoint(a, str(b / "checkpoints" / "latest.pt"))
    assert exc.value.fix is not None and exc.value.fix.endswith("--checkpoint latest")
    loose = tmp_path / "saved.pt"
    shutil.copy(a / "checkpoints" / "latest.pt", loose)
    with pytest.raises(UserError) as exc:
        resolve_checkpoint(a, str(loose))
    assert f"is not in {a}" in exc.value.message and f"put it back in {a}/checkpoints/" in (exc.value.fix or "")
    assert not (a / "evals").exists() and not (a / "eval.json").exists()
    # the run's own files are taken, by any spelling of their path
    own = a / "checkpoints" / "step_0000002.pt"
    assert resolve_checkpoint(a, str(own)) == own
    assert resolve_checkpoint(a, str(tmp_path / "b" / ".." / "a" / "checkpoints" / "latest.pt")).name == "latest.pt"
    # a run whose checkpoints/ is a symlink to scratch storage is still its own, by path or by name
    scratch = tmp_path / "scratch"
    shutil.move(str(a / "checkpoints"), scratch)
    (a / "checkpoints").symlink_to(scratch, target_is_directory=True)
    assert resolve_checkpoint(a, str(a / "checkpoints" / "step_0000002.pt")) == a / "checkpoints" / "step_0000002.pt"
    assert resolve_checkpoint(a, None) == a / "checkpoints" / "latest.pt"


def test_a_damaged_recipe_is_worded_alike_by_eval_generate_report_and_compare(tiny_run: Path, tmp_path: Path, autoload: Any) -> None:
    import shutil

    from click.testing import CliRunner

    from ganreg.cli import cli

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("report"))
    commands = (["eval", str(run)], ["compare", str(run), str(tiny_run)], ["report", str(run)], ["generate", str(run), "a red circle"])
    for content, reason in (('{"version": 1,', "not valid JSON: Expecting property name"), ("[1, 2]", "not a JSON object")):
        (run / "recipe.resolved.json").write_text(content)
        errors = []
        for args in commands:
            res = CliRunner().invoke(cli, args)
            assert isinstance(res.exception, UserError) and res.exception.exit_code == 2, (args, res.output)
            errors.append(str(res.exception))
        assert len(set(errors)) == 1, errors  # one message, whichever command met the file
        assert errors[0].startswith(f"{run / 'recipe.resolved.json'} is damaged ({reason}") and "restore the file" in errors[0]


def test_generated_images_do_not_depend_on_the_batch_size(tiny_run: Path, autoload: Any) -> None:
    """Truncation resamples out-of-range noise: drawn batch by batch, the samples (and every number) shifted
    with ``--batch-size``. All samples' noise is drawn at once."""
    from ganreg.data import Collator, build_dataset
    from ganreg.generate import load_run
    from ganreg.metrics.samples import generated_batches

    run = load_run(tiny_run, device="cpu")
    dataset = build_dataset(run.recipe.data, "test")
    collator = Collator(run.vocab, run.recipe.data.max_words)

    def images(batch_size: int) -> torch.Tensor:
        return torch.cat([b.images for b in generated_batches(
            run.nets.generator, run.nets.text_encoder, dataset, collator, 20, torch.device("cpu"), seed=3,
            truncation=0.5, batch_size=batch_size,
        )])

    whole = images(20)
    assert whole.shape[0] == 20
    torch.testing.assert_close(images(7), whole, rtol=0, atol=1e-6)
