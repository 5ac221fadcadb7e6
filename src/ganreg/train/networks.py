"""Build a recipe's networks from the registry, and describe their sizes."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field

from torch import nn

from ganreg.data import CaptionedImageDataset
from ganreg.errors import UserError
from ganreg.interfaces import BASES, BuildContext, Discriminator, Generator, ImageEncoder, Loss, TextEncoder
from ganreg.recipe import Recipe
from ganreg.registry import ComponentInfo, Registry
from ganreg.train.stream import check_stream


@dataclass
class LossTerm:
    """One weighted term of a network's objective."""

    name: str
    module: Loss
    weight: float
    network: str
    info: ComponentInfo | None = None


@dataclass
class SamplingNetworks:
    """What drawing images from captions needs: the text encoder, the generator, and the image
    encoder when the recipe has one (to draw from a source image's latent)."""

    text_encoder: TextEncoder
    generator: Generator
    context: BuildContext
    infos: dict[str, ComponentInfo] = field(default_factory=dict)
    image_encoder: ImageEncoder | None = None

    def modules(self) -> dict[str, nn.Module]:
        found = {"text_encoder": self.text_encoder, "image_encoder": self.image_encoder, "generator": self.generator}
        return {k: m for k, m in found.items() if m is not None}


@dataclass
class Networks:
    text_encoder: TextEncoder
    generator: Generator
    discriminator: Discriminator
    losses: list[LossTerm]
    context: BuildContext
    infos: dict[str, ComponentInfo] = field(default_factory=dict)
    image_encoder: ImageEncoder | None = None
    """Trains with G's optimiser: its latent of each real image is G's noise in training."""

    def terms(self, network: str) -> list[LossTerm]:
        return [t for t in self.losses if t.network == network]

    def modules(self) -> dict[str, nn.Module]:
        found = {"text_encoder": self.text_encoder, "image_encoder": self.image_encoder, "generator": self.generator,
                 "discriminator": self.discriminator}
        return {k: m for k, m in found.items() if m is not None}


def _build(registry: Registry, kind: str, name: str, params: dict, ctx: BuildContext) -> tuple[nn.Module, ComponentInfo]:
    info = registry.resolve(kind, name)
    module = info.build(params, ctx)
    base = BASES[kind]
    if not isinstance(module, base):
        raise UserError(
            f"{info.qualified} built a {type(module).__name__}, which is not a ganreg {base.__name__}",
            f"the plugin {info.plugin!r} must subclass ganreg.interfaces.{base.__name__}",
        )
    return module, info


def _declared_size(module: object, attr: str, info: ComponentInfo, what: str) -> int:
    """A size a component must declare (``ganreg.interfaces``: a text encoder's ``out_dim``, G's ``z_dim``):
    a missing one is the plugin's mistake, named as such, not an AttributeError deep in the setup."""
    value = getattr(module, attr, None)
    try:  # an int, or an integer numpy / torch scalar
        size = operator.index(value) if not isinstance(value, bool) else 0
    except TypeError:
        size = 0
    if size < 1:
        raise UserError(
            f"{info.kind} {info.qualified} has {attr} = {value!r}; ganreg needs a positive int: {what}",
            f"the plugin {info.plugin!r} sets self.{attr} in its {info.kind}'s __init__ (see ganreg.interfaces)",
        )
    return int(size)


def build_sampling_networks(
    recipe: Recipe, registry: Registry, ctx: BuildContext, image_encoder: bool = True
) -> SamplingNetworks:
    """Text encoder first (its ``out_dim`` becomes ``ctx.cond_dim``), then the image encoder when the recipe
    has one (its ``out_dim`` becomes ``ctx.image_latent_dim``), then G, whose ``z_dim`` must equal it.
    ``image_encoder=False`` leaves the encoder out (drawing from noise needs neither it nor its plugin)."""
    infos: dict[str, ComponentInfo] = {}
    text, infos["text_encoder"] = _build(registry, "text_encoder", recipe.text_encoder.name, recipe.text_encoder.params, ctx)
    ctx.cond_dim = _declared_size(text, "out_dim", infos["text_encoder"], "the size of its sentence embeddings")
    image: ImageEncoder | None = None
    if recipe.image_encoder is not None and image_encoder:
        spec = recipe.image_encoder
        image, infos["image_encoder"] = _build(registry, "image_encoder", spec.name, spec.params, ctx)
        ctx.image_latent_dim = _declared_size(image, "out_dim", infos["image_encoder"], "the size of its latents")
    gen, infos["generator"] = _build(registry, "generator", recipe.generator.name, recipe.generator.params, ctx)
    z_dim = _declared_size(gen, "z_dim", infos["generator"], "the size of its noise")
    if image is not None and z_dim != ctx.image_latent_dim:
        raise UserError(
            f"image_encoder {infos['image_encoder'].qualified} gives latents of size {ctx.image_latent_dim}, but "
            f"generator {infos['generator'].qualified} takes noise of size {gen.z_dim}: the latent replaces the noise",
            f"make them equal: generator.params.z_dim (or the image encoder's latent size, "
            f"`ganreg show {infos['image_encoder'].qualified}`)",
        )
    return SamplingNetworks(text, gen, ctx, infos, image)


