"""StackGAN Stage-I: parity with hanzhanggit/StackGAN-Pytorch (parameter counts of reference 3.3/3.4),
conditioning augmentation and its KL by hand, the conditional head, the losses, and training through
ganreg's trainer with D fed mu instead of the sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganreg.interfaces import BuildContext
from ganreg.testing import registry_with
from ganreg_stackgan import plugin
from ganreg_stackgan.discriminator import StageIDiscriminator
from ganreg_stackgan.generator import CANet, StageIGenerator, kl_loss
from ganreg_stackgan.losses import ConditioningKL, StageIMatchingBCE


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("gf_dim", "count"), [(128, 10_301_248), (192, 20_020_832)])
def test_generator_parameter_count_equals_the_original(gf_dim: int, count: int) -> None:
    assert n_params(StageIGenerator(gf_dim=gf_dim, z_dim=100, text_dim=1024, c_dim=128)) == count


@pytest.mark.parametrize(("df_dim", "count"), [(64, 5_715_713), (96, 12_407_425)])
def test_discriminator_parameter_count_equals_the_original(df_dim: int, count: int) -> None:
    assert n_params(StageIDiscriminator(df_dim=df_dim, c_dim=128)) == count


def test_registry_defaults_build_the_original_sizes() -> None:
    reg = registry_with(plugin, "stackgan")
    g = reg.resolve("generator", "stackgan:stage1").build({}, BuildContext(image_size=64, cond_dim=1024))
    assert n_params(g) == 10_301_248 and g.cond_used_dim == 128
    d = reg.resolve("discriminator", "stackgan:stage1").build({}, BuildContext(image_size=64, cond_dim=128))
    assert n_params(d) == 5_715_713


def test_conditioning_augmentation_by_hand() -> None:
    torch.manual_seed(0)
    ca = CANet(10, 4)
    s = torch.randn(6, 10)
    x = F.relu(s @ ca.fc.weight.T + ca.fc.bias)
    mu, logvar = x[:, :4], x[:, 4:]
    torch.manual_seed(1)
    c, got_mu, got_logvar = ca(s)
    torch.manual_seed(1)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(got_mu, mu)
    torch.testing.assert_close(got_logvar, logvar)
    torch.testing.assert_close(c, mu + eps * torch.exp(0.5 * logvar))
    assert (mu >= 0).all() and (logvar >= 0).all()  # the ReLU quirk: mu >= 0, sigma >= 1
    ca.eval()
    c_eval, mu_eval, _ = ca(s)
    assert torch.equal(c_eval, mu_eval)  # sampling uses mu: grids are reproducible from the noise
    leaky = CANet(10, 4, "leaky_relu")
    assert isinstance(leaky.act, torch.nn.LeakyReLU) and leaky.act.negative_slope == 0.2


def test_kl_is_the_originals_mean_over_batch_and_dims() -> None:
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    per_element = -0.5 * (1 + logvar - mu**2 - logvar.exp())
    torch.testing.assert_close(kl_loss(mu, logvar), per_element.mean())
    assert float(kl_loss(torch.zeros(2, 3), torch.zeros(2, 3))) == 0.0


def test_generator_shapes_aux_and_what_d_sees() -> None:
    g = StageIGenerator(gf_dim=4, z_dim=8, text_dim=12, c_dim=6)
    out = g(torch.randn(3, 8), torch.randn(3, 12))
    assert out.images.shape == (3, 3, 64, 64) and out.images.abs().max() <= 1
    assert out.cond_used.shape == (3, 6) and out.aux["kl"].dim() == 0
    assert [m.out_channels for m in g.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 8, 4, 2, 3]
    for size, blocks in ((32, 3), (128, 5)):
        gs = StageIGenerator(gf_dim=4, z_dim=8, text_dim=12, c_dim=6, image_size=size)
        assert len(gs.upsample) == blocks and gs(torch.randn(2, 8), torch.randn(2, 12)).images.shape[-1] == size


def test_noise_comes_first_in_the_generator_input() -> None:
    g = StageIGenerator(gf_dim=1, z_dim=3, text_dim=5, c_dim=2).eval()
    z, s = torch.randn(2, 3), torch.randn(2, 5)
    seen = []
    g.fc.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    out = g(z, s)
    torch.testing.assert_close(seen[0], torch.cat((z, out.cond_used), 1))


def test_init_follows_weights_init() -> None:
    torch.manual_seed(0)
    g = StageIGenerator(gf_dim=32, z_dim=100, text_dim=64, c_dim=32)
    conv = g.upsample[0][1].weight.detach()
    bn = g.upsample[0][2]
    assert abs(float(conv.std()) - 0.02) < 0.002 and abs(float(conv.mean())) < 0.002
    assert abs(float(bn.weight.detach().mean()) - 1) < 0.01 and float(bn.bias.detach().abs().max()) == 0
    assert float(g.ca_net.fc.bias.detach().abs().max()) == 0


def test_conditional_head_tiles_mu_after_the_features() -> None:
    torch.manual_seed(0)
    d = StageIDiscriminator(df_dim=2, c_dim=3).eval()
    images, mu = torch.randn(4, 3, 64, 64), torch.randn(4, 3)
    feats = d.features(images)
    assert feats.shape == (4, 16, 4, 4)
    joint = torch.cat((feats, mu[:, :, None, None].expand(-1, -1, 4, 4)), 1)
    torch.testing.assert_close(d.logits(feats, mu), d.get_cond_logits.outlogits(joint).view(-1))
    first = d.encode_img[0]
    assert first.bias is None and not isinstance(d.encode_img[1], torch.nn.BatchNorm2d)  # no BN after the first conv


class _Ctx:
    """The context fields the losses read."""

    def __init__(self, real, fake, mismatch, aux=None) -> None:  # type: ignore[no-untyped-def]
        self.d_real = type("O", (), {"logits": real})()
        self.d_fake = type("O", (), {"logits": fake})()
        self.d_mismatch_logits = mismatch
        self.g_aux = aux or {}
        self.logs: dict = {}

    def log(self, name, value) -> None:  # type: ignore[no-untyped-def]
        self.logs[name] = value


def test_stage1_d_loss_by_hand() -> None:
    real, fake, mis = torch.randn(5), torch.randn(5), torch.randn(5)
    bce = lambda x, t: -torch.mean(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x))  # noqa: E731
    expected = bce(real, 1) + 0.5 * (bce(fake, 0) + bce(mis, 0))
    torch.testing.assert_close(StageIMatchingBCE()(_Ctx(real, fake, mis)), expected)


def test_kl_loss_reads_the_generators_aux_and_names_a_missing_one() -> None:
    from ganreg.errors import UserError

    kl = torch.tensor(0.7)
    assert ConditioningKL()(_Ctx(None, None, None, {"kl": kl})) is kl
    with pytest.raises(UserError, match="aux 'kl'"):
        ConditioningKL()(_Ctx(None, None, None, {}))


def test_trains_through_ganreg_with_d_fed_mu(tmp_path: Path) -> None:
    """D is built for CA's c_dim (not the sentence size) and the trainer hands it mu: a full step runs,
    the KL term is logged and G and D move. A jointly trained text encoder is refused: D's condition is
    mu, detached, so no gradient would ever reach it."""
    from ganreg.errors import UserError
    from ganreg.plugins import load_entry_points
    from ganreg.recipe import validate_recipe
    from ganreg.registry import Registry
    from ganreg.train.rundir import new_run_dir
    from ganreg.train.trainer import Trainer

    reg = Registry()
    load_entry_points(reg, strict=True)
    recipe = validate_recipe({
        "version": 1,
        "name": "stage1-tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm", "mode": "frozen", "params": {"hidden": 16, "embedding_dim": 8}},
        "generator": {"name": "stackgan:stage1", "params": {"gf_dim": 4, "z_dim": 8, "condition_dim": 6}},
        "discriminator": {"name": "stackgan:stage1", "params": {"df_dim": 4}},
        "losses": [{"name": "stackgan:stage1_bce"}, {"name": "dcgan_cls:generator_bce"}, {"name": "stackgan:kl", "weight": 2.0}],
        "train": {"steps": 2, "batch_size": 8},
        "intervals": {"log": 1, "samples": 2, "checkpoint": 2},
        "samples": {"captions": 2, "per_caption": 2},
    }, reg)
    new_run_dir(tmp_path / "run")
    trainer = Trainer(recipe, reg, tmp_path / "run", device="cpu")
    assert trainer.nets.text_encoder.out_dim == 16 and trainer.nets.discriminator.get_cond_logits.c_dim == 6
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in trainer.nets.modules().items()}
    trainer.train_step()
    logs = trainer._pending[-1][1]
    assert {"d/stage1_bce", "g/kl", "g/generator_bce"} <= set(logs) and float(logs["g/kl"]) >= 0
    for name in ("generator", "discriminator"):
        moved = zip(trainer.nets.modules()[name].parameters(), before[name])
        assert any(not torch.equal(p, q) for p, q in moved), name
    joint = recipe.model_copy(deep=True)
    joint.text_encoder.mode = "joint"
    new_run_dir(tmp_path / "joint")
    with pytest.raises(UserError, match="the encoder would never train") as err:
        Trainer(joint, reg, tmp_path / "joint", device="cpu")
    assert "pretrain" in (err.value.fix or "")


def test_noise_only_from_z_gives_the_mean_condition_and_keeps_batchnorm_training() -> None:
    """What DSGAN / MSGAN draw their pairs under: c = mu, so equal z give equal images (the reviewer measured a
    pair ratio of 0.116 from the condition noise alone), while BatchNorm still normalises with the batch."""
    torch.manual_seed(0)
    g = StageIGenerator(gf_dim=2, z_dim=4, text_dim=6, c_dim=3, image_size=32).train()
    z, cond = torch.randn(4, 4), torch.randn(4, 6)
    with g.noise_only_from_z():
        a, b = g(torch.cat([z, z]), torch.cat([cond, cond])).images.split(4)
        assert g.fc[1].training and not g.ca_net.training
    torch.testing.assert_close(a, b)
    assert g.ca_net.training  # restored
    a, b = g(torch.cat([z, z]), torch.cat([cond, cond])).images.split(4)
    assert (a - b).abs().mean() > 1e-3  # outside it, each image draws its own condition
