"""Registers the GAN-INT-CLS components (entry point ``dcgan_cls`` in group ``ganreg``)."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.registry import NoParams

from ganreg_dcgan_cls import params as P

REED = "Reed et al. 2016, Generative Adversarial Text to Image Synthesis (ICML)"
AELNOUBY = "aelnouby/Text-to-Image-Synthesis (PyTorch GAN-INT-CLS)"
SALIMANS = "Salimans et al. 2016, Improved Techniques for Training GANs (feature matching, one-sided smoothing)"
WGAN = "Arjovsky et al. 2017, Wasserstein GAN"
WGAN_GP = "Gulrajani et al. 2017, Improved Training of Wasserstein GANs"


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "generator",
        "dcgan_cls",
        "ganreg_dcgan_cls.generator:build_generator",
        summary="DCGAN generator conditioned on projected text (GAN-INT-CLS); 32, 64 or 128 px.",
        params=P.DCGANClsGeneratorParams,
        paper=f"{REED}; layout of {AELNOUBY} models/gan_cls.py",
        test_params={"ngf": 8, "z_dim": 16, "proj_dim": 8, "_image_size": 32},
    )
    register(
        "discriminator",
        "dcgan_cls",
        "ganreg_dcgan_cls.discriminator:build_discriminator",
        summary="DCGAN discriminator with text tiled at 4×4 (GAN-INT-CLS matching-aware D); 32, 64 or 128 px.",
        params=P.DCGANClsDiscriminatorParams,
        paper=f"{REED}; layout of {AELNOUBY} models/gan_cls.py",
        test_params={"ndf": 8, "proj_dim": 8, "_image_size": 32},
    )
    register(
        "loss",
        "matching_bce",
        "ganreg_dcgan_cls.losses:build_matching_bce",
        summary="Matching-aware D loss: BCE on (real, text)→1-s, (fake, text)→0, (wrong, text)→0.",
        params=P.MatchingBCEParams,
        paper=f"{REED} (GAN-CLS; weights real 1, fake 0.5, wrong 0.5); {AELNOUBY} (1/1/1, smoothing 0.1)",
        test_params={},
    )
    register(
        "loss",
        "generator_bce",
        "ganreg_dcgan_cls.losses:build_generator_bce",
        summary="Non-saturating G loss: BCE(D(G(z, text), text), 1).",
        params=NoParams,
        paper=f"Goodfellow et al. 2014 (non-saturating loss); {REED}",
        test_params={},
    )
    register(
        "loss",
        "feature_matching",
        "ganreg_dcgan_cls.losses:build_feature_matching",
        summary="Feature matching on the batch means of D's 4×4 features (aelnouby l2_coef, weight 100).",
        params=NoParams,
        paper=f"{SALIMANS}; {AELNOUBY} trainer.py l2_coef=100",
        test_params={},
    )
    register(
        "loss",
        "l1",
        "ganreg_dcgan_cls.losses:build_l1",
        summary="L1 between each fake and its own real image (aelnouby l1_coef, weight 50).",
        params=NoParams,
        paper=f"{AELNOUBY} trainer.py l1_coef=50",
        test_params={},
    )
    register(
        "loss",
        "gan_int",
        "ganreg_dcgan_cls.losses:build_gan_int",
        summary="Reed's GAN-INT term: fool D with images of interpolated text embeddings.",
        params=P.GanIntParams,
        paper=f"{REED} (GAN-INT, interp_weight 1; reedscot/icml2016 main_cls_int.lua)",
        test_params={},
    )
    register(
        "loss",
        "wgan",
        "ganreg_dcgan_cls.losses:build_wgan",
        summary="WGAN critic loss mean D(fake) - mean D(real), with weight clipping after each D step.",
        params=P.WGANParams,
        paper=f"{WGAN}; {AELNOUBY} models/wgan_cls.py, trainer.py _train_wgan",
        test_params={"wrong_weight": 1.0},
    )
    register(
        "loss",
        "wgan_generator",
        "ganreg_dcgan_cls.losses:build_wgan_generator",
        summary="WGAN generator loss -mean D(fake).",
        params=NoParams,
        paper=WGAN,
        test_params={},
    )
    register(
        "loss",
        "wgan_gp",
        "ganreg_dcgan_cls.losses:build_wgan_gp",
        summary="WGAN-GP gradient penalty with the per-sample gradient norm on real/fake interpolates.",
        params=P.WGANGPParams,
        paper=f"{WGAN_GP} (per-sample gradient norm; fixes aelnouby Utils.compute_GP's per-pixel norm)",
        test_params={},
    )
