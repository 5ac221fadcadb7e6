"""Text-conditional PatchGAN: pix2pix's sizes and parameter count, the map's size and each patch's
receptive field, the text reaching every patch, the losses on a map of logits, and a training step
through ganreg."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, per_image_logits
from ganreg_patchgan.discriminator import PatchDiscriminator
from ganreg_patchgan.params import PatchDiscriminatorParams


def _disc(size: int, cond_dim: int = 6, **params: object) -> PatchDiscriminator:
    torch.manual_seed(0)
    return PatchDiscriminator(PatchDiscriminatorParams(**params), BuildContext(image_size=size, cond_dim=cond_dim))


def test_parameter_count_is_pix2pix_plus_the_text_path() -> None:
    proj, cond = 128, 256
    d = _disc(128, cond_dim=cond, norm="batch", proj_dim=proj)
    text_path = cond * proj + proj + 16 * proj * 512  # Linear, and the stride-1 conv's extra input channels
    # pix2pix NLayerDiscriminator(3, ndf=64, n_layers=3, BatchNorm2d): 3136 + 131,328 + 524,800 + 2,098,176 + 8193
    assert sum(p.numel() for p in d.parameters()) - text_path == 2_765_633
    assert [m.weight.shape[0] for m in d.modules() if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512, 1]


@pytest.mark.parametrize(("size", "n_layers", "side"), [(128, 3, 14), (64, 3, 6), (64, 2, 14), (32, 1, 14), (24, 3, 1)])
def test_map_size(size: int, n_layers: int, side: int) -> None:
    """128 px gives seed project 000's 14x14 map; each side is S / 2**n_layers - 2."""
    d = _disc(size, ndf=4, n_layers=n_layers)
    out = d(torch.randn(2, 3, size, size), torch.randn(2, 6))
    assert out.logits.shape == (2, side, side)
    assert out.features.shape == (2, 4 * min(2 ** (n_layers - 1), 8), size // 2**n_layers, size // 2**n_layers)


@pytest.mark.parametrize(("n_layers", "field"), [(3, 70), (2, 34), (1, 16)])
def test_each_logit_sees_one_patch(n_layers: int, field: int) -> None:
    """pix2pix's receptive fields: an interior logit depends on exactly a field x field window."""
    d = _disc(128, ndf=4, n_layers=n_layers, norm="none")
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = d(x, torch.randn(1, 6)).logits
    c = logits.shape[-1] // 2
    (grad,) = torch.autograd.grad(logits[0, c, c], x)
    rows = grad.abs().sum((0, 1, 3)).nonzero().flatten()
    cols = grad.abs().sum((0, 1, 2)).nonzero().flatten()
    assert int(rows.max() - rows.min()) + 1 == field and int(cols.max() - cols.min()) + 1 == field


def test_the_text_reaches_every_patch_and_images_stay_independent() -> None:
    d = _disc(64, ndf=4, n_layers=2, norm="spectral")
    x, s = torch.randn(3, 3, 64, 64), torch.randn(3, 6, requires_grad=True)
    logits = d(x, s).logits
    for i in range(logits.shape[1]):
        (g,) = torch.autograd.grad(logits[0, i, -1 - i], s, retain_graph=True)
        assert g[0].abs().sum() > 0 and g[1:].abs().sum() == 0  # its own sentence only


def test_spectral_norm_bounds_every_layer() -> None:
    d = _disc(64, ndf=4, n_layers=2, norm="spectral")
    for _ in range(20):  # power iterations run on training forwards
        d(torch.randn(2, 3, 64, 64), torch.randn(2, 6))
    for m in d.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w = m.weight.detach().flatten(1)
            assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=2e-2)


def test_too_small_an_image_and_no_text_are_named() -> None:
    with pytest.raises(UserError, match="at least 48 px") as err:
        _disc(32, n_layers=4)
    assert "n_layers" in (err.value.fix or "")
    with pytest.raises(UserError, match="needs a text condition"):
        _disc(64, cond_dim=0)


def test_losses_read_the_map() -> None:
    """dfgan:hinge averages over every patch; MA-GP and contrastive matching take the mean per image."""
    from ganreg_dfgan.losses import magp_sq_norms
    from ganreg_losses.losses import pair_logits

    d = _disc(32, ndf=4, n_layers=1, norm="none")
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    s = torch.randn(3, 6, requires_grad=True)
    logits = d(x, s).logits
    assert logits.shape == (3, 14, 14)
    per_image = logits.flatten(1).mean(1)
    torch.testing.assert_close(per_image_logits(logits), per_image)
    gi, gs = torch.autograd.grad(per_image.sum(), (x, s), retain_graph=True)
    by_hand = gi.square().sum((1, 2, 3)) + gs.square().sum(1)
    torch.testing.assert_close(magp_sq_norms(logits, x, s), by_hand)
    pairs = pair_logits(d, d.features(x), s)
    assert pairs.shape == (3, 3)
    torch.testing.assert_close(pairs.diagonal(), per_image)


def test_trains_through_ganreg(tmp_path: Path) -> None:
    """DF-GAN's G with this D, hinge with rolled mismatched pairs and MA-GP: a step runs and D moves."""
    from ganreg.testing import trainer_for

    trainer = trainer_for({
        "version": 1,
        "name": "patch-tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm", "mode": "frozen", "params": {"hidden": 16, "embedding_dim": 8}},
        "generator": {"name": "dfgan", "params": {"nf": 2, "z_dim": 8}},
        "discriminator": {"name": "patchgan", "params": {"ndf": 4, "n_layers": 2}},
        "losses": [{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}, {"name": "dfgan:magp"}],
        "train": {"steps": 1, "batch_size": 8},
        "intervals": {"log": 1, "samples": 1, "checkpoint": 1},
        "samples": {"captions": 2, "per_caption": 2},
    }, tmp_path / "run")
    before = [p.detach().clone() for p in trainer.nets.discriminator.parameters()]
    trainer.train_step()
    logs = trainer._pending[-1][1]
    assert {"d/hinge", "d/magp", "g/hinge_generator"} <= set(logs)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    assert any(not torch.equal(p, q) for p, q in zip(trainer.nets.discriminator.parameters(), before))
