"""Text-conditional U-Net discriminator (Schonfeld et al., CVPR 2020; ``boschresearch/unetgan: BigGAN.py``,
``Unet_Discriminator``), with the class embeddings of its two projections replaced by linear maps of the
sentence, as seed project 003 put it behind StackGAN.

Encoder: BigGAN ``DBlock``s (two 3x3 convs, ReLU pre-activation from the second block on, 2x2 average
pooling, a 1x1 shortcut), ``ch * [1, 2, 4, 8, 16]`` channels at 128 px, from S/2 down to 4x4.

Bottleneck: ``h_ = sum over space of ReLU(h)``, then ``linear_middle(h_) + <W_mid s, h_>``: the per-image
logit, a projection discriminator's.

Decoder: ``GBlock2``s (ReLU, nearest 2x upsampling, two 3x3 convs, a 1x1 shortcut) with channels
``ch * [8, 4, 2, 1, 1]``; from the second on, each input is concatenated with the encoder's output at the
same size (skip connections), so their inputs are doubled. At the image size, ``conv_1x1(h) + <W s, h>``
per pixel: a logit per pixel.

Contract. ``features(images)`` is everything the two heads read, flattened into one ``[B, N]`` tensor
(the pooled bottleneck ``h_``, then the decoder's last map), so that DF-GAN's mismatched pairs roll both
together and feature matching sees both. ``logits(features, cond)`` is ``[B, 2, S, S]``: plane
:data:`IMAGE` holds the per-image logit (repeated over the plane), plane :data:`PIXELS` the per-pixel
logits. Every loss averages its per-logit terms over both planes, so each is half of an image's loss, as
unetgan's ``0.5 * loss(middle) + 0.5 * loss(pixels)`` for G and its ``0.5 * (real terms) + 0.5 * (fake
terms)`` for D, summed over the two outputs. :func:`split_logits` gives the two parts back.

unetgan's own ``self.linear`` (built, never used in ``forward``) is left out. The count, at 128 px, ch 64
and a 256-d sentence: 31,760,130 parameters (unetgan's code builds 32,569,667 at 1000 classes: less its
two class embeddings and the unused linear, plus the two sentence maps). Tested by formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Discriminator
from ganreg_unet.params import UNetDiscriminatorParams

IMAGE, PIXELS = 0, 1
"""The planes of the logits ``[B, 2, S, S]``: the per-image logit, repeated; the per-pixel logits."""

ENCODER_WIDTHS: dict[int, list[int]] = {
    32: [1, 2, 4],
    64: [1, 2, 4, 8],
    128: [1, 2, 4, 8, 16],  # unetgan's D_unet_arch[128]
    256: [1, 2, 4, 8, 8, 16],  # unetgan's D_unet_arch[256]
    512: [1, 1, 2, 4, 8, 8, 16],  # BigGAN's D_arch[512], mirrored as the others
}
"""Channel multipliers of the encoder's blocks per image size; each block halves the size, down to 4x4."""


def decoder_widths(encoder: list[int]) -> tuple[list[int], list[int]]:
    """(inputs, outputs) multipliers of the decoder's blocks: outputs mirror the encoder, ending at 1; the
    first block takes the bottleneck, each later one its predecessor's output and the encoder's skip of the
    same width (unetgan's ``in_channels`` ``[16, 8*2, 4*2, 2*2, 1*2]`` at 128 px)."""
    outputs = encoder[-2::-1] + [1]
    inputs = [encoder[-1]] + [2 * w for w in outputs[:-1]]
    return inputs, outputs


def split_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 2, S, S]`` -> (per-image logits ``[B]``, per-pixel logits ``[B, S, S]``)."""
    if logits.dim() != 4 or logits.shape[1] != 2:
        raise ValueError(f"U-Net logits are [B, 2, S, S], got {list(logits.shape)}")
    return logits[:, IMAGE, 0, 0], logits[:, PIXELS]


class DBlock(nn.Module):
    """BigGAN's D block, wide (hidden = out channels), with 2x2 average pooling."""

    def __init__(self, cin: int, cout: int, preactivation: bool) -> None:
        super().__init__()
        self.preactivation = preactivation
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        # BigGAN: a pre-activated block convolves then pools its shortcut, the first pools then convolves
        shortcut = F.avg_pool2d(self.conv_sc(x), 2) if self.preactivation else self.conv_sc(F.avg_pool2d(x, 2))
        return h + shortcut


