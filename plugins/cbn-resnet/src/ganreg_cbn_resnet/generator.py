"""ResNet generator with text-conditional BatchNorm (reference section 4: sngan_projection's
``gen_models/resnet*.py`` and ``resblocks.py: Block``, BigGAN's ``GBlock`` and ``ccbn``).

* ``l1 = Linear(z_dim -> 4*4*w0*ch)``, then one :class:`GBlock` per doubling, then
  BN -> ReLU -> Conv3x3(ch -> channels, 3 for RGB) -> tanh.
* :class:`GBlock`: residual ``CBN -> ReLU -> up -> Conv3x3 -> CBN -> ReLU -> Conv3x3``, shortcut
  ``up -> Conv1x1``; upsampling is nearest (Chainer's ``unpooling_2d(2)``). The shortcut runs its
  1x1 conv *before* upsampling: a pointwise conv commutes with nearest upsampling, so the maps are the
  same and the conv touches a quarter of the pixels.
* :class:`TextCBN`: the adaptation of categorical CBN to text written in reference section 4.1: BatchNorm
  without its own affine, then ``gamma = 1 + W_g s``, ``beta = W_b s`` from the sentence ``s`` (BigGAN's
  ``ccbn`` form). ``W_g``, ``W_b`` start at zero, so every block starts as plain BN, as sngan's class
  embeddings start at gamma 1 / beta 0. The apply step ``relu(gamma * x_hat + beta)`` is the fused op
  :func:`ganreg.ops.cbn_apply` (Triton on CUDA, the PyTorch reference elsewhere).
* Init as sngan_projection: Glorot-uniform with gain sqrt(2) for the residual convs, gain 1 for
  ``l1``, the shortcuts and the output conv; biases 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Generator, GeneratorOutput
from ganreg.ops import cbn_apply
from ganreg_cbn_resnet._sizes import G_WIDTHS, check_image_size
from ganreg_cbn_resnet.params import CBNResNetGeneratorParams


def _glorot(module: nn.Conv2d | nn.Linear, gain: float = 1.0) -> None:
    nn.init.xavier_uniform_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class TextCBN(nn.Module):
    """``relu((1 + W_g s) * BN(x) + W_b s)``: BatchNorm modulated per sample and channel by the sentence."""

    def __init__(self, num_features: int, cond_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, affine=False)
        self.gain = nn.Linear(cond_dim, num_features, bias=False)
        self.bias = nn.Linear(cond_dim, num_features, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def gamma_beta(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``gamma, beta``: each ``[B, C]``."""
        return 1.0 + self.gain(s), self.bias(s)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x_hat = self.bn(x)
        # gamma and beta at the weights' precision, outside autocast: bf16 would round gamma = 1 + W_g s to
        # steps of 2**-8..2**-7, as large as its text-dependent part (see ganreg.ops.dfblk_reference)
        with torch.autocast(x.device.type, enabled=False):
            gamma, beta = self.gamma_beta(s.to(self.gain.weight.dtype))
        return cbn_apply(x_hat, gamma, beta)


class GBlock(nn.Module):
    """``shortcut(x) + residual(x, s)``, both doubling the size."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.cbn1 = TextCBN(in_ch, cond_dim, eps)
        self.c1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.cbn2 = TextCBN(out_ch, cond_dim, eps)
        self.c2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.c_sc = nn.Conv2d(in_ch, out_ch, 1)
        _glorot(self.c1, math.sqrt(2))
        _glorot(self.c2, math.sqrt(2))
        _glorot(self.c_sc)

    def residual(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(self.cbn1(x, s), scale_factor=2, mode="nearest")
        return self.c2(self.cbn2(self.c1(h), s))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.c_sc(x), scale_factor=2, mode="nearest")  # == c_sc(up(x)), 4x fewer pixels

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x, s)


class CBNResNetGenerator(Generator):
    """(z, sentence) -> image in [-1, 1] through residual blocks with text-conditional BatchNorm."""

    def __init__(
        self,
        ch: int = 64,
        z_dim: int = 128,
        cond_dim: int = 256,
        image_size: int = 64,
        eps: float = 1e-5,
        channels: int = 3,
    ) -> None:
        super().__init__()
        check_image_size(image_size, "generator cbn_resnet")
        widths = [w * ch for w in G_WIDTHS[image_size]]
        self.z_dim, self.cond_dim, self.base = z_dim, cond_dim, widths[0]
        self.l1 = nn.Linear(z_dim, 4 * 4 * widths[0])
        self.blocks = nn.ModuleList(GBlock(i, o, cond_dim, eps) for i, o in zip(widths[:-1], widths[1:]))
        self.bn_out = nn.BatchNorm2d(widths[-1], eps=eps)
        self.conv_out = nn.Conv2d(widths[-1], channels, 3, 1, 1)
        _glorot(self.l1)
        _glorot(self.conv_out)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        h = self.l1(z).view(z.shape[0], self.base, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return GeneratorOutput(images=torch.tanh(self.conv_out(F.relu(self.bn_out(h)))))


def build_generator(params: CBNResNetGeneratorParams, ctx: BuildContext) -> CBNResNetGenerator:
    """ResNet generator with text-conditional BatchNorm (SNGAN-projection / BigGAN G, conditioned on the sentence).

    Linear -> 4x4, residual blocks (CBN -> ReLU -> nearest x2 -> conv3x3 -> CBN -> ReLU -> conv3x3, 1x1
    shortcut), BN -> ReLU -> conv3x3 -> tanh. gamma = 1 + W_g s and beta = W_b s start at plain BN.
    """
    if ctx.cond_dim < 1:
        raise UserError("generator cbn_resnet needs a sentence embedding (cond_dim >= 1)", "add a text encoder to the recipe")
    return CBNResNetGenerator(params.ch, params.z_dim, ctx.cond_dim, ctx.image_size, params.bn_eps, ctx.channels)
