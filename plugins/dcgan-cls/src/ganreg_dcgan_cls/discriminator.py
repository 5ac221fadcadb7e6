"""GAN-INT-CLS discriminator (reference §1.3, aelnouby ``models/gan_cls.py: discriminator``).

``features(images)`` is ``netD_1``: strided 4×4 convs (``bias=False``), no BN
on the first, BN + LeakyReLU(0.2) after the others, down to
``[B, 8·ndf, 4, 4]`` at 64 px. ``logits(features, cond)`` projects the text
(``Linear`` + ``BatchNorm1d`` + ``LeakyReLU(0.2)``), tiles it over 4×4,
concatenates it *after* the image features and applies
``Conv2d(8·ndf + proj_dim → 1, 4, 1, 0, bias=False)``: one unbounded logit per
sample (the original's Sigmoid is left to BCE-with-logits; its WGAN critic's
batch mean is left to the loss). At 64 px, ndf=64, proj_dim=128 and 1024-d
text it has exactly the original's 2,899,072 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from ganreg.interfaces import BuildContext, Discriminator

from ._common import dcgan_init, require_cond_dim, stage_multipliers, text_projection
from ganreg_dcgan_cls.params import DCGANClsDiscriminatorParams


class DCGANClsDiscriminator(Discriminator):
    """Image → 4×4 features; features + tiled projected text → one logit."""

    def __init__(self, params: DCGANClsDiscriminatorParams, ctx: BuildContext) -> None:
        super().__init__()
        mults = list(reversed(stage_multipliers(ctx.image_size, "discriminator dcgan_cls")))
        cond_dim = require_cond_dim(ctx.cond_dim, "discriminator dcgan_cls")
        ndf = params.ndf
        layers: list[nn.Module] = []
        in_ch = ctx.channels
        for i, mult in enumerate(mults):
            out_ch = ndf * mult
            layers.append(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False))
            if i > 0 and params.batchnorm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        self.netD_1 = nn.Sequential(*layers)
        self.feature_channels = in_ch
        self.projection = text_projection(cond_dim, params.proj_dim, params.text_bn)
        self.netD_2 = nn.Conv2d(in_ch + params.proj_dim, 1, 4, 1, 0, bias=False)
        dcgan_init(self)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, S, S]`` → ``[B, feature_channels, 4, 4]`` (after the last LeakyReLU)."""
        return self.netD_1(images)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        text = self.projection(cond)
        text = text[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.netD_2(torch.cat([features, text], dim=1)).flatten()


def build_discriminator(params: DCGANClsDiscriminatorParams, ctx: BuildContext) -> DCGANClsDiscriminator:
    """DCGAN discriminator with text tiled at 4×4 (GAN-INT-CLS matching-aware D); 32, 64 or 128 px."""
    return DCGANClsDiscriminator(params, ctx)
