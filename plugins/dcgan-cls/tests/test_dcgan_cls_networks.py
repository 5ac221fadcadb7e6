"""Generator and discriminator of the dcgan_cls plugin: sizes, shapes, parity."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

try:
    import ganreg_dcgan_cls  # noqa: F401
except ImportError:  # plugin not installed: test it from its source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, DiscriminatorOutput, GeneratorOutput
from ganreg_dcgan_cls.discriminator import DCGANClsDiscriminatorParams, build_discriminator
from ganreg_dcgan_cls.generator import DCGANClsGeneratorParams, build_generator


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def G(size: int = 64, cond_dim: int = 1024, **p: object) -> nn.Module:
    return build_generator(DCGANClsGeneratorParams(**p), BuildContext(image_size=size, cond_dim=cond_dim))


def D(size: int = 64, cond_dim: int = 1024, **p: object) -> nn.Module:
    return build_discriminator(DCGANClsDiscriminatorParams(**p), BuildContext(image_size=size, cond_dim=cond_dim))


def test_parameter_counts_equal_the_original() -> None:
    # aelnouby models/gan_cls.py at ngf = ndf = 64, 1024-d char-CNN-RNN text, 64 px (reference §1.2-1.3)
    assert n_params(G()) == 4_756_736
    assert n_params(D()) == 2_899_072


def test_text_projection_follows_cond_dim_and_options() -> None:
    g = G(cond_dim=256)
    assert g.projection[0].in_features == 256
    # Reed's Lua G: no BatchNorm1d on the projection (128 weights + 128 biases fewer)
    assert n_params(G(text_bn=False)) == 4_756_736 - 256
    assert not any(isinstance(m, nn.BatchNorm1d) for m in G(text_bn=False).modules())
    # the "improved" critic: no BatchNorm2d in the trunk
    d = D(batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert n_params(d) == 2_899_072 - 2 * (128 + 256 + 512)


def test_layout_and_init() -> None:
    torch.manual_seed(0)
    g = G()
    first = g.netG[0]
    assert isinstance(first, nn.ConvTranspose2d) and first.in_channels == 128 + 100 and first.bias is None
    assert isinstance(g.netG[-1], nn.Tanh)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(m.bias is None for m in convs)
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(w.std()) - 0.02) < 2e-3 and abs(float(w.mean())) < 1e-3
    bn = [m for m in g.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert all(float(m.bias.detach().abs().max()) == 0 for m in bn)
    assert abs(float(torch.cat([m.weight.detach() for m in bn]).mean()) - 1) < 5e-3
    d = D()
    assert all(m.bias is None for m in d.modules() if isinstance(m, nn.Conv2d))
    assert isinstance(d.netD_1[1], nn.LeakyReLU)  # no BN after the first conv


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes(size: int) -> None:
    torch.manual_seed(0)
    g, d = G(size, cond_dim=16, ngf=8), D(size, cond_dim=16, ndf=8)
    z, cond = torch.randn(3, 100), torch.randn(3, 16)
    out = g(z, cond)
    assert isinstance(out, GeneratorOutput)
    assert out.images.shape == (3, 3, size, size)
    assert out.images.abs().max() <= 1
    dout = d(out.images, cond)
    assert isinstance(dout, DiscriminatorOutput)
    assert dout.logits.shape == (3,)
    assert dout.features.shape == (3, 8 * {32: 4, 64: 8, 128: 8}[size], 4, 4)


@pytest.mark.parametrize("size", [16, 48, 256])
def test_unsupported_size_is_a_user_error(size: int) -> None:
    with pytest.raises(UserError, match="32, 64, 128"):
        G(size)
    with pytest.raises(UserError, match="32, 64, 128"):
        D(size)


def test_missing_cond_dim_is_a_user_error() -> None:
    with pytest.raises(UserError, match="cond_dim"):
        G(cond_dim=0)


def test_text_comes_before_noise() -> None:
    # zero the first layer's weights of input channels proj_dim.. (where z should sit): z then has no effect
    torch.manual_seed(0)
    g = G(cond_dim=16, ngf=8).eval()
    with torch.no_grad():
        g.netG[0].weight[128:].zero_()
        cond = torch.randn(2, 16)
        a = g(torch.randn(2, 100), cond).images
        b = g(torch.randn(2, 100), cond).images
    assert torch.equal(a, b)
