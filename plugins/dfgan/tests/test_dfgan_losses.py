"""DF-GAN losses against hand values and an independent MA-GP computation; conformance kit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganreg.testing import TinyGenerator, check_component, registry_with, tiny_context
from ganreg.train.context import StepContext
from ganreg_dfgan import plugin
from ganreg_dfgan.discriminator import DFGANDiscriminator
from ganreg_dfgan.losses import MAGP, DFGANHinge, DFGANHingeGenerator, magp_penalty


def test_conformance_kit_over_the_plugin() -> None:
    reg = registry_with(plugin, "dfgan")
    ids = sorted(f"{c.kind}:{c.qualified}" for c in reg.components())
    assert ids == [
        "discriminator:dfgan:dfgan",
        "generator:dfgan:dfgan",
        "loss:dfgan:hinge",
        "loss:dfgan:hinge_generator",
        "loss:dfgan:magp",
    ]
    for info in reg.components():
        check_component(info)
        assert info.paper and info.summary


class _Stub:
    """Just the context fields the hinge losses read."""

    def __init__(self, real, fake, mis):
        from types import SimpleNamespace

        self.d_real = SimpleNamespace(logits=torch.tensor(real))
        self.d_fake = SimpleNamespace(logits=torch.tensor(fake))
        self.d_mismatch_logits = torch.tensor(mis)
        self.logs = {}

    def log(self, name, value):
        self.logs[name] = float(value)


def test_hinge_by_hand() -> None:
    ctx = _Stub(real=[2.0, 0.5, -1.0], fake=[-2.0, 0.0, 1.0], mis=[0.5, -3.0, -1.0])
    # real: relu(1-x) = 0, .5, 2 -> 2.5/3; fake: relu(1+x) = 0, 1, 2 -> 1; mis: 1.5, 0, 0 -> .5
    real, fake, mis = 2.5 / 3, 1.0, 0.5
    assert DFGANHinge()(ctx).item() == pytest.approx(real + (fake + mis) / 2)
    assert DFGANHinge(mismatch_weight=0)(ctx).item() == pytest.approx(real + fake)
    assert DFGANHinge(mismatch_weight=3)(ctx).item() == pytest.approx(real + (fake + 3 * mis) / 4)
    assert DFGANHingeGenerator()(ctx).item() == pytest.approx(-(-2.0 + 0.0 + 1.0) / 3)
    assert ctx.logs["hinge_mismatch"] == pytest.approx(mis)


def test_hinge_reduces_bf16_logits_in_float32() -> None:
    """Under bf16 autocast D's logits are bf16; the means are taken in float32 (bf16 keeps 3 digits)."""
    values = [1.0 + 2.0**-7 * k for k in range(16)]  # exact in bf16, their mean is not
    ctx = _Stub(real=values, fake=values, mis=values)
    for name in ("d_real", "d_fake"):
        getattr(ctx, name).logits = getattr(ctx, name).logits.bfloat16()
    ctx.d_mismatch_logits = ctx.d_mismatch_logits.bfloat16()
    g = DFGANHingeGenerator()(ctx)
    assert g.dtype == torch.float32 and g.item() == pytest.approx(-sum(values) / 16, abs=1e-7)
    assert DFGANHinge()(ctx).dtype == torch.float32


def _context(phase: str = "discriminator", input_grad: bool = True, seed: int = 0) -> StepContext:
    torch.manual_seed(seed)
    bctx = tiny_context(image_size=32)
    d = DFGANDiscriminator(nf=2, cond_dim=bctx.cond_dim, imsize=32)
    for blk in d.net_d.DBlocks:  # open the gates so the residual branches count too
        torch.nn.init.constant_(blk.gamma, 0.7)
    return StepContext(
        phase=phase,
        generator=TinyGenerator(bctx),
        discriminator=d,
        real=torch.rand(4, 3, 32, 32) * 2 - 1,
        cond=torch.randn(4, bctx.cond_dim),
        z=torch.randn(4, 8),
        input_grad=input_grad,
    )


def test_hinge_uses_real_features_rolled_by_one() -> None:
    ctx = _context()
    d = ctx.discriminator
    with torch.no_grad():
        feats = d.features(ctx.real)
        mis = d.logits(torch.roll(feats, -1, dims=0), ctx.cond)
        real = d(ctx.real, ctx.cond).logits
        fake = d(ctx.fake, ctx.cond).logits
    expected = F.relu(1 - real).mean() + (F.relu(1 + fake).mean() + F.relu(1 + mis).mean()) / 2
    torch.testing.assert_close(DFGANHinge()(ctx), expected)


