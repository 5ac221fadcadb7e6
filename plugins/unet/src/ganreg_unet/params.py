"""Params models of the U-Net discriminator and its CutMix term, kept free of torch so that `ganreg list` /
`ganreg show` / recipe validation never import the network."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class UNetDiscriminatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ch: int = Field(
        64,
        ge=1,
        le=256,
        description="Width multiplier: the encoder's blocks have ch * [1, 2, 4, 8, 16] channels at 128 px "
        "([1, 2, 4, 8, 8, 16] at 256, [1, 2, 4, 8] at 64), the decoder mirrors them (unetgan's D_ch: 64).",
    )
    norm: Literal["spectral", "none"] = Field(
        "spectral",
        description="'spectral': spectral norm on every conv and linear but the last 1x1 conv, as unetgan's "
        "BigGAN D. 'none' leaves D unbounded: with DF-GAN's MA-GP (p = 6) the first steps' gradient norms of "
        "about 12 made the penalty about 1e7 (measured), so keep 'spectral' unless the recipe is tuned for it.",
    )


class CutMixParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gan_loss: Literal["bce", "hinge"] = Field(
        "bce",
        description="The per-logit loss of the mixed images: 'bce' as unetgan's released scripts; 'hinge' to "
        "match a recipe whose adversarial loss is the hinge (DF-GAN's).",
    )
    consistency: float = Field(
        1.0,
        ge=0,
        description="Weight of the consistency term, mean (D_pixels(mix) - mix(D_pixels(real), D_pixels(fake)))**2; "
        "0 drops it (unetgan: 1).",
    )
    augmentation: bool = Field(
        True,
        description="Train D on the mixed images too: their per-pixel logits towards the mask (real = 1), their "
        "per-image logit towards fake (unetgan's consistency_loss_and_augmentation).",
    )
    warmup_steps: int = Field(
        0,
        ge=0,
        description="The weight of the per-image and consistency terms ramps linearly from 0 to 1 over this many "
        "D steps (unetgan's slow_mixup ramps over warmup_epochs); 0: full weight from the first step.",
    )

    @model_validator(mode="after")
    def _does_something(self) -> CutMixParams:
        if not self.augmentation and self.consistency == 0:
            raise ValueError("augmentation false and consistency 0 leave the term nothing to do: drop the loss instead")
        return self
