"""A component that breaks its contract is named, with its plugin, before anything trains (or on the step
it breaks it, for a loss), instead of failing deep inside a loss with an error that names nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, GeneratorOutput, Loss
from ganreg.plugins import hookimpl, load_entry_points, load_plugin
from ganreg.registry import Registry
from ganreg.testing import TinyDiscriminator, TinyGenerator
from ganreg.train.rundir import new_run_dir
from ganreg.train.trainer import Trainer
from ganreg.recipe import validate_recipe

from .conftest import tiny_recipe


class HalfSize(TinyGenerator):
    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        return GeneratorOutput(images=super().forward(z, cond).images[:, :, ::2, ::2])


class NoTanh(TinyGenerator):
    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        return GeneratorOutput(images=3 * super().forward(z, cond).images)


class Crashes(TinyGenerator):
    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


class WrongCondDim(TinyGenerator):
    """Hands D a condition of its own (as StackGAN's mu) but declares the wrong size for it."""

    cond_used_dim = 3

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        return GeneratorOutput(images=super().forward(z, cond).images, cond_used=cond[:, :2])


class LeavesTheRange(TinyGenerator):
    """In range at initialisation (the probe), outside it once trained (no final tanh, in effect)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
        if self.training:
            self.steps += 1
        return GeneratorOutput(images=super().forward(z, cond).images + 2 * self.steps)


class NoZDim(TinyGenerator):
    """Forgets to declare its noise size (``ganreg.interfaces.Generator.z_dim``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.z_dim


class BatchMean(TinyDiscriminator):
    """aelnouby's WGAN critic's mistake: the mean over the batch inside the network, one logit for all images."""

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return super().logits(features, cond).mean(0, keepdim=True)


class FailsWhenTraining(TinyDiscriminator):
    """Passes the eval-mode probe, fails in the first training step, inside a loss's call."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise IndexError("index 3 is out of bounds for dimension 1 with size 3")
        return super().features(images)


class ForgetsReturn(Loss):
    network = "discriminator"

    def forward(self, ctx: Any) -> torch.Tensor:
        ctx.d_fake.logits.mean()  # type: ignore[return-value]


class PerImage(Loss):
    network = "generator"

    def forward(self, ctx: Any) -> torch.Tensor:
        return -ctx.d_fake.logits  # forgot the .mean()


class ReadsWrong(Loss):
    network = "discriminator"

    def forward(self, ctx: Any) -> torch.Tensor:
        raise RuntimeError("ctx.d_wrong needs needs_wrong_images = True")


class SkipsWithNone(Loss):
    """Computes on the first step only, then returns None where it means "nothing this step"."""

    network = "discriminator"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, ctx: Any) -> torch.Tensor | None:
        self.calls += 1
        return ctx.d_fake.logits.mean() if self.calls == 1 else None


class NeedsBatchMeanD(Loss):
    """Reads a layout of logits only broken:batch_mean gives."""

    network = "discriminator"
    needs_discriminator = ("broken:batch_mean",)

    def forward(self, ctx: Any) -> torch.Tensor:
        return ctx.d_fake.logits.mean()


class Nowhere(Loss):
    network = "gen"  # type: ignore[assignment]

    def forward(self, ctx: Any) -> torch.Tensor:
        return ctx.d_fake.logits.mean()


class Undeclared(Loss):
    """A generator term that forgets ``network``: no default may make it train D."""

    def forward(self, ctx: Any) -> torch.Tensor:
        return -ctx.d_fake.logits.mean()


def _factory(cls: type[nn.Module]) -> Any:
    def build(params: Any, ctx: BuildContext) -> nn.Module:
        return cls(ctx) if issubclass(cls, (TinyGenerator, TinyDiscriminator)) else cls()

    return build


class Broken:
    @hookimpl
    def ganreg_register(self, register: Any) -> None:
        for name, cls in {"half": HalfSize, "no_tanh": NoTanh, "crashes": Crashes, "tiny": TinyGenerator,
                           "wrong_cond_dim": WrongCondDim, "no_z_dim": NoZDim,
                           "leaves_the_range": LeavesTheRange}.items():
            register("generator", name, _factory(cls), summary=name)
        register("discriminator", "batch_mean", _factory(BatchMean), summary="batch mean")
        register("discriminator", "tiny", _factory(TinyDiscriminator), summary="tiny")
        register("discriminator", "fails_when_training", _factory(FailsWhenTraining), summary="flaky")
        for name, cls in {"per_image": PerImage, "reads_wrong": ReadsWrong, "nowhere": Nowhere, "undeclared": Undeclared, "forgets": ForgetsReturn,
                     "skips_with_none": SkipsWithNone, "needs_batch_mean_d": NeedsBatchMeanD}.items():
            register("loss", name, _factory(cls), summary=name)


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    load_entry_points(reg, strict=True)
    load_plugin(reg, Broken(), "broken", strict=True)
    return reg


def _start(registry: Registry, tmp_path: Path, **over: Any) -> Trainer:
    recipe = validate_recipe(tiny_recipe(**{"generator": {"name": "broken:tiny"}, "discriminator": {"name": "broken:tiny"},
                                            "losses": [{"name": "dcgan_cls:matching_bce"}, {"name": "dcgan_cls:generator_bce"}],
                                            **over}), registry)
    new_run_dir(tmp_path / "run")
    return Trainer(recipe, registry, tmp_path / "run", device="cpu")


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"generator": {"name": "broken:half"}}, "generator broken:half returned images of shape [2, 3, 16, 16], not [2, 3, 32, 32]"),
        ({"generator": {"name": "broken:no_tanh"}}, "generator broken:no_tanh returned values in"),
        ({"generator": {"name": "broken:crashes"}}, "generator broken:crashes failed on a batch of 2"),
        ({"generator": {"name": "broken:wrong_cond_dim"}, "text_encoder.mode": "frozen"},
         "generator broken:wrong_cond_dim returned cond_used of shape [2, 2] but declares cond_used_dim 3"),
        ({"generator": {"name": "broken:no_z_dim"}}, "generator broken:no_z_dim has z_dim = None; ganreg needs a positive int"),
        ({"discriminator": {"name": "broken:batch_mean"}}, "discriminator broken:batch_mean returned logits of shape [1], not [2]"),
        ({"losses": [{"name": "dcgan_cls:matching_bce"}, {"name": "broken:nowhere"}, {"name": "dcgan_cls:generator_bce"}]},
         "loss broken:nowhere declares network 'gen'"),
        ({"losses": [{"name": "dcgan_cls:matching_bce"}, {"name": "broken:undeclared"}, {"name": "dcgan_cls:generator_bce"}]},
         "loss broken:undeclared declares no network, so it would train nothing"),
        ({"losses": [{"name": "broken:needs_batch_mean_d"}, {"name": "dcgan_cls:generator_bce"}]},
         "loss broken:needs_batch_mean_d (losses.0) needs discriminator broken:batch_mean (it reads that D's own layout"),
    ],
)
def test_a_broken_network_is_named_before_training(registry: Registry, tmp_path: Path, over: dict, message: str) -> None:
    with pytest.raises(UserError) as caught:
        _start(registry, tmp_path, **over)
    assert message in caught.value.message
    assert "broken" in (caught.value.fix or "")


def test_a_generator_leaving_the_image_range_is_named_on_the_next_grid(registry: Registry, tmp_path: Path) -> None:
    trainer = _start(registry, tmp_path, generator={"name": "broken:leaves_the_range"}, train={"steps": 4})
    with pytest.raises(UserError) as caught:
        trainer.fit()
    assert "generator broken:leaves_the_range returned values in [" in caught.value.message
    assert "on the sample grid of step 2" in caught.value.message and "tanh" in (caught.value.fix or "")


def test_a_network_failing_inside_a_loss_is_named_not_the_loss(registry: Registry, tmp_path: Path) -> None:
    trainer = _start(registry, tmp_path, discriminator={"name": "broken:fails_when_training"})
    with pytest.raises(UserError) as caught:
        trainer.train_step()
    assert caught.value.message.startswith("discriminator broken:fails_when_training failed on the first training step")
    assert "IndexError" in caught.value.message


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"name": "broken:per_image"}, "loss broken:per_image returned a tensor of shape [8], not a scalar"),
        ({"name": "broken:reads_wrong"}, "loss broken:reads_wrong failed on the first training step"),
        ({"name": "broken:forgets"}, "loss broken:forgets returned NoneType, not a tensor"),
    ],
)
def test_a_broken_loss_is_named_on_the_first_step(registry: Registry, tmp_path: Path, loss: dict, message: str) -> None:
    trainer = _start(registry, tmp_path, losses=[{"name": "dcgan_cls:matching_bce"}, {"name": "dcgan_cls:generator_bce"}, loss])
    with pytest.raises(UserError) as caught:
        trainer.train_step()
    assert message in caught.value.message


def test_a_failing_loss_names_its_own_line_and_strict_mode_reraises_it(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    losses = [{"name": "dcgan_cls:matching_bce"}, {"name": "dcgan_cls:generator_bce"}, {"name": "broken:reads_wrong"}]
    line = ReadsWrong.forward.__code__.co_firstlineno + 1  # the raise
    with pytest.raises(UserError) as caught:
        _start(registry, tmp_path, losses=losses).train_step()
    assert f"{Path(__file__).name}:{line})" in caught.value.message
    monkeypatch.setenv("GANREG_STRICT_PLUGINS", "1")  # a plugin author's traceback
    with pytest.raises(RuntimeError, match="needs_wrong_images"):
        _start(registry, tmp_path / "strict", losses=losses).train_step()


def test_a_loss_that_breaks_its_contract_on_a_later_step_is_named(registry: Registry, tmp_path: Path) -> None:
    losses = [{"name": "dcgan_cls:matching_bce"}, {"name": "dcgan_cls:generator_bce"}, {"name": "broken:skips_with_none"}]
    trainer = _start(registry, tmp_path, losses=losses)
    trainer.train_step()
    with pytest.raises(UserError) as caught:
        trainer.train_step()
    assert caught.value.message.startswith("loss broken:skips_with_none returned NoneType, not a tensor")
    assert "broken" in (caught.value.fix or "")


def test_the_probe_leaves_training_state_alone(registry: Registry, tmp_path: Path) -> None:
    """No BatchNorm statistics move, no global random numbers are drawn: a run trains as it did before."""
    torch.manual_seed(5)
    expected = torch.rand(3)
    recipe = validate_recipe(tiny_recipe(), registry)
    new_run_dir(tmp_path / "run")
    trainer = Trainer(recipe, registry, tmp_path / "run", device="cpu")
    stats = {k: v.clone() for k, v in trainer.nets.generator.state_dict().items() if "running" in k}
    assert stats, "the tiny DCGAN generator has BatchNorm statistics"
    from ganreg.train.contracts import check_contracts

    torch.manual_seed(5)
    check_contracts(trainer.nets, trainer.data.probe_batch(2), 32)
    assert torch.equal(torch.rand(3), expected)
    for k, v in stats.items():
        assert torch.equal(trainer.nets.generator.state_dict()[k], v), k
    assert trainer.nets.generator.training
