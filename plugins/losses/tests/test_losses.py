"""The model-agnostic losses: pair scores against D called pair by pair, the cross-entropy by hand,
which network each phase trains, that mode seeking punishes a generator that ignores its noise, and
that the diversity-sensitive term rewards noise diversity by hand, only up to its bound."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import math

import pytest
import torch
from torch import nn

from ganreg.interfaces import Discriminator, Generator, GeneratorOutput
from ganreg.testing import TinyDiscriminator, TinyGenerator, check_component, registry_with, tiny_context
from ganreg.train.context import StepContext
from ganreg_losses import plugin
from ganreg_losses.losses import Contrastive, DiversitySensitive, ModeSeeking, matching_cross_entropy, pair_logits

B = 5


def test_conformance_kit_over_the_plugin() -> None:
    reg = registry_with(plugin, "losses")
    ids = sorted(f"{c.kind}:{c.qualified}" for c in reg.components())
    assert ids == [
        "loss:losses:contrastive",
        "loss:losses:contrastive_generator",
        "loss:losses:diversity_sensitive",
        "loss:losses:mode_seeking",
    ]
    for info in reg.components():
        check_component(info)
        assert info.paper and info.summary


def _context(phase: str, generator: Generator | None = None, seed: int = 0) -> StepContext:
    torch.manual_seed(seed)
    bctx = tiny_context(image_size=16)
    return StepContext(
        phase=phase,  # type: ignore[arg-type]
        generator=generator or TinyGenerator(bctx),
        discriminator=TinyDiscriminator(bctx),
        real=torch.rand(B, 3, 16, 16) * 2 - 1,
        cond=torch.randn(B, bctx.cond_dim),
        z=torch.randn(B, 8),
    )


def test_pair_logits_score_every_image_with_every_caption() -> None:
    ctx = _context("discriminator")
    d = ctx.discriminator
    with torch.no_grad():
        feats = d.features(ctx.real)
        m = pair_logits(d, feats, ctx.cond)
        for i in range(B):
            for j in range(B):
                assert m[i, j] == pytest.approx(d.logits(feats[i : i + 1], ctx.cond[j : j + 1]).item(), abs=1e-6)
        torch.testing.assert_close(torch.diagonal(m), d(ctx.real, ctx.cond).logits)


def test_matching_cross_entropy_by_hand() -> None:
    uniform = torch.zeros(4, 4)
    loss, top1 = matching_cross_entropy(uniform, 1.0)
    assert loss.item() == pytest.approx(math.log(4))
    sharp = torch.eye(3) * 50
    loss, top1 = matching_cross_entropy(sharp, 1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and top1.item() == 1.0
    # row 0 picks caption 1: log-softmax by hand, temperature halves the logits
    m = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    loss, top1 = matching_cross_entropy(m, 2.0)
    expected = (-(0.0 - math.log(1 + math.e)) - (1.0 - math.log(1 + math.e))) / 2
    assert loss.item() == pytest.approx(expected) and top1.item() == 0.5


def _grad_norms(loss: torch.Tensor, *modules: nn.Module) -> list[float]:
    loss.backward()
    return [sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None) for m in modules]


def test_contrastive_trains_d_on_real_images_and_g_on_fakes() -> None:
    ctx = _context("discriminator")
    loss = Contrastive("discriminator")(ctx)
    g_grad, d_grad = _grad_norms(loss, ctx.generator, ctx.discriminator)
    assert d_grad > 0 and g_grad == 0 and 0 <= float(ctx.logs["top1"]) <= 1
    ctx = _context("generator")
    ctx.discriminator.requires_grad_(False)  # as the trainer does in G's phase
    loss = Contrastive("generator")(ctx)
    (g_grad,) = _grad_norms(loss, ctx.generator)
    assert g_grad > 0
    # G's term scores the fakes: the same value as the cross-entropy over D(fake_i, s_j)
    with torch.no_grad():
        feats = ctx.discriminator.features(ctx.fake)
        expected, _ = matching_cross_entropy(pair_logits(ctx.discriminator, feats, ctx.cond), 1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_contrastive_needs_two_images() -> None:
    ctx = _context("discriminator")
    ctx.real, ctx.cond, ctx.z = ctx.real[:1], ctx.cond[:1], ctx.z[:1]
    with pytest.raises(RuntimeError, match="at least 2"):
        Contrastive("discriminator")(ctx)


class _NoiseBlind(Generator):
    """Uses the caption only: every noise vector gives the same image."""

    z_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 3 * 16 * 16)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        return GeneratorOutput(images=torch.tanh(self.fc(cond)).view(-1, 3, 16, 16) + 0 * z.sum())


def test_mode_seeking_punishes_a_generator_that_ignores_its_noise() -> None:
    blind = ModeSeeking(eps=1e-5)(_context("generator", _NoiseBlind()))
    assert blind.item() == pytest.approx(1e5, rel=1e-3)
    ctx = _context("generator")
    loss = ModeSeeking()(ctx)
    ratio = float(ctx.logs["ratio"])
    assert 0 < ratio and loss.item() == pytest.approx(1 / (ratio + 1e-5), rel=1e-5)
    # one gradient step on the loss makes two noise vectors give more different images
    opt = torch.optim.SGD(ctx.generator.parameters(), lr=0.05)
    loss.backward()
    opt.step()
    torch.manual_seed(0)
    again = _context("generator", ctx.generator)
    ModeSeeking()(again)
    assert float(again.logs["ratio"]) > ratio
    with pytest.raises(RuntimeError, match="trains the generator"):
        ModeSeeking()(_context("discriminator"))


class _CountingGenerator(Generator):
    """``tanh(fc(cat(z, cond)))``; records the batch size of every call."""

    z_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8 + 16, 3 * 16 * 16)
        self.calls: list[int] = []
        self.conds: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        self.calls.append(z.shape[0])
        self.conds.append(cond.detach().clone())
        return GeneratorOutput(images=torch.tanh(self.fc(torch.cat([z, cond], 1))).view(-1, 3, 16, 16))


def _second_noise(ctx: StepContext) -> list[torch.Tensor]:
    """Record the fresh noise the loss draws (and hand it out)."""
    drawn: list[torch.Tensor] = []

    def noise(n: int) -> torch.Tensor:
        drawn.append(torch.randn(n, ctx.z.shape[1]))
        return drawn[-1]

    ctx._sample_noise = noise
    return drawn


def test_diversity_sensitive_by_hand_and_only_up_to_tau() -> None:
    g = _CountingGenerator()
    ctx = _context("generator", g)
    drawn = _second_noise(ctx)
    ratio_by_hand = None
    for tau in (10.0, 1e-4):
        drawn.clear()
        loss = DiversitySensitive(tau=tau)(ctx)
        with torch.no_grad():
            other = g(drawn[0], ctx.cond).images
            ratio = (ctx.fake - other).abs().flatten(1).mean(1) / (ctx.z - drawn[0]).abs().mean(1)
        assert loss.item() == pytest.approx(-ratio.clamp(max=tau).mean().item(), rel=1e-5)
        assert float(ctx.logs["ratio"]) == pytest.approx(ratio.mean().item(), rel=1e-5)
        ratio_by_hand = ratio
    assert ratio_by_hand is not None and (ratio_by_hand > 1e-4).all()
    # every pair is past tau = 1e-4: the term is constant there and gives G no gradient
    assert float(ctx.logs["saturated"]) == 1.0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in g.parameters())


def test_noise_regularisers_run_the_second_pass_on_the_first_samples_only() -> None:
    g = _CountingGenerator()
    for loss, second in ((DiversitySensitive(samples=2), 2), (ModeSeeking(samples=3), 3), (DiversitySensitive(samples=50), B)):
        ctx = _context("generator", g)
        _ = ctx.fake
        g.calls.clear()
        g.conds.clear()
        loss(ctx)
        assert g.calls == [second] and torch.equal(g.conds[0], ctx.cond[:second])  # the same captions, fresh noise


class _BatchNormNoiseBlind(_NoiseBlind):
    """Ignores its noise, but normalises with batch statistics: its image of one item depends on the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3 * 16 * 16)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        return GeneratorOutput(images=torch.tanh(self.bn(self.fc(cond))).view(-1, 3, 16, 16) + 0 * z.sum())


