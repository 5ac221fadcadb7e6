"""Params of the losses (torch-free: ``ganreg list`` and ``ganreg show`` import only this)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ContrastiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(
        1.0, gt=0, description="Divides D's pair logits before the softmax over the batch's captions (lower: sharper)."
    )


class ModeSeekingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eps: float = Field(1e-5, gt=0, description="Keeps 1 / ratio finite when two images coincide (MSGAN: 1e-5).")
