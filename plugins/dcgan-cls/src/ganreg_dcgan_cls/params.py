"""Params models of this plugin's components, kept free of torch so that
`ganreg list` / `ganreg show` / recipe validation never import the networks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchingBCEParams(_Params):
    smoothing: float = Field(
        0.1, ge=0.0, lt=0.5, description="One-sided label smoothing: real pairs get target 1 - smoothing (original: 0.1)."
    )
    real_weight: float = Field(1.0, ge=0.0, description="Weight of BCE(D(real, text), 1 - smoothing). Reed: 1, aelnouby: 1.")
    fake_weight: float = Field(1.0, ge=0.0, description="Weight of BCE(D(G(z, text), text), 0). Reed: 0.5, aelnouby: 1.")
    wrong_weight: float = Field(
        1.0,
        ge=0.0,
        description="Weight of BCE(D(wrong image, text), 0), the matching-aware (CLS) term. Reed: 0.5, "
        "aelnouby --cls: 1; 0 disables it (D never sees wrong images).",
    )


class GanIntParams(_Params):
    beta: float = Field(
        0.5, ge=0.0, le=1.0, description="Interpolation t = beta·t_a + (1-beta)·t_b (Reed: 0.5, the midpoint)."
    )


class WGANParams(_Params):
    clip: float | None = Field(
        0.01, gt=0.0, description="Clamp every D parameter to [-clip, clip] after each D step (original: 0.01); "
        "null disables (use wgan_gp instead)."
    )
    wrong_weight: float = Field(
        0.0, ge=0.0, description="Adds wrong_weight·mean(D(wrong, text)) (aelnouby --cls: 1); 0 never computes it."
    )


class WGANGPParams(_Params):
    lambda_gp: float = Field(10.0, ge=0.0, le=1e4, description="Penalty coefficient λ (Gulrajani et al.: 10).")


class DCGANClsDiscriminatorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ndf: int = Field(64, ge=1, le=1024, description="Width of the first conv; the 4×4 features have 8·ndf at 64 px (original: 64).")
    proj_dim: int = Field(128, ge=1, le=4096, description="Size of the projected text embedding tiled at 4×4 (original: 128).")
    batchnorm: bool = Field(
        True,
        description="BatchNorm2d in the image trunk. false: the 'improved' WGAN critic without BN (use it with wgan_gp).",
    )
    text_bn: bool = Field(True, description="BatchNorm1d on the text projection (original: yes).")


class DCGANClsGeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ngf: int = Field(64, ge=1, le=1024, description="Width of the last hidden layer; the 4×4 stage has 8·ngf (original: 64).")
    z_dim: int = Field(100, ge=1, le=4096, description="Noise size (original: 100).")
    proj_dim: int = Field(128, ge=1, le=4096, description="Size of the projected text embedding (original: 128).")
    text_bn: bool = Field(
        True, description="BatchNorm1d on the text projection (aelnouby: yes; Reed's Lua G: no)."
    )
