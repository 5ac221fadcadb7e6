"""Entry point (group ``ganreg``, name ``dfgan``): registers DF-GAN's components."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.registry import NoParams
from ganreg_dfgan.discriminator import DFGANDiscriminatorParams, build_discriminator
from ganreg_dfgan.generator import DFGANGeneratorParams, build_generator
from ganreg_dfgan.losses import HingeParams, MAGPParams, build_hinge, build_hinge_generator, build_magp

PAPER = "Tao et al., DF-GAN: A Simple and Effective Baseline for Text-to-Image Synthesis, CVPR 2022 (tobran/DF-GAN 78f14fd)"


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "generator",
        "dfgan",
        build_generator,
        params=DFGANGeneratorParams,
        paper=PAPER,
        test_params={"nf": 4, "z_dim": 8},
    )
    register(
        "discriminator",
        "dfgan",
        build_discriminator,
        params=DFGANDiscriminatorParams,
        paper=PAPER,
        test_params={"nf": 4},
    )
    register("loss", "hinge", build_hinge, params=HingeParams, paper=PAPER, test_params={})
    register("loss", "hinge_generator", build_hinge_generator, params=NoParams, paper=PAPER, test_params={})
    register("loss", "magp", build_magp, params=MAGPParams, paper=PAPER, test_params={})
