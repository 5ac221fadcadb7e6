"""DF-GAN generator ``NetG`` (tobran/DF-GAN ``code/models/GAN.py``, CVPR'22 code).

* ``cond = cat(z, sentence)`` (``z_dim + cond_dim``, 356 in the original) is fed
  to every fusion block; ``fc = Linear(z_dim -> 8nf*4*4)``.
* ``G_Block``: nearest x2 upsample first, then ``shortcut(x) + residual(x, cond)``
  with a 1x1 shortcut when in != out (no residual gate in the current code);
  residual = DFBLK(in) -> Conv3x3 -> DFBLK(out) -> Conv3x3. All convs have bias,
  PyTorch default init.
* ``DFBLK`` = Affine -> LReLU(0.2) -> Affine -> LReLU(0.2). Each ``Affine`` owns
  two MLPs (``Linear(cond->C) -> ReLU -> Linear(C->C)``) for gamma and beta whose
  last layer starts at weight 0 / bias 1 (gamma) and 0 / 0 (beta): identity.
  Here the four gamma/beta vectors are computed by the MLPs and the
  modulation + activations run in one call of the fused op ``ganreg.ops.dfblk``
  (Triton on CUDA, the PyTorch reference elsewhere).
* ``to_rgb`` = LReLU(0.2) -> Conv3x3(nf->3) -> Tanh.

Sub-module names mirror the original (``fc``, ``GBlocks.i.c1/c2/c_sc``,
``GBlocks.i.fuse1.affine0.fc_gamma.linear1``, ``to_rgb.1``) so the released
``netG`` state dicts load after stripping DDP's ``module.`` prefix.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Generator, GeneratorOutput
from ganreg.ops import dfblk
from ganreg_dfgan.params import DFGANGeneratorParams


def check_image_size(imsize: int, who: str) -> None:
    if imsize < 32 or imsize & (imsize - 1):
        raise UserError(
            f"{who} needs a power-of-two image size of at least 32, got {imsize}",
            "set data.image_size to 32, 64, 128 or 256",
        )


def _channels(nf: int, imsize: int) -> list[int]:
    layer_num = int(math.log2(imsize)) - 1
    return [nf * min(2**idx, 8) for idx in range(layer_num)]


def official_nets(checkpoint: object) -> dict | None:
    """``checkpoint["model"]`` of the official code's ``state_epoch_*.pth`` (``{"model": {"netG", "netD",
    "netC"}, "optimizers": ..., "epoch": ...}``, ``code/lib/utils.py: save_models``), or None."""
    model = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    return model if isinstance(model, dict) and "netG" in model else None


def get_G_in_out_chs(nf: int, imsize: int) -> list[tuple[int, int]]:
    """(in, out) channels of each G_Block, 4x4 -> imsize (original ``get_G_in_out_chs``)."""
    chs = _channels(nf, imsize)[::-1]
    return list(zip(chs[:-1], chs[1:]))


class Affine(nn.Module):
    """Channel-wise ``gamma(y) * x + beta(y)``; starts as the identity."""

    def __init__(self, cond_dim: int, num_features: int) -> None:
        super().__init__()
        self.fc_gamma = nn.Sequential(
            OrderedDict(
                [
                    ("linear1", nn.Linear(cond_dim, num_features)),
                    ("relu1", nn.ReLU()),
                    ("linear2", nn.Linear(num_features, num_features)),
                ]
            )
        )
        self.fc_beta = nn.Sequential(
            OrderedDict(
                [
                    ("linear1", nn.Linear(cond_dim, num_features)),
                    ("relu1", nn.ReLU()),
                    ("linear2", nn.Linear(num_features, num_features)),
                ]
            )
        )
        self.reset_identity()

    def reset_identity(self) -> None:
        nn.init.zeros_(self.fc_gamma.linear2.weight)
        nn.init.ones_(self.fc_gamma.linear2.bias)
        nn.init.zeros_(self.fc_beta.linear2.weight)
        nn.init.zeros_(self.fc_beta.linear2.bias)

    def gamma_beta(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``gamma, beta``: each ``[B, C]``."""
        return self.fc_gamma(y), self.fc_beta(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma_beta(y)
        return gamma[:, :, None, None] * x + beta[:, :, None, None]


class DFBLK(nn.Module):
    """Deep text-image fusion block: Affine -> LReLU -> Affine -> LReLU (fused)."""

    def __init__(self, cond_dim: int, in_ch: int) -> None:
        super().__init__()
        self.affine0 = Affine(cond_dim, in_ch)
        self.affine1 = Affine(cond_dim, in_ch)

    def modulation(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g1, b1 = self.affine0.gamma_beta(y)
        g2, b2 = self.affine1.gamma_beta(y)
        return g1, b1, g2, b2

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The MLPs run at the weights' precision, outside autocast: gamma sits near 1, where bf16's step
        # (2**-8..2**-7) is as large as the text-dependent spread of gamma, and one rounded gamma biases a
        # whole channel. The fused op takes float32 modulations with a bf16 x and gives x's dtype.
        with torch.autocast(x.device.type, enabled=False):
            g1, b1, g2, b2 = self.modulation(y.to(self.affine0.fc_gamma.linear1.weight.dtype))
        return dfblk(x, g1, b1, g2, b2, 0.2)


class GBlock(nn.Module):
    """Upsample x2 (nearest), then ``shortcut(x) + residual(x, y)``."""

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.learnable_sc = in_ch != out_ch
        self.c1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.c2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.fuse1 = DFBLK(cond_dim, in_ch)
        self.fuse2 = DFBLK(cond_dim, out_ch)
        if self.learnable_sc:
            self.c_sc = nn.Conv2d(in_ch, out_ch, 1, stride=1, padding=0)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_sc(x) if self.learnable_sc else x

    def residual(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fuse1(h, y)
        h = self.c1(h)
        h = self.fuse2(h, y)
        return self.c2(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2)
        return self.shortcut(x) + self.residual(x, y)


class DFGANGenerator(Generator):
    """DF-GAN ``NetG``: (z, sentence) -> image in [-1, 1]."""

    def __init__(self, nf: int = 32, z_dim: int = 100, cond_dim: int = 256, imsize: int = 256, ch_size: int = 3) -> None:
        super().__init__()
        check_image_size(imsize, "generator dfgan")
        self.nf, self.z_dim, self.cond_dim, self.imsize = nf, z_dim, cond_dim, imsize
        self.fc = nn.Linear(z_dim, nf * 8 * 4 * 4)
        self.GBlocks = nn.ModuleList(
            [GBlock(cond_dim + z_dim, i, o, upsample=True) for i, o in get_G_in_out_chs(nf, imsize)]
        )
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(nf, ch_size, 3, 1, 1), nn.Tanh())

    def adapt_checkpoint(self, checkpoint: object) -> dict | None:
        """The official ``state_epoch_*.pth``'s ``netG``: the same parameter names as this module's."""
        nets = official_nets(checkpoint)
        return nets["netG"] if nets is not None else None

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        out = self.fc(z).view(z.shape[0], 8 * self.nf, 4, 4)
        if self.to_rgb[1].weight.is_contiguous(memory_format=torch.channels_last):
            # a channels_last model (train.channels_last) starts its trunk channels_last too: the first blocks'
            # identity shortcuts would otherwise keep it NCHW up to 64 px, and cuDNN would copy every conv's input
            out = out.contiguous(memory_format=torch.channels_last)
        y = torch.cat((z, cond), dim=1)
        for block in self.GBlocks:
            out = block(out, y)
        return GeneratorOutput(images=self.to_rgb(out))


def build_generator(params: DFGANGeneratorParams, ctx: BuildContext) -> DFGANGenerator:
    """DF-GAN generator NetG (CVPR'22 code).

    FC -> 4x4x8nf, G_Blocks (nearest upsampling, DFBLK fusion of cat(z, sentence), 3x3 convs), LReLU -> conv -> tanh.
    """
    if ctx.cond_dim < 1:
        raise UserError("generator dfgan needs a sentence embedding (cond_dim >= 1)", "add a text encoder to the recipe")
    return DFGANGenerator(params.nf, params.z_dim, ctx.cond_dim, ctx.image_size, ctx.channels)
