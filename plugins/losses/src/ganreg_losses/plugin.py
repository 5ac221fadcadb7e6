"""Entry point (group ``ganreg``, name ``losses``): registers the model-agnostic losses."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_losses.params import ContrastiveParams, DiversitySensitiveParams, ModeSeekingParams

XMC = "Zhang et al., Cross-Modal Contrastive Learning for Text-to-Image Generation (XMC-GAN), CVPR 2021"
MSGAN = "Mao et al., Mode Seeking Generative Adversarial Networks for Diverse Image Synthesis, CVPR 2019"
DSGAN = "Yang et al., Diversity-Sensitive Conditional Generative Adversarial Networks, ICLR 2019"


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "loss",
        "contrastive",
        "ganreg_losses.losses:build_contrastive",
        summary="D: cross-entropy of each real image picking its own caption among the batch's (D's head).",
        params=ContrastiveParams,
        paper=XMC,
        test_params={},
    )
    register(
        "loss",
        "contrastive_generator",
        "ganreg_losses.losses:build_contrastive_generator",
        summary="G: cross-entropy of each fake picking its own caption among the batch's (D's head).",
        params=ContrastiveParams,
        paper=XMC,
        test_params={},
    )
    register(
        "loss",
        "mode_seeking",
        "ganreg_losses.losses:build_mode_seeking",
        summary="G: MSGAN's 1 / (|G(z1,s) - G(z2,s)| / |z1 - z2|), against noise-ignoring collapse.",
        params=ModeSeekingParams,
        paper=MSGAN,
        test_params={},
    )
    register(
        "loss",
        "diversity_sensitive",
        "ganreg_losses.losses:build_diversity_sensitive",
        summary="G: DSGAN's min(|G(z1,s) - G(z2,s)| / |z1 - z2|, tau), noise diversity up to the data's.",
        params=DiversitySensitiveParams,
        paper=DSGAN,
        test_params={"samples": 2, "tau": 10.0},  # a tiny G is past the default tau: no gradient
    )
