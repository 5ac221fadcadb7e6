"""Batch-contrastive text matching, mode seeking and diversity-sensitive regularisation.

``contrastive`` (D) / ``contrastive_generator`` (G)
    Every (image i, caption j) pair of the batch is scored by D's own
    conditional head, ``D.logits(D.features(image_i), sentence_j)``: a
    ``[B, B]`` matrix whose diagonal holds the matching pairs. The loss is the
    cross-entropy of picking the image's own caption among the B captions.
    Trained on real images it makes D tell an image's caption from B - 1
    others (DF-GAN's rolled mismatched pair and Reed's wrong image give it one
    negative per image, and the easy ones: another colour, another place);
    the softmax puts the gradient on the hardest negatives, such as the same
    colour and place with another shape. Trained on fakes it gives G the
    image-text contrastive term of XMC-GAN (Zhang et al., CVPR 2021), scored by
    D's head instead of a separate embedding, so it adds no parameters and
    needs nothing from the discriminator beyond the interface.

``mode_seeking`` (G)
    MSGAN's regulariser (Mao et al., CVPR 2019): for one caption and two noise
    vectors, ``1 / (mean|G(z1, s) - G(z2, s)| / mean|z1 - z2| + eps)``. A
    conditional GAN that ignores its noise (GAN-INT-CLS's known collapse) pays
    for it. It runs G a second time on the same captions with fresh noise.

``diversity_sensitive`` (G)
    DSGAN's regulariser (Yang et al., ICLR 2019): G maximises, per pair,
    ``min(mean|G(z1, s) - G(z2, s)| / mean|z1 - z2|, tau)``. The same ratio as
    mode seeking, but rewarded linearly and only up to ``tau``: mode seeking's
    ``1 / ratio`` pushes hardest where G is most collapsed (its gradient grows
    as ``1 / ratio**2``) and never stops, so in a short run it buys variation
    wherever it is cheapest, such as the object's colour; a bound near the
    data's own ratio asks for no more variation than real images that fit one
    caption show.

Both regularisers can run the second G pass on the first ``samples`` items of
the batch only: its cost then shrinks in proportion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganreg.interfaces import BuildContext, Discriminator, Generator, Loss, per_image_logits
from ganreg.train.context import StepContext
from ganreg_losses.params import ContrastiveParams, DiversitySensitiveParams, ModeSeekingParams


def pair_logits(discriminator: Discriminator, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """``[B, B]``: entry ``(i, j)`` is D's conditional logit for image features ``i`` with sentence ``j``
    (a patch D's mean over its map).

    One head call on all B² pairs, or, for a D that normalises with batch statistics (StackGAN's head has a
    BatchNorm), B calls of B pairs, each every image with the captions rolled by one more: each call then
    normalises over a batch made as D's own passes are (the first is exactly D's real-pair pass), where one
    B²-pair batch, mostly mismatched, gave the diagonal other statistics than D's real pairs."""
    b = features.shape[0]
    if not uses_batch_statistics(discriminator):
        logits = discriminator.logits(features.repeat_interleave(b, dim=0), cond.repeat(b, 1))
        return per_image_logits(logits).reshape(b, b)
    rows = torch.arange(b, device=features.device)
    # by_shift[i, k]: image i with caption (i + k) % b
    by_shift = torch.stack(
        [per_image_logits(discriminator.logits(features, cond[(rows + k) % b])) for k in range(b)], dim=1
    )
    return torch.gather(by_shift, 1, (rows.unsqueeze(0) - rows.unsqueeze(1)) % b)


