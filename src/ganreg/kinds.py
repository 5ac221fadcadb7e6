"""The component kinds and the build context: the torch-free part of the
contracts (``ganreg.interfaces``), so that listing and validating components
never imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text_encoder", "image_encoder", "generator", "discriminator", "loss"]
KINDS: tuple[str, ...] = ("text_encoder", "image_encoder", "generator", "discriminator", "loss")
Network = Literal["generator", "discriminator"]
SECTION_KINDS: tuple[str, ...] = ("text_encoder", "image_encoder", "generator", "discriminator")
"""The kinds a recipe names at most once, each in the section of its own name (losses are a list), in build
order: the networks a run holds, each of which may load a weights file."""


@dataclass
class BuildContext:
    """What a factory may need to know about the data and the other components.

    Filled by the trainer before each component is built, in order:
    text encoder, image encoder, generator, discriminator, losses.
    """

    image_size: int = 64
    channels: int = 3
    num_classes: int = 1
    vocab_size: int = 0
    """Words in the run's vocabulary (0 when the data has no vocabulary)."""
    text_embedding_dim: int | None = None
    """Size of precomputed embeddings stored in the data (1024 for char-CNN-RNN)."""
    cond_dim: int = 0
    """Output size of the text encoder: the ``cond`` G receives. For the discriminator's factory, the size of
    the condition D receives: the generator's ``cond_used_dim`` when it hands D a condition of its own
    (StackGAN's mu), the text encoder's output size otherwise."""
    image_latent_dim: int = 0
    """Output size of the image encoder (0 when the recipe has none)."""
    attributes: dict[str, list[str]] | None = None
    """Attribute names and values when the data has them (built-in shapes)."""
