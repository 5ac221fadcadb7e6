"""Entry point (group ``ganreg``, name ``patchgan``): registers the text-conditional PatchGAN discriminator."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_patchgan.params import PatchDiscriminatorParams

PAPER = (
    "Isola et al., Image-to-Image Translation with Conditional Adversarial Networks (pix2pix), CVPR 2017 "
    "(junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py: NLayerDiscriminator); the sentence tiled and "
    "concatenated as in Reed et al. 2016; seed project 000's patch discriminator"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "discriminator",
        "patchgan",
        "ganreg_patchgan.discriminator:build_patch_discriminator",
        summary="PatchGAN (pix2pix) discriminator with the sentence tiled before its stride-1 layers: a map of patch logits.",
        params=PatchDiscriminatorParams,
        paper=PAPER,
        test_params={"ndf": 4, "n_layers": 2, "proj_dim": 4},
    )
