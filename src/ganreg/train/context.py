"""The per-step context that losses read from.

Losses differ in what they need (D on real pairs, on fakes, on mismatched
pairs, gradients w.r.t. D's inputs, G's auxiliary terms, intermediate
features). The context computes each forward pass on demand, at most once per
step, and caches it, so a new loss needs no trainer change and a recipe that
does not use a pass never pays for it.

Phases: in the ``"discriminator"`` phase the generator runs under
``no_grad`` (its output is detached); in the ``"generator"`` phase D's
parameters are frozen by the trainer and ``fake`` carries G's graph. With
``keep_g_graph`` the D phase records G's graph (``fake`` is still detached
there) so that :meth:`StepContext.for_generator` can hand the same images to
G's step without a second forward.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Literal

import torch

from ganreg.interfaces import (
    Discriminator,
    DiscriminatorOutput,
    Generator,
    GeneratorOutput,
    ImageEncoder,
    ImageEncoderOutput,
    TextBatch,
)

Phase = Literal["discriminator", "generator"]


class StepContext:
    """Lazily computed forward passes of one training (micro-)step."""

    def __init__(
        self,
        *,
        phase: Phase,
        generator: Generator,
        discriminator: Discriminator,
        real: torch.Tensor,
        cond: torch.Tensor,
        z: torch.Tensor,
        text: TextBatch | None = None,
        wrong: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        words: torch.Tensor | None = None,
        input_grad: bool = False,
        sample_noise: Callable[[int], torch.Tensor] | None = None,
        keep_g_graph: bool = False,
        image_encoder: ImageEncoder | None = None,
        first_order_discriminator: Callable[[torch.Tensor, torch.Tensor], DiscriminatorOutput] | None = None,
    ) -> None:
        self.phase: Phase = phase
        self.generator = generator
        self.discriminator = discriminator
        """D itself: what a loss calls for a pass of its own. Eager, so a gradient penalty can differentiate
        its input gradient again."""
        self.first_order_discriminator = discriminator if first_order_discriminator is None else first_order_discriminator
        """D for the context's passes whose gradient is not differentiated again (fakes, mismatched images,
        real images without a penalty): a ``torch.compile`` of D with ``train.compile_discriminator``, which
        does not support double backward."""
        self.real = real
        """Real images ``[B, 3, H, W]`` in [-1, 1]."""
        self.cond = cond
        """Sentence embeddings of the real captions ``[B, D]``. Carries the text
        encoder's graph in the D phase when the encoder trains jointly."""
        self._noise_z = z
        self.image_encoder = image_encoder
        self.text = text
        self.wrong = wrong
        """Real images from another class than ``real`` (matching-aware loss)."""
        self.labels = labels
        self.words = words
        self.input_grad = input_grad
        self._sample_noise = sample_noise
        self.keep_g_graph = keep_g_graph
        self.logs: dict[str, torch.Tensor] = {}

    def for_generator(self) -> StepContext:
        """The generator phase's context for the same batch, noise and (if already computed) generated images.

        D's passes are not carried over: D has just been updated, and G's step must see the new D."""
        ctx = StepContext(
            phase="generator",
            generator=self.generator,
            discriminator=self.discriminator,
            real=self.real,
            cond=self.cond.detach(),
            z=self._noise_z,
            text=self.text,
            wrong=self.wrong,
            labels=self.labels,
            words=self.words.detach() if self.words is not None else None,
            sample_noise=self._sample_noise,
            image_encoder=self.image_encoder,
            first_order_discriminator=self.first_order_discriminator,
        )
        if "g_out" in self.__dict__:
            if not self.keep_g_graph:
                raise RuntimeError("for_generator() needs the D phase's context built with keep_g_graph=True")
            for key in ("e_out", "z", "g_out"):  # the images and the latents they were drawn from, with their graphs
                if key in self.__dict__:
                    ctx.__dict__[key] = self.__dict__[key]
        return ctx

    # ------------------------------------------------------------- image encoder
    @cached_property
    def e_out(self) -> ImageEncoderOutput | None:
        """The image encoder on the real images (None without one); trains with G, so it runs without
        a graph in the D phase, as G does."""
        if self.image_encoder is None:
            return None
        if self.phase == "discriminator" and not self.keep_g_graph:
            with torch.no_grad():
                return self.image_encoder(self.real)
        return self.image_encoder(self.real)

    @cached_property
    def z(self) -> torch.Tensor:
        """G's input: fresh noise, or with an image encoder each real image's latent (cVAE-GAN)."""
        if self.e_out is None:
            return self._noise_z
        return self.e_out.latent.to(self._noise_z.dtype)

    @property
    def e_aux(self) -> dict[str, torch.Tensor]:
        """The image encoder's auxiliary terms (its ``"kl"``); raises without an image encoder."""
        if self.e_out is None:
            raise RuntimeError("this loss reads the image encoder's terms, and the recipe has no image_encoder")
        return self.e_out.aux

    # ----------------------------------------------------------------- generator
    @cached_property
    def g_out(self) -> GeneratorOutput:
        """G(z, cond). G never back-propagates into the text encoder."""
        cond = self.cond.detach()
        if self.phase == "discriminator" and not self.keep_g_graph:
            with torch.no_grad():
                return self.generator(self.z, cond)
        return self.generator(self.z, cond)

    @property
    def fake(self) -> torch.Tensor:
        """Generated images ``[B, 3, H, W]``; detached in the D phase."""
        images = self.g_out.images
        return images.detach() if self.phase == "discriminator" else images

    @property
    def g_aux(self) -> dict[str, torch.Tensor]:
        return self.g_out.aux

    def noise(self, batch: int) -> torch.Tensor:
        """Fresh noise from the run's generator of random numbers (also with an image encoder: a second draw)."""
        if self._sample_noise is None:
            z = self._noise_z
            return torch.randn(batch, z.shape[1], device=z.device, dtype=z.dtype)
        return self._sample_noise(batch)

    # ------------------------------------------------------------- discriminator
    @cached_property
    def d_cond(self) -> torch.Tensor:
        """The condition D sees: G's ``cond_used`` (detached) when G transforms
        the text (StackGAN's mu), else the sentence embedding itself."""
        used = self.g_out.cond_used
        if used is not None:
            return used.detach()
        return self.cond

    @cached_property
    def real_input(self) -> torch.Tensor:
        """The real images D saw; requires grad when a loss needs it (MA-GP, R1)."""
        if self.input_grad:
            return self.real.detach().requires_grad_(True)
        return self.real

    @cached_property
    def cond_input(self) -> torch.Tensor:
        """The condition D saw on real pairs; requires grad when a loss needs it. A condition that already
        requires grad (a text encoder trained jointly with D) is kept in its graph: the penalty takes its
        gradient all the same, and the real-pair terms still reach the encoder."""
        c = self.d_cond
        if self.input_grad and not c.requires_grad:
            return c.detach().requires_grad_(True)
        return c

    @cached_property
    def d_real(self) -> DiscriminatorOutput:
        """D on (real image, matching text); eager when a loss takes the gradient of its inputs."""
        d = self.discriminator if self.input_grad else self.first_order_discriminator
        return d(self.real_input, self.cond_input)

    @cached_property
    def d_fake(self) -> DiscriminatorOutput:
        """D on (generated image, its text)."""
        return self.first_order_discriminator(self.fake, self.d_cond)

    @cached_property
    def d_wrong(self) -> DiscriminatorOutput:
        """D on (real image of another class, this text)."""
        if self.wrong is None:
            raise RuntimeError(
                "this loss reads ctx.d_wrong but does not declare needs_wrong_images = True, so the batch has no "
                "mismatched ('wrong') images"
            )
        return self.first_order_discriminator(self.wrong, self.d_cond)

    @cached_property
    def d_mismatch_logits(self) -> torch.Tensor:
        """D's logits for real features rolled by one within the batch, paired
        with the original text (DF-GAN's mismatched pairs): ``[B]``, or ``[B, ...]`` for a D with several logits per image."""
        feats = self.d_real.features
        rolled = torch.cat([feats[1:], feats[:1]], dim=0)
        return self.discriminator.logits(rolled, self.d_cond)

    def require_phase(self, phase: Phase, who: str) -> None:
        """Refuse to run ``who`` in the other network's step (a recipe's ``"trains"`` set to the other
        network): a generator term run in D's step would train D to call fakes real, on detached images."""
        if self.phase != phase:
            other = "discriminator" if phase == "generator" else "generator"
            raise RuntimeError(f'{who} trains the {phase} (drop "trains": "{other}")')

    # -------------------------------------------------------------------- logging
    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Record an extra scalar (logged to metrics.jsonl under the loss's name)."""
        self.logs[name] = value.detach().float().clone() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