def matching_cross_entropy(logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy of each row picking its diagonal, fraction of rows whose best caption is their own)."""
    target = torch.arange(logits.shape[0], device=logits.device)
    scaled = logits.float() / temperature
    return F.cross_entropy(scaled, target), (scaled.argmax(1) == target).float().mean()


class Contrastive(Loss):
    """Cross-entropy over the batch's captions, scored by D's conditional head (D: real images; G: fakes)."""

    def __init__(self, network: str, temperature: float = 1.0) -> None:
        super().__init__()
        self.network = network  # type: ignore[assignment]
        self.temperature = float(temperature)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        if ctx.phase == "discriminator":
            out, cond = ctx.d_real, ctx.cond_input
        else:
            out, cond = ctx.d_fake, ctx.d_cond
        if out.features.shape[0] < 2:
            raise RuntimeError("the contrastive loss needs at least 2 images per batch (train.batch_size)")
        loss, accuracy = matching_cross_entropy(pair_logits(ctx.discriminator, out.features, cond), self.temperature)
        ctx.log("top1", accuracy)
        return loss


def second_draw(ctx: StepContext, samples: int | None, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image differences, noise differences)`` for the first ``samples`` items of the batch (all when
    None): ``G(z1, s) - G(z2, s)`` and ``z1 - z2`` in float32, with a fresh ``z2`` for the same sentences.

    ``z1`` is the step's noise and ``G(z1, s)`` its images. With an image encoder the step's ``z`` is a
    real image's latent, not a draw from the noise G is asked to vary with: both ``z1`` and ``z2`` are
    then fresh draws (one more G pass), and no gradient reaches the encoder. A generator that normalises
    with batch statistics (BatchNorm in training mode: RDB, StackGAN, DCGAN-CLS, CBN-ResNet) draws both
    images of each pair in one forward pass: from two passes over different batches the difference would
    measure the change of batch statistics too (for an RDB G about as large as a change of noise), and a
    G that ignores its noise would already score above tau. Both images are drawn under the generator's
    :meth:`~ganreg.interfaces.Generator.noise_only_from_z`: StackGAN's conditioning augmentation draws its
    own noise per image, about as large as z's effect at the start, which made the pair differ even with
    z1 = z2 (the step's images, drawn with it, are then not reused either)."""
    ctx.require_phase("generator", who)
    n = ctx.z.shape[0] if samples is None else min(samples, ctx.z.shape[0])
    cond = ctx.cond[:n].detach()
    generator = getattr(ctx.generator, "_orig_mod", ctx.generator)  # the module behind a torch.compile
    own_noise = type(generator).noise_only_from_z is not Generator.noise_only_from_z
    if ctx.image_encoder is None:
        z1 = ctx.z[:n]
    else:
        z1 = ctx.noise(n).to(device=ctx.z.device, dtype=ctx.z.dtype)
    z2 = ctx.noise(n).to(device=z1.device, dtype=z1.dtype)
    with generator.noise_only_from_z():
        if uses_batch_statistics(generator):
            first, other = ctx.generator(torch.cat([z1, z2]), torch.cat([cond, cond])).images.split(n)
        else:
            reuse = ctx.image_encoder is None and not own_noise
            first = ctx.fake[:n] if reuse else ctx.generator(z1, cond).images
            other = ctx.generator(z2, cond).images
    return first.float() - other.float(), (z1 - z2).float()


def uses_batch_statistics(module: torch.nn.Module) -> bool:
    """Whether ``module``'s output for one item depends on the other items of its batch (a BatchNorm
    in training mode, which normalises with the batch's own statistics)."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules())


class ModeSeeking(Loss):
    """MSGAN: ``1 / (mean|G(z1, s) - G(z2, s)| / mean|z1 - z2| + eps)`` over the (sub-)batch."""

    network = "generator"

    def __init__(self, eps: float = 1e-5, samples: int | None = None) -> None:
        super().__init__()
        self.eps = float(eps)
        self.samples = samples

    def forward(self, ctx: StepContext) -> torch.Tensor:
        images, noise = second_draw(ctx, self.samples, "mode_seeking")
        ratio = images.abs().mean() / noise.abs().mean()
        ctx.log("ratio", ratio)
        return 1.0 / (ratio + self.eps)


class DiversitySensitive(Loss):
    """DSGAN: ``-mean_i min(mean|G(z1_i, s_i) - G(z2_i, s_i)| / mean|z1_i - z2_i|, tau)``."""

    network = "generator"

    def __init__(self, tau: float = 0.1, samples: int | None = None) -> None:
        super().__init__()
        self.tau = float(tau)
        self.samples = samples

    def forward(self, ctx: StepContext) -> torch.Tensor:
        images, noise = second_draw(ctx, self.samples, "diversity_sensitive")
        ratio = images.abs().flatten(1).mean(1) / noise.abs().mean(1)
        ctx.log("ratio", ratio.mean())
        ctx.log("saturated", (ratio >= self.tau).float().mean())
        return -ratio.clamp(max=self.tau).mean()


def build_contrastive(params: ContrastiveParams, ctx: BuildContext) -> Contrastive:
    """Batch-contrastive text matching for D, on D's conditional head.

    Cross-entropy of each real image picking its own caption among the batch's, scored by D.logits.
    """
    return Contrastive("discriminator", params.temperature)


def build_contrastive_generator(params: ContrastiveParams, ctx: BuildContext) -> Contrastive:
    """Batch-contrastive text matching for G (XMC-GAN's image-text term, scored by D's head).

    Cross-entropy of each generated image picking its own caption among the batch's.
    """
    return Contrastive("generator", params.temperature)


def build_mode_seeking(params: ModeSeekingParams, ctx: BuildContext) -> ModeSeeking:
    """Mode-seeking regulariser (MSGAN, Mao et al. CVPR 2019).

    1 / (mean|G(z1,s) - G(z2,s)| / mean|z1 - z2| + eps): penalises a G that ignores its noise.
    """
    return ModeSeeking(params.eps, params.samples)


def build_diversity_sensitive(params: DiversitySensitiveParams, ctx: BuildContext) -> DiversitySensitive:
    """Diversity-sensitive regulariser (DSGAN, Yang et al. ICLR 2019).

    G maximises min(mean|G(z1,s) - G(z2,s)| / mean|z1 - z2|, tau) per pair: as much noise diversity as the data, no more.
    """
    return DiversitySensitive(params.tau, params.samples)
