"""StackGAN Stage-I discriminator ``STAGE1_D`` and its conditional head ``D_GET_LOGITS`` (reference 3.4:
hanzhanggit/StackGAN-Pytorch ``code/model.py``).

* ``features(images)`` = ``encode_img``: ``Conv4x4 s2 p1 (3 -> ndf)`` -> LReLU(0.2), then
  ``(ndf -> 2ndf)``, ``(2ndf -> 4ndf)``, ``(4ndf -> 8ndf)``, each ``Conv4x4 s2 p1`` + BN + LReLU(0.2); all
  without bias: ``(B, 8ndf, 4, 4)`` at 64 px (32 px stops at 4ndf, 128/256 px add 8ndf layers).
* ``logits(features, mu)`` = ``D_GET_LOGITS(bcondition=True)``: mu tiled to 4x4 and concatenated *after* the
  features, ``conv3x3 (8ndf + c_dim -> 8ndf, no bias)`` -> BN -> LReLU(0.2) -> ``Conv2d(8ndf -> 1, k4, s4)``
  (with bias), then ``view(-1)``. The original's Sigmoid is left out: ganreg's D returns logits and the
  losses take BCE on logits (the same objective, numerically safer).
* The condition is G's mu (``cond_used``), so this D is built for ``BuildContext.cond_dim = c_dim``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganreg.interfaces import BuildContext, Discriminator
from ganreg_stackgan._init import check_image_size, weights_init
from ganreg_stackgan.params import StageIDiscriminatorParams


def down_block(in_ch: int, out_ch: int, bn: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(out_ch))
    return [*layers, nn.LeakyReLU(0.2, inplace=True)]


class DGetLogits(nn.Module):
    """The conditional head: (features (B, C, 4, 4), condition (B, c_dim)) -> logits (B,)."""

    def __init__(self, feat_ch: int, c_dim: int) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.outlogits = nn.Sequential(
            nn.Conv2d(feat_ch + c_dim, feat_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(feat_ch),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(feat_ch, 1, kernel_size=4, stride=4),
        )

    def forward(self, features: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        tiled = c.view(-1, self.c_dim, 1, 1).expand(-1, -1, features.shape[2], features.shape[3])
        return self.outlogits(torch.cat((features, tiled.to(features.dtype)), 1)).view(-1)


class StageIDiscriminator(Discriminator):
    """Images -> ``encode_img`` features; (features, mu) -> the conditional logit."""

    def __init__(self, df_dim: int = 64, c_dim: int = 128, image_size: int = 64, channels: int = 3) -> None:
        super().__init__()
        check_image_size(image_size, "discriminator stackgan:stage1")
        widths = [df_dim * min(2**i, 8) for i in range(int(math.log2(image_size // 4)))]
        layers = down_block(channels, widths[0], bn=False)
        for i, o in zip(widths[:-1], widths[1:]):
            layers += down_block(i, o)
        self.encode_img = nn.Sequential(*layers)
        self.get_cond_logits = DGetLogits(widths[-1], c_dim)
        weights_init(self)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_img(images)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.get_cond_logits(features, cond)


def build_discriminator(params: StageIDiscriminatorParams, ctx: BuildContext) -> StageIDiscriminator:
    """StackGAN Stage-I discriminator STAGE1_D with the conditional head D_GET_LOGITS.

    Four Conv4x4 s2 (BN + LReLU after all but the first) to 8df x 4 x 4; mu tiled to 4x4 and concatenated;
    conv3x3 + BN + LReLU; Conv 4x4 s4 -> logit. The condition size is G's cond_used_dim (CA's c_dim).
    """
    return StageIDiscriminator(params.df_dim, max(ctx.cond_dim, 1), ctx.image_size, ctx.channels)
