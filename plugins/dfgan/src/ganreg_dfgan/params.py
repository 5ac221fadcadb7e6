"""Params models of this plugin's components, kept free of torch so that
`ganreg list` / `ganreg show` / recipe validation never import the networks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HingeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mismatch_weight: float = Field(
        1.0,
        ge=0,
        description="Weight w of the mismatched pairs: real + (fake + w * mismatch) / (1 + w). 1 is DF-GAN's "
        "real + (fake + mismatch) / 2; 0 disables them (real + fake).",
    )


class MAGPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: float = Field(2.0, gt=0, description="Scale of the penalty (DF-GAN: 2).")
    p: float = Field(6.0, gt=0, description="Power of the per-sample gradient norm (DF-GAN: 6).")
    every: int = Field(
        1,
        ge=1,
        description="Lazy regularisation (as StyleGAN2's lazy R1): compute the penalty on every N-th D step only, "
        "scaled by N. 1 (DF-GAN) computes it every step; larger values save the double backward on the others.",
    )


class DFGANDiscriminatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nf: int = Field(32, ge=1, le=1024, description="Base width: conv_img gives nf channels, the 4x4 output 8*nf (official: 32).")
    unused_shortcuts: bool = Field(
        True,
        description="Build the 1x1 shortcut conv in every D_Block, also where fin == fout and it is unused, as the "
        "official code does: parameter counts and state-dict keys equal the original's. False drops the dead weights.",
    )
    gate_init: float = Field(
        0.0,
        description="Initial value of each D_Block's residual gate gamma (official: 0). While the gates are near 0 "
        "D is almost linear in the image (conv_img, 1x1 shortcuts, average pooling), and Adam moves a scalar gate "
        "by about lr per step, so short runs learn only blurry colour blobs; 1 opens the residual branches at once.",
    )
    minibatch_std: int = Field(
        0,
        ge=0,
        description="Not in DF-GAN: StyleGAN's minibatch standard deviation. With a group size G >= 2, NetC also "
        "sees one channel holding the spread of D's 4x4 features over groups of G images, so a batch of near-identical "
        "fakes is told apart from varied reals (against one image per caption). 0 (official) disables it; the head "
        "then has the original's parameter count.",
    )


class DFGANGeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nf: int = Field(32, ge=1, le=1024, description="Base width: the 4x4 base has 8*nf channels, the last block nf (official: 32; 64 for the larger model).")
    z_dim: int = Field(100, ge=1, description="Noise size; the noise is also part of every block's condition (official: 100).")
