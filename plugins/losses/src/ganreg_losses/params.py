"""Params of the losses (torch-free: ``ganreg list`` and ``ganreg show`` import only this)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ContrastiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(
        1.0, gt=0, description="Divides D's pair logits before the softmax over the batch's captions (lower: sharper)."
    )


SAMPLES_DESCRIPTION = (
    "How many items of the batch get a second noise vector (G runs once more on them only); null: all."
    " Fewer is cheaper and noisier."
)


class ModeSeekingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eps: float = Field(1e-5, gt=0, description="Keeps 1 / ratio finite when two images coincide (MSGAN: 1e-5).")
    samples: int | None = Field(None, ge=1, description=SAMPLES_DESCRIPTION)


class DiversitySensitiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tau: float = Field(
        0.1,
        gt=0,
        description=(
            "Bound on each pair's rewarded ratio mean|G(z1,s) - G(z2,s)| / mean|z1 - z2| (images in [-1, 1]):"
            " past it the pair gives no gradient, so G is not pushed to vary more than the data does. 0.1 is"
            " the built-in shapes' own ratio: real images that fit one caption differ by 0.11 a pixel in [-1, 1]"
            " (`ganreg eval`'s real_pixels 0.056 is in [0, 1] units), two N(0, 1) noise vectors by 1.13 a dimension."
        ),
    )
    samples: int | None = Field(None, ge=1, description=SAMPLES_DESCRIPTION)
