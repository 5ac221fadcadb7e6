"""Fused ops for the GAN components.

``from ganreg.ops import dfblk`` gives DF-GAN's DFBLK activation stack
(``lrelu(g2 * lrelu(g1 * x + b1) + b2)``, per-sample per-channel g/b): a
one-pass Triton kernel on CUDA, the PyTorch reference elsewhere. See
``dispatch`` for the ``GANREG_FUSED_OPS=auto|on|off`` switch and
``set_fused``. Importing this package does not import triton.
"""

from .dfblk_reference import cbn_apply_reference, dfblk_reference
from .dispatch import cbn_apply, dfblk, fused_available, get_fused_mode, set_fused, will_use_fused

__all__ = [
    "dfblk",
    "dfblk_reference",
    "cbn_apply",
    "cbn_apply_reference",
    "set_fused",
    "get_fused_mode",
    "fused_available",
    "will_use_fused",
]
