"""DF-GAN for ganreg: generator, discriminator (NetD + NetC) and losses.

Follows the official code, tobran/DF-GAN ``code/models/GAN.py`` and
``code/lib/modules.py`` at 78f14fd (the CVPR'22 version), not the 2020 code.
"""

from ganreg_dfgan.discriminator import DBlock, DFGANDiscriminator, NetC, NetD, get_D_in_out_chs
from ganreg_dfgan.generator import DFBLK, Affine, DFGANGenerator, GBlock, get_G_in_out_chs
from ganreg_dfgan.losses import DFGANHinge, DFGANHingeGenerator, MAGP

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "DFBLK",
    "GBlock",
    "DFGANGenerator",
    "get_G_in_out_chs",
    "DBlock",
    "NetD",
    "NetC",
    "DFGANDiscriminator",
    "get_D_in_out_chs",
    "DFGANHinge",
    "DFGANHingeGenerator",
    "MAGP",
]
