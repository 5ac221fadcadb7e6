"""A resumable stream of training batches.

The order of each epoch is a permutation drawn from ``(seed, epoch)``
(:class:`ganreg.data.SeededRandomSampler`), and the dataset's own random
choices (caption, crop, flip, wrong image) derive from ``(seed, epoch, index)``; so a run
resumed at ``(epoch, batch)`` sees exactly the batches an uninterrupted run
would have seen.

Images travel as uint8 (a quarter of the bytes; the trainer converts them on
the device), and loader workers are persistent: each index carries its epoch
(:class:`ganreg.data.EpochSampler`), so the workers' dataset copies never need
``set_epoch`` and are not restarted every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from ganreg.data import CaptionedImageDataset, EpochSampler, SeededRandomSampler, Vocabulary, make_loader
from ganreg.errors import UserError


def check_stream(dataset: CaptionedImageDataset, batch_size: int, world: int = 1, wrong_images: bool = False) -> None:
    """The training split can fill a batch (of every process), and has wrong images to give when a loss reads
    them: checked by ``validate`` and ``--dry-run`` too, not first found after the text encoder pretrains."""
    if len(dataset) < batch_size * world:
        per = f" ({world} processes x {batch_size})" if world > 1 else ""
        raise UserError(
            f"the training split has {len(dataset)} images, fewer than one batch of {batch_size * world}{per}",
            "lower train.batch_size or use more data",
        )
    if wrong_images and len(set(dataset.labels())) < 2:
        raise UserError(
            "a loss of the recipe reads wrong images (real images of another class), but the training split "
            "has only one class",
            "use data with at least two classes, or a loss without wrong images (e.g. wrong_weight: 0)",
        )


class BatchStream:
    """Endless batches with a position ``(epoch, batch)`` that can be saved."""

    def __init__(
        self,
        dataset: CaptionedImageDataset,
        batch_size: int,
        seed: int,
        vocab: Vocabulary,
        max_words: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        wrong_images: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        """``rank`` / ``world``: this process's share of every batch in data-parallel training (each process
        reads ``batch_size`` items of each global batch of ``world * batch_size``)."""
        check_stream(dataset, batch_size, world, wrong_images)
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.vocab, self.max_words, self.num_workers = vocab, max_words, num_workers
        self.pin_memory = pin_memory
        self.wrong_images = wrong_images
        """Batches carry ``wrong_images``; off when no loss reads them (half the decoding)."""
        self.world = world
        self.sampler = SeededRandomSampler(len(dataset), seed, rank, world, batch_size)
        self.keys = EpochSampler(self.sampler)
        self.epoch, self.batch = 0, 0
        self._loader: DataLoader | None = None
        self._it: Iterator[Any] | None = None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.dataset) // (self.batch_size * self.world)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._it = None

    def _start_epoch(self) -> None:
        if self._loader is None:
            self._loader = make_loader(
                self.dataset.view(raw_images=True, wrong_images=self.wrong_images),
                batch_size=self.batch_size,
                vocab=self.vocab,
                max_words=self.max_words,
                num_workers=self.num_workers,
                sampler=self.keys,
                seed=self.seed,
                pin_memory=self.pin_memory,
                persistent_workers=True,
            )
        self.keys.epoch = self.epoch  # not keys.set_epoch: it would forward without the resume offset
        self.sampler.set_epoch(self.epoch, start=self.batch * self.batch_size)
        self._it = iter(self._loader)

    def next(self) -> Any:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self._it = None
        if self._it is None:
            self._start_epoch()
        assert self._it is not None
        batch = next(self._it)
        self.batch += 1
        return batch
