"""DF-GAN discriminator: ``NetD`` (image trunk) + ``NetC`` (conditional head).

tobran/DF-GAN ``code/models/GAN.py`` (CVPR'22 code):

* ``NetD``: ``conv_img`` Conv3x3(3->nf), then ``D_Block``s ("resD") over
  ``get_D_in_out_chs`` down to (B, 8nf, 4, 4). This is ganreg's
  ``Discriminator.features``.
* ``D_Block(fin, fout)``: ``conv_r`` = Conv4x4 s2 p1 (bias=False) -> LReLU(0.2)
  -> Conv3x3 (bias=False) -> LReLU(0.2); shortcut = Conv1x1 (bias) when
  fin != fout, then avg_pool2d(2); output ``x_sc + gamma * res`` with a
  learnable scalar ``gamma`` initialised to 0. No normalisation anywhere.
  (ganreg computes the shortcut as one equivalent strided convolution:
  ``DBlock.shortcut``.)
* ``NetC``: the sentence repeated to 4x4 and concatenated after the image
  features, Conv3x3(8nf+cond_dim -> 2nf, bias=False) -> LReLU(0.2) ->
  Conv4x4(2nf -> 1, bias=False): an unbounded logit. This is ganreg's
  ``Discriminator.logits``.

The original builds ``conv_s`` in *every* D_Block, also where fin == fout and
it is never used (hence ``find_unused_parameters=True`` in its DDP). The
published parameter counts (6.62M at 256 px, nf 32) include those dead
weights, and the released checkpoints contain them; ``unused_shortcuts=True``
(the default) keeps them for exact parity, ``False`` drops them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Discriminator
from ganreg_dfgan.generator import _channels, check_image_size, official_nets
from ganreg_dfgan.params import DFGANDiscriminatorParams


def get_D_in_out_chs(nf: int, imsize: int) -> list[tuple[int, int]]:
    """(in, out) channels of each D_Block, imsize -> 4x4 (original ``get_D_in_out_chs``)."""
    chs = _channels(nf, imsize)
    return list(zip(chs[:-1], chs[1:]))


class DBlock(nn.Module):
    """resD: ``avgpool(shortcut(x)) + gamma * conv_r(x)``, gamma starts at 0."""

    def __init__(
        self, fin: int, fout: int, downsample: bool = True, unused_shortcut: bool = True, gate_init: float = 0.0
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.learned_shortcut = fin != fout
        self.conv_r = nn.Sequential(
            nn.Conv2d(fin, fout, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2),
            nn.Conv2d(fout, fout, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2),
        )
        if self.learned_shortcut or unused_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, stride=1, padding=0)
        self.gamma = nn.Parameter(torch.full((1,), float(gate_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv_r(x)
        # gamma in the activations' dtype: under bf16/fp16 autocast a float32 gamma of shape (1,) would promote the
        # block's output to float32, and every block would then cast its input back (forward, backward and MA-GP's
        # double backward) and move the trunk's activations at twice the bytes.
        return self.shortcut(x) + self.gamma.to(res.dtype) * res

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """``avg_pool2d(conv_s(x), 2)``, computed as one 2x2 stride-2 convolution with weights ``conv_s / 4``.

        The same linear map, but MA-GP's double backward of a 1x1 convolution at full resolution makes cuDNN
        reduce over every input pixel with its slowest kernels: on an H100 at 256 px (bf16) D's penalty pass
        took 114 ms with the two-step form and 62 ms with this one. The parameters are unchanged (``conv_s``).
        """
        if self.learned_shortcut:
            if not self.downsample:
                return self.conv_s(x)
            # built in x's memory format: cuDNN would otherwise copy it in forward, backward and MA-GP's double backward
            pooled_weight = (self.conv_s.weight * 0.25).expand(-1, -1, 2, 2).contiguous(memory_format=memory_format(x))
            return F.conv2d(x, pooled_weight, self.conv_s.bias, stride=2)
        if self.downsample:
            return average_pool_2x2(x)
        return x


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a channels_last 4-D tensor (that is not also plain contiguous), else contiguous."""
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else (
        torch.contiguous_format
    )


