"""The networks' contracts, checked on two real items before anything trains.

A third-party generator that returns the wrong size, or values outside [-1, 1], would otherwise fail
deep inside the first loss with a shape error that names no component, or, worse, train silently on
the wrong scale. ``ganreg validate`` and ``ganreg run`` run these checks, so a broken component is
named, with its plugin, before a run directory holds anything but its recipe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ganreg.errors import UserError
from ganreg.kinds import SECTION_KINDS
from ganreg.registry import ComponentInfo, plugin_location, strict_plugins
from ganreg.train.setup import text_batch

PROBE_ITEMS = 2
RANGE_SLACK = 1e-3  # rounding of a tanh in bf16


def _fix(info: ComponentInfo) -> str:
    return (
        f"check its params (`ganreg show {info.qualified}`); if they are right, this is a bug in plugin "
        f"{info.plugin!r}: report it to the maintainers of the {info.owner}"
    )


@contextlib.contextmanager
def blame(info: ComponentInfo, what: str, nets: Any = None) -> Iterator[None]:
    """A component's own exception, as a user error naming the component, what it was asked to do and
    the plugin's ``file:line`` that raised (running out of memory is not the component's fault: it passes
    through; ``GANREG_STRICT_PLUGINS=1`` re-raises the original, traceback and all). With ``nets``, an
    exception raised inside one of the networks is blamed on that network (:func:`culprit`)."""
    try:
        yield
    except (UserError, MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as exc:
        if strict_plugins():
            raise
        who = culprit(exc, nets, info) if nets is not None else info
        during = what if who is info else f"{what}, inside the {who.kind}"
        where = plugin_location(exc, who.package)
        at = f" ({where})" if where else ""
        raise UserError(
            f"{who.kind} {who.qualified} failed on {during}: {type(exc).__name__}: {exc}{at}", _fix(who)
        ) from exc


def check_image_range(images: torch.Tensor, info: ComponentInfo, when: str = "") -> None:
    """G's images lie in [-1, 1] (``ganreg.interfaces``); checked at initialisation and on every sample grid,
    since an untrained generator without a final tanh can start inside the range and leave it as it learns."""
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise UserError(
            f"generator {info.qualified} returned values in [{low:.3g}, {high:.3g}]{when}; ganreg's images are in [-1, 1]",
            f"end the generator with tanh (or clamp); {_fix(info)}",
        )


def culprit(exc: BaseException, nets: Any, default: ComponentInfo) -> ComponentInfo:
    """The component whose code raised ``exc``: a loss runs G and D through the step context, so an
    exception inside a loss's call may come from either network. The innermost traceback frame that
    belongs to one of the networks' modules decides; ``default`` (the loss) when none does."""
    owners: dict[int, ComponentInfo] = {}
    for key in SECTION_KINDS:
        module = getattr(nets, key, None)
        if isinstance(module, nn.Module) and key in nets.infos:
            owners.update({id(m): nets.infos[key] for m in module.modules()})
    found = default
    tb = exc.__traceback__
    while tb is not None:
        owner = owners.get(id(tb.tb_frame.f_locals.get("self")))
        if owner is not None:
            found = owner
        tb = tb.tb_next
    return found


