"""DF-GAN losses (tobran/DF-GAN ``code/lib/modules.py``: ``train``, ``MA_GP``).

* ``hinge`` (D): ``mean(relu(1 - D(x, s))) + (mean(relu(1 + D(G(z, s), s)))
  + mean(relu(1 + D(roll(x), s)))) / 2``; the mismatched pairs are the real
  image features rolled by one within the batch with the original sentences
  (``ctx.d_mismatch_logits``).
* ``hinge_generator`` (G): ``-mean(D(G(z, s), s))``.
* ``magp`` (D): Matching-Aware zero-centred Gradient Penalty on real images and
  their matching sentences, ``k * mean(||(dD/dx, dD/ds)||_2 ** p)`` with k = 2,
  p = 6, the L2 norm taken per sample over the concatenated, flattened image and
  sentence gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from ganreg.interfaces import BuildContext, Loss, per_image_logits
from ganreg.train.context import StepContext
from ganreg_dfgan.params import HingeParams, MAGPParams


class DFGANHinge(Loss):
    """D's hinge loss with DF-GAN's rolled mismatched pairs."""

    network = "discriminator"

    def __init__(self, mismatch_weight: float = 1.0) -> None:
        super().__init__()
        self.mismatch_weight = float(mismatch_weight)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        real = F.relu(1.0 - ctx.d_real.logits.float()).mean()
        fake = F.relu(1.0 + ctx.d_fake.logits.float()).mean()
        ctx.log("hinge_real", real)
        ctx.log("hinge_fake", fake)
        w = self.mismatch_weight
        if w == 0:
            return real + fake
        mis = F.relu(1.0 + ctx.d_mismatch_logits.float()).mean()
        ctx.log("hinge_mismatch", mis)
        return real + (fake + w * mis) / (1.0 + w)


class DFGANHingeGenerator(Loss):
    """G's hinge loss: ``-mean(D(G(z, s), s))``."""

    network = "generator"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        return -ctx.d_fake.logits.float().mean()  # reduced in float32, as the trainer adds the terms


def magp_sq_norms(logits: torch.Tensor, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """Per-sample squared L2 norm of the joint gradient ``(d sum(logits)/d images, d sum(logits)/d cond)``,
    flattened and concatenated per sample: ``[B]``, differentiable (create_graph). A patch map counts as
    its mean per image (:func:`ganreg.interfaces.per_image_logits`)."""
    grads = torch.autograd.grad(per_image_logits(logits).sum(), (images, cond), create_graph=True)
    # summed per gradient, not flattened and concatenated: flattening a channels_last image gradient is a copy
    return sum(g.float().square().sum(dim=tuple(range(1, g.dim()))) for g in grads)


def magp_penalty(
    logits: torch.Tensor, images: torch.Tensor, cond: torch.Tensor, k: float = 2.0, p: float = 6.0
) -> torch.Tensor:
    """``k * mean(||g||_2 ** p)``, computed as ``(||g||^2) ** (p/2)``: the same value as the original's
    ``sqrt`` then ``** p``, but with a finite second derivative where a gradient is exactly zero."""
    return k * magp_sq_norms(logits, images, cond).pow(p / 2).mean()


class MAGP(Loss):
    """Matching-Aware zero-centred Gradient Penalty on (real image, matching sentence)."""

    network = "discriminator"
    needs_input_grad = True

    def __init__(self, k: float = 2.0, p: float = 6.0, every: int = 1) -> None:
        super().__init__()
        self.k, self.p, self.every = float(k), float(p), int(every)
        self.calls = 0
        """Calls so far (lazy mode); saved as the module's extra state, so a resumed run stays in phase."""
        # the last computed mean gradient norm, logged on every call (the logged keys must not vary by step)
        self.register_buffer("last_grad_norm", torch.zeros(()))

    def get_extra_state(self) -> dict[str, int]:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.calls = int(state.get("calls", 0))

    def forward(self, ctx: StepContext) -> torch.Tensor:
        images, cond = ctx.real_input, ctx.cond_input
        if not (images.requires_grad and cond.requires_grad):
            raise RuntimeError("magp needs D's real inputs to require grad (the trainer sets them when needs_input_grad)")
        due = self.calls % self.every == 0
        self.calls += 1
        if not due:  # a zero that still belongs to D's graph, so the step's backward works as usual
            ctx.log("magp_grad_norm", self.last_grad_norm.clone())
            return ctx.d_real.logits.sum() * 0.0
        sq = magp_sq_norms(ctx.d_real.logits, images, cond)
        self.last_grad_norm.copy_(sq.detach().sqrt().mean())
        ctx.log("magp_grad_norm", self.last_grad_norm.clone())
        return self.every * self.k * sq.pow(self.p / 2).mean()


def build_hinge(params: HingeParams, ctx: BuildContext) -> DFGANHinge:
    """DF-GAN discriminator hinge loss with rolled mismatched pairs.

    real + (fake + mismatch) / 2, the mismatched pairs being real features rolled by one with the original text.
    """
    return DFGANHinge(params.mismatch_weight)


def build_hinge_generator(params: BaseModel, ctx: BuildContext) -> DFGANHingeGenerator:
    """DF-GAN generator hinge loss: -mean(D(fake, text))."""
    return DFGANHingeGenerator()


def build_magp(params: MAGPParams, ctx: BuildContext) -> MAGP:
    """DF-GAN matching-aware gradient penalty (MA-GP).

    k * mean(||grad of D(real, text) w.r.t. (image, text)||_2 ** p), k = 2, p = 6, on real pairs.
    """
    return MAGP(params.k, params.p, params.every)
