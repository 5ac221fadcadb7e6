"""Params models of the core text encoders, kept free of torch so that
`ganreg list` / `ganreg show` / recipe validation never import the networks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PrecomputedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    normalize: bool = Field(False, description="L2-normalise each embedding (off in the originals).")


class LSTMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedding_dim: int = Field(300, ge=1, description="Word embedding size (DAMSM: 300).")
    hidden: int = Field(256, ge=2, description="Sentence embedding size: both directions together (DAMSM: 256).")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout on the word embeddings.")

    @field_validator("hidden")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("hidden must be even (two directions of hidden/2)")
        return v
