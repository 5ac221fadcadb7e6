"""The U-Net discriminator's CutMix term (``boschresearch/unetgan: train_fns.py``, ``mixup.py``).

Each real image is cut and mixed with the fake made from its own caption: ``mix = M * real + (1 - M) *
fake``, with M a CutMix box mask (1 where the pixel is real; a box of area ``1 - lam``, ``lam ~ U(0, 1)``,
centred anywhere and clipped, the mask flipped with probability 1/2). Then, in D's step:

* augmentation: the per-pixel logits of ``mix`` towards M and its per-image logit towards fake (a mixed
  image is not a real one), each averaged, the two summed;
* consistency: ``mean((D_pixels(mix) - (M * D_pixels(real) + (1 - M) * D_pixels(fake)))**2)``: D's map of
  a mix should be the mix of its maps. Gradients flow through all three, as unetgan's.

As unetgan's ``mixup_coeff``, the warm-up weight scales the per-image term and the consistency, not the
per-pixel term.

The mixed image keeps the real image's sentence: its fake part was made from that sentence, so the pair
matches everywhere and only realism differs across the mask.

unetgan's FFHQ script (``--full_batch_mixup``, ``--warmup_epochs 20``) replaces a whole batch by its mix,
skipping that batch's ordinary real/fake loss, with a probability that warms up to 1/2; its other mode,
which ganreg's additive terms express, adds the term to every D step with a weight warming up linearly
(``slow_mixup``): ``warmup_steps`` here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganreg.interfaces import BuildContext, Loss
from ganreg.train.context import StepContext
from ganreg_unet.discriminator import split_logits
from ganreg_unet.params import CutMixParams


def cutmix_masks(batch: int, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[batch, 1, size, size]`` float masks, 1 where a pixel comes from the real image (unetgan's ``CutMix``):
    ``lam ~ U(0, 1)`` (Beta(1, 1)), a centre anywhere, and a coin for the flip."""
    lam = torch.rand(batch, device=device)
    centre = torch.randint(0, size, (batch, 2), device=device)
    flip = torch.rand(batch, device=device) < 0.5
    return box_masks(size, lam, centre, flip)


def box_masks(size: int, lam: torch.Tensor, centre: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """unetgan's ``random_boundingbox``: a square of side ``int(size * sqrt(1 - lam))`` around ``centre``
    (rows, columns), spanning ``[c - side // 2, c + side // 2)`` clipped to the image, is fake and the rest
    real; ``flip`` swaps them. ``[B, 1, size, size]`` float."""
    side = (size * (1 - lam).sqrt()).floor()
    half = torch.div(side, 2, rounding_mode="floor")
    lo = (centre - half[:, None]).clamp(0, size)
    hi = (centre + half[:, None]).clamp(0, size)
    idx = torch.arange(size, device=lam.device)
    rows = (idx >= lo[:, :1]) & (idx < hi[:, :1])
    cols = (idx >= lo[:, 1:]) & (idx < hi[:, 1:])
    box = rows[:, :, None] & cols[:, None, :]
    return (box == flip[:, None, None]).float()[:, None]  # the box is fake, unless flipped


def _gan(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean per-logit loss towards ``target`` (1 real, 0 fake)."""
    logits = logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return (target * F.relu(1 - logits) + (1 - target) * F.relu(1 + logits)).mean()


class CutMix(Loss):
    """unetgan's CutMix augmentation and consistency terms for D, with an optional linear warm-up."""

    network = "discriminator"
    needs_discriminator = ("unet:unet",)

    def __init__(self, gan_loss: str = "bce", consistency: float = 1.0, augmentation: bool = True, warmup_steps: int = 0) -> None:
        super().__init__()
        self.gan_loss, self.consistency, self.augmentation = gan_loss, float(consistency), bool(augmentation)
        self.warmup_steps = int(warmup_steps)
        self.steps = 0
        """D optimiser steps so far (counted in :meth:`after_step`, so gradient accumulation's micro-batches
        share one weight); saved as the module's extra state, so a resumed run keeps its warm-up."""

    def get_extra_state(self) -> dict[str, int]:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.steps = int(state.get("steps", 0))

    def after_step(self, network: torch.nn.Module) -> None:
        self.steps += 1

    def forward(self, ctx: StepContext) -> torch.Tensor:
        ctx.require_phase("discriminator", "cutmix")
        ramp = min(1.0, self.steps / self.warmup_steps) if self.warmup_steps else 1.0
        real, fake = ctx.real, ctx.fake.to(ctx.real.dtype)
        mask = cutmix_masks(real.shape[0], real.shape[-1], real.device).to(real.dtype)
        mixed = mask * real + (1 - mask) * fake
        image, pixels = split_logits(ctx.discriminator(mixed, ctx.d_cond).logits)
        mask = mask[:, 0].float()
        loss = pixels.new_zeros((), dtype=torch.float32)
        if self.augmentation:  # unetgan ramps the per-image term only (mixup_coeff * mixed_middle_loss)
            per_pixel = _gan(pixels, mask, self.gan_loss)
            per_image = _gan(image, torch.zeros_like(image, dtype=torch.float32), self.gan_loss)
            ctx.log("mix_pixels", per_pixel)
            ctx.log("mix_image", per_image)
            loss = loss + per_pixel + ramp * per_image
        if self.consistency:
            _, real_pixels = split_logits(ctx.d_real.logits)
            _, fake_pixels = split_logits(ctx.d_fake.logits)
            target = mask * real_pixels.float() + (1 - mask) * fake_pixels.float()
            term = F.mse_loss(pixels.float(), target)
            ctx.log("consistency", term)
            loss = loss + ramp * self.consistency * term
        ctx.log("ramp", ramp)
        return loss


def build_cutmix(params: CutMixParams, ctx: BuildContext) -> CutMix:
    """U-Net D's CutMix term (unetgan): mixed real/fake images judged per pixel, and the consistency of D's maps.

    Needs the unet discriminator; the weight of the per-image and consistency terms ramps from 0 to 1 over warmup_steps D steps.
    """
    return CutMix(params.gan_loss, params.consistency, params.augmentation, params.warmup_steps)
