"""Params model of the discriminator, kept free of torch so that `ganreg list` / `ganreg show` / recipe
validation never import the network."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PatchDiscriminatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ndf: int = Field(64, ge=1, le=512, description="Width of the first conv; doubled per layer up to 8*ndf (pix2pix: 64).")
    n_layers: int = Field(
        3,
        ge=1,
        le=6,
        description="Stride-2 convs: 3 gives pix2pix's 70x70 patches and a 14x14 map at 128 px (16-2 per side "
        "at S/8); 2 gives 34x34 patches. The image must be at least 3 * 2**n_layers px.",
    )
    norm: Literal["batch", "instance", "spectral", "none"] = Field(
        "spectral",
        description="Normalisation of the inner convs. 'batch' is pix2pix's default; 'spectral' (spectral norm on "
        "every conv, no activation normalisation) keeps each image's logits independent of the batch, which "
        "gradient penalties (MA-GP, WGAN-GP) and rolled mismatched pairs assume.",
    )
    proj_dim: int = Field(
        128, ge=1, description="Size the sentence is projected to before it is tiled over the feature map (GAN-INT-CLS: 128)."
    )
