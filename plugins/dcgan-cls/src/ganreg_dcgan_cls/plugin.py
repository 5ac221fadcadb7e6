"""Registers the GAN-INT-CLS components (entry point ``dcgan_cls`` in group ``ganreg``)."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.registry import NoParams

from . import losses as L
from .discriminator import DCGANClsDiscriminatorParams, build_discriminator
from .generator import DCGANClsGeneratorParams, build_generator

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
        build_generator,
        params=DCGANClsGeneratorParams,
        paper=f"{REED}; layout of {AELNOUBY} models/gan_cls.py",
        test_params={"ngf": 8, "z_dim": 16, "proj_dim": 8, "_image_size": 32},
    )
    register(
        "discriminator",
        "dcgan_cls",
        build_discriminator,
        params=DCGANClsDiscriminatorParams,
        paper=f"{REED}; layout of {AELNOUBY} models/gan_cls.py",
        test_params={"ndf": 8, "proj_dim": 8, "_image_size": 32},
    )
    register(
        "loss",
        "matching_bce",
        L.build_matching_bce,
        params=L.MatchingBCEParams,
        paper=f"{REED} (GAN-CLS; weights real 1, fake 0.5, wrong 0.5); {AELNOUBY} (1/1/1, smoothing 0.1)",
        test_params={},
    )
    register(
        "loss",
        "generator_bce",
        L.build_generator_bce,
        params=NoParams,
        paper=f"Goodfellow et al. 2014 (non-saturating loss); {REED}",
        test_params={},
    )
    register(
        "loss",
        "feature_matching",
        L.build_feature_matching,
        params=NoParams,
        paper=f"{SALIMANS}; {AELNOUBY} trainer.py l2_coef=100",
        test_params={},
    )
    register(
        "loss",
        "l1",
        L.build_l1,
        params=NoParams,
        paper=f"{AELNOUBY} trainer.py l1_coef=50",
        test_params={},
    )
    register(
        "loss",
        "gan_int",
        L.build_gan_int,
        params=L.GanIntParams,
        paper=f"{REED} (GAN-INT, interp_weight 1; reedscot/icml2016 main_cls_int.lua)",
        test_params={},
    )
    register(
        "loss",
        "wgan",
        L.build_wgan,
        params=L.WGANParams,
        paper=f"{WGAN}; {AELNOUBY} models/wgan_cls.py, trainer.py _train_wgan",
        test_params={"wrong_weight": 1.0},
    )
    register(
        "loss",
        "wgan_generator",
        L.build_wgan_generator,
        params=NoParams,
        paper=WGAN,
        test_params={},
    )
    register(
        "loss",
        "wgan_gp",
        L.build_wgan_gp,
        params=L.WGANGPParams,
        paper=f"{WGAN_GP} (per-sample gradient norm; fixes aelnouby Utils.compute_GP's per-pixel norm)",
        test_params={},
    )
