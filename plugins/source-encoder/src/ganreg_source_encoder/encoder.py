"""A convolutional source-image encoder with a variational head.

Seed projects 000 (``SrcEncoder``, "a deeper convolutional network to extract richer visual features
from source images") and 001 (a "source encoder" whose latents, with a content map, replace the
generator's noise) encode the real image and hand G its latent instead of noise. As they stand, a G
trained that way has nothing to draw from without a source image. The variational head is the
remedy of VAE-GAN (Larsen et al. 2016) and BicycleGAN's cVAE-GAN (Zhu et al. 2017): the latent is
sampled from ``N(mu, sigma^2)`` and its KL to ``N(0, I)`` is a loss, so noise from the prior is a
latent G has learnt to read.

Network: 4x4 stride-2 convs (pad 1) with LeakyReLU(0.2), widths ``ndf * min(2**i, 8)``, a norm after
every conv but the first, down to a 4x4 map (the ``content`` output); then ``Linear`` heads for mu and
log-variance on the flattened map. Training mode samples ``mu + sigma * eps``; eval mode returns mu.
``aux["kl"] = mean_batch(0.5 * sum_dims(mu^2 + sigma^2 - 1 - log sigma^2))``, the per-image KL.
"""

from __future__ import annotations

import torch
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, ImageEncoder, ImageEncoderOutput
from ganreg_source_encoder.params import SourceEncoderParams


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class SourceEncoder(ImageEncoder):
    """Image ``[B, C, S, S]`` -> 4x4 content map -> latent ``[B, latent_dim]`` (and its KL when variational)."""

    def __init__(self, params: SourceEncoderParams, ctx: BuildContext) -> None:
        super().__init__()
        size = ctx.image_size
        if size < 8 or size & (size - 1):
            raise UserError(
                f"image encoder 'source_encoder' needs a power-of-two image size of at least 8 px, not {size}",
                "set data.image_size to 32, 64, 128 or 256",
            )
        self.out_dim = params.latent_dim
        self.variational = params.variational
        layers: list[nn.Module] = [nn.Conv2d(ctx.channels, params.ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width, side, i = params.ndf, size // 2, 1
        while side > 4:
            out = params.ndf * min(2**i, 8)
            layers += [nn.Conv2d(width, out, 4, 2, 1, bias=params.norm == "none"), _norm(params.norm, out),
                       nn.LeakyReLU(0.2, True)]
            width, side, i = out, side // 2, i + 1
        self.convs = nn.Sequential(*layers)
        self.content_channels = width
        self.mu = nn.Linear(width * 16, params.latent_dim)
        self.logvar = nn.Linear(width * 16, params.latent_dim) if params.variational else None

    def forward(self, images: torch.Tensor) -> ImageEncoderOutput:
        content = self.convs(images)
        # the heads, the sampling and the KL in float32, also under bf16 autocast (exp of a log-variance)
        with torch.autocast(images.device.type, enabled=False):
            flat = content.flatten(1).float()
            mu = self.mu(flat)
            if self.logvar is None:
                return ImageEncoderOutput(latent=mu, content=content)
            logvar = self.logvar(flat)
            kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1).mean()
            latent = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return ImageEncoderOutput(latent=latent, content=content, aux={"kl": kl})


def build_source_encoder(params: SourceEncoderParams, ctx: BuildContext) -> SourceEncoder:
    """Strided conv encoder of the source image; its (sampled) latent replaces G's noise in training."""
    return SourceEncoder(params, ctx)
