"""DF-GAN for ganreg: generator, discriminator (NetD + NetC) and losses.

Follows the official code, tobran/DF-GAN ``code/models/GAN.py`` and
``code/lib/modules.py`` at 78f14fd (the CVPR'22 version), not the 2020 code.
The networks live in ``generator``, ``discriminator`` and ``losses``; this
package imports none of them, so that loading the plugin stays torch-free.
"""

__version__ = "0.1.0"
