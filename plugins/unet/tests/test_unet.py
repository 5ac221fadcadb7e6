"""U-Net discriminator: unetgan's widths and parameter count, the two outputs and their weights in the
losses, the text reaching both, the CutMix masks and terms against hand computations, the recipe check,
and a training step through ganreg's trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, Discriminator, per_image_logits
from ganreg.testing import trainer_for
from ganreg.train.context import StepContext
from ganreg_unet.cutmix import CutMix, box_masks, cutmix_masks
from ganreg_unet.discriminator import IMAGE, PIXELS, UNetDiscriminator, decoder_widths, split_logits
from ganreg_unet.params import CutMixParams, UNetDiscriminatorParams


def _disc(size: int, ch: int = 2, cond_dim: int = 6, norm: str = "spectral") -> UNetDiscriminator:
    torch.manual_seed(0)
    return UNetDiscriminator(UNetDiscriminatorParams(ch=ch, norm=norm), BuildContext(image_size=size, cond_dim=cond_dim))


def _conv_widths(blocks: nn.ModuleList) -> list[tuple[int, int]]:
    return [(b.conv1.in_channels, b.conv2.out_channels) for b in blocks]


def test_widths_are_unetgans_at_128_and_256() -> None:
    """D_unet_arch[128]: in [3, 1, 2, 4, 8, 16, 8*2, 4*2, 2*2, 1*2] * ch, out [1, 2, 4, 8, 16, 8, 4, 2, 1, 1] * ch."""
    d = _disc(128, ch=1, norm="none")
    assert _conv_widths(d.encoder) + _conv_widths(d.decoder) == list(
        zip([3, 1, 2, 4, 8, 16, 16, 8, 4, 2], [1, 2, 4, 8, 16, 8, 4, 2, 1, 1])
    )
    ins, outs = decoder_widths([1, 2, 4, 8, 8, 16])  # D_unet_arch[256]
    assert ins == [16, 16, 16, 8, 4, 2] and outs == [8, 8, 4, 2, 1, 1]


def test_parameter_count_by_formula() -> None:
    """unetgan's blocks at 128 px, ch 64, with a 256-d sentence in place of the class embeddings."""
    d = _disc(128, ch=64, cond_dim=256)

    def block(cin: int, cout: int) -> int:  # two 3x3 convs and a 1x1 shortcut, with biases
        return 9 * cin * cout + cout + 9 * cout * cout + cout + cin * cout + cout

    widths = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 512), (1024, 256), (512, 128), (256, 64), (128, 64)]
    heads = (1024 + 1) + (64 + 1)  # linear_middle, the last 1x1 conv
    text = 256 * 1024 + 256 * 64  # the two sentence projections (no bias, as an embedding)
    expected = sum(block(*w) for w in widths) + heads + text
    assert sum(p.numel() for p in d.parameters()) == expected == 31_760_130


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_layout(size: int) -> None:
    d = _disc(size)
    out = d(torch.randn(3, 3, size, size), torch.randn(3, 6))
    assert out.logits.shape == (3, 2, size, size)
    image, pixels = split_logits(out.logits)
    assert image.shape == (3,) and pixels.shape == (3, size, size)
    assert torch.equal(out.logits[:, IMAGE], image[:, None, None].expand(3, size, size))
    assert torch.equal(out.logits[:, PIXELS], pixels)


def test_refuses_sizes_it_has_no_widths_for() -> None:
    with pytest.raises(UserError, match="48"):
        _disc(48)


def test_each_part_sees_its_own_image_and_sentence_only() -> None:
    d = _disc(32)
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    s = torch.randn(3, 6, requires_grad=True)
    image, pixels = split_logits(d(x, s).logits)
    for part in (image[1], pixels[1, 5, 7]):
        gx, gs = torch.autograd.grad(part, (x, s), retain_graph=True)
        assert gx[1].abs().sum() > 0 and gx[[0, 2]].abs().sum() == 0
        assert gs[1].abs().sum() > 0 and gs[[0, 2]].abs().sum() == 0


def test_a_pixel_logit_reaches_back_through_the_skips_and_the_bottleneck() -> None:
    """The top-left pixel's logit depends on that corner most, and on the far corner too (through the
    bottleneck at 4x4): a U-Net, not a local patch classifier."""
    d = _disc(32, norm="none")
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    (g,) = torch.autograd.grad(split_logits(d(x, torch.randn(1, 6)).logits)[1][0, 0, 0], x)
    near, far = g[0, :, :4, :4].abs().sum(), g[0, :, -4:, -4:].abs().sum()
    assert far > 0 and near > far


def test_mismatched_pairs_roll_both_parts() -> None:
    """DF-GAN rolls real features by one: both the bottleneck and the decoder's map must roll with them."""
    d = _disc(32)
    d.eval()
    x, s = torch.randn(4, 3, 32, 32), torch.randn(4, 6)
    with torch.no_grad():
        rolled = d.logits(d.features(x).roll(1, 0), s)
        direct = d(x.roll(1, 0), s).logits
    torch.testing.assert_close(rolled, direct)


