"""Losses of the dcgan_cls plugin against hand computations, and conformance."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

try:
    import ganreg_dcgan_cls  # noqa: F401
except ImportError:  # plugin not installed: test it from its source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import ganreg_dcgan_cls.plugin
from ganreg.interfaces import BuildContext, Discriminator, Generator, GeneratorOutput
from ganreg.testing import check_component, registry_with
from ganreg.train.context import StepContext
from ganreg_dcgan_cls import losses as L
from ganreg_dcgan_cls.discriminator import DCGANClsDiscriminatorParams, build_discriminator
from ganreg_dcgan_cls.generator import DCGANClsGeneratorParams, build_generator

EXPECTED = {
    ("generator", "dcgan_cls:dcgan_cls"),
    ("discriminator", "dcgan_cls:dcgan_cls"),
    *(
        ("loss", f"dcgan_cls:{n}")
        for n in ("matching_bce", "generator_bce", "feature_matching", "l1", "gan_int", "wgan", "wgan_generator", "wgan_gp")
    ),
}


# ------------------------------------------------------------------ test doubles
class FixedG(Generator):
    """Returns fixed images; records the condition it was called with."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.z_dim = 2
        self.images = images
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        self.calls.append(cond)
        return GeneratorOutput(images=self.images[: z.shape[0]] * self.scale)