def test_noise_regularisers_see_no_diversity_from_batch_statistics() -> None:
    """A BatchNorm G that ignores its noise: both images of a pair come from one forward pass, so it scores
    0 (two passes over batches of different sizes would differ by the batch statistics alone)."""
    g = _BatchNormNoiseBlind().train()
    ctx = _context("generator", g)
    DiversitySensitive(tau=10.0, samples=2)(ctx)
    assert float(ctx.logs["ratio"]) == pytest.approx(0.0, abs=1e-6)
    two_passes = (ctx.fake[:2] - g(torch.randn(2, 8), ctx.cond[:2]).images).abs().mean()
    assert two_passes > 0.1  # what the term would have measured: batch statistics, not noise
    blind = ModeSeeking(eps=1e-5, samples=2)(_context("generator", g))
    assert blind.item() == pytest.approx(1e5, rel=1e-3)


def test_diversity_sensitive_step_makes_the_noise_matter_more() -> None:
    ctx = _context("generator")
    loss = DiversitySensitive(tau=10.0)(ctx)
    ratio = float(ctx.logs["ratio"])
    opt = torch.optim.SGD(ctx.generator.parameters(), lr=0.5)
    loss.backward()
    opt.step()
    torch.manual_seed(0)
    again = _context("generator", ctx.generator)
    DiversitySensitive(tau=10.0)(again)
    assert float(again.logs["ratio"]) > ratio
    with pytest.raises(RuntimeError, match="trains the generator"):
        DiversitySensitive()(_context("discriminator"))


