"""A resumable stream of training batches.

The order of each epoch is a permutation drawn from ``(seed, epoch)``, and
the dataset's own random choices (caption, wrong image) derive from
``(seed, epoch, index)``; so a run resumed at ``(epoch, batch)`` sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a seeded permutation, starting at a given batch (drop_last)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, self.n // self.batch_size):
            yield perm[b * self.batch_size : (b + 1) * self.batch_size]


class BatchStream:
    """Endless batches with a position ``(epoch, batch)`` that can be saved."""

    def __init__(self, dataset: Any, batch_size: int, seed: int, collate: Any, num_workers: int = 0, pin: bool = False):
        if len(dataset) < batch_size:
            from ganreg.errors import UserError

            raise UserError(
                f"the training split has {len(dataset)} images, fewer than one batch of {batch_size}",
                "lower train.batch_size or use more data",
            )
        self.dataset = dataset
        self.sampler = EpochBatchSampler(len(dataset), batch_size, seed)
        self.collate, self.num_workers, self.pin = collate, num_workers, pin
        self.epoch, self.batch = 0, 0
        self._it: Iterator[Any] | None = None

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.n // self.sampler.batch_size

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._it = None

    def _start_epoch(self) -> None:
        self.sampler.epoch, self.sampler.start = self.epoch, self.batch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            pin_memory=self.pin,
            # its own generator: creating an iterator must not draw from the
            # global RNG, or a resumed run would diverge from an uninterrupted one
            generator=torch.Generator().manual_seed(self.sampler.seed * 7919 + self.epoch),
        )
        self._it = iter(loader)

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
