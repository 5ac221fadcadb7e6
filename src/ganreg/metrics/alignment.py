"""Text-image alignment: does the generated image show what its caption says?

The real-data classifier reads each generated image; the score is how often
its reading matches the caption: the caption's class (any dataset with
classes) and, for data with attributes (the built-in shapes), each attribute
(colour, shape, size, position) separately.

Chance is what an image unrelated to its caption would score: the
probability that two independent draws from the evaluated captions' targets
agree, ``sum_v p(v)^2`` (a generator that ignores the text, or real images
paired with shuffled captions). The classifier's accuracy on held-out real
images is the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganreg.metrics.classifier import CLASS_HEAD

ALIGN = "align"
"""Metric name of the class accuracy; attribute accuracies are ``align_<attribute>``."""


def metric_name(head: str) -> str:
    return ALIGN if head == CLASS_HEAD else f"{ALIGN}_{head}"


@dataclass
class AlignmentResult:
    accuracy: dict[str, float]
    """metric name (``align``, ``align_colour``, ...) -> fraction correct."""
    chance: dict[str, float]
    samples: int


class AlignmentMeter:
    """Accumulates the classifier's predictions against the captions' targets."""

    def __init__(self, head_sizes: dict[str, int]) -> None:
        self.heads = list(head_sizes)
        self.attribute_heads = [h for h in self.heads if h != CLASS_HEAD]
        self.correct = {h: 0 for h in self.heads}
        self.hist = {h: torch.zeros(k, dtype=torch.long) for h, k in head_sizes.items()}
        self.n = 0

    def update(self, logits: dict[str, torch.Tensor], labels: torch.Tensor, attributes: torch.Tensor | None) -> None:
        targets = {CLASS_HEAD: labels.cpu()}
        if attributes is not None:
            for j, head in enumerate(self.attribute_heads):
                targets[head] = attributes[:, j].cpu()
        for head, target in targets.items():
            pred = logits[head].argmax(1).cpu()
            self.correct[head] += int((pred == target).sum())
            self.hist[head] += torch.bincount(target, minlength=self.hist[head].numel())[: self.hist[head].numel()]
        self.n += int(labels.shape[0])

    def result(self) -> AlignmentResult:
        acc: dict[str, float] = {}
        chance: dict[str, float] = {}
        for head in self.heads:
            total = int(self.hist[head].sum())
            if total == 0:
                continue  # no targets for this head (data without attributes)
            p = self.hist[head].double() / total
            acc[metric_name(head)] = self.correct[head] / total
            chance[metric_name(head)] = float((p * p).sum())
        return AlignmentResult(acc, chance, self.n)