def average_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2)`` for even sizes as a view and a mean: its backward is a broadcast, where the pooling
    kernel's backward is slow with channels_last on the GPU. The result keeps x's memory format: a mean over the
    NCHW view of a channels_last tensor comes out NCHW, and every later conv of D (and its gradients, and MA-GP's
    double backward) would then be copied back to channels_last by cuDNN."""
    if memory_format(x) == torch.channels_last:
        nhwc = x.permute(0, 2, 3, 1)
        pooled = nhwc.unflatten(2, (x.shape[3] // 2, 2)).unflatten(1, (x.shape[2] // 2, 2)).mean((2, 4))
        return pooled.permute(0, 3, 1, 2)
    return x.unflatten(3, (x.shape[3] // 2, 2)).unflatten(2, (x.shape[2] // 2, 2)).mean((3, 5))


def image_conv(conv: nn.Conv2d, x: torch.Tensor, im2col: bool | None = None) -> torch.Tensor:
    """``conv(x)`` for D's first convolution (3 input channels, stride 1); on CUDA as im2col and one matmul.

    MA-GP differentiates D's input gradient with respect to this convolution's weights. For 3 input channels at
    full resolution cuDNN has only slow kernels for that (on an H100 at 256 px: 19 ms in bf16 and 55 ms in fp32
    per penalty pass, a third of it), while unfolding the 3x3 neighbourhoods (27 channels) and multiplying by the
    (out, 27) weight matrix costs a few ms. On the CPU oneDNN's direct convolution is as fast, so ``im2col``
    defaults to ``x.is_cuda``. The result keeps the input's memory format.
    """
    if not (x.is_cuda if im2col is None else im2col):
        return conv(x)
    if torch.is_autocast_enabled(x.device.type):  # cast the 3-channel image, not its 9x larger unfolding
        x = x.to(torch.get_autocast_dtype(x.device.type))
    batch, _, height, width = x.shape
    cols = F.unfold(x, conv.kernel_size, padding=conv.padding)  # (B, C*kh*kw, H*W)
    weight, bias = conv.weight.flatten(1), conv.bias  # conv_img is built with a bias
    assert bias is not None
    if memory_format(x) == torch.channels_last:
        out = cols.transpose(1, 2) @ weight.t()  # (B, H*W, out): already channels_last
        return (out + bias.to(out.dtype)).view(batch, height, width, -1).permute(0, 3, 1, 2)
    out = weight @ cols  # (B, out, H*W)
    return (out + bias.to(out.dtype)[:, None]).view(batch, -1, height, width)


class NetD(nn.Module):
    """Image trunk: (B, 3, S, S) -> (B, 8nf, 4, 4)."""

    def __init__(
        self, ndf: int, imsize: int = 256, ch_size: int = 3, unused_shortcuts: bool = True, gate_init: float = 0.0
    ) -> None:
        super().__init__()
        self.conv_img = nn.Conv2d(ch_size, ndf, 3, 1, 1)
        self.DBlocks = nn.ModuleList(
            [DBlock(i, o, unused_shortcut=unused_shortcuts, gate_init=gate_init) for i, o in get_D_in_out_chs(ndf, imsize)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = image_conv(self.conv_img, x)
        for block in self.DBlocks:
            out = block(out)
        return out


def minibatch_std(features: torch.Tensor, group: int) -> torch.Tensor:
    """``features`` with one more channel: the standard deviation of each feature over a group of ``group`` images
    (groups interleaved across the batch, as StyleGAN), averaged over channels and positions; one value per group,
    given to each of its images. A batch not divisible by ``group`` uses the largest divisor that is."""
    batch = features.shape[0]
    g = next(k for k in range(min(group, batch), 0, -1) if batch % k == 0)
    if g < 2:  # a single image has no spread
        spread = features.new_zeros(batch, 1, *features.shape[2:])
    else:
        y = features.float().reshape(g, batch // g, *features.shape[1:])
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (batch // g,)
        spread = std.repeat(g).view(batch, 1, 1, 1).expand(batch, 1, *features.shape[2:]).to(features.dtype)
    return torch.cat((features, spread), 1)


class NetC(nn.Module):
    """Conditional head: (features (B, 8nf, 4, 4), sentence (B, cond_dim)) -> (B, 1, 1, 1)."""

    def __init__(self, ndf: int, cond_dim: int = 256, minibatch_std: int = 0) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.minibatch_std = minibatch_std
        extra = 1 if minibatch_std >= 2 else 0
        self.joint_conv = nn.Sequential(
            nn.Conv2d(ndf * 8 + extra + cond_dim, ndf * 2, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
        )

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.minibatch_std >= 2:
            out = minibatch_std(out, self.minibatch_std)
        y = y.view(-1, self.cond_dim, 1, 1).repeat(1, 1, out.shape[2], out.shape[3])
        # in out's memory format: cat of a channels_last and an NCHW tensor gives NCHW, which cuDNN copies back
        return self.joint_conv(torch.cat((out, y.to(out.dtype, memory_format=memory_format(out))), 1))


class DFGANDiscriminator(Discriminator):
    """DF-GAN discriminator: ``net_d`` (NetD) gives the features, ``net_c`` (NetC) the logit."""

    def __init__(
        self,
        nf: int = 32,
        cond_dim: int = 256,
        imsize: int = 256,
        ch_size: int = 3,
        unused_shortcuts: bool = True,
        gate_init: float = 0.0,
        minibatch_std: int = 0,
    ) -> None:
        super().__init__()
        check_image_size(imsize, "discriminator dfgan")
        self.net_d = NetD(nf, imsize, ch_size, unused_shortcuts, gate_init)
        self.net_c = NetC(nf, cond_dim, minibatch_std)

    def adapt_checkpoint(self, checkpoint: object) -> dict | None:
        """The official ``state_epoch_*.pth``'s ``netD`` and ``netC``, as ``net_d.*`` and ``net_c.*``
        (a ``module.`` prefix of DDP is dropped here, before the prefixes are added)."""
        nets = official_nets(checkpoint)
        if nets is None or "netD" not in nets or "netC" not in nets:
            return None
        return {
            f"{mine}.{k.removeprefix('module.')}": v
            for mine, theirs in (("net_d", "netD"), ("net_c", "netC"))
            for k, v in nets[theirs].items()
        }

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net_d(images)

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net_c(features, cond).view(-1)


def build_discriminator(params: DFGANDiscriminatorParams, ctx: BuildContext) -> DFGANDiscriminator:
    """DF-GAN discriminator NetD + NetC (CVPR'22 code).

    resD trunk with zero-initialised residual gates and no normalisation (features); the sentence tiled at 4x4 and
    two convs in NetC (logits).
    """
    if ctx.cond_dim < 1:
        raise UserError("discriminator dfgan needs a sentence embedding (cond_dim >= 1)", "add a text encoder to the recipe")
    return DFGANDiscriminator(
        params.nf,
        ctx.cond_dim,
        ctx.image_size,
        ctx.channels,
        params.unused_shortcuts,
        params.gate_init,
        params.minibatch_std,
    )