@contextlib.contextmanager
def _evaluating(*modules: nn.Module) -> Iterator[None]:
    """eval mode and no grad: the probe must not move BatchNorm statistics or any other state."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def check_contracts(nets: Any, batch: dict[str, Any], image_size: int, device: torch.device | str = "cpu") -> None:
    """Text encoder, G and D on ``batch`` (:meth:`DataBundle.probe_batch`: a few training items): shapes,
    value range and finiteness as ``ganreg.interfaces`` states them. Raises :class:`UserError`."""
    infos: dict[str, ComponentInfo] = nets.infos
    n = len(batch["images"])
    text = text_batch(batch, device)
    encoder = getattr(nets, "image_encoder", None)
    probed = [m for m in (nets.text_encoder, encoder, nets.generator, nets.discriminator) if m is not None]
    with _evaluating(*probed):
        with blame(infos["text_encoder"], f"a batch of {n} captions"):
            sentence = nets.text_encoder(text).sentence
        if tuple(sentence.shape) != (n, nets.context.cond_dim):
            raise UserError(
                f"text_encoder {infos['text_encoder'].qualified} returned sentence embeddings of shape "
                f"{tuple(sentence.shape)}, not [{n}, {nets.context.cond_dim}] (its out_dim)",
                _fix(infos["text_encoder"]),
            )
        cond = sentence.float()
        if encoder is not None:
            _check_image_encoder(encoder, infos["image_encoder"], batch["images"].to(device).float(), nets.generator.z_dim)
        gen = infos["generator"]
        z = torch.randn(n, nets.generator.z_dim, generator=torch.Generator().manual_seed(0)).to(device)  # not the global RNG
        with blame(gen, f"a batch of {n} (z_dim {nets.generator.z_dim}, sentence dim {cond.shape[1]})"):
            out = nets.generator(z, cond)
        images = out.images.float()
        want = (n, 3, image_size, image_size)
        if tuple(images.shape) != want:
            raise UserError(
                f"generator {gen.qualified} returned images of shape {list(images.shape)}, not {list(want)} "
                f"(data.image_size {image_size})",
                f"set the generator's params for {image_size} px, or data.image_size to a size it makes; "
                + _fix(gen),
            )
        if not torch.isfinite(images).all():
            raise UserError(f"generator {gen.qualified} returned NaN or infinite pixels at initialisation", _fix(gen))
        check_image_range(images, gen)
        disc = infos["discriminator"]
        real = batch["images"].to(device).float()  # probe_batch's images are already in [-1, 1]
        d_cond = cond if out.cond_used is None else out.cond_used.float()  # what the trainer hands D (StackGAN's mu)
        declared = getattr(nets.generator, "cond_used_dim", None)
        if out.cond_used is not None and tuple(out.cond_used.shape) != (n, declared):
            raise UserError(
                f"generator {gen.qualified} returned cond_used of shape {list(out.cond_used.shape)} but declares "
                f"cond_used_dim {declared}: the discriminator is built for the declared size",
                f"set the generator's cond_used_dim attribute to the size of its cond_used; {_fix(gen)}",
            )
        with blame(disc, f"a batch of {n} images of {image_size} px"):
            logits = nets.discriminator(real, d_cond).logits
        if logits.dim() < 1 or logits.shape[0] != n or logits[0].numel() < 1:
            raise UserError(
                f"discriminator {disc.qualified} returned logits of shape {list(logits.shape)}, not [{n}] (one per "
                f"image) or [{n}, ...] (several per image, e.g. one per image region)",
                _fix(disc),
            )


def _check_image_encoder(encoder: nn.Module, info: ComponentInfo, real: torch.Tensor, z_dim: int) -> None:
    """The latent must be what G takes as noise: ``[n, z_dim]``, finite."""
    n = real.shape[0]
    with blame(info, f"a batch of {n} real images"):
        latent = encoder(real).latent
    if tuple(latent.shape) != (n, z_dim):
        raise UserError(
            f"image_encoder {info.qualified} returned latents of shape {list(latent.shape)}, not [{n}, {z_dim}] "
            "(its out_dim, the generator's z_dim)",
            _fix(info),
        )
    if not torch.isfinite(latent).all():
        raise UserError(f"image_encoder {info.qualified} returned NaN or infinite latents at initialisation", _fix(info))


def check_loss_value(info: ComponentInfo, value: Any) -> None:
    """A loss term must be one number (the trainer weights and sums them)."""
    if not isinstance(value, torch.Tensor):
        raise UserError(
            f"loss {info.qualified} returned {type(value).__name__}, not a tensor (a forgotten return?)",
            f"return the term as a scalar tensor; {_fix(info)}",
        )
    if value.numel() != 1:
        raise UserError(
            f"loss {info.qualified} returned a tensor of shape {list(value.shape)}, not a scalar",
            f"reduce it (e.g. .mean()) in the loss; {_fix(info)}",
        )
