"""Pretrain a text encoder by matching captions to their images: needs no labels.

DF-GAN's text encoder is AttnGAN's DAMSM, trained to match each caption to its image. This is the
sentence half of DAMSM's loss (``words_loss`` is left out): the cosine similarity of every sentence
embedding with every image's features in the batch, scaled by gamma_3 = 10, and a softmax over the
batch's images for each caption and over its captions for each image. DAMSM's image side is an
ImageNet Inception v3, which cannot be downloaded here; a small CNN learns from scratch alongside
and is thrown away. A caption then has to say what its image shows (colour, shape, position...), on
any captioned images, with or without classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ganreg.data._util import to_unit_range
from ganreg.interfaces import TextBatch, TextEncoder
from ganreg.recipe import Recipe

if TYPE_CHECKING:
    from ganreg.train.setup import DataBundle

GAMMA3 = 10.0
"""DAMSM's sentence-loss scale (AttnGAN ``cfg.TRAIN.SMOOTH.GAMMA3``)."""
MATCH_SIZE = 32
"""Images are matched at this size (area-downsampled): colours, shapes and layout, at a CPU's pace (a
batch of 256 takes about 0.1 s on one core here, against 1.7 s at 64 px with twice the widths)."""
MATCH_WIDTH = 16
"""Channels of the CNN's first layer (doubling at each of its four)."""


class ImageFeatures(nn.Module):
    """The image side: four stride-2 convolutions, a global average and a linear map to the sentence size."""

    def __init__(self, out_dim: int, width: int = MATCH_WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for k in range(4):
            layers += [nn.Conv2d(channels, width << k, 4, 2, 1), nn.BatchNorm2d(width << k), nn.LeakyReLU(0.2)]
            channels = width << k
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images).mean(dim=(2, 3)))


def sentence_match_loss(sentences: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DAMSM's ``sent_loss`` for ``[B, D]`` sentences and image features, where row i of each belongs
    together: ``(loss, caption-to-image top-1 accuracy in the batch)``."""
    logits = GAMMA3 * F.normalize(sentences, dim=1) @ F.normalize(images, dim=1).t()
    target = torch.arange(len(logits), device=logits.device)
    loss = F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
    return loss, (logits.argmax(1) == target).float().mean()


def train_on_images(encoder: TextEncoder, recipe: Recipe, data: DataBundle, device: torch.device) -> tuple[int, float, int]:
    """Train ``encoder`` (and a throw-away :class:`ImageFeatures`) for ``pretrain.epochs`` passes over the
    training images, one caption of each per pass, drawn as the GAN draws them; stops early at
    ``pretrain.target_accuracy``. Returns ``(batches, accuracy over the last 20 batches, pairs per epoch)``."""
    from ganreg.data import make_loader

    spec = recipe.text_encoder.pretrain
    source = data.train.view(raw_images=True, wrong_images=False)
    loader = make_loader(source, batch_size=min(spec.batch_size, len(source)), vocab=data.vocab,
                         max_words=data.max_words, num_workers=data.num_workers, seed=recipe.train.seed + 3)
    side = MATCH_SIZE
    images = ImageFeatures(encoder.out_dim).to(device)
    encoder.to(device).train()
    opt = torch.optim.Adam(list(encoder.parameters()) + list(images.parameters()), lr=spec.lr)
    recent: list[float] = []
    batches = 0
    for epoch in range(spec.epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            pixels = to_unit_range(batch["images"].to(device))
            if pixels.shape[-1] != side:
                pixels = F.interpolate(pixels, size=(side, side), mode="area")
            sentences = encoder(TextBatch(tokens=batch["tokens"].to(device), lengths=batch["lengths"])).sentence
            loss, accuracy = sentence_match_loss(sentences, images(pixels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            recent = (recent + [float(accuracy)])[-20:]
            batches += 1
            if len(recent) == 20 and sum(recent) / 20 >= spec.target_accuracy:
                return batches, sum(recent) / 20, len(source)
    return batches, sum(recent) / max(len(recent), 1), len(source)