class _OwnNoiseBlind(_NoiseBlind):
    """Ignores its noise, but draws noise of its own into the condition in training mode (as StackGAN's
    conditioning augmentation does), switched off under ``noise_only_from_z``; ``bn``: normalises with batch
    statistics too."""

    def __init__(self, bn: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3 * 16 * 16) if bn else nn.Identity()
        self.own_noise = True

    @contextlib.contextmanager
    def noise_only_from_z(self) -> Iterator[None]:
        self.own_noise = False
        try:
            yield
        finally:
            self.own_noise = True

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        if self.training and self.own_noise:
            cond = cond + torch.randn_like(cond)
        return GeneratorOutput(images=torch.tanh(self.bn(self.fc(cond))).view(-1, 3, 16, 16) + 0 * z.sum())


@pytest.mark.parametrize("bn", [False, True], ids=["no-batchnorm", "batchnorm"])
def test_noise_regularisers_see_no_diversity_from_the_generators_own_noise(bn: bool) -> None:
    """A G that ignores z but draws noise into its condition (StackGAN's conditioning augmentation): the pair is
    drawn under ``noise_only_from_z``, so it scores 0; that noise used to pass for a response to z."""
    g = _OwnNoiseBlind(bn).train()
    ctx = _context("generator", g)
    _ = ctx.fake  # the step's images, drawn with the condition noise: not reused for the pair
    DiversitySensitive(tau=10.0)(ctx)
    assert float(ctx.logs["ratio"]) == pytest.approx(0.0, abs=1e-6)
    assert g.own_noise  # restored after the pair
    assert ModeSeeking(eps=1e-5)(_context("generator", g)).item() == pytest.approx(1e5, rel=1e-2)


class _BatchNormHead(Discriminator):
    """A conditional head that normalises with batch statistics, as StackGAN's ``D_GET_LOGITS`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(3 * 16 * 16, 6)
        self.head = nn.Sequential(nn.Linear(6 + 16, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images.flatten(1))

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([features, cond], 1)).squeeze(1)


def test_pair_logits_with_a_batchnorm_head_normalise_as_ds_own_passes() -> None:
    """One B²-pair batch, mostly mismatched, gave the diagonal other statistics than D's real pairs: the pairs are
    scored B at a time (captions rolled), so the diagonal is D's own real-pair logits, and (i, j) is image i
    with caption j."""
    torch.manual_seed(0)
    d = _BatchNormHead().train()
    feats, cond = torch.randn(B, 6), torch.randn(B, 16)
    m = pair_logits(d, feats, cond)
    torch.testing.assert_close(torch.diagonal(m), d.logits(feats, cond))
    rolled = d.logits(feats, cond.roll(-1, 0))  # image i with caption i + 1
    torch.testing.assert_close(m[torch.arange(B), (torch.arange(B) + 1) % B], rolled)
    m.sum().backward()
    assert d.head[0].weight.grad is not None
