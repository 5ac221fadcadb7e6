"""Channel schedules (as multiples of ``ch``) per image size, from reference section 4.3: sngan_projection's
``resnet_64`` / ``resnet`` (128) and BigGAN's ``G_arch`` / ``D_arch`` (256). 32 px is this plugin's own
shortening of the 64-px schedule (one block fewer on each side)."""

from __future__ import annotations

from ganreg.errors import UserError

G_WIDTHS: dict[int, tuple[int, ...]] = {
    32: (8, 4, 2, 1),
    64: (16, 8, 4, 2, 1),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}
"""G: the 4x4 base's width, then each upsampling block's output width (one block per doubling)."""

D_WIDTHS: dict[int, tuple[int, ...]] = {
    32: (1, 2, 4, 8),
    64: (1, 2, 4, 8, 16),
    128: (1, 2, 4, 8, 16, 16),
    256: (1, 2, 4, 8, 8, 16, 16),
}
"""D: each block's output width (the first is the OptimizedBlock)."""

D_FINAL_SIZE: dict[int, int] = {32: 4, 64: 2, 128: 4, 256: 4}
"""D: the feature map's size before the sum pool; every block halves the size until it is reached, the blocks after
that keep it. sngan_projection's ``snresnet_64`` downsamples in all five blocks (64 -> 2x2); its ``snresnet`` /
``snresnet_128`` and ``snresnet_256`` (and BigGAN's ``D_arch``) stop at 4x4 with one block that does not downsample."""


def check_image_size(size: int, who: str) -> None:
    if size not in G_WIDTHS:
        raise UserError(
            f"{who} is defined for 32, 64, 128 and 256 px images, got {size}",
            "set data.image_size to 32, 64, 128 or 256",
        )
