"""Spectrally normalised ResNet discriminator with a projection head (reference section 4.4:
sngan_projection's ``dis_models/snresnet*.py`` and ``resblocks.py``), the class embedding replaced by a
linear map of the sentence.

* ``features(images)``: :class:`OptimizedBlock` (3 -> ch, conv -> ReLU -> conv -> avgpool; shortcut
  avgpool -> conv1x1), then :class:`DBlock`\\ s (pre-activation ReLU -> conv3x3 -> ReLU -> conv3x3 ->
  avgpool, hidden width = input width; shortcut conv1x1 -> avgpool when the width or size changes); then ReLU
  and a global **sum** pool: ``h [B, 16ch]``. At 64 px every block downsamples, to 2x2 (sngan's
  ``snresnet_64``); at 128 and 256 px the last block keeps 4x4 (``snresnet`` / ``snresnet_256``, BigGAN).
* ``logits(h, s) = l_out(h) + <l_y(s), h>``: the unconditional score plus the projection of the
  sentence (``l_y = Linear(cond_dim -> 16ch)``, no bias, in place of ``SNEmbedID``). Being linear in
  ``h``, it takes DF-GAN's rolled mismatched pairs (``dfgan:hinge``) and MA-GP's gradient w.r.t. ``s``.
* Spectral norm on every conv and linear layer (``torch.nn.utils.parametrizations.spectral_norm``, one
  power iteration per training forward, as sngan's ``Ip=1`` and BigGAN's ``num_itrs=1``).
* The DBlock shortcut pools *before* its 1x1 conv: the two linear maps commute, so the output is the same
  and the conv (and its double backward under a gradient penalty) touches a quarter of the pixels.
* Init as sngan_projection: Glorot-uniform, gain sqrt(2) in the residual paths, 1 elsewhere; biases 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Discriminator
from ganreg_cbn_resnet._sizes import D_FINAL_SIZE, D_WIDTHS, check_image_size
from ganreg_cbn_resnet.params import ProjectionDiscriminatorParams


def _layer(module: nn.Conv2d | nn.Linear, sn: bool, gain: float = 1.0) -> nn.Module:
    """``module`` with sngan's init, spectrally normalised when ``sn``."""
    nn.init.xavier_uniform_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module) if sn else module


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


class OptimizedBlock(nn.Module):
    """The first block (no pre-activation): ``avgpool(conv(relu(conv(x)))) + conv1x1(avgpool(x))``."""

    def __init__(self, in_ch: int, out_ch: int, sn: bool) -> None:
        super().__init__()
        self.c1 = _layer(nn.Conv2d(in_ch, out_ch, 3, 1, 1), sn, math.sqrt(2))
        self.c2 = _layer(nn.Conv2d(out_ch, out_ch, 3, 1, 1), sn, math.sqrt(2))
        self.c_sc = _layer(nn.Conv2d(in_ch, out_ch, 1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _down(self.c2(F.relu(self.c1(x)))) + self.c_sc(_down(x))


class DBlock(nn.Module):
    """``[avgpool](conv(relu(conv(relu(x))))) + shortcut(x)``; hidden width = input width."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, sn: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.c1 = _layer(nn.Conv2d(in_ch, in_ch, 3, 1, 1), sn, math.sqrt(2))
        self.c2 = _layer(nn.Conv2d(in_ch, out_ch, 3, 1, 1), sn, math.sqrt(2))
        self.learnable_sc = in_ch != out_ch or downsample
        if self.learnable_sc:
            self.c_sc = _layer(nn.Conv2d(in_ch, out_ch, 1), sn)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.learnable_sc:
            return x
        return self.c_sc(_down(x) if self.downsample else x)  # == avgpool(c_sc(x)): the maps commute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.c1(F.relu(x))))
        return (_down(h) if self.downsample else h) + self.shortcut(x)


class ProjectionDiscriminator(Discriminator):
    """Images -> sum-pooled ResNet features ``[B, 16ch]``; (features, sentence) -> projection logit ``[B]``."""

    def __init__(self, ch: int = 64, cond_dim: int = 256, image_size: int = 64, sn: bool = True, channels: int = 3) -> None:
        super().__init__()
        check_image_size(image_size, "discriminator projection")
        widths = [w * ch for w in D_WIDTHS[image_size]]
        blocks: list[nn.Module] = [OptimizedBlock(channels, widths[0], sn)]
        size = image_size // 2
        for i, o in zip(widths[:-1], widths[1:]):
            down = size > D_FINAL_SIZE[image_size]
            blocks.append(DBlock(i, o, downsample=down, sn=sn))
            size //= 2 if down else 1
        self.blocks = nn.Sequential(*blocks)
        self.l_out = _layer(nn.Linear(widths[-1], 1), sn)
        self.l_y = _layer(nn.Linear(cond_dim, widths[-1], bias=False), sn)
        self.feature_dim = widths[-1]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(images)).sum(dim=(2, 3))

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.l_out(features).squeeze(1) + (self.l_y(cond) * features).sum(dim=1)


def build_discriminator(params: ProjectionDiscriminatorParams, ctx: BuildContext) -> ProjectionDiscriminator:
    """Spectrally normalised ResNet discriminator with a projection head on the sentence (SNGAN-projection D).

    Optimized block + pre-activation residual blocks (avgpool down to 2x2 at 64 px, 4x4 otherwise), ReLU,
    global sum pool h;
    logit = linear(h) + <linear(sentence), h>.
    """
    if ctx.cond_dim < 1:
        raise UserError("discriminator projection needs a sentence embedding (cond_dim >= 1)", "add a text encoder to the recipe")
    return ProjectionDiscriminator(params.ch, ctx.cond_dim, ctx.image_size, params.spectral_norm, ctx.channels)
