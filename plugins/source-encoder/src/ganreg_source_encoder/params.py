"""Params models of this plugin's components, kept free of torch so that `ganreg list` / `ganreg show` /
recipe validation never import the networks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SourceEncoderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ndf: int = Field(64, ge=1, le=512, description="Width of the first conv; doubled per halving up to 8*ndf.")
    latent_dim: int = Field(
        100, ge=1, description="Latent size: must equal the generator's z_dim, whose noise the latent replaces (DF-GAN: 100)."
    )
    norm: Literal["instance", "batch", "none"] = Field(
        "instance",
        description="Normalisation after each inner conv. 'instance' keeps each image's latent independent of its "
        "batch and the same in training and eval mode.",
    )
    variational: bool = Field(
        True,
        description="Predict a mean and a log-variance and sample the latent in training (its KL to N(0, I) is "
        "aux 'kl', for the loss source_encoder:latent_kl): then sampling can draw the noise from N(0, I) as without an "
        "encoder. false: the latent is the mean, and only `generate --source` can give G inputs like it.",
    )


class KLParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
