"""The KL term of a variational image encoder."""

from __future__ import annotations

import torch

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Loss
from ganreg.train.context import StepContext
from ganreg_source_encoder.params import KLParams


class EncoderKL(Loss):
    """KL(N(mu, sigma^2) || N(0, I)) of the image encoder's latents, read from its ``aux["kl"]``; trains the
    encoder (with G's optimiser)."""

    network = "generator"
    needs_image_encoder = True

    def forward(self, ctx: StepContext) -> torch.Tensor:
        kl = ctx.e_aux.get("kl")
        if kl is None:
            raise UserError(
                "loss source_encoder:latent_kl reads the image encoder's aux 'kl', which this encoder does not return",
                "use a variational image encoder (source_encoder:conv with variational true), or drop the loss",
            )
        return kl


def build_kl(params: KLParams, ctx: BuildContext) -> EncoderKL:
    """The image encoder's KL to N(0, I) (per image, summed over the latent's dims, averaged over the batch)."""
    return EncoderKL()