class PixelD(Discriminator):
    """features = the image flattened; logit = its first value + cond[:, 0]·0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.w * features[:, 0] + 0 * cond[:, 0]


def images_with_logits(values: list[float], shape: tuple[int, ...] = (3, 2, 2)) -> torch.Tensor:
    x = torch.zeros(len(values), *shape)
    x.view(len(values), -1)[:, 0] = torch.tensor(values)
    return x


def bce(x: float, t: float) -> float:
    s = 1 / (1 + math.exp(-x))
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


REAL, FAKE, WRONG = [2.0, -1.0, 0.3], [0.5, -0.5, 1.5], [1.0, 3.0, -2.0]


def make_ctx(phase: str = "discriminator", wrong: bool = True, d: Discriminator | None = None) -> StepContext:
    return StepContext(
        phase=phase,  # type: ignore[arg-type]
        generator=FixedG(images_with_logits(FAKE)),
        discriminator=d or PixelD(),
        real=images_with_logits(REAL),
        cond=torch.arange(6.0).view(3, 2),
        z=torch.zeros(3, 2),
        wrong=images_with_logits(WRONG) if wrong else None,
    )


def val(t: torch.Tensor) -> float:
    return float(t.detach())


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# --------------------------------------------------------------------- BCE terms
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (1.0, 0.5, 0.5)])
def test_matching_bce_equals_formula(weights: tuple[float, float, float]) -> None:
    rw, fw, ww = weights
    loss = L.MatchingBCE(L.MatchingBCEParams(smoothing=0.1, real_weight=rw, fake_weight=fw, wrong_weight=ww))
    ctx = make_ctx()
    want = (
        rw * mean([bce(x, 0.9) for x in REAL])
        + fw * mean([bce(x, 0.0) for x in FAKE])
        + ww * mean([bce(x, 0.0) for x in WRONG])
    )
    assert val(loss(ctx)) == pytest.approx(want, rel=1e-6)
    assert set(ctx.logs) == {"D(real)", "D(fake)", "D(wrong)"}


def test_matching_bce_without_wrong_never_asks_for_wrong_images() -> None:
    loss = L.MatchingBCE(L.MatchingBCEParams(smoothing=0.0, wrong_weight=0.0))
    ctx = make_ctx(wrong=False)  # ctx.d_wrong would raise
    want = mean([bce(x, 1.0) for x in REAL]) + mean([bce(x, 0.0) for x in FAKE])
    assert val(loss(ctx)) == pytest.approx(want, rel=1e-6)
    assert "d_wrong" not in ctx.__dict__


def test_generator_bce() -> None:
    ctx = make_ctx("generator")
    assert val(L.GeneratorBCE()(ctx)) == pytest.approx(mean([bce(x, 1.0) for x in FAKE]), rel=1e-6)


def test_feature_matching_and_l1() -> None:
    ctx = make_ctx("generator")
    real, fake = images_with_logits(REAL), images_with_logits(FAKE)
    # features are the flattened images: only column 0 is non-zero; 12 features per image
    want_fm = (mean(FAKE) - mean(REAL)) ** 2 / 12
    assert val(L.FeatureMatching()(ctx)) == pytest.approx(want_fm, rel=1e-6)
    want_l1 = sum(abs(f - r) for f, r in zip(FAKE, REAL)) / real.numel()
    assert val(L.L1()(ctx)) == pytest.approx(want_l1, rel=1e-6)
    assert torch.equal(ctx.fake, fake)


def test_feature_matching_detaches_real() -> None:
    d = PixelD()
    ctx = make_ctx("generator", d=d)
    ctx.real.requires_grad_(True)
    L.FeatureMatching()(ctx).backward()
    assert ctx.real.grad is None
    assert ctx.generator.scale.grad is not None


def test_gan_int_interpolates_text_with_rolled_partner() -> None:
    ctx = make_ctx("generator")
    loss = L.GanInt(L.GanIntParams(beta=0.25))
    value = loss(ctx)
    t = ctx.cond
    (cond_seen,) = ctx.generator.calls
    assert torch.allclose(cond_seen, 0.25 * t + 0.75 * torch.roll(t, 1, 0))
    assert not cond_seen.requires_grad
    assert val(value) == pytest.approx(mean([bce(x, 1.0) for x in FAKE]), rel=1e-6)


# ------------------------------------------------------------------------- WGAN
def test_wgan_critic_and_generator() -> None:
    ctx = make_ctx()
    crit = L.WGANCritic(L.WGANParams(clip=0.01, wrong_weight=0.5))
    assert val(crit(ctx)) == pytest.approx(mean(FAKE) - mean(REAL) + 0.5 * mean(WRONG), rel=1e-6)
    assert val(L.WGANCritic(L.WGANParams())(make_ctx(wrong=False))) == pytest.approx(mean(FAKE) - mean(REAL), rel=1e-6)
    assert val(L.WGANGenerator()(make_ctx("generator"))) == pytest.approx(-mean(FAKE), rel=1e-6)


def test_wgan_clipping_after_step() -> None:
    d = build_discriminator(DCGANClsDiscriminatorParams(ndf=4, proj_dim=4), BuildContext(image_size=32, cond_dim=8))
    with torch.no_grad():
        for i, p in enumerate(d.parameters()):
            p.fill_(1.0 if i % 2 else -3.0)
    L.WGANCritic(L.WGANParams(clip=0.01)).after_step(d)
    assert all(val(p.abs().max()) == pytest.approx(0.01) for p in d.parameters())
    # clip: null leaves D alone; a non-discriminator is never clipped
    g = build_generator(DCGANClsGeneratorParams(ngf=4, z_dim=4), BuildContext(image_size=32, cond_dim=8))
    before = [p.clone() for p in g.parameters()]
    L.WGANCritic(L.WGANParams(clip=0.01)).after_step(g)
    assert all(torch.equal(a, b) for a, b in zip(before, g.parameters()))
    with torch.no_grad():
        next(d.parameters()).fill_(5.0)
    L.WGANCritic(L.WGANParams(clip=None)).after_step(d)
    assert val(next(d.parameters()).max()) == 5.0


class LinearD(Discriminator):
    """logit = <W, x>: its input gradient is W for every sample, ‖W‖ per sample."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return (images * self.w).flatten(1)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return features.sum(1) + 0 * cond[:, 0]


def test_wgan_gp_uses_the_per_sample_norm() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 2, 2) * 0.3
    d = LinearD(w)
    ctx = make_ctx(d=d)
    value = L.WGANGP(L.WGANGPParams(lambda_gp=10.0))(ctx)
    norm = float(w.norm())
    assert val(value) == pytest.approx(10.0 * (norm - 1) ** 2, rel=1e-5)
    per_pixel = 10.0 * float(((w.norm(dim=0) - 1) ** 2).mean())  # aelnouby's compute_GP (the bug)
    assert abs(per_pixel - val(value)) > 0.1
    assert ctx.logs["grad_norm"] == pytest.approx(norm, rel=1e-5)
    # create_graph: the penalty back-propagates into D: d/dW λ(‖W‖-1)² = 2λ(‖W‖-1)·W/‖W‖
    value.backward()
    assert torch.allclose(d.w.grad, 2 * 10.0 * (norm - 1) * w / norm, rtol=1e-4, atol=1e-6)


