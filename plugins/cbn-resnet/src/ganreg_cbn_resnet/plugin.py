"""Entry point (group ``ganreg``, name ``cbn_resnet``): registers the CBN ResNet generator and the
projection discriminator."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_cbn_resnet.params import CBNResNetGeneratorParams, ProjectionDiscriminatorParams

PAPER_G = (
    "Miyato & Koyama, cGANs with Projection Discriminator, ICLR 2018 (pfnet-research/sngan_projection e84b1a5, "
    "gen_models/resblocks.py); Brock et al., BigGAN, ICLR 2019; the class embedding replaced by the sentence"
)
PAPER_D = (
    "Miyato & Koyama, cGANs with Projection Discriminator, ICLR 2018 (pfnet-research/sngan_projection e84b1a5, "
    "dis_models/snresnet.py); the class embedding replaced by a linear map of the sentence"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "generator",
        "cbn_resnet",
        "ganreg_cbn_resnet.generator:build_generator",
        summary="ResNet generator with text-conditional BatchNorm (SNGAN-projection / BigGAN G).",
        params=CBNResNetGeneratorParams,
        paper=PAPER_G,
        test_params={"ch": 2, "z_dim": 8},
    )
    register(
        "discriminator",
        "projection",
        "ganreg_cbn_resnet.discriminator:build_discriminator",
        summary="Spectrally normalised ResNet discriminator with a projection head on the sentence.",
        params=ProjectionDiscriminatorParams,
        paper=PAPER_D,
        test_params={"ch": 2},
    )
