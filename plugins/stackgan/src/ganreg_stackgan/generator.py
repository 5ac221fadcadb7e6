"""StackGAN Stage-I generator ``STAGE1_G`` with conditioning augmentation ``CA_NET`` (reference section 3:
hanzhanggit/StackGAN-Pytorch ``code/model.py``, ``code/miscc/utils.py: KL_loss``).

* ``CA_NET``: ``fc = Linear(text_dim -> 2*c_dim)`` -> ReLU (LeakyReLU(0.2) in the TF original);
  ``mu, logvar`` are its two halves; ``c = mu + eps * exp(logvar / 2)``, eps ~ N(0, I).
  ``KL = -0.5 * mean(1 + logvar - mu^2 - exp(logvar))``, the mean over batch *and* dimensions, as the
  original (returned as ``aux["kl"]``; the loss ``stackgan:kl`` adds it to G's objective).
* ``fc = Linear(z_dim + c_dim -> ngf*4*4, bias=False)`` -> BN1d -> ReLU, ``ngf = 8 * gf_dim``, input
  ``cat(z, c)`` (noise first); then up-blocks ``nearest x2 -> conv3x3 (no bias) -> BN -> ReLU``, halving the
  width (1024 -> 512 -> 256 -> 128 -> 64 at 64 px), then ``conv3x3 (no bias) -> tanh``.
* D sees ``mu`` (detached by the trainer, as the original's ``mu.detach()``), not the sampled ``c`` and
  not the sentence: ``cond_used = mu`` and ``cond_used_dim = c_dim``.
* In eval mode ``c = mu``: sample grids and ``ganreg generate --seed`` are then reproducible from the noise
  alone. The original draws eps at test time too.
* 64 px is the original; 32, 128 and 256 px remove or add up-blocks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Generator, GeneratorOutput
from ganreg_stackgan._init import check_image_size, weights_init
from ganreg_stackgan.params import StageIGeneratorParams


class CANet(nn.Module):
    """Conditioning augmentation: sentence -> (c, mu, logvar)."""

    def __init__(self, text_dim: int, c_dim: int, activation: str = "relu") -> None:
        super().__init__()
        self.c_dim = c_dim
        self.fc = nn.Linear(text_dim, 2 * c_dim, bias=True)
        self.act: nn.Module = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)

    def forward(self, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.act(self.fc(sentence))
        mu, logvar = x[:, : self.c_dim], x[:, self.c_dim :]
        if not self.training:
            return mu, mu, logvar
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), mu, logvar


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``-0.5 * mean(1 + logvar - mu^2 - exp(logvar))`` (StackGAN's ``KL_loss``: a mean, not a sum over dims)."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """``Upsample(x2, nearest) -> conv3x3 (no bias) -> BN -> ReLU``."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    )


class StageIGenerator(Generator):
    """(z, sentence) -> 64x64 image in [-1, 1]; ``cond_used`` = mu for D."""

    def __init__(
        self,
        gf_dim: int = 128,
        z_dim: int = 100,
        text_dim: int = 1024,
        c_dim: int = 128,
        image_size: int = 64,
        ca_activation: str = "relu",
    ) -> None:
        super().__init__()
        check_image_size(image_size, "generator stackgan:stage1")
        ngf = gf_dim * 8
        self.z_dim, self.cond_used_dim, self.ngf = z_dim, c_dim, ngf
        self.ca_net = CANet(text_dim, c_dim, ca_activation)
        self.fc = nn.Sequential(nn.Linear(z_dim + c_dim, ngf * 4 * 4, bias=False), nn.BatchNorm1d(ngf * 4 * 4), nn.ReLU(True))
        widths = [max(ngf // 2**i, 1) for i in range(int(math.log2(image_size // 4)) + 1)]
        self.upsample = nn.Sequential(*(up_block(i, o) for i, o in zip(widths[:-1], widths[1:])))
        self.img = nn.Sequential(nn.Conv2d(widths[-1], 3, 3, 1, 1, bias=False), nn.Tanh())
        weights_init(self)

    @contextlib.contextmanager
    def noise_only_from_z(self) -> Iterator[None]:
        """Conditioning augmentation gives ``c = mu`` (its eval mode; BatchNorm keeps its training mode)."""
        training = self.ca_net.training
        self.ca_net.eval()
        try:
            yield
        finally:
            self.ca_net.train(training)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        c, mu, logvar = self.ca_net(cond)
        h = self.fc(torch.cat((z, c), 1)).view(-1, self.ngf, 4, 4)
        images = self.img(self.upsample(h))
        return GeneratorOutput(images=images, aux={"kl": kl_loss(mu, logvar)}, cond_used=mu)


def build_generator(params: StageIGeneratorParams, ctx: BuildContext) -> StageIGenerator:
    """StackGAN Stage-I generator STAGE1_G with conditioning augmentation.

    CA_NET (Linear -> ReLU -> mu, logvar; c = mu + eps * sigma), Linear(z + c -> 8gf*4*4) + BN + ReLU, four
    up-blocks (nearest x2, conv3x3, BN, ReLU) to 64 px, conv3x3 -> tanh. D sees mu (cond_used).
    """
    if ctx.cond_dim < 1:
        raise UserError("generator stackgan:stage1 needs a sentence embedding (cond_dim >= 1)", "add a text encoder to the recipe")
    return StageIGenerator(params.gf_dim, params.z_dim, ctx.cond_dim, params.condition_dim, ctx.image_size, params.ca_activation)
