"""The contracts of the component kinds.

Every component is an ``nn.Module`` (losses too) built by a factory that
receives its validated pydantic params and a :class:`BuildContext`. The shapes
and ranges below are checked for every registered component by
``ganreg.testing`` (tests parametrised over the registry).

Kinds
-----
text_encoder
    ``forward(text: TextBatch) -> TextOutput``.
    ``sentence``: ``[B, out_dim]`` float; ``words``: ``[B, out_dim, T]`` or None.
    Attribute ``out_dim: int``.
image_encoder
    ``forward(images [B, 3, H, W] in [-1, 1]) -> ImageEncoderOutput``:
    ``latent [B, out_dim]``, optional ``content`` map, and ``aux``, a dict
    of scalar tensors the losses may read (``"kl"`` of a variational
    encoder). Attribute ``out_dim: int``, which must equal the generator's
    ``z_dim``: in training the latent of each real image replaces G's noise
    (the seeds' "source encoder"; cVAE-GAN), and a reconstruction loss ties
    the fake to its own real image. A variational encoder samples the
    latent in training mode and returns its mean in eval mode, and its KL to
    N(0, I) lets sampling draw the noise from the prior as without one.
generator
    ``forward(z [B, z_dim], cond [B, cond_dim]) -> GeneratorOutput``:
    ``images [B, 3, S, S]`` in ``[-1, 1]`` (S = BuildContext.image_size) and
    ``aux``, a dict of scalar tensors the losses may read (e.g. ``"kl"`` of
    conditioning augmentation). ``cond_used`` is the condition actually used
    (e.g. StackGAN's mu) that D should see, or None for ``cond`` itself.
    Attribute ``z_dim: int``; and ``cond_used_dim: int`` (the size of
    ``cond_used``) when it returns one: the discriminator is then built with
    ``BuildContext.cond_dim = cond_used_dim``.
discriminator
    Split in two so that mismatched pairs can reuse image features (DF-GAN
    rolls real features) and feature matching can read them:
    ``features(images) -> Tensor [B, ...]`` (unconditional image features) and
    ``logits(features, cond) -> Tensor [B]`` (unbounded; no sigmoid), or
    ``[B, ...]``: several logits per image, each judging a part of it: a
    PatchGAN's ``[B, H', W']`` map (one per image region), or a U-Net D's
    ``[B, 2, S, S]`` (its per-image logit repeated over one plane, its
    per-pixel logits on the other, so that the two outputs weigh the same).
    Losses average their per-logit terms over all of an image's logits, and
    anything that needs one score per image (gradient penalties, contrastive
    matching) takes :func:`per_image_logits`.
    ``forward(images, cond) -> DiscriminatorOutput`` combines the two.
loss
    ``forward(ctx: StepContext) -> Tensor`` (scalar). Attribute ``network``:
    which network the term trains by default ("generator" or
    "discriminator"), overridable per recipe entry. Class attribute
    ``needs_input_grad = True`` asks the trainer to run D on real inputs that
    require grad (MA-GP and R1 use it: ``ctx.real_input``, ``ctx.cond_input``).
    ``needs_wrong_images = True`` (class or instance attribute) asks for real
    images of another class in every batch (``ctx.wrong``, ``ctx.d_wrong``:
    Reed's matching-aware loss); without it no loss of the recipe does, and the
    loader does not decode them.
    ``needs_image_encoder = True`` says the term reads the image encoder
    (``ctx.e_out``, ``ctx.e_aux``: its KL); a recipe without an
    ``image_encoder`` section is then refused before training.
    ``needs_discriminator = ("plugin:name", ...)`` says the term reads a
    layout of logits that only those discriminators give (the U-Net's
    CutMix term reads its image and pixel parts); a recipe with another
    discriminator is then refused before training. Empty (the default):
    any discriminator.
    ``after_step(network)`` runs after each optimiser step of that network
    (WGAN weight clipping).

Any network may define ``adapt_checkpoint(obj) -> state dict | None`` to read
its original project's checkpoint files (``<kind>.weights`` in a recipe; see
:mod:`ganreg.train.weights`); DF-GAN's G and D read ``state_epoch_*.pth``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ganreg.kinds import KINDS, BuildContext, Kind, Network  # noqa: F401 (part of the contracts)

if TYPE_CHECKING:
    from ganreg.train.context import StepContext


@dataclass
class TextBatch:
    """Text of one batch, in every form a text encoder may want."""

    tokens: torch.Tensor | None = None
    """``[B, T]`` int64 word ids, 0-padded."""
    lengths: torch.Tensor | None = None
    """``[B]`` int64 number of real tokens (>= 1), on the CPU (``pack_padded_sequence``
    needs them there; moving them would synchronise with the GPU)."""
    embeddings: torch.Tensor | None = None
    """``[B, E]`` float32 precomputed sentence embeddings."""
    captions: list[str] | None = None


@dataclass
class TextOutput:
    sentence: torch.Tensor
    words: torch.Tensor | None = None


@dataclass
class ImageEncoderOutput:
    latent: torch.Tensor
    content: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class GeneratorOutput:
    images: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    cond_used: torch.Tensor | None = None


@dataclass
class DiscriminatorOutput:
    logits: torch.Tensor
    features: torch.Tensor


class TextEncoder(nn.Module):
    """Base class: captions -> sentence embedding ``[B, out_dim]``."""

    out_dim: int

    def forward(self, text: TextBatch) -> TextOutput:  # pragma: no cover - interface
        raise NotImplementedError


class ImageEncoder(nn.Module):
    """Base class: images in [-1, 1] -> latent ``[B, out_dim]``."""

    out_dim: int

    def forward(self, images: torch.Tensor) -> ImageEncoderOutput:  # pragma: no cover
        raise NotImplementedError


class Generator(nn.Module):
    """Base class: (z, cond) -> images in [-1, 1]."""

    z_dim: int

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> GeneratorOutput:  # pragma: no cover
        raise NotImplementedError

    def noise_only_from_z(self) -> contextlib.AbstractContextManager[None]:
        """A context in which the images depend on no randomness but ``z`` (StackGAN's conditioning
        augmentation then gives its mean): losses that compare ``G(z1, s)`` with ``G(z2, s)`` (DSGAN, MSGAN)
        draw the pair under it, or a second random draw inside G would pass for a response to ``z``. A
        generator whose only randomness is ``z`` keeps this default, which changes nothing."""
        return contextlib.nullcontext()


def per_image_logits(logits: torch.Tensor) -> torch.Tensor:
    """D's score per image, ``[B]``: the logits themselves, or the mean of an image's logits ``[B, ...]``.

    The mean, not the sum, so that a penalty on its gradient weighs a patch D as the losses do (they
    average over patches) and does not grow with the number of patches."""
    return logits if logits.dim() == 1 else logits.flatten(1).mean(1)


class Discriminator(nn.Module):
    """Base class: image features, then conditional logits. The logits depend on both the images and the
    condition (ganreg's discriminators judge image-text pairs; the conformance kit checks both gradients)."""

    def features(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def logits(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, images: torch.Tensor, cond: torch.Tensor) -> DiscriminatorOutput:
        feats = self.features(images)
        return DiscriminatorOutput(logits=self.logits(feats, cond), features=feats)


class Loss(nn.Module):
    """Base class: one weighted term of a network's objective.

    Read what you need from the step context (it computes each forward pass
    on demand, at most once) and return a scalar. Weighting is the trainer's
    job (the recipe's ``weight``), not the loss's.
    """

    network: Network
    """The network this term trains: every loss sets it (no default, so a generator term that forgets it is
    an error, not a term that silently trains the discriminator); a recipe entry's ``trains`` overrides it."""
    needs_input_grad: bool = False
    needs_wrong_images: bool = False
    needs_image_encoder: bool = False
    needs_discriminator: tuple[str, ...] = ()

    def forward(self, ctx: StepContext) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def after_step(self, network: nn.Module) -> None:
        """Called after each optimiser step of the network this term trains
        (e.g. WGAN weight clipping). Default: nothing."""


BASES: dict[str, type[nn.Module]] = {
    "text_encoder": TextEncoder,
    "image_encoder": ImageEncoder,
    "generator": Generator,
    "discriminator": Discriminator,
    "loss": Loss,
}