class GBlock2(nn.Module):
    """unetgan's decoder block: ReLU, nearest 2x upsampling of both paths, two 3x3 convs, a 1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(x), scale_factor=2.0, mode="nearest")
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv2(F.relu(self.conv1(h))) + self.conv_sc(x)


class UNetDiscriminator(Discriminator):
    """Encoder -> per-image logit at the bottleneck; decoder with skips -> a logit per pixel."""

    def __init__(self, params: UNetDiscriminatorParams, ctx: BuildContext) -> None:
        super().__init__()
        size, ch = ctx.image_size, params.ch
        if size not in ENCODER_WIDTHS:
            raise UserError(
                f"discriminator 'unet' is built for images of {', '.join(map(str, ENCODER_WIDTHS))} px, not {size}",
                "set data.image_size to one of those",
            )
        if ctx.cond_dim < 1:
            raise UserError("discriminator 'unet' needs a text condition (cond_dim 0)", "add a text encoder to the recipe")
        enc = [ch * w for w in ENCODER_WIDTHS[size]]
        ins, outs = decoder_widths(ENCODER_WIDTHS[size])
        dec_in, dec_out = [ch * w for w in ins], [ch * w for w in outs]
        self.size, self.bottleneck_dim, self.pixel_dim = size, enc[-1], dec_out[-1]
        self.encoder = nn.ModuleList(DBlock(cin, cout, i > 0) for i, (cin, cout) in enumerate(zip([ctx.channels] + enc, enc)))
        self.decoder = nn.ModuleList(GBlock2(cin, cout) for cin, cout in zip(dec_in, dec_out))
        self.linear_middle = nn.Linear(enc[-1], 1)
        self.text_middle = nn.Linear(ctx.cond_dim, enc[-1], bias=False)  # unetgan's embed_middle(y)
        self.text_pixels = nn.Linear(ctx.cond_dim, dec_out[-1], bias=False)  # unetgan's embed(y)
        self.out = nn.Conv2d(dec_out[-1], 1, 1)  # unetgan's last layer, the only one without spectral norm
        for m in self.modules():  # BigGAN's D_init 'ortho': weights only
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(m.weight)
        if params.norm == "spectral":
            for m in list(self.modules()):
                for name, child in list(m.named_children()):
                    if child is not self.out and isinstance(child, (nn.Conv2d, nn.Linear)):
                        setattr(m, name, spectral_norm(child))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, bottleneck_dim + pixel_dim * S * S]``: the pooled bottleneck, then the decoder's last map."""
        h, skips = images, []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        pooled = F.relu(h).sum((2, 3))  # SN-GAN's global sum pooling
        skips = skips[-2::-1]  # the deepest first, the bottleneck left out
        for i, block in enumerate(self.decoder):
            h = block(h if i == 0 else torch.cat([h, skips[i - 1]], 1))
        return torch.cat([pooled, h.flatten(1)], 1)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``[B, 2, S, S]``: the per-image logit (plane :data:`IMAGE`) and the per-pixel ones (:data:`PIXELS`)."""
        pooled = features[:, : self.bottleneck_dim]
        pixels = features[:, self.bottleneck_dim :].unflatten(1, (self.pixel_dim, self.size, self.size))
        cond = cond.to(features.dtype)
        image = self.linear_middle(pooled).squeeze(1) + (self.text_middle(cond) * pooled).sum(1)
        per_pixel = self.out(pixels).squeeze(1) + torch.einsum("bc,bchw->bhw", self.text_pixels(cond), pixels)
        return torch.stack([image[:, None, None].expand_as(per_pixel), per_pixel], 1)


def build_unet_discriminator(params: UNetDiscriminatorParams, ctx: BuildContext) -> UNetDiscriminator:
    """U-Net discriminator (Schonfeld et al. 2020), text-conditional: logits ``[B, 2, S, S]``.

    Plane 0 the per-image logit at the bottleneck (repeated), plane 1 a logit per pixel; losses average over both.
    """
    return UNetDiscriminator(params, ctx)
