"""DF-GAN generator and discriminator: parity with tobran/DF-GAN (CVPR'22 code)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganreg.interfaces import BuildContext
from ganreg.ops import dfblk_reference
from ganreg_dfgan import plugin
from ganreg_dfgan.discriminator import DBlock, DFGANDiscriminator, get_D_in_out_chs, image_conv, minibatch_std
from ganreg_dfgan.generator import DFBLK, Affine, DFGANGenerator, GBlock, get_G_in_out_chs
from ganreg_dfgan.losses import magp_sq_norms
from ganreg.testing import registry_with


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Exact counts of the official modules (nf = 32, cond_dim = 256, nz = 100), and
# the rounded millions the reference publishes (§2.1: "verified" by running the
# upstream code).
COUNTS = {
    # imsize: (G, NetD, NetC)
    64: (4_868_867, 3_210_820, 295_936),
    128: (7_306_499, 4_915_013, 295_936),
    256: (9_744_131, 6_619_206, 295_936),
}
PUBLISHED = {64: (4.87, 3.21), 128: (7.31, 4.92), 256: (9.74, 6.62)}


@pytest.mark.parametrize("imsize", [64, 128, 256])
def test_parameter_counts_equal_the_original(imsize: int) -> None:
    g = DFGANGenerator(nf=32, z_dim=100, cond_dim=256, imsize=imsize)
    d = DFGANDiscriminator(nf=32, cond_dim=256, imsize=imsize)
    exp_g, exp_d, exp_c = COUNTS[imsize]
    assert n_params(g) == exp_g
    assert n_params(d.net_d) == exp_d
    assert n_params(d.net_c) == exp_c
    assert n_params(d) == exp_d + exp_c
    pub_g, pub_d = PUBLISHED[imsize]
    assert round(n_params(g) / 1e6, 2) == pub_g
    assert round(n_params(d.net_d) / 1e6, 2) == pub_d
    assert round(n_params(d.net_c) / 1e6, 3) == 0.296


def test_parameter_counts_nf64_at_256() -> None:
    g = DFGANGenerator(nf=64, z_dim=100, cond_dim=256, imsize=256)
    d = DFGANDiscriminator(nf=64, cond_dim=256, imsize=256)
    assert n_params(g) == 31_819_267
    assert n_params(d.net_d) == 26_472_582
    assert round(n_params(g) / 1e6, 2) == 31.82
    assert round(n_params(d.net_d) / 1e6, 2) == 26.47


def test_unused_shortcuts_are_what_the_counts_include() -> None:
    # The official D_Block builds conv_s even where fin == fout (unused).
    lean = DFGANDiscriminator(nf=32, cond_dim=256, imsize=256, unused_shortcuts=False)
    dead = sum(256 * 256 + 256 for fin, fout in get_D_in_out_chs(32, 256) if fin == fout)
    assert n_params(lean.net_d) == 6_619_206 - dead == 6_421_830


def test_registry_builds_the_official_model_from_defaults() -> None:
    reg = registry_with(plugin, "dfgan")
    ctx = BuildContext(image_size=256, cond_dim=256)
    g = reg.resolve("generator", "dfgan:dfgan").build({}, ctx)
    d = reg.resolve("discriminator", "dfgan:dfgan").build({}, ctx)
    assert (n_params(g), n_params(d.net_d), n_params(d.net_c)) == COUNTS[256]


def test_channel_schedules() -> None:
    assert get_G_in_out_chs(32, 64) == [(256, 256), (256, 128), (128, 64), (64, 32)]
    assert get_G_in_out_chs(32, 128) == [(256, 256), (256, 256), (256, 128), (128, 64), (64, 32)]
    assert get_G_in_out_chs(32, 256) == [(256, 256)] * 3 + [(256, 128), (128, 64), (64, 32)]
    assert get_D_in_out_chs(32, 256) == [(32, 64), (64, 128), (128, 256), (256, 256), (256, 256), (256, 256)]


def test_state_dict_keys_mirror_the_original() -> None:
    g = DFGANGenerator(nf=4, z_dim=8, cond_dim=16, imsize=64)
    keys = set(g.state_dict())
    for k in (
        "fc.weight",
        "GBlocks.0.c1.weight",
        "GBlocks.0.fuse1.affine0.fc_gamma.linear1.weight",
        "GBlocks.0.fuse2.affine1.fc_beta.linear2.bias",
        "GBlocks.1.c_sc.weight",
        "to_rgb.1.weight",
    ):
        assert k in keys
    d = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64)
    dkeys = set(d.state_dict())
    for k in ("net_d.conv_img.weight", "net_d.DBlocks.0.conv_r.0.weight", "net_d.DBlocks.0.conv_r.2.weight",
              "net_d.DBlocks.3.conv_s.weight", "net_d.DBlocks.0.gamma", "net_c.joint_conv.0.weight",
              "net_c.joint_conv.2.weight"):
        assert k in dkeys


def test_affine_starts_as_identity() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(3, 5, 4, 4), torch.randn(3, 7)
    aff = Affine(7, 5)
    assert torch.equal(aff(x, y), x)
    blk = DFBLK(7, 5)
    g1, b1, g2, b2 = blk.modulation(y)
    assert torch.equal(g1, torch.ones(3, 5)) and torch.equal(g2, torch.ones(3, 5))
    assert torch.equal(b1, torch.zeros(3, 5)) and torch.equal(b2, torch.zeros(3, 5))
    # fresh DFBLK = Affine(id) -> LReLU -> Affine(id) -> LReLU
    torch.testing.assert_close(blk(x, y), F.leaky_relu(F.leaky_relu(x, 0.2), 0.2))


def test_dfblk_matches_the_unfused_definition_after_training_moves_it() -> None:
    torch.manual_seed(0)
    blk = DFBLK(7, 5)
    for p in blk.parameters():
        torch.nn.init.normal_(p)
    x, y = torch.randn(3, 5, 4, 4), torch.randn(3, 7)
    expected = F.leaky_relu(blk.affine1(F.leaky_relu(blk.affine0(x, y), 0.2), y), 0.2)
    torch.testing.assert_close(blk(x, y), expected)


def test_dfblk_calls_the_fused_op(monkeypatch: pytest.MonkeyPatch) -> None:
    import ganreg_dfgan.generator as gen_mod

    calls = []
    real = gen_mod.dfblk

    def spy(*args, **kw):
        calls.append(args[0].shape)
        return real(*args, **kw)

    monkeypatch.setattr(gen_mod, "dfblk", spy)
    DFBLK(7, 5)(torch.randn(2, 5, 4, 4), torch.randn(2, 7))
    assert calls == [torch.Size([2, 5, 4, 4])]


def test_dfblk_under_bf16_autocast_keeps_gamma_at_float32() -> None:
    """Under bf16 autocast the modulation comes from the MLPs in float32 and reaches the op unrounded. Rounding
    gamma (near 1) to bf16 first, as the block did before, moves it by up to 2**-8 for every pixel of a channel:
    as much as gamma's text-dependent spread after training. Measured on what a caption changes in the output,
    averaged per (sample, channel) -- where per-pixel rounding averages out and a rounded gamma does not."""
    torch.manual_seed(0)
    blk = DFBLK(16, 64)
    with torch.no_grad():
        for aff in (blk.affine0, blk.affine1):
            for fc in (aff.fc_gamma, aff.fc_beta):
                fc.linear2.weight.normal_(0, 0.002)  # a small text-dependent spread of gamma, as after training
    x = torch.randn(1, 64, 16, 16).expand(8, -1, -1, -1).contiguous()  # one activation, eight captions
    y = torch.randn(8, 16)
    modulation = blk.modulation(y)
    assert all(m.dtype == torch.float32 for m in modulation)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = blk(x.bfloat16(), y)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, dfblk_reference(x.bfloat16(), *modulation, 0.2))

    def caption_effect(out: torch.Tensor) -> torch.Tensor:
        return (out.double() - out[:1].double()).mean((2, 3))

    want = caption_effect(blk(x, y).detach())
    rounded_gamma = dfblk_reference(x.bfloat16(), *(m.bfloat16() for m in modulation), 0.2)
    err = ((caption_effect(got) - want).norm() / want.norm()).item()
    err_rounded = ((caption_effect(rounded_gamma) - want).norm() / want.norm()).item()
    assert err < 0.5 * err_rounded, (err, err_rounded)


def test_gblock_upsamples_first_and_uses_a_1x1_shortcut() -> None:
    blk = GBlock(7, 8, 4)
    assert blk.c_sc.kernel_size == (1, 1)
    assert not hasattr(GBlock(7, 8, 8), "c_sc")
    out = blk(torch.randn(2, 8, 4, 4), torch.randn(2, 7))
    assert out.shape == (2, 4, 8, 8)


def test_d_gates_start_at_zero_and_d_has_no_norm() -> None:
    d = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64)
    gates = [b.gamma for b in d.net_d.DBlocks]
    assert len(gates) == 4 and all(g.shape == (1,) and g.item() == 0.0 for g in gates)
    norms = (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)
    assert not any(isinstance(m, norms) for m in d.modules())
    assert not any("weight_orig" in n for n, _ in d.named_parameters())  # no spectral norm
    # with the gate at 0 a block is avgpool(shortcut(x))
    blk = DBlock(4, 8)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(blk(x), F.avg_pool2d(blk.conv_s(x), 2))


@pytest.mark.parametrize("fin,fout", [(4, 8), (6, 6)])
def test_d_block_shortcut_matches_the_originals_conv_then_avg_pool(fin: int, fout: int) -> None:
    """The strided-conv shortcut is the original ``avg_pool2d(conv_s(x), 2)``: values, parameter gradients and the
    double backward that MA-GP takes through it (grad of the input-gradient norm w.r.t. the weights)."""
    torch.manual_seed(0)
    blk = DBlock(fin, fout).double()
    blk.gamma.data.fill_(0.7)

    def original(x: torch.Tensor) -> torch.Tensor:
        sc = blk.conv_s(x) if blk.learned_shortcut else x
        return F.avg_pool2d(sc, 2) + blk.gamma * blk.conv_r(x)

    def penalty_grads(forward) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
        x = torch.randn(3, fin, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
        out = forward(x)
        (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        params = list(blk.parameters())  # conv_s is unused where fin == fout
        grads = torch.autograd.grad(gx.square().sum(), params, allow_unused=True, materialize_grads=True)
        return [out.detach(), *grads]

    for ours, ref in zip(penalty_grads(blk), penalty_grads(original)):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels_last", [False, True])
def test_image_conv_im2col_matches_the_convolution(channels_last: bool) -> None:
    """D's first conv as im2col + matmul (its CUDA path, forced here on the CPU) equals ``conv_img``: values, memory
    format, and the MA-GP double backward into the weights and bias."""
    conv = torch.nn.Conv2d(3, 5, 3, 1, 1).double()
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def penalty_grads(im2col: bool) -> list[torch.Tensor]:
        x = torch.randn(2, 3, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        x = x.contiguous(memory_format=fmt).requires_grad_()
        out = image_conv(conv, x, im2col=im2col)
        assert out.is_contiguous(memory_format=fmt)
        (gx,) = torch.autograd.grad(F.leaky_relu(out, 0.2).square().sum(), x, create_graph=True)
        return [out.detach(), *torch.autograd.grad(gx.square().sum(), [conv.weight, conv.bias])]

    for ours, ref in zip(penalty_grads(True), penalty_grads(False)):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_d_trunk_stays_in_the_autocast_dtype_and_matches_float32() -> None:
    """Under bf16 autocast every D block outputs bf16: the float32 gate must not promote the trunk to float32 (that
    doubled the bytes of every activation and added a cast per block in forward, backward and MA-GP's double
    backward). The bf16 logits and MA-GP norms stay close to the float32 ones."""
    torch.manual_seed(0)
    d = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64, gate_init=0.5).to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 64, 64).mul(2).sub(1).contiguous(memory_format=torch.channels_last).requires_grad_()
    s = torch.randn(4, 16, requires_grad=True)

    dtypes: list[torch.dtype] = []
    for block in d.net_d.DBlocks:
        block.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        dtypes.clear()
        logits = d.logits(d.features(x), s)
        return logits.float(), magp_sq_norms(logits, x, s)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, norms = run()
    assert dtypes == [torch.bfloat16] * len(d.net_d.DBlocks)
    ref_logits, ref_norms = run()
    assert ref_logits.dtype == torch.float32
    torch.testing.assert_close(logits, ref_logits, rtol=0.05, atol=0.02)
    torch.testing.assert_close(norms, ref_norms, rtol=0.05, atol=1e-4)


def test_image_conv_im2col_under_autocast_matches_the_convolution() -> None:
    """With autocast on, the im2col path unfolds the image already cast (3 channels, not the 27-channel unfolding):
    the same bf16 result and input gradient as the autocast convolution."""
    conv = torch.nn.Conv2d(3, 5, 3, 1, 1)
    x = torch.randn(2, 3, 6, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    results = []
    for im2col in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = image_conv(conv, x, im2col=im2col)
        (gx,) = torch.autograd.grad(out.float().square().sum(), x)
        results.append((out, gx))
    (out, gx), (ref, ref_gx) = results
    assert out.dtype == ref.dtype == torch.bfloat16 and gx.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0.02, atol=0.02)
    torch.testing.assert_close(gx, ref_gx, rtol=0.03, atol=0.05)


def test_a_channels_last_model_stays_channels_last_end_to_end() -> None:
    """Every G block input, every D block output and NetC's input keep channels_last when the model is
    channels_last (a mean over the NCHW view, a cat with an NCHW tensor or an NCHW start each made cuDNN copy
    every later conv's input and gradient, and MA-GP's double backward, back), with the values unchanged."""
    torch.manual_seed(0)
    g = DFGANGenerator(nf=4, z_dim=8, cond_dim=16, imsize=64)
    d = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64, gate_init=0.5)
    z, s = torch.randn(2, 8), torch.randn(2, 16)
    x = torch.rand(2, 3, 64, 64).mul(2).sub(1)
    ref_images, ref_logits = g(z, s).images, d(x, s).logits
    g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    formats: list[bool] = []

    def record(module, args, out=None):  # type: ignore[no-untyped-def]
        t = args[0] if out is None else out
        formats.append(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous())

    for block in g.GBlocks:
        block.register_forward_pre_hook(record)
    for block in d.net_d.DBlocks:
        block.register_forward_hook(record)
    d.net_c.joint_conv.register_forward_pre_hook(record)
    images = g(z, s).images
    logits = d(x.contiguous(memory_format=torch.channels_last), s).logits
    assert formats == [True] * (len(g.GBlocks) + len(d.net_d.DBlocks) + 1)
    torch.testing.assert_close(images, ref_images, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_average_pool_2x2_is_avg_pool2d_and_keeps_the_layout(channels_last: bool) -> None:
    from ganreg_dfgan.discriminator import average_pool_2x2

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    out = average_pool_2x2(x)
    assert out.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(out, F.avg_pool2d(x, 2), rtol=1e-12, atol=1e-12)
    (gx,) = torch.autograd.grad(out.square().sum(), x)
    (ref,) = torch.autograd.grad(F.avg_pool2d(x, 2).square().sum(), x)
    torch.testing.assert_close(gx, ref, rtol=1e-12, atol=1e-12)


def test_minibatch_std_channel_is_the_groups_feature_spread() -> None:
    torch.manual_seed(0)
    feats = torch.randn(6, 5, 4, 4)
    out = minibatch_std(feats, 2)  # groups interleaved: {0, 3}, {1, 4}, {2, 5}
    assert out.shape == (6, 6, 4, 4) and torch.equal(out[:, :5], feats)
    for i, j in ((0, 3), (1, 4), (2, 5)):
        pair = torch.stack([feats[i], feats[j]])
        expected = (pair.var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[i, 5], expected.expand(4, 4))
        torch.testing.assert_close(out[j, 5], expected.expand(4, 4))
    same = minibatch_std(feats[:1].expand(4, 5, 4, 4), 4)[:, 5]
    assert same.max() < 1e-3  # identical images: no spread
    assert minibatch_std(feats[:5], 4)[:, 5].max() < 1e-3  # 5 images: the largest divisor <= 4 is 1, no groups


def test_minibatch_std_option_adds_one_input_channel_to_the_head_only() -> None:
    base = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64)
    mbstd = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64, minibatch_std=4)
    extra = sum(p.numel() for p in mbstd.parameters()) - sum(p.numel() for p in base.parameters())
    assert extra == 2 * 4 * 3 * 3  # one more input channel of NetC's first 3x3 conv (2nf outputs)
    x, s = torch.randn(8, 3, 64, 64, requires_grad=True), torch.randn(8, 16)
    logits = mbstd.logits(mbstd.features(x), s)
    assert logits.shape == (8,)
    (gx,) = torch.autograd.grad(logits[0], x)
    assert gx[4].abs().sum() > 0 and gx[1].abs().sum() == 0  # image 0 shares a group with 4 (8 // 4 = 2 groups)


def test_gate_init_opens_the_residual_branches() -> None:
    d = DFGANDiscriminator(nf=4, cond_dim=16, imsize=64, gate_init=1.0)
    assert all(b.gamma.item() == 1.0 for b in d.net_d.DBlocks)
    reg = registry_with(plugin, "dfgan")
    d = reg.resolve("discriminator", "dfgan").build({"nf": 4}, BuildContext(image_size=64, cond_dim=16))
    assert all(b.gamma.item() == 0.0 for b in d.net_d.DBlocks)  # the default is the original's 0


@pytest.mark.parametrize("imsize", [32, 64, 128, 256])
def test_forward_shapes(imsize: int) -> None:
    torch.manual_seed(0)
    nf, cd, nz, b = 4, 16, 8, 2
    g = DFGANGenerator(nf=nf, z_dim=nz, cond_dim=cd, imsize=imsize)
    d = DFGANDiscriminator(nf=nf, cond_dim=cd, imsize=imsize)
    s = torch.randn(b, cd)
    img = g(torch.randn(b, nz), s).images
    assert img.shape == (b, 3, imsize, imsize)
    assert img.min() >= -1 and img.max() <= 1
    feats = d.features(img)
    assert feats.shape == (b, 8 * nf, 4, 4)
    assert d.logits(feats, s).shape == (b,)
    assert len(g.GBlocks) == len(d.net_d.DBlocks) == {32: 3, 64: 4, 128: 5, 256: 6}[imsize]


def test_noise_is_part_of_the_condition() -> None:
    g = DFGANGenerator(nf=4, z_dim=8, cond_dim=16, imsize=32)
    assert g.GBlocks[0].fuse1.affine0.fc_gamma.linear1.in_features == 8 + 16


@pytest.mark.parametrize("bad", [48, 16])
def test_rejects_bad_image_sizes(bad: int) -> None:
    from ganreg.errors import UserError

    with pytest.raises(UserError):
        DFGANGenerator(nf=4, z_dim=8, cond_dim=16, imsize=bad)
    with pytest.raises(UserError):
        DFGANDiscriminator(nf=4, cond_dim=16, imsize=bad)