def test_wgan_gp_double_backward_through_plugin_critic() -> None:
    torch.manual_seed(0)
    ctx32 = BuildContext(image_size=32, cond_dim=8)
    d = build_discriminator(DCGANClsDiscriminatorParams(ndf=4, proj_dim=4, batchnorm=False), ctx32)
    g = build_generator(DCGANClsGeneratorParams(ngf=4, z_dim=4), ctx32)
    ctx = StepContext(phase="discriminator", generator=g, discriminator=d, real=torch.rand(4, 3, 32, 32) * 2 - 1,
                      cond=torch.randn(4, 8), z=torch.randn(4, 4))
    total = L.WGANCritic(L.WGANParams(clip=None))(ctx) + L.WGANGP(L.WGANGPParams())(ctx)
    total.backward()
    assert all(p.grad is not None for p in d.parameters())
    assert all(p.grad is None for p in g.parameters())


# ------------------------------------------------------------ registry and kit
def test_plugin_registers_everything_and_passes_the_conformance_kit() -> None:
    reg = registry_with(ganreg_dcgan_cls.plugin, "dcgan_cls")
    assert {(c.kind, c.qualified) for c in reg.components()} == EXPECTED
    for info in reg.components():
        assert info.paper and info.summary
        for name, field in info.params.model_fields.items():
            assert field.description, f"{info.qualified}.{name} has no description"
        check_component(info)


def test_one_training_step_on_cpu() -> None:
    """One D step and one G step with aelnouby's loss mix, tiny widths, 32 px."""
    torch.manual_seed(0)
    bctx = BuildContext(image_size=32, cond_dim=8)
    g = build_generator(DCGANClsGeneratorParams(ngf=4, z_dim=4, proj_dim=4), bctx)
    d = build_discriminator(DCGANClsDiscriminatorParams(ndf=4, proj_dim=4), bctx)
    real, wrong, cond = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 8)
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    ctx = StepContext(phase="discriminator", generator=g, discriminator=d, real=real, cond=cond, z=torch.randn(4, 4), wrong=wrong)
    L.MatchingBCE(L.MatchingBCEParams())(ctx).backward()
    assert all(p.grad is None for p in g.parameters())
    opt_d.step()
    opt_d.zero_grad(set_to_none=True)
    d.requires_grad_(False)
    ctx = StepContext(phase="generator", generator=g, discriminator=d, real=real, cond=cond, z=torch.randn(4, 4), wrong=wrong)
    loss = L.GeneratorBCE()(ctx) + 100 * L.FeatureMatching()(ctx) + 50 * L.L1()(ctx) + L.GanInt(L.GanIntParams())(ctx)
    loss.backward()
    assert all(p.grad is not None for p in g.parameters())
    assert all(p.grad is None for p in d.parameters())
    opt_g.step()


@pytest.mark.parametrize(
    ("loss", "name"),
    [(L.GeneratorBCE(), "generator_bce"), (L.FeatureMatching(), "feature_matching"), (L.L1(), "l1"),
     (L.GanInt(L.GanIntParams()), "gan_int"), (L.WGANGenerator(), "wgan_generator")],
)
def test_generator_terms_refuse_to_train_the_discriminator(loss, name: str) -> None:  # type: ignore[no-untyped-def]
    """With a recipe's "trains": "discriminator", these terms would have trained D to call fakes real on
    detached images, silently: they refuse, naming the fix (a user error on the first step)."""
    with pytest.raises(RuntimeError, match=f'{name} trains the generator \\(drop "trains": "discriminator"\\)'):
        loss(make_ctx("discriminator"))
    assert torch.isfinite(loss(make_ctx("generator")))
