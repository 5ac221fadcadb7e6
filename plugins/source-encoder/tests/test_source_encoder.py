"""Source-image encoder: shapes, the variational head (sampling in training, the mean in eval, the KL by
hand), and training through ganreg with its latents in place of G's noise: the encoder moves, the KL is
logged, a checkpoint holds it and resumes it, and ganreg generate reads the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext
from ganreg_source_encoder.encoder import SourceEncoder
from ganreg_source_encoder.params import SourceEncoderParams


def _encoder(size: int = 32, **params: object) -> SourceEncoder:
    torch.manual_seed(0)
    return SourceEncoder(SourceEncoderParams(**{"ndf": 4, "latent_dim": 6, **params}), BuildContext(image_size=size))


@pytest.mark.parametrize(("size", "channels"), [(8, 4), (32, 16), (64, 32), (128, 32)])
def test_shapes(size: int, channels: int) -> None:
    enc = _encoder(size)
    out = enc(torch.rand(3, 3, size, size) * 2 - 1)
    assert out.latent.shape == (3, 6) and enc.out_dim == 6
    assert out.content is not None and out.content.shape == (3, channels, 4, 4)
    assert set(out.aux) == {"kl"} and out.aux["kl"].dim() == 0


def test_training_samples_and_eval_gives_the_mean() -> None:
    enc = _encoder()
    x = torch.rand(1, 3, 32, 32).repeat(4000, 1, 1, 1)
    with torch.no_grad():
        flat = enc.convs(x[:1]).flatten(1)
        mu, sigma = enc.mu(flat)[0], (0.5 * enc.logvar(flat)[0]).exp()
        drawn = enc(x).latent
        enc.eval()
        first, second = enc(x[:2]).latent
    torch.testing.assert_close(first, mu)
    torch.testing.assert_close(second, mu)
    torch.testing.assert_close(drawn.mean(0), mu, atol=4 * float(sigma.max()) / 4000**0.5, rtol=0)
    torch.testing.assert_close(drawn.std(0), sigma, rtol=0.06, atol=0)


def test_kl_by_hand() -> None:
    enc = _encoder()
    x = torch.rand(5, 3, 32, 32)
    flat = enc.convs(x).flatten(1)
    mu, logvar = enc.mu(flat), enc.logvar(flat)
    by_hand = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1).mean()
    torch.testing.assert_close(enc(x).aux["kl"], by_hand)
    for head in (enc.mu, enc.logvar):  # mu = 0, sigma = 1: the prior itself
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    assert float(enc(x).aux["kl"].detach()) == 0.0


def test_deterministic_encoder_has_no_kl_and_the_loss_says_so() -> None:
    from ganreg_source_encoder.losses import EncoderKL

    enc = _encoder(variational=False)
    x = torch.rand(2, 3, 32, 32)
    out = enc(x)
    assert out.aux == {} and enc.logvar is None
    torch.testing.assert_close(out.latent, enc(x).latent)  # no sampling

    class _Ctx:
        e_aux: dict = {}

    with pytest.raises(UserError, match="does not return"):
        EncoderKL()(_Ctx())  # type: ignore[arg-type]


def test_sizes_are_checked() -> None:
    with pytest.raises(UserError, match="power-of-two"):
        _encoder(48)


def _recipe(reg, **over):  # type: ignore[no-untyped-def]
    from ganreg.recipe import validate_recipe

    raw = {
        "version": 1,
        "name": "source-tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm", "mode": "frozen", "params": {"hidden": 16, "embedding_dim": 8}},
        "image_encoder": {"name": "source_encoder:conv", "params": {"ndf": 4, "latent_dim": 8}},
        "generator": {"name": "dfgan", "params": {"nf": 2, "z_dim": 8}},
        "discriminator": {"name": "dfgan", "params": {"nf": 2}},
        "losses": [{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}, {"name": "dcgan_cls:l1", "weight": 5.0},
                   {"name": "source_encoder:latent_kl", "weight": 0.05}],
        "train": {"steps": 2, "batch_size": 8},
        "intervals": {"log": 1, "samples": 2, "checkpoint": 2},
        "samples": {"captions": 2, "per_caption": 2},
    }
    raw.update(over)
    return validate_recipe(raw, reg)


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    from ganreg.plugins import load_entry_points
    from ganreg.registry import Registry

    reg = Registry()
    load_entry_points(reg, strict=True)
    return reg


def _trainer(registry, run_dir: Path, recipe=None):  # type: ignore[no-untyped-def]
    """ganreg's trainer on the CPU for ``recipe`` (default: the tiny one) in a fresh run directory."""
    from ganreg.train.rundir import new_run_dir
    from ganreg.train.trainer import Trainer

    new_run_dir(run_dir)
    return Trainer(recipe if recipe is not None else _recipe(registry), registry, run_dir, device="cpu")


