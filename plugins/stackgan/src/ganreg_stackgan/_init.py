"""StackGAN's ``weights_init`` (``code/miscc/utils.py``), shared by G and D."""

from __future__ import annotations

from torch import nn


def weights_init(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02) (biases keep PyTorch's default, as the original leaves them); BatchNorm
    weight ~ N(1, 0.02), bias 0; Linear weight ~ N(0, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_image_size(size: int, who: str) -> None:
    from ganreg.errors import UserError

    if size not in (32, 64, 128, 256):
        raise UserError(f"{who} is defined for 32, 64, 128 and 256 px images, got {size}",
                        "set data.image_size to 64 (Stage-I's size), or 32, 128 or 256")
