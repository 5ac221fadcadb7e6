"""GAN-INT-CLS generator (reference §1.2, aelnouby ``models/gan_cls.py: generator``).

Text ``cond [B, cond_dim]`` → ``Linear(cond_dim→proj_dim)`` → ``BatchNorm1d``
(optional: Reed's Lua G has none) → ``LeakyReLU(0.2)``; concatenated *before*
the noise (``[text, z]``) and decoded by a DCGAN ``ConvTranspose2d`` stack
(``bias=False``, BN + ReLU, Tanh at the end). At 64 px, ngf=64, z_dim=100,
proj_dim=128 and 1024-d text it has exactly the original's 4,756,736
parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from ganreg.interfaces import BuildContext, Generator, GeneratorOutput

from ._common import dcgan_init, require_cond_dim, stage_multipliers, text_projection
from ganreg_dcgan_cls.params import DCGANClsGeneratorParams


class DCGANClsGenerator(Generator):
    """(z, text) → image: text projection, then a DCGAN transposed-conv stack."""

    def __init__(self, params: DCGANClsGeneratorParams, ctx: BuildContext) -> None:
        super().__init__()
        mults = stage_multipliers(ctx.image_size, "generator dcgan_cls")
        cond_dim = require_cond_dim(ctx.cond_dim, "generator dcgan_cls")
        ngf = params.ngf
        self.z_dim = params.z_dim
        self.image_size = ctx.image_size
        self.projection = text_projection(cond_dim, params.proj_dim, params.text_bn)
        in_ch = params.proj_dim + params.z_dim
        layers: list[nn.Module] = []
        for i, mult in enumerate(mults):
            out_ch = ngf * mult
            if i == 0:
                layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 1, 0, bias=False))  # 1×1 → 4×4
            else:
                layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False))
            layers += [nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        layers += [nn.ConvTranspose2d(in_ch, ctx.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.netG = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        text = self.projection(cond)
        x = torch.cat([text, z], dim=1)[:, :, None, None]
        return GeneratorOutput(images=self.netG(x))


def build_generator(params: DCGANClsGeneratorParams, ctx: BuildContext) -> DCGANClsGenerator:
    """DCGAN generator conditioned on projected text (GAN-INT-CLS); 32, 64 or 128 px."""
    return DCGANClsGenerator(params, ctx)
