"""Entry point (group ``ganreg``, name ``source_encoder``): registers the source-image encoder and its KL term."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_source_encoder.params import KLParams, SourceEncoderParams

PAPER = (
    "seed projects 000 (SrcEncoder) and 001 (source encoder replacing the noise); the variational head and KL of "
    "Larsen et al., VAE-GAN, ICML 2016 and Zhu et al., BicycleGAN (cVAE-GAN), NeurIPS 2017"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "image_encoder",
        "conv",
        "ganreg_source_encoder.encoder:build_source_encoder",
        summary="Strided conv encoder of the source image with a variational head; its latent replaces G's noise.",
        params=SourceEncoderParams,
        paper=PAPER,
        test_params={"ndf": 4, "latent_dim": 8},
    )
    register(
        "loss",
        "latent_kl",
        "ganreg_source_encoder.losses:build_kl",
        summary="KL of the image encoder's latents to N(0, I) (trains the encoder, with G).",
        params=KLParams,
        paper=PAPER,
        test_params={},
    )
