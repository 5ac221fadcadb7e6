"""GAN-INT-CLS losses (reference §1.6, §1.11): matching-aware BCE, feature
matching, L1, GAN-INT, WGAN (weight clipping) and WGAN-GP.

Every term is computed on D's unbounded logits (BCE-with-logits, not the
originals' Sigmoid + BCELoss: the same value, numerically stabler). A term's
weight comes from the recipe entry, never from the loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from ganreg.interfaces import BuildContext, Discriminator, Loss, per_image_logits
from ganreg_dcgan_cls.params import MatchingBCEParams, GanIntParams, WGANParams, WGANGPParams

if TYPE_CHECKING:
    from ganreg.train.context import StepContext


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), target))


# ------------------------------------------------------------------ matching_bce


class MatchingBCE(Loss):
    """D: real·BCE(real, 1-s) + fake·BCE(fake, 0) + wrong·BCE(wrong, 0)."""

    network = "discriminator"

    def __init__(self, params: MatchingBCEParams) -> None:
        super().__init__()
        self.p = params
        self.needs_wrong_images = params.wrong_weight > 0

    def forward(self, ctx: StepContext) -> torch.Tensor:
        p = self.p
        real = ctx.d_real.logits
        fake = ctx.d_fake.logits
        loss = p.real_weight * _bce(real, 1.0 - p.smoothing) + p.fake_weight * _bce(fake, 0.0)
        ctx.log("D(real)", torch.sigmoid(real.detach().float()).mean())
        ctx.log("D(fake)", torch.sigmoid(fake.detach().float()).mean())
        if p.wrong_weight > 0:
            wrong = ctx.d_wrong.logits
            loss = loss + p.wrong_weight * _bce(wrong, 0.0)
            ctx.log("D(wrong)", torch.sigmoid(wrong.detach().float()).mean())
        return loss


# ----------------------------------------------------------------- generator_bce
class GeneratorBCE(Loss):
    """G: BCE(D(G(z, text), text), 1), the non-saturating generator loss."""

    network = "generator"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        ctx.require_phase("generator", "generator_bce")
        return _bce(ctx.d_fake.logits, 1.0)


# -------------------------------------------------------------- feature_matching
class FeatureMatching(Loss):
    """G: MSE(mean_b φ(fake), mean_b φ(real).detach()), φ = D.features (aelnouby's l2 term)."""

    network = "generator"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        ctx.require_phase("generator", "feature_matching")
        fake = ctx.d_fake.features.float().mean(0)
        real = ctx.d_real.features.detach().float().mean(0)
        return F.mse_loss(fake, real)


# ---------------------------------------------------------------------------- l1
class L1(Loss):
    """G: mean |G(z, text) - real|, each fake paired with its own real image."""

    network = "generator"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        ctx.require_phase("generator", "l1")
        return F.l1_loss(ctx.fake.float(), ctx.real.float())


# ----------------------------------------------------------------------- gan_int


class GanInt(Loss):
    """G: BCE(D(G(z', t_int), t_int), 1) on interpolated text embeddings (Reed's GAN-INT).

    ``t_b`` is the batch rolled by one; ``z'`` is fresh noise. The
    interpolated pairs are never shown to D as real.
    """

    network = "generator"

    def __init__(self, params: GanIntParams) -> None:
        super().__init__()
        self.beta = params.beta

    def forward(self, ctx: StepContext) -> torch.Tensor:
        ctx.require_phase("generator", "gan_int")
        t = ctx.cond.detach()  # as ctx.g_out: G never back-propagates into the text encoder
        t_int = self.beta * t + (1.0 - self.beta) * torch.roll(t, 1, dims=0)
        z = ctx.noise(t.shape[0]).to(device=t.device, dtype=t.dtype)
        out = ctx.generator(z, t_int)
        d_cond = out.cond_used.detach() if out.cond_used is not None else t_int
        return _bce(ctx.discriminator(out.images, d_cond).logits, 1.0)


# -------------------------------------------------------------------------- wgan


class WGANCritic(Loss):
    """D (critic): mean D(fake) - mean D(real) [+ w·mean D(wrong)], with weight clipping."""

    network = "discriminator"

    def __init__(self, params: WGANParams) -> None:
        super().__init__()
        self.clip = params.clip
        self.wrong_weight = params.wrong_weight
        self.needs_wrong_images = params.wrong_weight > 0

    def forward(self, ctx: StepContext) -> torch.Tensor:
        real = ctx.d_real.logits.float().mean()
        fake = ctx.d_fake.logits.float().mean()
        ctx.log("wasserstein", (real - fake).detach())
        loss = fake - real
        if self.wrong_weight > 0:
            loss = loss + self.wrong_weight * ctx.d_wrong.logits.float().mean()
        return loss

    @torch.no_grad()
    def after_step(self, network: nn.Module) -> None:
        if self.clip is None or not isinstance(network, Discriminator):
            return
        for p in network.parameters():
            p.clamp_(-self.clip, self.clip)


class WGANGenerator(Loss):
    """G: -mean D(G(z, text), text)."""

    network = "generator"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        ctx.require_phase("generator", "wgan_generator")
        return -ctx.d_fake.logits.float().mean()


# ----------------------------------------------------------------------- wgan_gp


class WGANGP(Loss):
    """D: λ·E[(‖∇_x̂ D(x̂, text)‖₂ - 1)²], x̂ = ε·real + (1-ε)·fake, ε ~ U[0, 1] per sample.

    The norm is taken per sample over all of C×H×W (aelnouby's disabled
    ``compute_GP`` took a per-pixel channel norm, a bug: reference §1.6).
    Add it to the ``wgan`` critic loss with ``clip: null``; a critic without
    BatchNorm (``batchnorm: false``) keeps samples independent.
    """

    network = "discriminator"

    def __init__(self, params: WGANGPParams) -> None:
        super().__init__()
        self.lam = params.lambda_gp

    def forward(self, ctx: StepContext) -> torch.Tensor:
        real = ctx.real.detach()
        fake = ctx.fake.detach().to(real.dtype)
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
        logits = ctx.discriminator(x_hat, ctx.d_cond.detach()).logits
        (grad,) = torch.autograd.grad(per_image_logits(logits).float().sum(), x_hat, create_graph=True)
        norm = grad.float().flatten(1).norm(2, dim=1)
        ctx.log("grad_norm", norm.detach().mean())
        return self.lam * ((norm - 1.0) ** 2).mean()


# --------------------------------------------------------------------- factories
def build_matching_bce(params: MatchingBCEParams, ctx: BuildContext) -> MatchingBCE:
    """Matching-aware D loss: BCE on (real, text)→1-s, (fake, text)→0, (wrong, text)→0."""
    return MatchingBCE(params)


def build_generator_bce(params: BaseModel, ctx: BuildContext) -> GeneratorBCE:
    """Non-saturating G loss: BCE(D(G(z, text), text), 1)."""
    return GeneratorBCE()


def build_feature_matching(params: BaseModel, ctx: BuildContext) -> FeatureMatching:
    """Feature matching on the batch means of D's 4×4 features (aelnouby l2_coef, weight 100)."""
    return FeatureMatching()


def build_l1(params: BaseModel, ctx: BuildContext) -> L1:
    """L1 between each fake and its own real image (aelnouby l1_coef, weight 50)."""
    return L1()


def build_gan_int(params: GanIntParams, ctx: BuildContext) -> GanInt:
    """Reed's GAN-INT term: fool D with images of interpolated text embeddings."""
    return GanInt(params)


def build_wgan(params: WGANParams, ctx: BuildContext) -> WGANCritic:
    """WGAN critic loss mean D(fake) - mean D(real), with weight clipping after each D step."""
    return WGANCritic(params)


def build_wgan_generator(params: BaseModel, ctx: BuildContext) -> WGANGenerator:
    """WGAN generator loss -mean D(fake)."""
    return WGANGenerator()


def build_wgan_gp(params: WGANGPParams, ctx: BuildContext) -> WGANGP:
    """WGAN-GP gradient penalty with the per-sample gradient norm on real/fake interpolates."""
    return WGANGP(params)