def test_magp_equals_an_independent_per_sample_computation() -> None:
    ctx = _context()
    d = ctx.discriminator
    value = MAGP()(ctx)
    # independent: D is per-sample (no batch statistics), so d logit_i / d (x_i, s_i)
    # is the gradient of D run on sample i alone.
    terms = []
    for i in range(ctx.real.shape[0]):
        x = ctx.real[i : i + 1].clone().requires_grad_(True)
        s = ctx.cond[i : i + 1].clone().requires_grad_(True)
        gx, gs = torch.autograd.grad(d(x, s).logits.sum(), (x, s))
        norm = torch.sqrt(gx.pow(2).sum() + gs.pow(2).sum())
        terms.append(norm**6)
    expected = 2.0 * torch.stack(terms).mean()
    torch.testing.assert_close(value, expected, rtol=1e-4, atol=1e-8)
    # the parameters k and p
    ctx2 = _context()
    k3p2 = MAGP(k=3.0, p=2.0)(ctx2)
    terms2 = [t ** (2 / 6) for t in terms]
    torch.testing.assert_close(k3p2, 3.0 * torch.stack(terms2).mean(), rtol=1e-4, atol=1e-8)


def test_magp_trains_d_and_is_finite_at_zero_gradient() -> None:
    ctx = _context()
    MAGP()(ctx).backward()
    grads = [p.grad for p in ctx.discriminator.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # a sample whose gradient is exactly zero: the penalty's own gradient stays finite
    x = torch.zeros(2, 3, requires_grad=True)
    s = torch.zeros(2, 2, requires_grad=True)
    w = torch.zeros(3, requires_grad=True)
    logits = (x * w).sum(1) + (s * 0).sum(1)
    magp_penalty(logits, x, s).backward()
    assert torch.isfinite(w.grad).all()


def test_magp_shares_the_real_forward_with_the_hinge() -> None:
    ctx = _context()
    DFGANHinge()(ctx)
    first = ctx.d_real
    MAGP()(ctx)
    assert ctx.d_real is first  # one D pass on real pairs per step


def test_a_jointly_trained_text_encoder_learns_from_real_pairs_beside_magp() -> None:
    """MA-GP needs the condition's gradient; a condition from a text encoder that trains with D must keep
    its graph, or the real-pair hinge term never reaches the encoder (only the fake and mismatched pairs,
    which push D's logits one way). The penalty is the same value either way."""
    plain = _context()
    encoder = torch.nn.Linear(plain.cond.shape[1], plain.cond.shape[1])
    torch.nn.init.eye_(encoder.weight)
    torch.nn.init.zeros_(encoder.bias)
    joint = _context()
    joint.cond = encoder(joint.cond)  # as the trainer hands D a jointly trained encoder's sentences
    torch.testing.assert_close(MAGP()(joint), MAGP()(_context()), rtol=1e-5, atol=1e-8)
    real_term = torch.nn.functional.relu(1 - joint.d_real.logits).mean()
    (grad,) = torch.autograd.grad(real_term, encoder.weight, allow_unused=True)
    assert grad is not None and grad.abs().sum() > 0


def test_magp_asks_for_input_grad() -> None:
    assert MAGP.needs_input_grad and not DFGANHinge.needs_input_grad
    ctx = _context(input_grad=False)
    with pytest.raises(RuntimeError, match="require grad"):
        MAGP()(ctx)


def test_generator_hinge_trains_g_only() -> None:
    torch.manual_seed(0)
    from ganreg_dfgan.generator import DFGANGenerator

    bctx = tiny_context(image_size=32)
    g = DFGANGenerator(nf=2, z_dim=8, cond_dim=bctx.cond_dim, imsize=32)
    d = DFGANDiscriminator(nf=2, cond_dim=bctx.cond_dim, imsize=32)
    d.requires_grad_(False)
    ctx = StepContext(phase="generator", generator=g, discriminator=d, real=torch.rand(3, 3, 32, 32),
                      cond=torch.randn(3, bctx.cond_dim), z=torch.randn(3, 8))
    loss = DFGANHingeGenerator()(ctx)
    torch.testing.assert_close(loss, -d(ctx.fake, ctx.cond).logits.mean())
    loss.backward()
    assert g.fc.weight.grad is not None and g.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.parameters())


def test_lazy_magp_every_n_calls_scaled_by_n() -> None:
    full = MAGP()(_context())
    lazy = MAGP(every=3)
    values = [lazy(_context()) for _ in range(4)]
    torch.testing.assert_close(values[0], 3 * full)
    torch.testing.assert_close(values[3], 3 * full)
    assert values[1].item() == 0.0 and values[2].item() == 0.0
    ctx = _context()
    lazy(ctx).backward()  # a skipped call still backpropagates (zero) through D's graph
    assert "magp_grad_norm" in ctx.logs  # logged on skipped calls too: the keys never vary by step
    state = lazy.state_dict()  # the counter is checkpointed ...
    resumed = MAGP(every=3)
    resumed.load_state_dict(state)  # ... and a resumed run stays in phase
    assert resumed.calls == 5
    assert resumed(_context()).item() == 0.0 and resumed(_context()).item() != 0.0
