"""Decode every image of a dataset up front (``ganreg data info PATH --check``).

Training decodes an image only when it reaches it, so a truncated JPEG, an
empty file or an HTML page saved as ``.jpg`` would otherwise stop a run hours
in. :func:`find_undecodable` decodes each image exactly as training does
(:meth:`CaptionedImageDataset._source_image`, with the full pixel data read)
and returns every failure at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from ganreg.data._util import ImageDecodeError, usable_cpus
from ganreg.errors import DataError

PARALLEL_FROM = 2000
"""Images from which :func:`find_undecodable` decodes in worker processes (below it, starting them costs more)."""
MAX_WORKERS = 4
CHUNK = 64
"""Images per task handed to a worker."""

_WORKER_DATASETS: Sequence[Any] = ()


def image_items(datasets: Sequence[Any]) -> list[tuple[int, int]]:
    """``(dataset number, item index)`` of every image to decode, each image once: a folder's train split
    read from trainvalclasses.txt holds its valid split's images too, and they are checked once."""
    seen: set[str] = set()
    out = []
    for d, ds in enumerate(datasets):
        for i in range(len(ds)):
            where = str(ds.image_path(i)) if hasattr(ds, "image_path") else ds.item_name(i)
            if where not in seen:
                seen.add(where)
                out.append((d, i))
    return out


def _problem(ds: Any, index: int) -> tuple[str, str] | None:
    """``(where, why)`` when item ``index``'s image does not decode, else None. ``where`` is the image file
    (a folder dataset) or the HDF5 group's ``img``."""
    try:
        ds._source_image(index)
    except DataError as exc:  # undecodable; or unreadable file, unreadable HDF5 group, bad bounding box, ...
        where = str(ds.image_path(index)) if hasattr(ds, "image_path") else ds.item_name(index)
        why = exc.reason if isinstance(exc, ImageDecodeError) and exc.reason else exc.message
        return where, why
    return None


def _init_worker(datasets: Sequence[Any]) -> None:
    global _WORKER_DATASETS
    _WORKER_DATASETS = datasets


def _check_chunk(chunk: list[tuple[int, int]]) -> list[tuple[str, str]]:
    out = []
    for d, i in chunk:
        p = _problem(_WORKER_DATASETS[d], i)
        if p is not None:
            out.append(p)
    return out


def default_workers(n_images: int) -> int:
    """Worker processes for ``n_images``: none for a small set, else up to :data:`MAX_WORKERS`, at most the
    CPUs this process may use."""
    if n_images < PARALLEL_FROM:
        return 0
    return max(0, min(MAX_WORKERS, usable_cpus()))


def _chunks(items: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def find_undecodable(
    datasets: Sequence[Any],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, list[tuple[str, str]]]:
    """Decode every image of ``datasets`` (each image once); returns ``(images checked, [(where, why),
    ...])`` with every image that does not decode, in dataset order.

    ``workers``: processes to decode in (None: :func:`default_workers`; 0 or 1: this process).
    ``progress(k)`` is called after each ``k`` more images.
    """
    items = image_items(datasets)
    if workers is None:
        workers = default_workers(len(items))
    if workers <= 1:
        _init_worker(datasets)
        problems: list[tuple[str, str]] = []
        try:
            for chunk in _chunks(items):
                problems += _check_chunk(chunk)
                if progress is not None:
                    progress(len(chunk))
        finally:
            _init_worker(())
        return len(items), problems
    found: dict[int, list[tuple[str, str]]] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(list(datasets),)) as pool:
        pending: dict[Future, tuple[int, int]] = {}
        try:
            for n, chunk in enumerate(_chunks(items)):
                pending[pool.submit(_check_chunk, chunk)] = (n, len(chunk))
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    n, size = pending.pop(fut)
                    found[n] = fut.result()
                    if progress is not None:
                        progress(size)
        except BaseException:  # Ctrl-C or a worker that died: do not wait for the queued chunks
            for fut in pending:
                fut.cancel()
            raise
    return len(items), [p for n in sorted(found) for p in found[n]]
