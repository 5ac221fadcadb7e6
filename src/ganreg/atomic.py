"""Atomic writes: a file or folder appears under its name complete, or not at all.

Every file ganreg writes goes through :func:`atomic_path` (temporary name in the
same folder, then ``os.replace``), so an interrupted run, a full disk or a
crash never leaves a half-written checkpoint, recipe, cache or report behind.
Finished files get the mode a plain ``open`` would give them (``0666`` less the
umask): ``mkstemp``'s private ``0600`` would hide run directories from the rest
of a research group on a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganreg.errors import DataError, UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


class FileInTheWay(UserError, NotADirectoryError):
    """A file where a folder must be made: the user's mistake (named, exit 2) where an output goes there, and
    still an ``OSError`` for the best-effort cache writes that skip a folder they cannot make."""


def make_folder(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p path``, with a file in the way (``--out results.txt/run``) named as the user's mistake it is."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise FileInTheWay(f"{blocker} is a file, so the folder {path} cannot be made there",
                           "pick an output path whose folders are folders (or move that file)") from None
    return path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``final``'s folder; rename it to ``final`` on success.

    On any exception the temporary file is removed and ``final`` is left
    untouched. ``suffix`` goes before ``.tmp`` (for writers that look at it).
    """
    final = Path(final)
    make_folder(final.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    except BaseException:
        _remove(tmp_path)
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder; ``final`` must not exist yet (or be empty)."""
    final = Path(final)
    make_folder(final.parent)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp_path
        if final.exists():
            if final.is_dir() and not any(final.iterdir()):
                final.rmdir()
            else:
                raise DataError(f"{final} already exists", "choose another --out or remove it first")
        os.chmod(tmp_path, 0o777 & ~_umask())
        os.replace(tmp_path, final)
    except BaseException:
        _remove(tmp_path)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(binary_file)`` on a temporary file, flush it to the disk, then rename it to ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints, caches)."""
    import torch

    atomic_write_bytes(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as JSON atomically (compact unless ``indent`` is given: caches and vocabularies can be large)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")
