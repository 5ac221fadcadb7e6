"""Params models of this plugin's components, kept free of torch so that
`ganreg list` / `ganreg show` / recipe validation never import the networks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StageIGeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gf_dim: int = Field(
        128,
        ge=1,
        le=512,
        description="GAN.GF_DIM: the 4x4 base has 8*gf_dim channels, the last up-block gf_dim/2 (default 128; COCO 192).",
    )
    z_dim: int = Field(100, ge=1, description="Noise size (Z_DIM 100).")
    condition_dim: int = Field(
        128, ge=1, description="GAN.CONDITION_DIM: size of the augmented condition c (and of mu, which D sees)."
    )
    ca_activation: Literal["relu", "leaky_relu"] = Field(
        "relu",
        description="Activation after CA_NET's linear layer: ReLU in StackGAN-Pytorch (so mu >= 0 and sigma >= 1, "
        "a known quirk), LeakyReLU(0.2) in the TensorFlow original.",
    )


class StageIDiscriminatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    df_dim: int = Field(64, ge=1, le=512, description="GAN.DF_DIM: the first conv's width; the 4x4 features have 8*df_dim (default 64; COCO 96).")


class MatchingBCEParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mismatch_weight: float = Field(
        0.5,
        ge=0,
        description="Weight of the fake and of the mismatched pairs: real + w * (fake + mismatch). 0.5 is Stage-I's "
        "errD = real + (fake + wrong) / 2.",
    )
