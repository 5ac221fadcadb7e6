"""From a recipe's ``data`` section to datasets and loaders."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from ganreg.data._util import SplitMissing, check_split, mix_seed, usable_cpus
from ganreg.data.base import CaptionedImageDataset
from ganreg.data.config import DataConfig
from ganreg.data.tokenizer import Collator, Vocabulary
from ganreg.errors import DataError


def build_dataset(config: DataConfig, split: str = "train") -> CaptionedImageDataset:
    """The dataset of ``split`` ("train", "valid" or "test") described by ``config``.

    shapes has no "valid" split (its test classes are the held-out set) and
    raises :class:`DataError` for it; hdf5 has the file's splits; folder has
    the splits whose class files exist.
    """
    dataset = _build_source(config, split)
    if config.long_captions == "random":
        dataset.word_subset = config.max_words
    return dataset


def content_signatures(config: DataConfig) -> dict[str, str]:
    """Each existing split's :meth:`~ganreg.data.base.CaptionedImageDataset.content_signature`; ``{}`` for
    the shapes source, whose images follow from the config alone (and take seconds to list)."""
    if config.source == "shapes":
        return {}
    out: dict[str, str] = {"train": build_dataset(config, "train").content_signature()}
    for split in ("valid", "test"):  # optional: one that does not build (an empty HDF5 group) is keyed as such
        try:
            out[split] = build_dataset(config, split).content_signature()
        except SplitMissing:
            continue
        except DataError as exc:
            out[split] = f"unavailable: {exc.message}"
    return out


def _build_source(config: DataConfig, split: str) -> CaptionedImageDataset:
    check_split(split)
    common: dict[str, Any] = {"image_size": config.image_size, "seed": config.seed, "cache_dir": config.cache_dir}
    if config.source == "shapes":
        from ganreg.data.shapes import ShapesDataset, class_split

        classes = None
        if config.num_classes is not None or config.test_classes is not None or config.class_split == "random":
            from ganreg.data._util import choose_classes
            from ganreg.data.shapes import class_names

            names = class_names()
            train, test = class_split(config.seed)
            chosen = choose_classes(
                {"train": [names[k] for k in train], "test": [names[k] for k in test]},
                seed=config.seed,
                num_classes=config.num_classes,
                test_classes=config.test_classes,
                class_split=config.class_split,
                what="shapes",
            )
            if split in chosen:
                classes = [names.index(c) for c in chosen[split]]
        if split == "valid":
            raise SplitMissing(
                "the shapes source has no 'valid' split",
                "use 'test' (10 colour-shape classes never seen in training)",
            )
        return ShapesDataset(split, num_images=config.num_images, classes=classes, flip=config.flip, **common)
    if not config.path:
        raise DataError(f"data.path is required for source '{config.source}'", "set data.path")
    subset: dict[str, Any] = {
        "flip": config.flip,
        "random_crop": config.random_crop,
        "num_classes": config.num_classes,
        "test_classes": config.test_classes,
        "class_split": config.class_split,
    }
    if config.source == "hdf5":
        from ganreg.data.hdf5 import HDF5Dataset

        return HDF5Dataset(config.path, split, **subset, **common)
    from ganreg.data.folder import FolderDataset

    return FolderDataset(
        config.path,
        split,
        crop=config.crop,
        images_dir=config.images_dir,
        captions_dir=config.captions_dir,
        split_files=dict(config.split_files),
        **subset,
        **common,
    )


def unwrap_worker_error(exc: DataError) -> DataError:
    """A DataError raised in a DataLoader worker comes back with the worker's traceback as its
    message; recover the original message and fix (use it around any DataLoader of these datasets)."""
    text = exc.message
    name = type(exc).__name__  # DataError or a subclass (ImageDecodeError, ...), re-raised by name
    if not text.startswith(f"Caught {name}"):
        return exc
    last = text.rstrip().split(f".{name}: ")[-1]
    msg, _, fix = last.partition("\n  fix: ")
    return type(exc)(msg.strip(), fix.strip() or None)


class SeededRandomSampler(Sampler):
    """A random permutation that is a pure function of ``(seed, epoch)`` (resumable).

    ``start`` skips the first indices of the epoch's permutation: a run resumed
    in the middle of an epoch continues with exactly the items it had not seen.

    With ``world`` > 1 (data-parallel training), the permutation is cut into global batches of
    ``world * chunk`` indices (an incomplete last one is dropped), and process ``rank`` takes the
    ``rank``-th ``chunk`` of each: the processes share every batch, disjointly. ``start`` then counts
    this process's indices.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, chunk: int = 1) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.rank, self.world, self.chunk = int(rank), int(world), int(chunk)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = int(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(mix_seed("sampler", self.seed, self.epoch))
        order = torch.randperm(self.n, generator=g)
        if self.world > 1:
            span = self.world * self.chunk
            order = order[: self.n // span * span].view(-1, self.world, self.chunk)[:, self.rank].reshape(-1)
        return iter(order[self.start :].tolist())

    def __len__(self) -> int:
        if self.world > 1:
            return self.n // (self.world * self.chunk) * self.chunk - self.start
        return self.n - self.start


class DataLoaderWithErrors(DataLoader):
    """A DataLoader whose worker-side :class:`DataError` surfaces with its own message and fix, and whose
    workers leave a scheduler's SIGTERM and a terminal's Ctrl-C to the main process
    (:func:`leave_stop_signals_to_the_main_process`).

    ``set_epoch(e)`` forwards to the dataset and the sampler.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_init_fn", leave_stop_signals_to_the_main_process)
        super().__init__(*args, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        for s in (self.sampler, self.batch_sampler, getattr(self.batch_sampler, "sampler", None)):
            if s is not None and hasattr(s, "set_epoch"):
                s.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        it = super().__iter__()
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except DataError as exc:
                shutdown = getattr(it, "_shutdown_workers", None)
                if shutdown is not None:
                    shutdown()  # stop the workers now, not whenever the iterator is collected
                raise unwrap_worker_error(exc) from None
            yield batch


def leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """A loader worker leaves SIGINT and SIGTERM to the main process, unless its parent sends the SIGTERM.

    A cluster's scheduler (Slurm at the time limit or on preemption) and a terminal's Ctrl-C signal every
    process of the job. A worker killed by it made torch stop the main process at once ("DataLoader worker
    is killed by signal"), before it could finish its step and save. But the parent's own SIGTERM (torch
    ending its workers; multiprocessing at the interpreter's exit, after an exception left a loader alive)
    must still end the worker, or the process would never exit: torch's handler tells the two apart by the
    sender, and so does this one, in a thread waiting for SIGTERM with ``sigwaitinfo``. Where there is no
    ``sigwaitinfo`` (macOS, Windows) torch's handling stays."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):
        return
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # this thread's mask, inherited by later ones

    def wait_for_sigterm() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)  # as torch's handler exits when its parent asks

    threading.Thread(target=wait_for_sigterm, name="ganreg-sigterm", daemon=True).start()


def worker_count(requested: int) -> int:
    """``requested`` loader workers, at most the CPUs this process may run on: more workers than
    cores only contend (a recipe written for a GPU server still runs on a laptop)."""
    return min(int(requested), usable_cpus())


def make_loader(
    dataset: CaptionedImageDataset,
    *,
    batch_size: int,
    vocab: Vocabulary | None = None,
    max_words: int = 18,
    num_workers: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    sampler: Sampler | None = None,
    seed: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader yielding :func:`~ganreg.data.tokenizer.collate` batches.

    Call ``loader.set_epoch(e)`` before iterating epoch ``e``: it sets the
    dataset's epoch (captions, wrong images, flips) and the sampler's (the
    default shuffling sampler is :class:`SeededRandomSampler`, a pure function
    of ``(seed, epoch)``, so a resumed run sees the same order). With
    ``persistent_workers=True`` the workers keep their own dataset copies:
    pass ``sampler=EpochSampler(inner)`` so each index carries its epoch.
    ``num_workers`` is capped by :func:`worker_count`.
    """
    num_workers = worker_count(num_workers)
    if sampler is None and shuffle:
        sampler = SeededRandomSampler(len(dataset), seed)
    return DataLoaderWithErrors(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=Collator(vocab, max_words),
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        # its own generator: starting an iterator must not draw from the global
        # RNG, or a resumed run would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(mix_seed("loader", seed)),
    )
