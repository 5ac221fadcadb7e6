"""Params model of the encoder, kept free of torch so that `ganreg list` / `ganreg show` / recipe
validation never import the network."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LSTMAttentionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedding_dim: int = Field(300, ge=1, description="Word embedding size (as DAMSM's: 300).")
    hidden: int = Field(
        256, ge=2, description="Word and sentence feature size: both LSTM directions together, and the attention's width."
    )
    heads: int = Field(4, ge=1, description="Attention heads; must divide hidden.")
    layers: int = Field(1, ge=1, le=8, description="Self-attention blocks stacked after the LSTM.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout on the word embeddings (as the 'lstm' encoder).")
    attention_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the attention weights.")

    @model_validator(mode="after")
    def _shapes(self) -> LSTMAttentionParams:
        if self.hidden % 2:
            raise ValueError("hidden must be even (two LSTM directions of hidden/2)")
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        return self