def test_losses_weigh_the_two_outputs_as_unetgan() -> None:
    """DF-GAN's hinge losses on the U-Net are unetgan's 0.5 / 0.5 of its two outputs: G's
    -(0.5 * image + 0.5 * mean(pixels)), D's real term 0.5 * relu(1 - image) + 0.5 * mean(relu(1 - pixels));
    a gradient penalty reads the same per-image score."""
    from ganreg_dfgan.losses import DFGANHinge, DFGANHingeGenerator

    torch.manual_seed(0)
    d = _disc(32)
    d.eval()  # spectral norm's power iteration stays put: every call sees the same weights
    real, fake = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    ctx = _ctx(d, real, fake, cond_dim=6)
    with torch.no_grad():
        image, pixels = split_logits(d(fake, ctx.d_cond).logits)
        real_image, real_pixels = split_logits(d(real, ctx.d_cond).logits)
        g_value = DFGANHingeGenerator()(ctx)
        DFGANHinge(mismatch_weight=0.0)(ctx)
    torch.testing.assert_close(g_value, -(0.5 * image + 0.5 * pixels.mean((1, 2))).mean())
    want = (0.5 * F.relu(1 - real_image) + 0.5 * F.relu(1 - real_pixels).mean((1, 2))).mean()
    torch.testing.assert_close(ctx.logs["hinge_real"], want)
    torch.testing.assert_close(per_image_logits(d(fake, ctx.d_cond).logits), 0.5 * image + 0.5 * pixels.mean((1, 2)))


def test_cutmix_masks_are_boxes_of_either_kind() -> None:
    torch.manual_seed(0)
    m = cutmix_masks(2000, 16)
    assert m.shape == (2000, 1, 16, 16) and set(m.unique().tolist()) <= {0.0, 1.0}
    frac = m.mean((1, 2, 3))
    assert 0.45 < float(frac.mean()) < 0.55  # the flip makes real and fake equally likely
    def is_box(region: torch.Tensor) -> bool:
        rows, cols = region.any(1).nonzero().flatten(), region.any(0).nonzero().flatten()
        return not len(rows) or bool(region.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1))

    flipped = 0
    for mask in m[:200, 0]:  # one of the two values fills one axis-aligned box (real inside, or fake inside)
        assert is_box(mask) or is_box(1 - mask)
        flipped += int(is_box(mask) and not is_box(1 - mask))
    assert 50 < flipped < 150
    torch.manual_seed(3)
    a = cutmix_masks(4, 16)
    torch.manual_seed(3)
    assert torch.equal(a, cutmix_masks(4, 16))


def test_box_masks_follow_unetgans_formula() -> None:
    """side = int(S * sqrt(1 - lam)); the box spans [c - side // 2, c + side // 2), clipped; 1 (real) outside."""
    lam = torch.tensor([0.64, 0.64, 0.0, 1.0])
    centre = torch.tensor([[2, 8], [5, 5], [5, 5], [5, 5]])
    flip = torch.tensor([False, True, False, False])
    m = box_masks(10, lam, centre, flip)[:, 0]
    want = torch.ones(4, 10, 10)
    want[0, 0:5, 5:10] = 0  # side 6, half 3: rows [-1, 5) -> [0, 5), cols [5, 11) -> [5, 10)
    want[1] = 0
    want[1, 2:8, 2:8] = 1  # flipped: the box is real
    want[2] = 0  # lam 0: side 10, the whole image is the box, fake
    assert torch.equal(m, want)  # lam 1: side 0, no box, all real (want[3])


