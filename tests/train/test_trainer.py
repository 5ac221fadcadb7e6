"""End-to-end training on the CPU: artefacts, exact resume, safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganreg.errors import TrainingDiverged, UserError
from ganreg.train.checkpoint import load_checkpoint
from ganreg.train.trainer import Trainer, start_or_resume


def losses(run_dir: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith(("d/", "g/")) or k == "step"} for r in rows]


def test_two_step_run_writes_every_artefact(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    recipe = make_recipe(**{"train.steps": 2})
    trainer = start_or_resume(recipe, registry, run, "cpu", resume=False)
    assert trainer.fit() == "finished"
    for name in ("recipe.resolved.json", "run.json", "vocab.json", "metrics.jsonl", "loss_curves.png", "params.json", "params.md"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "run.json").read_text())
    assert meta["components"]["generator"]["id"] == "dcgan_cls:dcgan_cls"
    assert meta["plugins"]["dcgan_cls"]["version"] == "0.1.0"
    (session,) = meta["sessions"]  # what "auto" resolved to: the recipe alone cannot tell a bf16 run from an fp32 one
    assert session["from_step"] == 0 and session["device"] == "cpu" and session["amp"] in ("off", "bfloat16")
    assert (run / "checkpoints" / "latest.pt").is_file() and (run / "checkpoints" / "step_0000002.pt").is_file()
    assert (run / "samples" / "step_0000000.png").is_file() and (run / "samples" / "step_0000002.png").is_file()
    captions = (run / "samples" / "step_0000002.txt").read_text().splitlines()
    assert [c.split(") ")[0] for c in captions] == ["row 1: (training", "row 2: (training", "row 3: (held out", "row 4: (held out"]
    rows = losses(run)
    assert [r["step"] for r in rows] == [1, 2]
    assert {"d/matching_bce", "g/generator_bce", "g/feature_matching", "d/total", "g/total"} <= set(rows[0])
    params = {r["network"]: r for r in json.loads((run / "params.json").read_text())}
    assert params["generator"]["total"] == sum(p.numel() for p in trainer.nets.generator.parameters())
    # the resolved recipe re-creates the run
    again = json.loads((run / "recipe.resolved.json").read_text())
    assert again["train"]["steps"] == 2 and again["generator"]["params"]["ngf"] == 8


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, CUDA])])
def test_kill_and_resume_gives_identical_losses(tmp_path: Path, registry, make_recipe, device: str) -> None:  # type: ignore[no-untyped-def]
    """On CUDA too: the checkpoint's random states must reach torch as CPU tensors."""
    recipe = make_recipe(**{"train.steps": 4})
    straight = tmp_path / "straight"
    start_or_resume(recipe, registry, straight, device, resume=False).fit()

    broken = tmp_path / "broken"
    first = start_or_resume(recipe, registry, broken, device, resume=False)
    assert first.fit(stop_after=2) == "interrupted"
    assert load_checkpoint(broken / "checkpoints" / "latest.pt")["step"] == 2
    resumed = start_or_resume(recipe, registry, broken, device, resume=True)
    assert resumed.step == 2
    assert resumed.fit() == "finished"
    assert losses(straight) == losses(broken)
    (broken / "vocab.json").unlink()  # deleted by hand: a resume writes it again, or generate and eval cannot read the run
    assert start_or_resume(recipe, registry, broken, device, resume=True).fit() == "finished"  # trains nothing
    assert (broken / "vocab.json").read_text() == (straight / "vocab.json").read_text()
    sessions = json.loads((broken / "run.json").read_text())["sessions"]
    assert [x["from_step"] for x in sessions] == [0, 2] and {x["device"].split(":")[0] for x in sessions} == {device}
    a = torch.load(straight / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(broken / "checkpoints" / "latest.pt", weights_only=True)
    for k, v in a["ema"].items():
        torch.testing.assert_close(v, b["ema"][k], rtol=0, atol=0)


def test_corrupted_latest_checkpoint_is_reported(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    recipe = make_recipe(**{"train.steps": 2})
    start_or_resume(recipe, registry, run, "cpu", resume=False).fit()
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    with pytest.raises(UserError) as exc:
        start_or_resume(recipe, registry, run, "cpu", resume=True)
    assert "corrupted" in exc.value.message and "latest.pt" in exc.value.message
    assert "step_0000002.pt" in (exc.value.fix or "")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    recipe = make_recipe(**{"train.steps": 4})
    trainer = start_or_resume(recipe, registry, run, "cpu", resume=False)
    trainer.fit(stop_after=2)
    good = (run / "checkpoints" / "latest.pt").read_bytes()
    trainer = start_or_resume(recipe, registry, run, "cpu", resume=True)
    with torch.no_grad():
        for p in trainer.nets.discriminator.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingDiverged) as exc:
        trainer.fit()
    assert "step 3" in exc.value.message and "discriminator" in exc.value.message
    assert (run / "checkpoints" / "latest.pt").read_bytes() == good


def test_atomic_checkpoint_survives_a_crash_mid_write(tmp_path: Path, registry, make_recipe, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    recipe = make_recipe(**{"train.steps": 2})
    trainer: Trainer = start_or_resume(recipe, registry, run, "cpu", resume=False)
    trainer.fit()
    before = (run / "checkpoints" / "latest.pt").read_bytes()

    def crash(obj, fh):  # type: ignore[no-untyped-def]
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        trainer.save()
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    assert not list((run / "checkpoints").glob(".*tmp"))


def test_checkpoint_is_weights_only(tmp_path: Path) -> None:
    import pickle

    evil = tmp_path / "evil.pt"

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    evil.write_bytes(pickle.dumps({"format": 1, "x": Boom()}))
    with pytest.raises(UserError):
        load_checkpoint(evil)


@pytest.mark.parametrize(
    "over",
    [
        {"train.grad_accum": 2, "train.d_steps": 2},
        {"train.amp": "bf16", "train.channels_last": True},
        {"train.reuse_fake": True, "train.grad_accum": 2, "train.d_steps": 2},
        {"text_encoder.mode": "pretrain", "text_encoder.pretrain": {"epochs": 1}, "optim.generator": {"schedule": {"name": "cosine"}}},
    ],
    ids=["accum-dsteps", "bf16-channels_last", "reuse-fake-accum-dsteps", "pretrained-text-cosine"],
)
def test_training_options_run(tmp_path: Path, registry, make_recipe, over) -> None:  # type: ignore[no-untyped-def]
    recipe = make_recipe(**{"train.steps": 2, **over})
    trainer = start_or_resume(recipe, registry, tmp_path / "run", "cpu", resume=False)
    assert trainer.fit() == "finished"
    rows = losses(tmp_path / "run")
    assert all(torch.isfinite(torch.tensor(v)) for r in rows for v in r.values())
    if over.get("text_encoder.mode") == "pretrain":
        assert not any(p.requires_grad for p in trainer.nets.text_encoder.parameters())
        assert trainer.sched["generator"].get_last_lr()[0] < recipe.optim.generator.lr


def test_logged_extras_average_every_micro_batch_and_d_step(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    """D(real) with 2 D steps of 2 micro-batches: the mean of the 4 values, not the last micro-batch's."""
    from ganreg.train.context import StepContext

    trainer = Trainer(make_recipe(**{"train.steps": 1, "train.d_steps": 2, "train.grad_accum": 2}), registry, tmp_path, device="cpu")
    seen: list[float] = []
    log = StepContext.log

    def recording(self, name: str, value) -> None:  # type: ignore[no-untyped-def]
        if name == "D(real)":
            seen.append(float(value))
        log(self, name, value)

    StepContext.log = recording  # type: ignore[method-assign]
    try:
        trainer.train_step()
    finally:
        StepContext.log = log  # type: ignore[method-assign]
    assert len(seen) == 4 and len(set(seen)) > 1
    step, logs = trainer._pending[-1]
    assert float(logs["d/D(real)"]) == pytest.approx(sum(seen) / 4, rel=1e-6)


def test_images_per_second_counts_every_batch_a_step_reads(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    recipe = make_recipe(**{"train.steps": 2, "train.d_steps": 2, "train.grad_accum": 2})
    trainer = start_or_resume(recipe, registry, run, "cpu", resume=False)
    trainer.fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    times = [rows[0]["time_s"]] + [b["time_s"] - a["time_s"] for a, b in zip(rows, rows[1:])]
    # 8 images x 2 micro-batches x 2 D steps in the second step (the first interval also holds the step-0 grid);
    # loose bounds: the rate's clock and time_s's differ by the logging between them
    assert 20 < rows[1]["images_per_s"] * times[1] < 48


@pytest.mark.parametrize("reuse", [False, True])
def test_reuse_fake_runs_the_generator_once_per_step(tmp_path: Path, registry, make_recipe, reuse: bool) -> None:  # type: ignore[no-untyped-def]
    """With ``train.reuse_fake`` G's step back-propagates through the images made for D's step: G runs once per step
    instead of twice, and its gradient is the one a fresh forward from the same noise would give."""
    trainer = Trainer(make_recipe(**{"train.steps": 3, "train.reuse_fake": reuse}), registry, tmp_path, device="cpu")
    generator = trainer.generator_fn
    calls: list[torch.Tensor] = []

    def counting(z: torch.Tensor, cond: torch.Tensor):  # type: ignore[no-untyped-def]
        calls.append(z)
        return generator(z, cond)

    trainer.generator_fn = counting
    phases: list[tuple[str, list]] = []
    fresh: list[torch.Tensor] = []
    run_phase = trainer._phase

    def recording(network: str, contexts: list) -> dict:  # type: ignore[type-arg]
        phases.append((network, contexts))
        if network == "generator":  # before G's update: a fresh forward from the D step's noise
            with torch.no_grad(), trainer._autocast():
                fresh.append(trainer.nets.generator(phases[0][1][0].z, contexts[0].cond).images)
        return run_phase(network, contexts)

    trainer._phase = recording  # type: ignore[method-assign]
    trainer.train_step()
    assert len(calls) == (1 if reuse else 2)
    (_, (d_ctx,)), (_, (g_ctx,)) = phases
    assert not d_ctx.fake.requires_grad  # D's losses never reach G
    assert g_ctx.fake.requires_grad
    assert (g_ctx.z is d_ctx.z) == reuse and (g_ctx.fake is d_ctx.g_out.images) == reuse
    if reuse:  # the same images (hence the same G gradient) as a fresh forward from that noise
        torch.testing.assert_close(fresh[0], g_ctx.fake.detach())


def test_amp_auto_is_bf16_only_where_the_device_computes_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    from ganreg.train import setup

    cpu = torch.device("cpu")
    assert setup.resolve_amp("off", cpu) is None
    assert setup.resolve_amp("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(setup, "native_bf16", lambda device: True)
    assert setup.resolve_amp("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(setup, "native_bf16", lambda device: False)
    assert setup.resolve_amp("auto", cpu) is None
    assert setup.resolve_amp("bf16", cpu) is torch.bfloat16


def test_a_resumed_run_does_not_pretrain_its_text_encoder_again(make_recipe, registry, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The checkpoint holds the encoder: pretraining on resume (a moved data path changes the cache key) was minutes
    thrown away."""
    import ganreg.text_encoders.pretrain as pretrain

    recipe = make_recipe(**{"train.steps": 2, "text_encoder.mode": "pretrain", "text_encoder.pretrain": {"epochs": 1}})
    run = tmp_path / "run"
    assert start_or_resume(recipe, registry, run, "cpu", resume=False).fit(stop_after=1) == "interrupted"

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("pretrained again on resume")

    monkeypatch.setattr(pretrain, "pretrain_text_encoder", refuse)
    resumed = start_or_resume(recipe, registry, run, "cpu", resume=True)
    saved = load_checkpoint(run / "checkpoints" / "latest.pt")["models"]["text_encoder"]
    for k, v in resumed.nets.text_encoder.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)
    assert not any(p.requires_grad for p in resumed.nets.text_encoder.parameters())
    assert resumed.fit() == "finished"


def test_pretraining_sees_the_word_subsets_the_gan_will_see(make_recipe, registry, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With data.long_captions 'random' the text encoder is pretrained on fresh ordered subsets each epoch
    (its own cache entry), as AttnGAN trained DAMSM; with 'first' on the first max_words words."""
    from ganreg.data.tokenizer import Vocabulary
    from ganreg.text_encoders import pretrain

    seen: list[tuple[int, int]] = []  # (captions encoded, hash of the tokens) of every call
    real = Vocabulary.encode_batch

    def spy(self, texts, max_words=18):  # type: ignore[no-untyped-def]
        tokens, lengths = real(self, texts, max_words)
        seen.append((len(texts), hash(tokens.numpy().tobytes())))
        return tokens, lengths

    monkeypatch.setattr(Vocabulary, "encode_batch", spy)
    over = {"text_encoder.mode": "pretrain", "text_encoder.pretrain": {"epochs": 3, "target_accuracy": 1.0},
            "data.max_words": 5, "train.steps": 1}
    paths = {}
    for mode in ("first", "random"):
        seen.clear()
        recipe = make_recipe(**over, **{"data.long_captions": mode})
        trainer = start_or_resume(recipe, registry, tmp_path / mode, "cpu", resume=False)  # pretrains
        n = sum(len(trainer.data.train.captions_of(i)) for i in range(len(trainer.data.train)))
        whole = [h for count, h in seen if count == n]  # the pretraining's encodings of every caption
        assert len(whole) == (1 if mode == "first" else 3), whole  # once, or once per epoch
        if mode == "random":
            assert len(set(whole)) == 3, "each epoch re-draws the subsets"
        paths[mode] = pretrain.pretrain_text_encoder(trainer.nets.text_encoder, recipe, trainer.data, trainer.device)
    assert paths["first"] != paths["random"]  # separate cache entries


def test_logged_terms_are_interval_means_so_a_lazy_penalty_shows(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    """MA-GP with every=4 is computed on steps 1, 5, 9...; logged every 4 steps, the last step's value
    would always be a skipped step's 0. The record holds the interval's mean: the computed value / 4."""
    recipe = make_recipe(
        **{
            "text_encoder.mode": "frozen",
            "generator": {"name": "dfgan", "params": {"nf": 4, "z_dim": 8}},
            "discriminator": {"name": "dfgan", "params": {"nf": 4}},
            "losses": [
                {"name": "hinge"},
                {"name": "hinge_generator"},
                {"name": "magp", "params": {"every": 4}},
            ],
            "train.steps": 8,
            "intervals.log": 4,
        }
    )
    trainer = start_or_resume(recipe, registry, tmp_path / "run", "cpu", resume=False)
    seen: list[dict[str, torch.Tensor]] = []
    original = trainer._phase

    def spy(network, contexts):  # type: ignore[no-untyped-def]
        logs = original(network, contexts)
        seen.append({k: v.clone() for k, v in logs.items()})
        return logs

    trainer._phase = spy  # type: ignore[method-assign]
    trainer.fit()
    rows = losses(tmp_path / "run")
    assert [r["step"] for r in rows] == [4, 8]
    d_steps = [logs for logs in seen if "d/magp" in logs]
    for row, interval in zip(rows, (d_steps[:4], d_steps[4:])):
        computed = [float(s["d/magp"]) for s in interval]
        assert computed[0] > 0 and computed[1:] == [0.0, 0.0, 0.0]
        assert row["d/magp"] == pytest.approx(sum(computed) / 4, rel=1e-5)
        assert row["d/total"] == pytest.approx(sum(float(s["d/total"]) for s in interval) / 4, rel=1e-5)


def test_backward_fills_only_what_the_optimisers_step(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    """MA-GP makes the real images and sentences leaves that require grad; the phase's backward must not compute
    their gradients (a full-resolution input-gradient pass nobody reads), while D, G and a jointly trained text
    encoder still get theirs."""
    recipe = make_recipe(
        **{
            "generator": {"name": "dfgan", "params": {"nf": 4, "z_dim": 8}},
            "discriminator": {"name": "dfgan", "params": {"nf": 4}},
            "losses": [{"name": "hinge"}, {"name": "hinge_generator"}, {"name": "magp"}],
        }
    )
    trainer = start_or_resume(recipe, registry, tmp_path / "run", "cpu", resume=False)
    assert trainer.joint_text
    contexts = []
    original = trainer._context

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        contexts.append(original(*args, **kwargs))
        return contexts[-1]

    trainer._context = spy  # type: ignore[method-assign]
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in trainer.nets.modules().items()}
    trainer.train_step()
    d_ctx = contexts[0]
    assert d_ctx.real_input.requires_grad and d_ctx.real_input.grad is None
    # the jointly trained encoder's sentences stay in its graph (the real-pair terms train it): no leaf, no .grad
    assert d_ctx.cond_input.requires_grad and d_ctx.cond_input.grad_fn is not None
    for name, module in trainer.nets.modules().items():
        moved = [not torch.equal(p, q) for p, q in zip(module.parameters(), before[name])]
        assert any(moved), f"{name} did not train"


def test_batch_of_one_with_batchnorm_is_refused_before_training(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="BatchNorm1d needs 2 or more"):
        Trainer(make_recipe(**{"train.batch_size": 1}), registry, tmp_path / "run", "cpu")


def test_resuming_from_an_earlier_checkpoint_drops_what_came_after_it(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    recipe = make_recipe(**{"train.steps": 4, "intervals.checkpoint": 1, "intervals.keep_checkpoints": 5, "intervals.samples": 1})
    run = tmp_path / "run"
    start_or_resume(recipe, registry, run, "cpu", resume=False).fit()
    (run / "best.json").write_text(json.dumps({"metric": "fid", "value": 1.0, "step": 3}))
    (run / "checkpoints" / "best.pt").write_bytes((run / "checkpoints" / "step_0000003.pt").read_bytes())
    (run / "evals").mkdir()
    (run / "evals" / "test-step0000003-abcd.json").write_text("{}")
    (run / "evals" / "test-step0000002-abcd.json").write_text("{}")
    (run / "eval_during_training.json").write_text(json.dumps({"metrics": {}, "protocol": {}, "step": 3}))
    step3 = (run / "checkpoints" / "step_0000003.pt").read_bytes()
    back = start_or_resume(recipe, registry, run, "cpu", resume=True, checkpoint=run / "checkpoints" / "step_0000002.pt")
    assert back.step == 2
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == ["step_0000001.pt", "step_0000002.pt"]
    assert not (run / "best.json").exists() and not (run / "checkpoints" / "best.pt").exists()
    assert not list((run / "samples").glob("step_000000[34].*"))
    assert [p.name for p in (run / "evals").iterdir()] == ["test-step0000002-abcd.json"]
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2  # latest is the history being continued
    assert [r["step"] for r in losses(run)] == [1, 2]
    # set aside, not deleted: going back is one command and must not destroy the later training
    aside = run / "discarded" / "after_step_0000002"
    assert back.discarded_to == aside
    assert (aside / "checkpoints" / "step_0000003.pt").read_bytes() == step3
    assert {p.name for p in (aside / "checkpoints").iterdir()} == {"step_0000003.pt", "step_0000004.pt", "best.pt"}
    assert (aside / "best.json").is_file() and (aside / "evals" / "test-step0000003-abcd.json").is_file()
    assert (aside / "eval_during_training.json").is_file() and not (run / "eval_during_training.json").exists()
    assert {p.name for p in (aside / "samples").glob("*.png")} == {"step_0000003.png", "step_0000004.png"}
    assert [json.loads(line)["step"] for line in (aside / "metrics.jsonl").read_text().splitlines()] == [3, 4]
    again = start_or_resume(recipe, registry, run, "cpu", resume=True)  # from latest: nothing to set aside
    assert again.discarded_to is None and again.step == 2


def test_find_checkpoint_takes_a_relative_file_in_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ganreg run --resume RUN --checkpoint checkpoints/best.pt` from anywhere: a relative path that is not there
    from the current directory is the run's file; one that is there stays as given."""
    from ganreg.train.checkpoint import find_checkpoint

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert find_checkpoint(run, "checkpoints/best.pt") == run / "checkpoints" / "best.pt"
    assert find_checkpoint(run, "best") == run / "checkpoints" / "best.pt"
    assert find_checkpoint(run, "run/checkpoints/best.pt") == Path("run/checkpoints/best.pt")
    assert find_checkpoint(run, "nowhere.pt") == Path("nowhere.pt")  # the caller names the missing file


def test_compiled_discriminator_runs_first_order_passes_and_leaves_the_penalty_eager(
    tmp_path: Path, registry, make_recipe  # type: ignore[no-untyped-def]
) -> None:
    """``train.compile_discriminator``: D's passes on fakes (D's step and G's) go through ``torch.compile`` and give
    the eager gradients; the real pass that MA-GP differentiates twice stays eager (compiled, its double backward
    would raise), so a whole step trains."""
    from torch._dynamo.utils import counters

    recipe = make_recipe(
        **{
            "generator": {"name": "dfgan", "params": {"nf": 4, "z_dim": 8}},
            "discriminator": {"name": "dfgan", "params": {"nf": 4}},
            "losses": [{"name": "hinge"}, {"name": "hinge_generator"}, {"name": "magp"}],
            "train.compile_discriminator": True,
            "train.reuse_fake": True,
        }
    )
    torch._dynamo.reset()
    counters.clear()
    trainer = Trainer(recipe, registry, tmp_path, device="cpu")
    eager = trainer.nets.discriminator
    assert trainer.first_order_discriminator is not eager
    batch = trainer.stream.next()
    d_params = [p for p in eager.parameters()]
    g_params = [p for p in trainer.nets.generator.parameters()]

    def grads(first_order) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
        """D's gradient of D's loss, then G's of G's loss, on the same batch and noise."""
        trainer.first_order_discriminator = first_order
        trainer.noise_gen.manual_seed(11)
        torch.manual_seed(12)  # the text encoder's dropout
        d_ctx = trainer._context("discriminator", batch, keep_g_graph=True)
        d_loss = sum(t.weight * trainer._loss_value(t, d_ctx) for t in trainer.nets.terms("discriminator"))
        out = list(torch.autograd.grad(d_loss, d_params))
        g_ctx = d_ctx.for_generator()
        eager.requires_grad_(False)
        try:
            g_loss = sum(t.weight * trainer._loss_value(t, g_ctx) for t in trainer.nets.terms("generator"))
            out += torch.autograd.grad(g_loss, g_params)
        finally:
            eager.requires_grad_(True)
        return out

    compiled_d = trainer.first_order_discriminator
    compiled = grads(compiled_d)
    assert counters["stats"]["unique_graphs"] >= 1  # the fake passes went through torch.compile
    reference = grads(eager)
    for got, want in zip(compiled, reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    trainer.first_order_discriminator = compiled_d
    before = [p.detach().clone() for p in d_params]
    trainer.train_step()  # MA-GP's double backward through the eager real pass
    assert all(torch.isfinite(p).all() for p in d_params) and any(not torch.equal(p, q) for p, q in zip(d_params, before))


def test_a_bad_image_mid_run_saves_the_steps_so_far_and_resumes_exactly(
    tmp_path: Path, registry, make_recipe, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """An image that fails to load at step 3 (a file changed, ``--check`` not run): steps 1-2 are saved with the
    stream back at step 3's first batch, the error says how to go on, and the resumed run matches one that never
    failed; a new run into the folder is refused."""
    from ganreg.errors import DataError
    from ganreg.train.rundir import new_run_dir
    from ganreg.train.stream import BatchStream

    recipe = make_recipe(**{"train.steps": 4, "train.d_steps": 2, "intervals.checkpoint": 100})
    straight = tmp_path / "straight"
    start_or_resume(recipe, registry, straight, "cpu", resume=False).fit()

    broken = tmp_path / "broken"
    calls = {"n": 0}
    real_next = BatchStream.next

    def failing_next(self):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 6:  # step 3's second batch (2 D steps a step): after step 3's first was read
            raise DataError("cannot decode images/x.png (truncated)", "replace the file")
        return real_next(self)

    with monkeypatch.context() as m:
        m.setattr(BatchStream, "next", failing_next)
        with pytest.raises(DataError) as exc:
            start_or_resume(recipe, registry, broken, "cpu", resume=False).fit()
    assert "replace the file" in (exc.value.fix or "") and f"ganreg run --resume {broken}" in (exc.value.fix or "")
    assert load_checkpoint(broken / "checkpoints" / "latest.pt")["step"] == 2
    resumed = start_or_resume(recipe, registry, broken, "cpu", resume=True)
    assert resumed.step == 2 and resumed.fit() == "finished"
    assert losses(straight) == losses(broken)
    (broken / "grid.png").write_bytes(b"")  # a user's file in a run (`generate -o RUN/grid.png`): still a run
    with pytest.raises(UserError, match="already holds a run"):
        new_run_dir(broken)
    stale = tmp_path / "stale"  # a run that stopped before any checkpoint left its log
    stale.mkdir()
    (stale / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(UserError, match="saved no checkpoint"):
        new_run_dir(stale)
    mine = tmp_path / "mine"  # a user's own folder: its params.md must not become a parameter table
    mine.mkdir()
    (mine / "params.md").write_text("my notes")
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"holds files that are not a ganreg run \(notes.txt, params.md\)"):
        new_run_dir(mine)
    assert (mine / "params.md").read_text() == "my notes"
    (mine / "notes.txt").unlink()
    with pytest.raises(UserError, match=r"holds files that are not a ganreg run \(params.md\)"):
        new_run_dir(mine)  # a params.md of the user's own: no run wrote it (no recipe, no run.json beside it)
    (mine / "recipe.resolved.json").write_text("{}")
    assert new_run_dir(mine) == mine  # only what a run writes (a start that failed left its recipe): reused


def photo_folder(data: Path, n: int = 24) -> Path:
    """``n`` small random PNGs, each with a caption file beside it: a user's own captioned images."""
    import numpy as np
    from PIL import Image

    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(data / f"p{i:02d}.png")
        (data / f"p{i:02d}.txt").write_text(f"a {('red', 'blue')[i % 2]} thing number {i}\n")
    return data


def test_a_resume_on_moved_data_must_find_the_same_data(tmp_path: Path, registry, make_recipe) -> None:  # type: ignore[no-untyped-def]
    """`--resume --set data.path=NEW` after a move: the same images and captions resume; a partial copy (or
    other data) is refused before anything loads, as the recorded fingerprint (run.json) says."""
    import shutil

    from ganreg.recipe import set_dotted, validate_recipe

    from .conftest import tiny_recipe

    data = photo_folder(tmp_path / "photos")
    raw = tiny_recipe(**{"data": {"source": "folder", "path": str(data), "image_size": 32}, "train.steps": 2})

    def recipe(path: Path):  # type: ignore[no-untyped-def]
        set_dotted(raw, "data.path", str(path))
        return validate_recipe(raw, registry)

    run = tmp_path / "run"
    start_or_resume(recipe(data), registry, run, "cpu", resume=False).fit()
    assert json.loads((run / "run.json").read_text())["data"]["train"]["images"] >= 20
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    assert start_or_resume(recipe(moved), registry, run, "cpu", resume=True).step == 2
    for name in ("p03", "p07"):  # a partial copy
        (moved / f"{name}.png").unlink()
        (moved / f"{name}.txt").unlink()
    with pytest.raises(UserError, match="the data is not the run's own: its (train|test) split has"):
        start_or_resume(recipe(moved), registry, run, "cpu", resume=True)


def test_a_file_that_breaks_mid_run_under_loader_workers_saves_the_steps_so_far(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    """The same as a user meets it: real files, two loader worker processes, the images truncated on disk after
    the first step. The worker's decode error reaches the trainer as a DataError naming the file; the steps
    trained so far are saved and the fix says to resume."""
    from ganreg.errors import DataError
    from ganreg.recipe import validate_recipe

    from .conftest import tiny_recipe

    data = photo_folder(tmp_path / "photos")
    raw = tiny_recipe(**{"data": {"source": "folder", "path": str(data), "image_size": 32, "num_workers": 2},
                         "train.steps": 40, "intervals.checkpoint": 100})
    run = tmp_path / "run"
    trainer = start_or_resume(validate_recipe(raw, registry), registry, run, "cpu", resume=False)
    trainer.train_step()
    for image in data.glob("*.png"):
        image.write_bytes(image.read_bytes()[:40])  # cut short: PIL cannot decode them any more
    with pytest.raises(DataError) as exc:
        trainer.fit()
    assert ".png" in exc.value.message and f"ganreg run --resume {run}" in (exc.value.fix or "")
    saved = load_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert saved == trainer.step >= 1


def test_a_missing_latest_checkpoint_is_named_with_the_checkpoints_left(tmp_path: Path) -> None:
    """It said 'older numbered checkpoints are removed' and offered --checkpoint latest, the missing one."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "recipe.resolved.json").write_text("{}")
    for step in (2, 4):
        (run / "checkpoints" / f"step_{step:07d}.pt").write_bytes(b"")
    with pytest.raises(UserError) as caught:
        load_checkpoint(run / "checkpoints" / "latest.pt")
    assert caught.value.message == f"{run}: its latest.pt is missing (deleted, or lost when a disk filled up)"
    assert caught.value.fix == "use --checkpoint N, a step it kept (2, 4)"


def test_a_runs_own_checkpoints_behind_a_symlink_are_its_own(tmp_path: Path) -> None:
    from ganreg.runfiles import is_in_run

    run, scratch = tmp_path / "run", tmp_path / "scratch"
    run.mkdir()
    scratch.mkdir()
    (run / "checkpoints").symlink_to(scratch)
    (scratch / "step_0000002.pt").write_bytes(b"")
    assert is_in_run(run, scratch / "step_0000002.pt") and is_in_run(run, run / "checkpoints" / "step_0000002.pt")
    assert not is_in_run(run, tmp_path / "other" / "checkpoints" / "step_0000002.pt")


def test_a_corrupt_numbered_checkpoint_suggests_an_earlier_step(tmp_path: Path) -> None:
    """A corrupt step 2 was answered with 'use an earlier one: --checkpoint 5'."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "recipe.resolved.json").write_text("{}")
    for step in (1, 2, 5):
        (run / "checkpoints" / f"step_{step:07d}.pt").write_bytes(b"not a zip")
    with pytest.raises(UserError) as caught:
        load_checkpoint(run / "checkpoints" / "step_0000002.pt")
    assert (caught.value.fix or "").startswith("use an earlier one of the run: --checkpoint 1 ")
    with pytest.raises(UserError) as caught:
        load_checkpoint(run / "checkpoints" / "step_0000001.pt")
    assert (caught.value.fix or "").startswith("use a later one of the run: --checkpoint 5 ")