def _trained(registry, run_dir: Path, recipe=None, steps: int = 1):  # type: ignore[no-untyped-def]
    """A saved run of ``steps`` training steps, as ``ganreg run`` leaves it (static files, a checkpoint)."""
    trainer = _trainer(registry, run_dir, recipe)
    trainer.write_static_files()
    for _ in range(steps):
        trainer.train_step()
    trainer.save()
    return trainer


def test_trains_through_ganreg_and_resumes(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The latents replace G's noise (G's step sees E's graph: E moves), the KL is logged, and the encoder
    is saved in the checkpoint and comes back on resume."""
    from ganreg.train.trainer import Trainer

    recipe = _recipe(registry)
    trainer = _trainer(registry, tmp_path / "run", recipe)
    enc = trainer.nets.image_encoder
    assert isinstance(enc, SourceEncoder) and trainer.nets.context.image_latent_dim == 8
    assert any(p is enc.mu.weight for g in trainer.opt["generator"].param_groups for p in g["params"])
    before = enc.mu.weight.detach().clone()
    batch = trainer.stream.next()
    ctx = trainer._context("generator", batch)
    assert ctx.z.requires_grad and ctx.z.shape == (8, 8)  # E's latents, with E's graph
    trainer.train_step()
    logs = trainer._pending[-1][1]
    assert {"g/latent_kl", "g/l1", "d/hinge"} <= set(logs) and float(logs["g/latent_kl"]) > 0
    assert not torch.equal(enc.mu.weight, before)
    trainer.train_step()
    path = trainer.save()
    again = Trainer(recipe, registry, tmp_path / "run", device="cpu", start_weights=False)
    again.resume(path)
    torch.testing.assert_close(again.nets.image_encoder.state_dict(), enc.state_dict())


@pytest.fixture
def autoloaded(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI's registry with every installed plugin (the core test suite turns autoloading off)."""
    from ganreg import plugins

    monkeypatch.delenv("GANREG_NO_PLUGIN_AUTOLOAD", raising=False)
    plugins.reset_registry()
    yield
    plugins.reset_registry()


def test_generate_reads_a_run_with_an_image_encoder(registry, autoloaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ganreg.generate import load_run

    trainer = _trained(registry, tmp_path / "run")
    run = load_run(tmp_path / "run", use_ema=False, device="cpu", image_encoder=True)
    assert run.nets.image_encoder is not None and not run.nets.image_encoder.training
    torch.testing.assert_close(run.nets.image_encoder.state_dict(), trainer.nets.image_encoder.state_dict())


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"generator": {"name": "dfgan", "params": {"nf": 2, "z_dim": 9}}},
         "gives latents of size 8, but generator dfgan:dfgan takes noise of size 9"),
        ({"image_encoder": None}, "loss source_encoder:latent_kl (losses.3) reads the image encoder"),
    ],
)
def test_mistakes_are_named_before_training(registry, tmp_path: Path, over: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    from ganreg.train.networks import build_networks
    from ganreg.train.setup import prepare_data

    recipe = _recipe(registry, **over)
    data = prepare_data(recipe, tmp_path / "run")
    with pytest.raises(UserError) as err:
        build_networks(recipe, registry, data.context)
    assert message in err.value.message


def test_generate_from_source_images(registry, autoloaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``ganreg generate RUN --source A --source B``: one column per source image, drawn from its latent;
    the record names each source with its SHA-256, and its command makes the same image again."""
    import json
    import shlex

    from click.testing import CliRunner
    from PIL import Image

    from ganreg.cli import cli

    run_dir = tmp_path / "run"
    _trained(registry, run_dir)
    sources = []
    for name, colour in (("red.png", (220, 30, 30)), ("blue.jpg", (30, 30, 220))):
        Image.new("RGB", (50, 40), colour).save(tmp_path / name)
        sources += ["--source", str(tmp_path / name)]
    out = tmp_path / "grid.png"
    res = CliRunner().invoke(cli, ["generate", str(run_dir), *sources, "-o", str(out), "--device", "cpu",
                                   "a red circle", "a blue square"])
    assert res.exit_code == 0, res.output
    made = json.loads(out.with_suffix(".json").read_text())
    assert made["noise"]["count"] == 2 and made["truncation"] is None
    assert [s["path"] for s in made["noise"]["sources"]] == [str((tmp_path / n).resolve()) for n in ("red.png", "blue.jpg")]
    assert len(made["noise"]["sources"][0]["sha256"]) == 64
    with Image.open(out) as grid:
        width = grid.size[0]
    first = out.read_bytes()
    out.unlink()
    again = CliRunner().invoke(cli, shlex.split(made["command"])[1:])
    assert again.exit_code == 0, again.output
    assert out.read_bytes() == first
    one = tmp_path / "one.png"
    CliRunner().invoke(cli, ["generate", str(run_dir), *sources[:2], "-o", str(one), "--device", "cpu", "a red circle"])
    with Image.open(one) as grid:
        assert grid.size[0] < width  # one column fewer
    clash = CliRunner().invoke(cli, ["generate", str(run_dir), *sources, "-n", "3", "-o", str(one), "a red circle"])
    assert isinstance(clash.exception, UserError) and "-n and --source contradict" in clash.exception.message
    missing = CliRunner().invoke(cli, ["generate", str(run_dir), "--source", str(tmp_path / "nope.png"),
                                       "-o", str(one), "a red circle"])
    assert isinstance(missing.exception, UserError) and "source image not found" in missing.exception.message


def test_source_needs_a_run_with_an_image_encoder() -> None:
    from ganreg.generate import encode_sources
    from ganreg.train.networks import SamplingNetworks

    nets = SamplingNetworks(text_encoder=None, generator=None, context=BuildContext())  # type: ignore[arg-type]
    with pytest.raises(UserError, match="needs a run trained with an image encoder"):
        encode_sources(nets, [Path("a.png")], 32)


def test_tsne_maps_the_encoders_latents(registry, autoloaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The report's t-SNE adds a map of the image encoder's latents of the real held-out images, by class."""
    import ganreg.metrics.tsne as tsne

    trainer = _trained(registry, tmp_path / "run")
    seen = []
    monkeypatch.setattr(tsne, "plot_panels", lambda panels, names, out, seed=0: seen.extend(panels) or out)
    tsne.tsne_for_run(tmp_path / "run", tmp_path / "tsne.png", n=12, device="cpu")
    latent = seen[-1]
    assert latent.title.startswith("image encoder latents of real") and len(seen) == 4
    assert latent.features.shape == (len(seen[2].labels), 8)
    assert (latent.labels == seen[2].labels).all()


def test_heads_and_kl_stay_float32_under_bf16_autocast() -> None:
    enc = _encoder()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(torch.rand(2, 3, 32, 32))
    assert out.latent.dtype == torch.float32 and out.aux["kl"].dtype == torch.float32


def test_diversity_terms_draw_both_images_from_noise_with_an_encoder(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """DSGAN's ratio compares two noise draws: with an image encoder the step's z is a picture's latent, so
    both draws are fresh, and the term trains G only (no gradient reaches the encoder)."""
    from ganreg_losses.losses import DiversitySensitive

    trainer = _trainer(registry, tmp_path / "run")
    ctx = trainer._context("generator", trainer.stream.next())
    DiversitySensitive(tau=10.0, samples=4)(ctx).backward()
    assert all(p.grad is None for p in trainer.nets.image_encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.nets.generator.parameters())


def test_generate_pairs_the_ema_generator_with_the_ema_encoder(registry, autoloaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ganreg.generate import load_run
    from ganreg.train.rundir import with_absolute_paths

    recipe = _recipe(registry, train={"steps": 3, "batch_size": 8, "ema_decay": 0.5, "ema_start": 0})
    trainer = _trained(registry, tmp_path / "run", recipe, steps=3)
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    averaged = trainer.ema_encoder.module.state_dict()
    raw = trainer.nets.image_encoder.state_dict()
    assert not torch.equal(averaged["mu.weight"], raw["mu.weight"])
    assert "ema_image_encoder" in torch.load(path, weights_only=True)
    ema = load_run(tmp_path / "run", device="cpu", image_encoder=True)
    torch.testing.assert_close(ema.nets.image_encoder.state_dict(), averaged)
    plain = load_run(tmp_path / "run", use_ema=False, device="cpu", image_encoder=True)
    torch.testing.assert_close(plain.nets.image_encoder.state_dict(), raw)
    assert load_run(tmp_path / "run", device="cpu").nets.image_encoder is None  # drawing from noise needs none
    # a recipe starting from this checkpoint takes the averages too, and records the path absolute
    again = _recipe(registry, image_encoder={"name": "source_encoder:conv", "params": {"ndf": 4, "latent_dim": 8},
                                             "weights": os.path.relpath(path)})
    assert with_absolute_paths(again).image_encoder.weights == str(Path(path).resolve())
    started = _trainer(registry, tmp_path / "next", again)
    torch.testing.assert_close(started.nets.image_encoder.state_dict(), averaged)
