"""Where evaluation artefacts are cached, and the keys that name them.

The real-data classifier and the reference statistics are costly to build
and depend only on the data (and the extractor), never on a run; they are
cached under the data cache (``data.cache_dir``, else ``$GANREG_CACHE``, ``$XDG_CACHE_HOME/ganreg``
or ``~/.cache/ganreg``) in ``eval/``, keyed by a hash of everything they
depend on (the data config less its path, and the data's content: :func:`data_key`),
so a change of the config or an edit of the data builds new ones, and a move does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganreg.data.config import DataConfig

EVAL_CACHE_VERSION = 5  # 3: real images un-augmented (no flip, centre crop); 4: wide grey images and EXIF orientation decoded; 5: keyed by content
"""Bump when the classifier or the statistics change meaning: old cache entries are then ignored."""

_NOT_DATA = {"num_workers", "cache_dir", "max_words", "long_captions", "min_word_count"}
"""Data-config fields that do not change the images, labels or attributes."""


def cache_root(config: DataConfig) -> Path:
    """The data cache of ``config`` (the same folder the data package uses)."""
    from ganreg.data._util import resolve_cache_dir

    return resolve_cache_dir(config.cache_dir)


def eval_cache_dir(config: DataConfig) -> Path:
    return cache_root(config) / "eval"


def short_hash(payload: Any, n: int = 16) -> str:
    """A stable hash of a JSON-able payload (sorted keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:n]


_memo: dict[str, str] | None = None


@contextlib.contextmanager
def data_keys_once() -> Iterator[None]:
    """Within it, :func:`data_key` computes each config's key once: an evaluation asks for it three or four
    times (classifier, reference statistics, protocol), and each computation lists and stats the whole dataset
    (about 0.3 s for 12k images on a local disk, far more on a network one)."""
    global _memo
    outer, _memo = _memo, ({} if _memo is None else _memo)
    try:
        yield
    finally:
        _memo = outer


def data_key(config: DataConfig) -> str:
    """Identifies the images, labels and attributes a data config yields, wherever the data lies: the config
    (less its path) and each split's content signature (:func:`ganreg.data.build.content_signatures`), so an
    image or caption edited in place is never scored against statistics of the old data."""
    from ganreg.data.build import content_signatures

    memo_key = config.model_dump_json()
    if _memo is not None and memo_key in _memo:
        return _memo[memo_key]
    dump = config.model_dump(mode="json", exclude=_NOT_DATA | {"path"})
    key = short_hash({"v": EVAL_CACHE_VERSION, "data": dump, "content": content_signatures(config)})
    if _memo is not None:
        _memo[memo_key] = key
    return key


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file: names the exact weights a number was computed with."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
