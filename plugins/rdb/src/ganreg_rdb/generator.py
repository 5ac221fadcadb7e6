"""Seed project 003's residual-dense-block generator (IMAGAN, ``model.py``: ``RDBGenerator``), which it
trained with DF-GAN's discriminator, hinge loss and MA-GP in place of DF-GAN's generator.

Only the noise enters at 4x4; the sentence is fused once, at 16x16:

* ``Linear(z_dim, 8nf * 4 * 4)``, then two up-sampling blocks to 16x16;
* a residual dense block (Zhang et al., CVPR 2018) on the features concatenated with the sentence tiled
  over the map: ``dense_layers`` 3x3 convs, each seeing the block's input and every earlier layer's
  output (each followed by BatchNorm and LeakyReLU(0.2) over the concatenation), a 1x1 local feature
  fusion down to 8nf, plus LeakyReLU(3x3 conv of the input) as the residual path;
* the sentence concatenated again, a 3x3 conv, BatchNorm, LeakyReLU (IMAGAN's ``joint``), two residual
  blocks;
* up-sampling blocks to the image size, ``8nf -> 4nf -> 2nf -> nf`` for the last ones (the four of
  IMAGAN's 256 px; fewer for smaller images, more at 8nf for larger);
* a 3x3 conv to RGB and tanh.

An up-sampling block: nearest 2x, three 3x3 convs each with LeakyReLU(0.2), plus ``gamma`` times a 3x3
conv of the up-sampled input (``gamma`` a learned scalar drawn from N(0, 1)), then BatchNorm and
LeakyReLU. Every conv is bias-free, as IMAGAN's (``conv3x3(..., bias=False)``); the fully connected layer
has a bias.

IMAGAN builds every BatchNorm as ``BatchNorm2d(c, 0.8)``, i.e. eps 0.8 (``bn_eps``; PyTorch's default is
1e-5). The sentence size is the text encoder's (IMAGAN: DAMSM's 256). The count at nf 32, 256 px, a
256-d sentence and z 100 is 17,041,190 parameters; tested by formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Generator, GeneratorOutput
from ganreg_rdb.params import RDBGeneratorParams

FUSION_SIZE = 16
"""The resolution at which the sentence is fused (IMAGAN: after two up-sampling blocks from 4x4)."""


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def tail_widths(stages: int) -> list[int]:
    """Width multipliers of the up-sampling blocks after the fusion: IMAGAN's ``[8, 4, 2, 1]`` at 256 px,
    its last ``stages`` for smaller images, more 8s in front for larger ones."""
    if stages == 0:
        return []
    return ([8] * stages + [8, 4, 2, 1])[-stages:]


class UpBlock(nn.Module):
    """IMAGAN's ``upSample``: nearest 2x, three convs, ``gamma`` times a conv shortcut, BatchNorm, LeakyReLU."""

    def __init__(self, cin: int, cout: int, bn_eps: float) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3 = conv3x3(cin, cout), conv3x3(cout, cout), conv3x3(cout, cout)
        self.shortcut = conv3x3(cin, cout)
        self.gamma = nn.Parameter(torch.randn(1))
        self.bn = nn.BatchNorm2d(cout, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        h = F.leaky_relu(self.conv3(h), 0.2)
        return F.leaky_relu(self.bn(h + self.gamma * self.shortcut(x)), 0.2)


class DenseLayer(nn.Module):
    """A conv whose output is concatenated before its input, then BatchNorm and LeakyReLU over both."""

    def __init__(self, cin: int, growth: int, bn_eps: float) -> None:
        super().__init__()
        self.conv = conv3x3(cin, growth)
        self.bn = nn.BatchNorm2d(cin + growth, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(torch.cat([self.conv(x), x], 1)), 0.2)


class ResidualDenseBlock(nn.Module):
    """Dense layers, a 1x1 local feature fusion, and a conv residual path (IMAGAN's ``RDB``)."""

    def __init__(self, cin: int, cout: int, layers: int, growth: int, bn_eps: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(DenseLayer(cin + growth * i, growth, bn_eps) for i in range(layers)))
        self.fusion = nn.Conv2d(cin + growth * layers, cout, 1, bias=False)
        self.shortcut = conv3x3(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.shortcut(x), 0.2) + self.fusion(self.layers(x))


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv3x3(channels, channels), conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)


class RDBGenerator(Generator):
    """Noise up to 16x16, the sentence fused by a residual dense block, then up to the image size."""

    def __init__(self, params: RDBGeneratorParams, ctx: BuildContext) -> None:
        super().__init__()
        size, nf, eps = ctx.image_size, params.nf, params.bn_eps
        if size < FUSION_SIZE or size & (size - 1):
            raise UserError(
                f"generator 'rdb' makes images of a power of two from {FUSION_SIZE} px, not {size}",
                "set data.image_size to 16, 32, 64, 128, 256 or 512",
            )
        if ctx.cond_dim < 1:
            raise UserError("generator 'rdb' needs a text condition (cond_dim 0)", "add a text encoder to the recipe")
        self.z_dim, self.nf = params.z_dim, nf
        wide, text = 8 * nf, ctx.cond_dim
        self.fc = nn.Linear(params.z_dim, wide * 4 * 4)
        self.head = nn.Sequential(UpBlock(wide, wide, eps), UpBlock(wide, wide, eps))
        self.rdb = ResidualDenseBlock(wide + text, wide, params.dense_layers, params.growth, eps)
        self.joint = nn.Sequential(conv3x3(wide + text, wide), nn.BatchNorm2d(wide, eps=eps), nn.LeakyReLU(0.2))
        self.res = nn.Sequential(ResBlock(wide), ResBlock(wide))
        widths = [8] + tail_widths((size // FUSION_SIZE).bit_length() - 1)
        self.tail = nn.Sequential(*(UpBlock(nf * a, nf * b, eps) for a, b in zip(widths, widths[1:])))
        self.to_rgb = conv3x3(nf * widths[-1], 3)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        h = self.head(self.fc(z).view(z.shape[0], 8 * self.nf, 4, 4))
        tiled = cond.to(h.dtype)[:, :, None, None].expand(-1, -1, FUSION_SIZE, FUSION_SIZE)
        h = self.rdb(torch.cat([h, tiled], 1))
        h = self.res(self.joint(torch.cat([h, tiled], 1)))
        return GeneratorOutput(images=torch.tanh(self.to_rgb(self.tail(h))))


def build_rdb_generator(params: RDBGeneratorParams, ctx: BuildContext) -> RDBGenerator:
    """Residual-dense-block generator (seed project 003, IMAGAN's RDBGenerator).

    Noise up to 16x16, the tiled sentence fused by a residual dense block and a joint conv, then up-sampling blocks to the image.
    """
    return RDBGenerator(params, ctx)
