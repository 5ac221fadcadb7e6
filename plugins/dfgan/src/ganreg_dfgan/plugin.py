"""Entry point (group ``ganreg``, name ``dfgan``): registers DF-GAN's components."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.registry import NoParams
from ganreg_dfgan.params import DFGANDiscriminatorParams, DFGANGeneratorParams, HingeParams, MAGPParams

PAPER = "Tao et al., DF-GAN: A Simple and Effective Baseline for Text-to-Image Synthesis, CVPR 2022 (tobran/DF-GAN 78f14fd)"


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "generator",
        "dfgan",
        "ganreg_dfgan.generator:build_generator",
        summary="DF-GAN generator NetG (CVPR'22 code).",
        params=DFGANGeneratorParams,
        paper=PAPER,
        test_params={"nf": 4, "z_dim": 8},
    )
    register(
        "discriminator",
        "dfgan",
        "ganreg_dfgan.discriminator:build_discriminator",
        summary="DF-GAN discriminator NetD + NetC (CVPR'22 code).",
        params=DFGANDiscriminatorParams,
        paper=PAPER,
        test_params={"nf": 4},
    )
    register(
        "loss",
        "hinge",
        "ganreg_dfgan.losses:build_hinge",
        summary="DF-GAN discriminator hinge loss with rolled mismatched pairs.",
        params=HingeParams,
        paper=PAPER,
        test_params={},
    )
    register(
        "loss",
        "hinge_generator",
        "ganreg_dfgan.losses:build_hinge_generator",
        summary="DF-GAN generator hinge loss: -mean(D(fake, text)).",
        params=NoParams,
        paper=PAPER,
        test_params={},
    )
    register(
        "loss",
        "magp",
        "ganreg_dfgan.losses:build_magp",
        summary="DF-GAN matching-aware gradient penalty (MA-GP).",
        params=MAGPParams,
        paper=PAPER,
        test_params={},
    )
