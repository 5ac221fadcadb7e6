"""Helpers shared by the generator and the discriminator."""

from __future__ import annotations

from torch import nn

from ganreg.errors import UserError

SUPPORTED_SIZES = (32, 64, 128)
MAX_MULT = 8
"""Channel multiplier cap: 8·ngf / 8·ndf, as at 64 px in the original."""


def stage_multipliers(image_size: int, what: str) -> list[int]:
    """Width multipliers of the 4×4 → image_size stages, widest first.

    64 px is the original (8, 4, 2, 1). 32 px drops the widest stage
    (4, 2, 1); 128 px adds one at the top, capped at 8 (8, 8, 4, 2, 1).
    """
    if image_size not in SUPPORTED_SIZES:
        raise UserError(
            f"{what} supports image sizes {', '.join(map(str, SUPPORTED_SIZES))}, not {image_size}",
            "set data.image_size to 32, 64 or 128",
        )
    n = {32: 3, 64: 4, 128: 5}[image_size]
    return [min(2 ** (n - 1 - i), MAX_MULT) for i in range(n)]


def dcgan_init(module: nn.Module) -> None:
    """aelnouby ``Utils.weights_init`` (reference §1.5): convs N(0, 0.02);
    BatchNorm weight N(1, 0.02), bias 0; Linear layers keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def text_projection(cond_dim: int, proj_dim: int, batchnorm: bool) -> nn.Sequential:
    """``Linear(cond_dim → proj_dim)`` [+ ``BatchNorm1d``] + ``LeakyReLU(0.2)``."""
    layers: list[nn.Module] = [nn.Linear(cond_dim, proj_dim)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(proj_dim))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def require_cond_dim(ctx_cond_dim: int, what: str) -> int:
    if ctx_cond_dim < 1:
        raise UserError(
            f"{what} needs the text encoder's output size (BuildContext.cond_dim), got {ctx_cond_dim}",
            "build it after the text encoder (the trainer does), or set cond_dim in the BuildContext",
        )
    return ctx_cond_dim
