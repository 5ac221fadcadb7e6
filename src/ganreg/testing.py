"""Conformance kit for component authors (also a pytest plugin).

``check_component(info)`` builds a registered component with its tiny
``test_params`` and checks it against its kind's contract (shapes, ranges,
gradients). ganreg's own test suite runs it over the whole registry, so a new
component is tested automatically; a third-party plugin runs it on each of its
own components, one test per component so that one failure hides no other::

    import pytest
    from ganreg.testing import check_component, registry_with
    import my_package.plugin

    REGISTRY = registry_with(my_package.plugin, "myplugin")

    @pytest.mark.parametrize("info", REGISTRY.components(), ids=lambda c: f"{c.kind}:{c.qualified}")
    def test_component_conforms(info):
        check_component(info)

The pytest plugin adds a ``ganreg_registry`` fixture: the registry of every
installed plugin. Loading the plugin does not import torch (pytest loads it in
every run of the environment); the checks import it when they run.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ganreg.kinds import BuildContext
from ganreg.registry import ComponentInfo, Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ganreg.interfaces import Discriminator, Generator, ImageEncoder, TextBatch

    TinyGenerator: type[Generator]
    TinyDiscriminator: type[Discriminator]
    TinyPatchDiscriminator: type[Discriminator]
    TinyPartsDiscriminator: type[Discriminator]
    TinyImageEncoder: type[ImageEncoder]

NETWORKS = ("generator", "discriminator")
B = 4


def tiny_context(image_size: int = 64, **over: Any) -> BuildContext:
    ctx = BuildContext(
        image_size=image_size,
        num_classes=5,
        vocab_size=40,
        text_embedding_dim=24,
        cond_dim=16,
        attributes={"colour": ["red", "blue"], "shape": ["circle", "square", "star"]},
    )
    for k, v in over.items():
        setattr(ctx, k, v)
    return ctx


def text_batch(ctx: BuildContext, batch: int = B, seed: int = 0) -> TextBatch:
    import torch

    from ganreg.interfaces import TextBatch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (batch,), generator=g)
    tokens = torch.randint(2, max(3, ctx.vocab_size), (batch, 7), generator=g)
    tokens = tokens * (torch.arange(7)[None] < lengths[:, None])
    emb = torch.randn(batch, ctx.text_embedding_dim or 8, generator=g)
    return TextBatch(tokens=tokens, lengths=lengths, embeddings=emb, captions=["a caption"] * batch)


def __getattr__(name: str) -> Any:
    """``TinyGenerator`` / ``TinyDiscriminator``, defined on first use so that importing this module
    (pytest does, as a plugin) does not import torch."""
    if name in {"TinyGenerator", "TinyDiscriminator"}:
        return _tiny_networks()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _tiny_networks() -> dict[str, type]:
    import torch
    from torch import nn

    from ganreg.interfaces import Discriminator, Generator, GeneratorOutput, ImageEncoder, ImageEncoderOutput

    class TinyGenerator(Generator):
        """A minimal generator used to exercise losses."""

        def __init__(self, ctx: BuildContext, z_dim: int = 8) -> None:
            super().__init__()
            self.z_dim = z_dim
            self.size = ctx.image_size
            self.fc = nn.Linear(z_dim + ctx.cond_dim, 3 * 4 * 4)

        def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:
            x = self.fc(torch.cat([z, cond], 1)).view(-1, 3, 4, 4)
            x = nn.functional.interpolate(x, size=self.size)
            return GeneratorOutput(images=torch.tanh(x), aux={"kl": (x**2).mean()})

    class TinyDiscriminator(Discriminator):
        """A minimal discriminator used to exercise losses."""

        def __init__(self, ctx: BuildContext) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 4, 4)
            self.head = nn.Linear(8 + ctx.cond_dim, 1)

        def features(self, images: torch.Tensor) -> torch.Tensor:
            return nn.functional.leaky_relu(self.conv(images), 0.2).mean((2, 3))

        def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            return self.head(torch.cat([features, cond], 1)).squeeze(1)

    class TinyPatchDiscriminator(TinyDiscriminator):
        """A minimal discriminator whose logits are a map, one per image region (a PatchGAN's ``[B, H', W']``)."""

        def __init__(self, ctx: BuildContext) -> None:
            super().__init__(ctx)
            self.head_map = nn.Conv2d(8 + ctx.cond_dim, 1, 1)

        def features(self, images: torch.Tensor) -> torch.Tensor:
            return nn.functional.leaky_relu(self.conv(images), 0.2)

        def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            tiled = cond[:, :, None, None].expand(-1, -1, *features.shape[2:])
            return self.head_map(torch.cat([features, tiled], 1)).squeeze(1)

    class TinyPartsDiscriminator(TinyPatchDiscriminator):
        """A minimal discriminator with logits ``[B, 2, H', W']``, as a U-Net D lays out its per-image logit
        (repeated over the first plane) and its per-region map (the second)."""

        def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            regions = super().logits(features, cond)
            whole = TinyDiscriminator.logits(self, features.mean((2, 3)), cond)
            return torch.stack([whole[:, None, None].expand_as(regions), regions], 1)

    class TinyImageEncoder(ImageEncoder):
        """A minimal variational image encoder: its latent replaces G's noise, its KL is ``aux["kl"]``."""

        def __init__(self, z_dim: int = 8) -> None:
            super().__init__()
            self.out_dim = z_dim
            self.fc = nn.Linear(3, 2 * z_dim)

        def forward(self, images: torch.Tensor) -> ImageEncoderOutput:
            mu, logvar = self.fc(images.mean((2, 3))).chunk(2, dim=1)
            latent = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
            return ImageEncoderOutput(latent=latent, aux={"kl": kl})

    classes: dict[str, type] = {
        "TinyGenerator": TinyGenerator, "TinyDiscriminator": TinyDiscriminator,
        "TinyPatchDiscriminator": TinyPatchDiscriminator, "TinyPartsDiscriminator": TinyPartsDiscriminator,
        "TinyImageEncoder": TinyImageEncoder,
    }
    for cls in classes.values():
        cls.__qualname__ = cls.__name__
    globals().update(classes)
    return classes


def _finite(t: torch.Tensor, what: str) -> None:
    assert t.isfinite().all(), f"{what} has NaN/inf"


def _grads_reach(module: nn.Module, what: str) -> None:
    """Some gradient reaches ``module``'s trainable parameters."""
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert grads, f"{what} has no trainable parameters"
    assert any(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reaches {what}'s parameters"


KIT_KEYS = ("_image_size",)
"""The ``test_params`` keys that are the kit's own, not the component's params."""


def check_component(info: ComponentInfo, ctx: BuildContext | None = None) -> nn.Module:
    """Build ``info`` with its tiny params and check its kind's contract.

    ``info.test_params`` are its params, except keys starting with ``_``, which are the kit's:
    ``_image_size`` sets the build context's image size (default 64)."""
    import torch

    from ganreg.interfaces import BASES

    from ganreg.errors import UserError

    torch.manual_seed(0)
    unknown = sorted(k for k in info.test_params if k.startswith("_") and k not in KIT_KEYS)
    assert not unknown, f"{info.qualified}: test_params key(s) {', '.join(unknown)} are not the kit's ({', '.join(KIT_KEYS)})"
    ctx = ctx or tiny_context(**({"image_size": info.test_params["_image_size"]} if "_image_size" in info.test_params else {}))
    params = {k: v for k, v in info.test_params.items() if not k.startswith("_")}
    try:
        module = info.build(params, ctx)
    except UserError as exc:  # the plugin's own tiny params: say so, or the author hunts for a recipe
        raise AssertionError(f"{info.qualified} does not build with its test_params {params}: {exc}") from exc
    assert isinstance(module, BASES[info.kind]), f"{info.qualified} is not a {BASES[info.kind].__name__}"
    {
        "text_encoder": _check_text_encoder,
        "image_encoder": _check_image_encoder,
        "generator": _check_generator,
        "discriminator": _check_discriminator,
        "loss": _check_loss,
    }[info.kind](module, ctx)
    return module


def _check_text_encoder(enc: Any, ctx: BuildContext) -> None:
    text = text_batch(ctx)
    out = enc(text)
    assert out.sentence.shape == (B, enc.out_dim), f"sentence shape {tuple(out.sentence.shape)} != {(B, enc.out_dim)}"
    _finite(out.sentence, "sentence embedding")
    if out.words is not None:
        assert out.words.shape[:2] == (B, enc.out_dim), "word features must be [B, out_dim, T]"
    if any(p.requires_grad for p in enc.parameters()):
        out.sentence.sum().backward()
        _grads_reach(enc, "text encoder")


def _check_image_encoder(enc: Any, ctx: BuildContext) -> None:
    import torch

    images = torch.rand(B, 3, ctx.image_size, ctx.image_size) * 2 - 1
    out = enc(images)
    assert out.latent.shape == (B, enc.out_dim)
    _finite(out.latent, "latent")
    for name, value in out.aux.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, f"aux {name!r} must be a scalar tensor"
        _finite(value, f"aux {name!r}")
    out.latent.sum().backward()
    _grads_reach(enc, "image encoder")
    training = enc.training
    enc.eval()  # a variational encoder samples in training only: generate --source needs one latent per image
    with torch.no_grad():
        first, second = enc(images).latent, enc(images).latent
    enc.train(training)
    assert torch.equal(first, second), "in eval mode the latent must be deterministic (a variational encoder: its mean)"


def _check_generator(gen: Any, ctx: BuildContext) -> None:
    import torch

    from ganreg.interfaces import GeneratorOutput

    z = torch.randn(B, gen.z_dim)
    cond = torch.randn(B, ctx.cond_dim)
    out = gen(z, cond)
    assert isinstance(out, GeneratorOutput)
    s = ctx.image_size
    assert out.images.shape == (B, 3, s, s), f"images {tuple(out.images.shape)} != {(B, 3, s, s)}"
    assert out.images.min() >= -1 and out.images.max() <= 1, "images must lie in [-1, 1]"
    for k, v in out.aux.items():
        assert v.dim() == 0, f"aux {k!r} must be a scalar"
    if out.cond_used is not None:  # what D sees instead of the sentence (StackGAN's mu): its size builds D
        dim = getattr(gen, "cond_used_dim", None)
        assert isinstance(dim, int), "a generator that returns cond_used must have an int attribute cond_used_dim"
        assert out.cond_used.shape == (B, dim), f"cond_used {tuple(out.cond_used.shape)} != {(B, dim)}"
    out.images.square().mean().backward()
    _grads_reach(gen, "generator")
    gen.eval()
    with torch.no_grad():
        one = gen(z[:1], cond[:1]).images
    assert one.shape == (1, 3, s, s), "generator must work on a batch of one in eval mode"


def _check_discriminator(disc: Any, ctx: BuildContext) -> None:
    import torch

    from ganreg.interfaces import DiscriminatorOutput

    s = ctx.image_size
    images = (torch.rand(B, 3, s, s) * 2 - 1).requires_grad_(True)
    cond = torch.randn(B, ctx.cond_dim, requires_grad=True)
    out = disc(images, cond)
    assert isinstance(out, DiscriminatorOutput)
    assert out.logits.dim() >= 1 and out.logits.shape[0] == B and out.logits[0].numel() >= 1, (
        f"logits {tuple(out.logits.shape)}: want {(B,)}, or {(B, '...')} for several per image (a patch map)"
    )
    assert out.features.shape[0] == B
    _finite(out.logits, "logits")
    training = disc.training
    disc.eval()  # in eval mode: a spectral norm's power iteration moves the weights on every training call
    with torch.no_grad():
        whole, again = disc(images, cond).logits, disc.logits(disc.features(images), cond)
    disc.train(training)
    assert torch.allclose(again, whole, atol=1e-5), "forward must equal logits(features(x), cond)"
    gi, gc = torch.autograd.grad(out.logits.sum(), (images, cond), retain_graph=True, allow_unused=True)
    assert gi is not None and gi.abs().sum() > 0, "logits must depend on the images"
    assert gc is not None and gc.abs().sum() > 0, (
        "logits must depend on the condition (a conditional D: ganreg.interfaces.Discriminator)"
    )
    out.logits.sum().backward()
    _grads_reach(disc, "discriminator")


def _check_loss(loss: Any, ctx: BuildContext) -> None:
    network = getattr(loss, "network", None)
    assert network in NETWORKS, (
        f"{type(loss).__name__}.network is {network!r}: it must be 'generator' or 'discriminator' "
        "(the network the term trains); any other value leaves the loss out of training"
    )
    tiny = _tiny_networks()
    if loss.needs_discriminator:  # a layout of logits of its own: checked against the first D it names
        discriminators = [_named_discriminator(loss.needs_discriminator[0], ctx)]
    else:  # logits [B], a patch map [B, H', W'], and [B, 2, H', W'] (a U-Net's two outputs)
        discriminators = [tiny[name](ctx) for name in ("TinyDiscriminator", "TinyPatchDiscriminator", "TinyPartsDiscriminator")]
    for disc in discriminators:
        gen = tiny["TinyGenerator"](ctx)
        encoder = tiny["TinyImageEncoder"](gen.z_dim) if loss.needs_image_encoder else None
        _check_loss_with(loss, ctx, network, gen, disc, encoder)


def _named_discriminator(qualified: str, ctx: BuildContext) -> Any:
    """The installed discriminator ``qualified``, built with its tiny ``test_params`` at the loss's build
    context (the loss feeds it images of that size)."""
    from ganreg.plugins import load_entry_points

    reg = Registry()
    load_entry_points(reg, strict=False)
    assert ("discriminator", qualified) in reg, (
        f"the loss needs discriminator {qualified!r}, which no installed plugin registers (or its plugin failed to "
        "load: `ganreg plugins` says why)"
    )
    info = reg.resolve("discriminator", qualified)
    return info.build({k: v for k, v in info.test_params.items() if not k.startswith("_")}, ctx)


def _check_loss_with(loss: Any, ctx: BuildContext, network: str, gen: Any, disc: Any, encoder: Any) -> None:
    import torch
    from torch import nn

    from ganreg.train.context import StepContext

    s = ctx.image_size
    g = torch.Generator().manual_seed(1)
    if network == "generator":
        disc.requires_grad_(False)
    sctx = StepContext(
        phase=network,
        generator=gen,
        discriminator=disc,
        real=torch.rand(B, 3, s, s, generator=g) * 2 - 1,
        cond=torch.randn(B, ctx.cond_dim, generator=g),
        z=torch.randn(B, gen.z_dim, generator=g),
        text=text_batch(ctx),
        wrong=torch.rand(B, 3, s, s, generator=g) * 2 - 1 if loss.needs_wrong_images else None,
        labels=torch.arange(B) % ctx.num_classes,
        input_grad=loss.needs_input_grad,
        image_encoder=encoder,
    )
    value = loss(sctx)
    assert value.dim() == 0, f"a loss returns a scalar (with {type(disc).__name__})"
    _finite(value, "loss")
    value.backward()
    if network == "discriminator":
        _grads_reach(disc, network)
    else:  # the image encoder trains with G: a term of its own (its KL) reaches only it
        _grads_reach(nn.ModuleList([m for m in (gen, encoder) if m is not None]), network)
    if network == "generator":
        assert all(p.grad is None for p in disc.parameters()), "a generator loss must not train D"


def trainer_for(recipe: dict[str, Any], run_dir: Any, registry: Registry | None = None) -> Any:
    """A CPU :class:`ganreg.train.trainer.Trainer` for ``recipe`` (a recipe as a dict) in a fresh ``run_dir``,
    with every installed plugin (strict) unless ``registry`` is given: a plugin's end-to-end test runs a
    few ``train_step()`` calls through ganreg's own trainer with it. The run directory is a whole run (its
    recorded recipe, run.json and vocabulary), so ``ganreg.load_run`` and ``evaluate_run`` read it once
    it has a checkpoint (``trainer.save()``)."""
    from pathlib import Path

    from ganreg.plugins import load_entry_points
    from ganreg.recipe import validate_recipe
    from ganreg.train.rundir import as_recorded, new_run_dir
    from ganreg.train.trainer import start_or_resume

    if registry is None:
        registry = Registry()
        load_entry_points(registry, strict=True)
    new_run_dir(Path(run_dir))
    return start_or_resume(as_recorded(validate_recipe(recipe, registry), registry), registry, Path(run_dir), "cpu",
                           resume=False)


def registry_with(plugin: Any, name: str) -> Registry:
    """A fresh registry holding just one plugin (strict: its errors raise)."""
    from ganreg.plugins import load_plugin

    reg = Registry()
    load_plugin(reg, plugin, name, strict=True)
    return reg


@pytest.fixture
def ganreg_registry() -> Registry:
    """A registry with every installed plugin loaded (ignores GANREG_NO_PLUGIN_AUTOLOAD)."""
    from ganreg.plugins import load_entry_points

    reg = Registry()
    load_entry_points(reg)
    return reg


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous count: on a small shared
    box (CI: 2 cores) an oversubscribed OpenMP pool turns microsecond ops into ~100 ms stalls."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
