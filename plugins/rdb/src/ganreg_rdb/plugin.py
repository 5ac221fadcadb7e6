"""Entry point (group ``ganreg``, name ``rdb``): registers the residual-dense-block generator."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_rdb.params import RDBGeneratorParams

PAPER = (
    "seed project 003 (IMAGAN, Abhishek-Aditya-bs/IMAGAN-Text-To-Image-Using-GAN: model.py RDBGenerator), trained "
    "with DF-GAN's discriminator, hinge and MA-GP; the residual dense block of Zhang et al., Residual Dense Network "
    "for Image Super-Resolution, CVPR 2018"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "generator",
        "rdb",
        "ganreg_rdb.generator:build_rdb_generator",
        summary="Upsampling generator with a residual dense block fusing the tiled sentence at 16x16 (seed project 003).",
        params=RDBGeneratorParams,
        paper=PAPER,
        test_params={"nf": 2, "z_dim": 8, "dense_layers": 2, "growth": 4},
    )
