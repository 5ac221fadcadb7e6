"""Entry point (group ``ganreg``, name ``stackgan``): registers StackGAN Stage-I's components."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.registry import NoParams
from ganreg_stackgan.params import MatchingBCEParams, StageIDiscriminatorParams, StageIGeneratorParams

PAPER = (
    "Zhang et al., StackGAN: Text to Photo-realistic Image Synthesis with Stacked Generative Adversarial Networks, "
    "ICCV 2017 (hanzhanggit/StackGAN-Pytorch, code/model.py, code/miscc/utils.py)"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "generator",
        "stage1",
        "ganreg_stackgan.generator:build_generator",
        summary="StackGAN Stage-I generator STAGE1_G with conditioning augmentation (CA_NET).",
        params=StageIGeneratorParams,
        paper=PAPER,
        test_params={"gf_dim": 4, "z_dim": 8, "condition_dim": 6},
    )
    register(
        "discriminator",
        "stage1",
        "ganreg_stackgan.discriminator:build_discriminator",
        summary="StackGAN Stage-I discriminator STAGE1_D with the conditional head D_GET_LOGITS.",
        params=StageIDiscriminatorParams,
        paper=PAPER,
        test_params={"df_dim": 4},
    )
    register(
        "loss",
        "stage1_bce",
        "ganreg_stackgan.losses:build_matching_bce",
        summary="Stage-I D loss: BCE(real) + (BCE(fake) + BCE(mismatch)) / 2, mismatched pairs by shifting the batch.",
        params=MatchingBCEParams,
        paper=PAPER,
        test_params={},
    )
    register(
        "loss",
        "kl",
        "ganreg_stackgan.losses:build_kl",
        summary="Conditioning augmentation's KL term (the generator's aux 'kl'; StackGAN weights it 2.0).",
        params=NoParams,
        paper=PAPER,
        test_params={},
    )
