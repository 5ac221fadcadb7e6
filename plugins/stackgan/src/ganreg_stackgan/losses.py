"""StackGAN Stage-I losses (reference 3.6: ``code/miscc/utils.py: compute_discriminator_loss``, ``KL_loss``).

* ``stage1_bce`` (D): ``BCE(D(x, mu), 1) + w * (BCE(D(G(z, c), mu), 0) + BCE(D(x', mu), 0))`` with w = 1/2.
  The original's wrong pairs shift the batch by one (``x[:B-1]`` with ``mu[1:]``: each image with the next
  item's condition); here D's real features are rolled by one (``ctx.d_mismatch_logits``, as DF-GAN does:
  each condition with the next item's image). Pairs of the same kind, B of them instead of B - 1, and D's
  image trunk runs once for the real and the mismatched pairs.
* ``kl`` (G): the generator's ``aux["kl"]``; weight it 2.0 in the recipe (``TRAIN.COEFF.KL``).
  G's adversarial term is ``BCE(D(G(z, c), mu), 1)``: ``dcgan_cls:generator_bce``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Loss
from ganreg.train.context import StepContext
from ganreg_stackgan.params import MatchingBCEParams


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits, target, dtype=torch.float32))


class StageIMatchingBCE(Loss):
    """D's matching-aware BCE with mismatched pairs from the batch itself."""

    network = "discriminator"

    def __init__(self, mismatch_weight: float = 0.5) -> None:
        super().__init__()
        self.mismatch_weight = float(mismatch_weight)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        real = _bce(ctx.d_real.logits, 1.0)
        fake = _bce(ctx.d_fake.logits, 0.0)
        wrong = _bce(ctx.d_mismatch_logits, 0.0)
        ctx.log("real", real)
        ctx.log("fake", fake)
        ctx.log("wrong", wrong)
        return real + self.mismatch_weight * (fake + wrong)


class ConditioningKL(Loss):
    """The KL divergence of conditioning augmentation, read from the generator's ``aux["kl"]``."""

    network = "generator"

    def forward(self, ctx: StepContext) -> torch.Tensor:
        kl = ctx.g_aux.get("kl")
        if kl is None:
            raise UserError(
                "loss stackgan:kl reads the generator's aux 'kl', which this generator does not return",
                "use it with a generator that has conditioning augmentation (stackgan:stage1), or drop it",
            )
        return kl


def build_matching_bce(params: MatchingBCEParams, ctx: BuildContext) -> StageIMatchingBCE:
    """Stage-I D loss: BCE(real) + (BCE(fake) + BCE(mismatch)) / 2 (mismatched pairs: the batch shifted by one)."""
    return StageIMatchingBCE(params.mismatch_weight)


def build_kl(params: object, ctx: BuildContext) -> ConditioningKL:
    """KL(N(mu, sigma) || N(0, I)) of conditioning augmentation, as StackGAN's KL_loss (a mean over batch and dims)."""
    return ConditioningKL()
