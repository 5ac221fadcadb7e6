"""Entry point (group ``ganreg``, name ``unet``): registers the U-Net discriminator and its CutMix term."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_unet.params import CutMixParams, UNetDiscriminatorParams

PAPER = (
    "Schonfeld, Schiele and Khoreva, A U-Net Based Discriminator for Generative Adversarial Networks, CVPR 2020 "
    "(boschresearch/unetgan: BigGAN.py Unet_Discriminator, train_fns.py, mixup.py); seed project 003's StackGAN "
    "discriminator"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "discriminator",
        "unet",
        "ganreg_unet.discriminator:build_unet_discriminator",
        summary="U-Net discriminator: a per-image logit at the bottleneck and a per-pixel logit map from the decoder, "
        "both projected on the sentence.",
        params=UNetDiscriminatorParams,
        paper=PAPER,
        test_params={"ch": 2, "_image_size": 32},
    )
    register(
        "loss",
        "cutmix",
        "ganreg_unet.cutmix:build_cutmix",
        summary="U-Net D's CutMix term: mixed real/fake images judged per pixel, and the consistency of D's map "
        "with the mix of its maps (trains D).",
        params=CutMixParams,
        paper=PAPER,
        test_params={"_image_size": 32},
    )