class PixelwiseD(Discriminator):
    """A D in the U-Net layout whose pixel logits depend on their own pixel only (1x1 convs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, 1, 1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(images))

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        pixels = self.head(features).squeeze(1) + cond.sum(1)[:, None, None]
        image = features.mean((1, 2, 3))
        return torch.stack([image[:, None, None].expand_as(pixels), pixels], 1)


class FixedG(nn.Module):
    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images
        self.z_dim = 2

    def forward(self, z: torch.Tensor, cond: torch.Tensor):  # type: ignore[no-untyped-def]
        from ganreg.interfaces import GeneratorOutput

        return GeneratorOutput(images=self.images)


def _ctx(d: Discriminator, real: torch.Tensor, fake: torch.Tensor, cond_dim: int = 3) -> StepContext:
    return StepContext(
        phase="discriminator", generator=FixedG(fake), discriminator=d, real=real,
        cond=torch.randn(real.shape[0], cond_dim), z=torch.zeros(real.shape[0], 2),
    )


def test_consistency_is_zero_for_a_pixelwise_d_and_the_gan_term_is_unetgans() -> None:
    torch.manual_seed(0)
    real, fake = torch.rand(4, 3, 8, 8) * 2 - 1, torch.rand(4, 3, 8, 8) * 2 - 1
    d = PixelwiseD()
    ctx = _ctx(d, real, fake)
    torch.manual_seed(7)
    value = CutMix("bce", consistency=1.0, augmentation=True)(ctx)
    torch.manual_seed(7)
    mask = cutmix_masks(4, 8)
    image, pixels = split_logits(d(mask * real + (1 - mask) * fake, ctx.d_cond).logits)
    per_pixel = F.binary_cross_entropy_with_logits(pixels, mask[:, 0])
    per_image = F.binary_cross_entropy_with_logits(image, torch.zeros(4))
    assert float(ctx.logs["consistency"]) < 1e-10  # D's map of a mix is the mix of its maps
    torch.testing.assert_close(ctx.logs["mix_pixels"], per_pixel)
    torch.testing.assert_close(ctx.logs["mix_image"], per_image)
    torch.testing.assert_close(value, per_pixel + per_image + ctx.logs["consistency"])


def test_consistency_penalises_a_d_that_looks_across_the_mask() -> None:
    torch.manual_seed(0)
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    d = _disc(32)
    ctx = _ctx(d, real, fake, cond_dim=6)
    value = CutMix("hinge", consistency=1.0, augmentation=False)(ctx)
    assert set(ctx.logs) == {"consistency", "ramp"} and float(value.detach()) > 1e-4  # a U-Net pixel sees its neighbours
    value.backward()
    assert d.decoder[0].conv1.parametrizations.weight.original.grad.abs().sum() > 0


def test_warmup_ramps_per_image_and_consistency_terms_per_d_step_and_resumes() -> None:
    """unetgan's mixup_coeff: the per-image and consistency terms ramp in, the per-pixel term does not; the
    ramp advances once per D optimiser step (after_step), not per call, and survives a resume."""
    torch.manual_seed(0)
    real, fake = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    loss = CutMix("bce", warmup_steps=4)
    ramps = []
    for _ in range(6):
        ctx = _ctx(PixelwiseD(), real, fake)
        value = loss(ctx)
        loss(_ctx(PixelwiseD(), real, fake))  # a second micro-batch of the same step: same ramp
        ramps.append(float(ctx.logs["ramp"]))
        want = ctx.logs["mix_pixels"] + ctx.logs["ramp"] * (ctx.logs["mix_image"] + ctx.logs["consistency"])
        torch.testing.assert_close(value.detach(), want)
        loss.after_step(PixelwiseD())
    assert ramps == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    again = CutMix("bce", warmup_steps=4)
    again.load_state_dict(loss.state_dict())
    assert again.steps == 6


def test_a_term_with_nothing_to_do_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to do"):
        CutMixParams(augmentation=False, consistency=0)


def test_cutmix_trains_the_discriminator_only() -> None:
    ctx = StepContext(
        phase="generator", generator=FixedG(torch.zeros(2, 3, 8, 8)), discriminator=PixelwiseD(),
        real=torch.zeros(2, 3, 8, 8), cond=torch.zeros(2, 3), z=torch.zeros(2, 2),
    )
    with pytest.raises(RuntimeError, match="trains the discriminator"):
        CutMix()(ctx)


def _recipe(discriminator: str = "unet:unet") -> dict:
    return {
        "version": 1,
        "name": "unet-tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm", "mode": "joint", "params": {"hidden": 16, "embedding_dim": 8}},
        "generator": {"name": "dfgan", "params": {"nf": 2, "z_dim": 8}},
        "discriminator": {"name": discriminator, "params": {"ch": 2} if discriminator == "unet:unet" else {"nf": 2}},
        "losses": [
            {"name": "dfgan:hinge"},
            {"name": "dfgan:hinge_generator"},
            {"name": "dfgan:magp"},
            {"name": "unet:cutmix", "params": {"gan_loss": "hinge", "warmup_steps": 2}},
        ],
        "train": {"steps": 3, "batch_size": 4},
        "intervals": {"log": 1, "samples": 100, "checkpoint": 100},
        "samples": {"captions": 2, "per_caption": 2},
    }


def test_a_training_step_moves_the_unet(tmp_path: Path) -> None:
    trainer = trainer_for(_recipe(), tmp_path / "run")
    d = trainer.nets.discriminator
    before = {k: v.detach().clone() for k, v in d.named_parameters()}  # parameters: spectral norm's u, v buffers move anyway
    for _ in range(3):
        trainer.train_step()
    logs = trainer._pending[-1][1]
    assert {"d/cutmix", "d/consistency", "d/mix_pixels", "d/mix_image", "d/magp"} <= set(logs)
    assert float(logs["d/ramp"]) == 1.0  # warm-up 2: D steps 0, 1, 2 -> 0, 0.5, 1
    moved = {k for k, v in d.named_parameters() if not torch.equal(v, before[k])}
    assert {"decoder.0.conv1.parametrizations.weight.original", "text_middle.parametrizations.weight.original",
            "text_pixels.parametrizations.weight.original", "out.weight"} <= moved


def test_cutmix_with_another_discriminator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unet:unet") as err:
        trainer_for(_recipe("dfgan:dfgan"), tmp_path / "run")
    assert "discriminator.name" in err.value.fix
