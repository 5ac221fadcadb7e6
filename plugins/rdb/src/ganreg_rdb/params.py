"""Params model of the generator, kept free of torch so that `ganreg list` / `ganreg show` / recipe
validation never import the network."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RDBGeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nf: int = Field(
        32,
        ge=1,
        le=256,
        description="Width: 8*nf channels from 4x4 to the 16x16 fusion; then up-sampling blocks end at nf: 8nf, 4nf, "
        "2nf, nf at 32 to 256 px (IMAGAN: nf 32, 256 px); at 64 px, 2nf then nf.",
    )
    z_dim: int = Field(100, ge=1, description="Noise size (IMAGAN: 100).")
    dense_layers: int = Field(8, ge=1, le=32, description="Densely connected conv layers in the residual dense block at 16x16 (IMAGAN: 8).")
    growth: int = Field(64, ge=1, le=512, description="Channels each dense layer adds (IMAGAN: 64).")
    bn_eps: float = Field(
        0.8,
        gt=0,
        description="BatchNorm eps. IMAGAN's BatchNorm2d(c, 0.8) passes 0.8 as eps (its second positional argument; the "
        "0.8 of Keras ports is a momentum), which damps the normalisation of small activations; 1e-5 is PyTorch's default.",
    )
