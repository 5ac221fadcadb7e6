"""CBN ResNet generator and projection discriminator: the schedules of reference section 4.3, the
block maths of sections 4.1-4.4 checked by hand, spectral norm, and the rewrites that must not change
the maps (1x1 conv before upsampling, pooling before the 1x1 conv)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext
from ganreg.ops import cbn_apply_reference
from ganreg.testing import registry_with
from ganreg_cbn_resnet import plugin
from ganreg_cbn_resnet.discriminator import DBlock, OptimizedBlock, ProjectionDiscriminator
from ganreg_cbn_resnet.generator import CBNResNetGenerator, GBlock, TextCBN


def _block_widths(g: CBNResNetGenerator) -> list[tuple[int, int]]:
    return [(b.c1.in_channels, b.c1.out_channels) for b in g.blocks]


def test_generator_schedules_follow_sngan_and_biggan() -> None:
    # sngan_projection resnet_64: 16ch -> 8ch -> 4ch -> 2ch -> ch; resnet (128): 16ch -> 16ch -> 8ch ...
    assert _block_widths(CBNResNetGenerator(64, 8, 16, 64)) == [(1024, 512), (512, 256), (256, 128), (128, 64)]
    assert _block_widths(CBNResNetGenerator(64, 8, 16, 128))[:2] == [(1024, 1024), (1024, 512)]
    assert [o for _, o in _block_widths(CBNResNetGenerator(1, 8, 16, 256))] == [16, 8, 8, 4, 2, 1]  # BigGAN 256
    assert CBNResNetGenerator(64, 128, 16, 64).l1.out_features == 4 * 4 * 1024


def _d_schedule(d: ProjectionDiscriminator, size: int) -> tuple[list[int], list[int]]:
    x = torch.randn(2, 3, size, size)
    sizes, widths = [], []
    for block in d.blocks:
        x = block(x)
        sizes.append(x.shape[-1])
        widths.append(x.shape[1])
    return widths, sizes


def test_discriminator_schedule_and_sizes() -> None:
    d = ProjectionDiscriminator(ch=2, cond_dim=5, image_size=64, sn=False)
    widths, sizes = _d_schedule(d, 64)
    assert widths == [2, 4, 8, 16, 32]  # ch, 2ch, 4ch, 8ch, 16ch (snresnet_64)
    # snresnet_64 downsamples in all five blocks (block5 = Block(ch*8, ch*16, downsample=True)): 2x2 before the
    # sum pool; BigGAN's D_arch[64] would keep the last block at 4x4
    assert sizes == [32, 16, 8, 4, 2]
    assert isinstance(d.blocks[0], OptimizedBlock) and d.blocks[-1].downsample
    assert d.feature_dim == 32


@pytest.mark.parametrize(
    ("size", "widths", "sizes"),
    [
        # snresnet(_128): block6 = Block(16ch, 16ch, downsample=False)
        (128, [1, 2, 4, 8, 16, 16], [64, 32, 16, 8, 4, 4]),
        (256, [1, 2, 4, 8, 8, 16, 16], [128, 64, 32, 16, 8, 4, 4]),  # snresnet_256 / BigGAN D_arch[256]
        (32, [1, 2, 4, 8], [16, 8, 4, 4]),  # this plugin's own
    ],
)
def test_discriminator_schedules_at_other_sizes(size: int, widths: list[int], sizes: list[int]) -> None:
    d = ProjectionDiscriminator(ch=1, cond_dim=5, image_size=size, sn=False)
    assert _d_schedule(d, size) == (widths, sizes)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_range(size: int) -> None:
    g = CBNResNetGenerator(ch=1, z_dim=8, cond_dim=6, image_size=size)
    d = ProjectionDiscriminator(ch=1, cond_dim=6, image_size=size)
    z, s = torch.randn(3, 8), torch.randn(3, 6)
    images = g(z, s).images
    assert images.shape == (3, 3, size, size) and images.abs().max() <= 1
    out = d(images, s)
    assert out.logits.shape == (3,) and out.features.shape == (3, d.feature_dim)


def test_generator_draws_the_data_channels() -> None:
    """G's output conv has ``ctx.channels`` outputs, as D's first conv has ``ctx.channels`` inputs."""
    reg = registry_with(plugin, "cbn_resnet")
    ctx = BuildContext(image_size=32, cond_dim=6, channels=1)
    g = reg.resolve("generator", "cbn_resnet:cbn_resnet").build({"ch": 1, "z_dim": 8}, ctx)
    d = reg.resolve("discriminator", "cbn_resnet:projection").build({"ch": 1}, ctx)
    images = g(torch.randn(2, 8), torch.randn(2, 6)).images
    assert images.shape == (2, 1, 32, 32)
    assert d(images, torch.randn(2, 6)).logits.shape == (2,)


def test_other_sizes_are_refused_with_the_fix() -> None:
    with pytest.raises(UserError, match="32, 64, 128 and 256 px") as err:
        CBNResNetGenerator(ch=1, image_size=48)
    assert "data.image_size" in (err.value.fix or "")
    with pytest.raises(UserError, match="discriminator projection"):
        ProjectionDiscriminator(ch=1, image_size=512)


def test_text_cbn_is_bn_modulated_by_the_sentence() -> None:
    torch.manual_seed(0)
    cbn = TextCBN(4, 3).double()
    x, s = torch.randn(5, 4, 6, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    x_hat = F.batch_norm(x, None, None, training=True, eps=1e-5)
    assert torch.allclose(cbn(x, s), F.relu(x_hat))  # W_g = W_b = 0: plain BN at the start
    torch.nn.init.normal_(cbn.gain.weight)
    torch.nn.init.normal_(cbn.bias.weight)
    gamma = 1 + s @ cbn.gain.weight.T
    beta = s @ cbn.bias.weight.T
    expected = F.relu(gamma[:, :, None, None] * x_hat + beta[:, :, None, None])
    assert torch.allclose(cbn(x, s), expected)
    assert not torch.allclose(cbn(x, s.flip(0)), expected)  # per-sample: the sentence decides


def test_text_cbn_under_bf16_autocast_applies_a_float32_gamma() -> None:
    """Under bf16 autocast gamma = 1 + W_g s and beta come from float32 linear layers and are applied unrounded
    (bf16 would round gamma to steps of 2**-8..2**-7 near 1); only the bf16 output is rounded."""
    torch.manual_seed(0)
    cbn = TextCBN(8, 3)
    torch.nn.init.normal_(cbn.gain.weight, std=1e-3)
    torch.nn.init.normal_(cbn.bias.weight, std=1e-3)
    x, s = torch.randn(4, 8, 5, 5), torch.randn(4, 3)
    gamma, beta = cbn.gamma_beta(s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_hat = cbn.bn(x.bfloat16())
        got = cbn(x.bfloat16(), s)
    assert got.dtype == torch.bfloat16
    assert gamma.dtype == torch.float32 and not torch.equal(gamma.bfloat16().float(), gamma)  # rounding would move it
    assert torch.equal(got, cbn_apply_reference(x_hat, gamma, beta))  # the float32 gamma, as it is
    torch.testing.assert_close(got.float(), F.relu(gamma[:, :, None, None] * x_hat.float() + beta[:, :, None, None]),
                               rtol=1e-2, atol=1e-2)


def test_generator_follows_the_sentence_once_trained_and_ignores_it_at_init() -> None:
    torch.manual_seed(1)
    g = CBNResNetGenerator(ch=1, z_dim=8, cond_dim=6, image_size=32).eval()
    z, s = torch.randn(2, 8), torch.randn(2, 6)
    assert torch.equal(g(z, s).images, g(z, -s).images)  # every CBN starts as plain BN
    images = g(z, s).images
    images.sum().backward()
    assert all(b.cbn1.gain.weight.grad.abs().sum() > 0 for b in g.blocks)  # yet the sentence gets gradient
    torch.nn.init.normal_(g.blocks[0].cbn1.gain.weight)
    assert not torch.allclose(g(z, s).images, g(z, -s).images)


def test_gblock_shortcut_equals_upsample_then_conv() -> None:
    torch.manual_seed(2)
    block = GBlock(3, 5, 4).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    expected = block.c_sc(F.interpolate(x, scale_factor=2, mode="nearest"))  # sngan's order
    assert torch.allclose(block.shortcut(x), expected)
    assert block(x, torch.randn(2, 4, dtype=torch.float64)).shape == (2, 5, 8, 8)


@pytest.mark.parametrize("downsample", [True, False])
def test_dblock_is_sngan_block(downsample: bool) -> None:
    torch.manual_seed(3)
    block = DBlock(3, 5, downsample, sn=False).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    pool = (lambda t: F.avg_pool2d(t, 2)) if downsample else (lambda t: t)
    residual = pool(block.c2(F.relu(block.c1(F.relu(x)))))
    shortcut = pool(block.c_sc(x))  # sngan: conv1x1 then avgpool
    assert torch.allclose(block(x), residual + shortcut)
    same = DBlock(4, 4, downsample=False, sn=False)
    assert not hasattr(same, "c_sc")  # identity shortcut when nothing changes


def test_optimized_block_is_sngan_first_block() -> None:
    torch.manual_seed(4)
    block = OptimizedBlock(3, 4, sn=False).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    expected = F.avg_pool2d(block.c2(F.relu(block.c1(x))), 2) + block.c_sc(F.avg_pool2d(x, 2))
    assert torch.allclose(block(x), expected)


def test_projection_head_by_hand() -> None:
    torch.manual_seed(5)
    d = ProjectionDiscriminator(ch=1, cond_dim=6, image_size=32, sn=False).double()
    images, s = torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    h = F.relu(d.blocks(images)).sum(dim=(2, 3))  # global SUM pool
    assert torch.allclose(d.features(images), h)
    expected = h @ d.l_out.weight[0] + d.l_out.bias[0] + ((s @ d.l_y.weight.T) * h).sum(1)
    assert torch.allclose(d.logits(h, s), expected)
    rolled = d.logits(h.roll(1, 0), s)  # DF-GAN's mismatched pairs: other images' features, same sentences
    assert rolled.shape == (3,) and not torch.allclose(rolled, expected)


def test_spectral_norm_bounds_every_layer() -> None:
    torch.manual_seed(6)
    d = ProjectionDiscriminator(ch=2, cond_dim=6, image_size=32, sn=True)
    images, s = torch.randn(4, 3, 32, 32), torch.randn(4, 6)
    for _ in range(30):  # one power iteration per training forward
        d(images, s)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 4 * 3 + 2  # c1, c2, c_sc in each of the 4 blocks (the width changes in each), l_out, l_y
    with torch.no_grad():
        d.eval()
        for m in layers:
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
            assert abs(float(sigma) - 1) < 0.05, m
    plain = ProjectionDiscriminator(ch=2, cond_dim=6, image_size=32, sn=False)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())


def test_spectral_norm_vectors_are_saved_and_restored() -> None:
    """``u`` and ``v`` are buffers in the state dict: a resumed run continues the same power iteration."""
    torch.manual_seed(7)
    d = ProjectionDiscriminator(ch=1, cond_dim=6, image_size=32)
    images, s = torch.randn(2, 3, 32, 32), torch.randn(2, 6)
    d(images, s)
    state = d.state_dict()
    assert "blocks.0.c1.parametrizations.weight.0._u" in state and "l_y.parametrizations.weight.0._v" in state
    again = ProjectionDiscriminator(ch=1, cond_dim=6, image_size=32)
    again.load_state_dict(state)
    assert torch.equal(again(images, s).logits, d(images, s).logits)  # the same next power iteration


def test_gradient_penalty_through_the_spectral_norm() -> None:
    """MA-GP / R1 differentiate D's gradient w.r.t. its inputs: the double backward must reach D's weights."""
    d = ProjectionDiscriminator(ch=1, cond_dim=6, image_size=32)
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    s = torch.randn(2, 6, requires_grad=True)
    gx, gs = torch.autograd.grad(d(images, s).logits.sum(), (images, s), create_graph=True)
    penalty = gx.pow(2).sum() + gs.pow(2).sum()
    penalty.backward()
    grads = [p.grad for name, p in d.named_parameters() if name != "l_out.bias"]  # a constant has no input gradient
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_registry_builds_from_recipe_params() -> None:
    reg = registry_with(plugin, "cbn_resnet")
    ctx = BuildContext(image_size=64, cond_dim=16)
    g = reg.resolve("generator", "cbn_resnet:cbn_resnet").build({"ch": 2, "z_dim": 10}, ctx)
    d = reg.resolve("discriminator", "cbn_resnet:projection").build({"ch": 2, "spectral_norm": False}, ctx)
    assert g.z_dim == 10 and _block_widths(g)[0] == (32, 16)
    assert d.feature_dim == 32
    with pytest.raises(UserError, match="sentence embedding"):
        reg.resolve("generator", "cbn_resnet:cbn_resnet").build({}, BuildContext(image_size=64, cond_dim=0))
