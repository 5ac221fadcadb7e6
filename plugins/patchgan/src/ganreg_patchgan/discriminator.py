"""Text-conditional PatchGAN discriminator: pix2pix's ``NLayerDiscriminator`` (Isola et al. 2017,
``junyanz/pytorch-CycleGAN-and-pix2pix: models/networks.py``) with the sentence tiled and concatenated
before its stride-1 layers, as seed project 000's patch discriminator (a 14x14 map at 128 px) and
GAN-INT-CLS's D fuse text.

``features(images)``: ``n_layers`` 4x4 stride-2 convs, widths ``ndf * min(2**i, 8)``, LeakyReLU(0.2),
no normalisation on the first: ``[B, ndf*min(2**(n_layers-1), 8), S/2**n_layers, S/2**n_layers]``.

``logits(features, cond)``: the sentence projected (``Linear`` + LeakyReLU(0.2)) and tiled over the
map, concatenated after the image features, then pix2pix's two 4x4 stride-1 convs (pad 1):
``[B, S/2**n_layers - 2, S/2**n_layers - 2]``, one unbounded logit per 70x70 patch at ``n_layers`` 3.
Because each patch sees the text, every patch judges both realism and the match with the caption; the
losses average over the map.

Without the text (``proj_dim`` 0 in the formula) the count is pix2pix's: 2,765,633 parameters for 3
input channels at ndf 64, n_layers 3, batch norm (2,768,705 with pix2pix's 6-channel input; its
log prints 2.769 M). Tested by formula.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Discriminator
from ganreg_patchgan.params import PatchDiscriminatorParams


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # pix2pix's: affine=False, no running statistics
    return nn.Identity()


def _init(module: nn.Module) -> None:
    """pix2pix's ``init_weights(init_type='normal', 0.02)``: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class PatchDiscriminator(Discriminator):
    """Strided trunk -> (features + tiled projected text) -> two stride-1 convs -> a map of patch logits."""

    def __init__(self, params: PatchDiscriminatorParams, ctx: BuildContext) -> None:
        super().__init__()
        n, ndf, norm = params.n_layers, params.ndf, params.norm
        if ctx.image_size < 3 * 2**n:
            raise UserError(
                f"discriminator 'patchgan' with n_layers {n} needs images of at least {3 * 2**n} px, not {ctx.image_size}",
                "lower discriminator.params.n_layers or raise data.image_size",
            )
        if ctx.cond_dim < 1:
            raise UserError("discriminator 'patchgan' needs a text condition (cond_dim 0)", "add a text encoder to the recipe")
        bias = norm != "batch"  # pix2pix: no conv bias before an affine BatchNorm
        layers: list[nn.Module] = [nn.Conv2d(ctx.channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for i in range(1, n):
            out = ndf * min(2**i, 8)
            layers += [nn.Conv2d(width, out, 4, 2, 1, bias=bias), _norm(norm, out), nn.LeakyReLU(0.2, True)]
            width = out
        self.trunk = nn.Sequential(*layers)
        self.feature_channels = width
        self.text = nn.Sequential(nn.Linear(ctx.cond_dim, params.proj_dim), nn.LeakyReLU(0.2, True))
        out = ndf * min(2**n, 8)
        self.head = nn.Sequential(
            nn.Conv2d(width + params.proj_dim, out, 4, 1, 1, bias=bias),
            _norm(norm, out),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(out, 1, 4, 1, 1),
        )
        _init(self)
        if norm == "spectral":
            for m in list(self.modules()):
                for name, child in list(m.named_children()):
                    if isinstance(child, (nn.Conv2d, nn.Linear)):
                        setattr(m, name, spectral_norm(child))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, S, S]`` -> ``[B, feature_channels, S/2**n_layers, S/2**n_layers]``."""
        return self.trunk(images)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``[B, h, w]``: one logit per patch, each seeing the tiled sentence."""
        text = self.text(cond).to(features.dtype)
        text = text[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.head(torch.cat([features, text], dim=1)).squeeze(1)


def build_patch_discriminator(params: PatchDiscriminatorParams, ctx: BuildContext) -> PatchDiscriminator:
    """PatchGAN discriminator (pix2pix) with the sentence tiled before its stride-1 layers: a map of patch logits."""
    return PatchDiscriminator(params, ctx)
