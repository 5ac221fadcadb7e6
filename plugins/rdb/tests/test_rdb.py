"""Seed project 003's residual-dense-block generator: IMAGAN's widths and parameter count, the sizes it
makes, where the sentence enters, IMAGAN's BatchNorm eps, and a DF-GAN training step through ganreg."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext
from ganreg.testing import trainer_for
from ganreg_rdb.generator import FUSION_SIZE, RDBGenerator, tail_widths
from ganreg_rdb.params import RDBGeneratorParams


def _gen(size: int, cond_dim: int = 16, **params: object) -> RDBGenerator:
    torch.manual_seed(0)
    small = {"nf": 4, "z_dim": 8, "dense_layers": 2, "growth": 8}
    return RDBGenerator(RDBGeneratorParams(**{**small, **params}), BuildContext(image_size=size, cond_dim=cond_dim))


def test_parameter_count_by_formula_at_imagans_size() -> None:
    """nf 32, 256 px, DAMSM's 256-d sentence, z 100, 8 dense layers of growth 64."""
    g = _gen(256, cond_dim=256, nf=32, z_dim=100, dense_layers=8, growth=64)
    w, t = 256, 256

    def conv(cin: int, cout: int) -> int:  # 3x3, no bias
        return 9 * cin * cout

    def up(cin: int, cout: int) -> int:  # three convs, the shortcut conv, gamma, BatchNorm
        return conv(cin, cout) + 2 * conv(cout, cout) + conv(cin, cout) + 1 + 2 * cout

    dense = sum(conv(w + t + 64 * i, 64) + 2 * (w + t + 64 * (i + 1)) for i in range(8))
    rdb = dense + (w + t + 64 * 8) * w + conv(w + t, w)
    expected = (
        100 * w * 16 + w * 16  # fc
        + 2 * up(w, w)  # to 16x16
        + rdb
        + conv(w + t, w) + 2 * w  # joint
        + 4 * conv(w, w)  # two residual blocks
        + up(256, 256) + up(256, 128) + up(128, 64) + up(64, 32)  # IMAGAN's upsample3..6
        + conv(32, 3)
    )
    assert sum(p.numel() for p in g.parameters()) == expected == 17_041_190


def test_tail_widths() -> None:
    assert tail_widths(4) == [8, 4, 2, 1]  # IMAGAN at 256 px
    assert tail_widths(2) == [2, 1] and tail_widths(0) == [] and tail_widths(5) == [8, 8, 4, 2, 1]


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_sizes(size: int) -> None:
    g = _gen(size)
    out = g(torch.randn(3, 8), torch.randn(3, 16))
    assert out.images.shape == (3, 3, size, size)
    assert out.images.abs().max() <= 1
    assert g.to_rgb.in_channels == 4 * (8 if size == 16 else 1)


@pytest.mark.parametrize("size", [8, 48])
def test_refuses_other_sizes(size: int) -> None:
    with pytest.raises(UserError, match=str(size)):
        _gen(size)


def test_the_sentence_enters_at_16x16_only() -> None:
    """The 4x4 map comes from the noise alone; the sentence reaches the images through the dense block and
    the joint conv, each image through its own sentence only (eval mode: BatchNorm's running statistics)."""
    g = _gen(32)
    assert g.fc.in_features == 8
    assert g.rdb.layers[0].conv.in_channels == 32 + 16 and g.joint[0].in_channels == 32 + 16
    g.eval()
    s = torch.randn(3, 16, requires_grad=True)
    images = g(torch.randn(3, 8), s).images
    (grad,) = torch.autograd.grad(images[1].sum(), s)
    assert grad[1].abs().sum() > 0 and grad[[0, 2]].abs().sum() == 0


def test_imagans_batchnorm_eps_and_gamma() -> None:
    g = _gen(32)
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == 0.8 for m in norms)
    assert all(m.eps == 1e-5 for m in _gen(32, bn_eps=1e-5).modules() if isinstance(m, nn.BatchNorm2d))
    gammas = torch.cat([b.gamma for b in [*g.head, *g.tail]])
    assert len(set(gammas.tolist())) == len(gammas)  # drawn from N(0, 1), not a constant


def test_trains_as_seed_003_did(tmp_path: Path) -> None:
    """DF-GAN's discriminator, hinge with rolled mismatched pairs and MA-GP: G's dense block moves."""
    trainer = trainer_for({
        "version": 1,
        "name": "rdb-tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm", "mode": "frozen", "params": {"hidden": 16, "embedding_dim": 8}},
        "generator": {"name": "rdb", "params": {"nf": 2, "z_dim": 8, "dense_layers": 2, "growth": 4}},
        "discriminator": {"name": "dfgan", "params": {"nf": 2}},
        "losses": [{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}, {"name": "dfgan:magp"}],
        "train": {"steps": 1, "batch_size": 8},
        "intervals": {"log": 1, "samples": 1, "checkpoint": 1},
        "samples": {"captions": 2, "per_caption": 2},
    }, tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.nets.generator.state_dict().items()}
    trainer.train_step()
    logs = trainer._pending[-1][1]
    assert {"d/hinge", "d/magp", "g/hinge_generator"} <= set(logs)
    after = trainer.nets.generator.state_dict()
    assert not torch.equal(after["rdb.fusion.weight"], before["rdb.fusion.weight"])
    assert not torch.equal(after["joint.0.weight"], before["joint.0.weight"])
