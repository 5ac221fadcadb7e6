"""Every registered component, built with its tiny params, honours its kind's
contract. Parametrised over the registry: a new component is tested automatically."""

from __future__ import annotations

import pytest

from ganreg.plugins import load_entry_points
from ganreg.registry import Registry
from ganreg.testing import check_component


def _all_components() -> list:
    reg = Registry()
    load_entry_points(reg, strict=False)
    return reg.components()


@pytest.mark.parametrize("info", _all_components(), ids=lambda c: f"{c.kind}:{c.qualified}")
def test_component_honours_its_contract(info) -> None:  # type: ignore[no-untyped-def]
    check_component(info)


def test_bundled_plugins_keep_bare_names_unique() -> None:
    """A bare name in a recipe works only while one plugin registers it for its kind: a bundled plugin that
    reused another's name would break every recipe that relies on the bare form."""
    seen: dict[tuple[str, str], list[str]] = {}
    for c in _all_components():
        seen.setdefault((c.kind, c.name), []).append(c.plugin)
    assert not {key: owners for key, owners in seen.items() if len(owners) > 1}


def test_every_bundled_plugin_contributes() -> None:
    plugins = {c.plugin for c in _all_components()}
    assert {"core", "dcgan_cls", "dfgan", "losses", "cbn_resnet", "stackgan", "lstm_attention", "patchgan", "source_encoder", "unet", "rdb"} <= plugins


def test_a_loss_that_reads_wrong_images_must_declare_it() -> None:
    """The trainer loads wrong images only for losses that say so; the conformance check catches one that
    reads them without saying so, before a user's first step does."""
    from ganreg.interfaces import Loss
    from ganreg.kinds import BuildContext
    from ganreg.testing import _check_loss

    class Undeclared(Loss):
        network = "discriminator"

        def forward(self, ctx):  # type: ignore[no-untyped-def]
            return ctx.d_wrong.logits.mean()

    class Declared(Undeclared):
        needs_wrong_images = True

    ctx = BuildContext(image_size=32, cond_dim=8, num_classes=4)
    with pytest.raises(RuntimeError, match="needs_wrong_images = True"):
        _check_loss(Undeclared(), ctx)
    _check_loss(Declared(), ctx)


def test_a_loss_for_one_discriminator_is_checked_against_it() -> None:
    """A loss that names the discriminator whose layout it reads is run against that D, which must be installed."""
    from ganreg.interfaces import Loss
    from ganreg.kinds import BuildContext
    from ganreg.testing import _check_loss

    class ForDFGAN(Loss):
        network = "discriminator"
        needs_discriminator = ("dfgan:dfgan",)
        seen: list[str] = []

        def forward(self, ctx):  # type: ignore[no-untyped-def]
            self.seen.append(type(ctx.discriminator).__name__)
            return ctx.d_fake.logits.mean()

    loss = ForDFGAN()
    _check_loss(loss, BuildContext(image_size=64, cond_dim=16))
    assert ForDFGAN.seen == ["DFGANDiscriminator"]

    class ForNothing(ForDFGAN):
        needs_discriminator = ("nope:nope",)

    with pytest.raises(AssertionError, match="nope:nope"):
        _check_loss(ForNothing(), BuildContext(image_size=64, cond_dim=16))