def build_networks(recipe: Recipe, registry: Registry, ctx: BuildContext) -> Networks:
    """The text encoder and G (:func:`build_sampling_networks`), then D and the losses."""
    sampling = build_sampling_networks(recipe, registry, ctx)
    infos = dict(sampling.infos)
    # D sees G's cond_used when G makes one (StackGAN's mu): D is built for that size
    own_cond = getattr(sampling.generator, "cond_used_dim", None)
    if own_cond and recipe.text_encoder.mode == "joint" and any(p.requires_grad for p in sampling.text_encoder.parameters()):
        raise UserError(
            f"text_encoder.mode 'joint' trains the text encoder through D's condition, but generator "
            f"{infos['generator'].qualified} hands D a condition of its own (cond_used, e.g. StackGAN's mu, "
            "detached): the encoder would never train",
            'set text_encoder.mode to "pretrain" or "frozen" (StackGAN used a pretrained, frozen encoder)',
        )
    d_ctx = dataclasses.replace(ctx, cond_dim=int(own_cond or ctx.cond_dim))
    disc, infos["discriminator"] = _build(registry, "discriminator", recipe.discriminator.name, recipe.discriminator.params, d_ctx)
    losses = []
    for i, spec in enumerate(recipe.losses):
        module, info = _build(registry, "loss", spec.name, spec.params, ctx)
        infos[f"losses.{i}"] = info
        network = spec.trains or getattr(module, "network", None)
        if network not in ("generator", "discriminator"):
            declared = f"declares network {network!r}" if network is not None else "declares no network"
            raise UserError(
                f"loss {info.qualified} {declared}, so it would train nothing",
                f"the plugin {info.plugin!r} must set network = 'generator' or 'discriminator' "
                f"(a recipe can also choose with \"trains\" in losses.{i})",
            )
        if module.needs_image_encoder and sampling.image_encoder is None:
            raise UserError(
                f"loss {info.qualified} (losses.{i}) reads the image encoder, and the recipe has no image_encoder",
                "add an image_encoder section (e.g. source_encoder:conv) or drop the loss",
            )
        wanted = module.needs_discriminator
        if wanted and infos["discriminator"].qualified not in wanted:
            raise UserError(
                f"loss {info.qualified} (losses.{i}) needs discriminator {' or '.join(wanted)} (it reads that D's own "
                f"layout of logits), and the recipe's is {infos['discriminator'].qualified}",
                f"set discriminator.name to {wanted[0]}, or drop the loss",
            )
        losses.append(LossTerm(name=info.name, module=module, weight=spec.weight, network=network, info=info))
    for network in ("generator", "discriminator"):
        if not any(t.network == network for t in losses):
            raise UserError(f"the recipe has no loss that trains the {network}", f"add a loss with \"trains\": \"{network}\"")
    names = [t.name for t in losses]
    for t in losses:  # unique log names when a loss appears twice
        if names.count(t.name) > 1:
            t.name = f"{t.name}.{t.network[0]}{names[: losses.index(t)].count(t.name)}"
    return Networks(sampling.text_encoder, sampling.generator, disc, losses, ctx, infos, sampling.image_encoder)


def check_trainable(nets: Networks, train: CaptionedImageDataset, batch_size: int, world: int = 1) -> None:
    """What would stop the first step, checked before anything slow (text encoder pretraining) by ``run``,
    ``validate`` and ``--dry-run`` alike: the batch size against BatchNorm and the training split, and
    wrong images for a loss that reads them."""
    check_batch_size(nets, batch_size)
    check_stream(train, batch_size, world, wrong_images=any(term.module.needs_wrong_images for term in nets.losses))


def check_batch_size(nets: Networks, batch_size: int) -> None:
    """A batch of one cannot train a ``BatchNorm1d`` (one value per channel: no variance), e.g. the text
    projection of GAN-INT-CLS; refused before the first step instead of failing inside it."""
    normed = [name for name, net in (("generator", nets.generator), ("discriminator", nets.discriminator))
              if any(isinstance(m, nn.BatchNorm1d) for m in net.modules())]
    if normed and batch_size < 2:
        raise UserError(
            f"train.batch_size 1 cannot train the {' and '.join(normed)}: its BatchNorm1d needs 2 or more images a batch",
            "set train.batch_size to 2 or more",
        )


def parameter_table(modules: dict[str, nn.Module]) -> list[dict[str, float | int | str]]:
    """Total / trainable parameters and their size in MB (float32) per network."""
    rows = []
    for name, module in modules.items():
        total = sum(p.numel() for p in module.parameters())
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        size = sum(p.numel() * p.element_size() for p in module.parameters()) / 2**20
        rows.append({"network": name, "total": total, "trainable": trainable, "mb": round(size, 3)})
    return rows
