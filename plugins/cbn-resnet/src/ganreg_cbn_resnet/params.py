"""Params models of this plugin's components, kept free of torch so that
`ganreg list` / `ganreg show` / recipe validation never import the networks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CBNResNetGeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ch: int = Field(
        64,
        ge=1,
        le=512,
        description="Base width: the 4x4 base has 16*ch channels (8*ch at 32 px), the last block ch "
        "(sngan_projection and BigGAN: 64).",
    )
    z_dim: int = Field(128, ge=1, description="Noise size (sngan_projection: 128; BigGAN: 120).")
    bn_eps: float = Field(
        1e-5, gt=0, description="BatchNorm epsilon (PyTorch and BigGAN: 1e-5; sngan_projection's Chainer code: 2e-5)."
    )


class ProjectionDiscriminatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ch: int = Field(
        64,
        ge=1,
        le=512,
        description="Base width: the first block gives ch channels, the last 16*ch (8*ch at 32 px) (sngan_projection: 64).",
    )
    spectral_norm: bool = Field(
        True,
        description="Spectral normalisation of every conv and linear layer, one power iteration per training forward "
        "(sngan_projection, BigGAN). False gives plain layers (then use a gradient penalty such as dfgan:magp).",
    )
