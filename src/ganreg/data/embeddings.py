"""Deterministic stand-in caption embeddings for HDF5 files written by ganreg.

The seed projects store a 1024-d char-CNN-RNN embedding per caption (Reed et
al.); that encoder is not available here. Files written by ``ganreg data make``
instead hold a fixed random projection of the caption's bag of words: every
word gets a fixed N(0, 1) vector (seeded by the word's hash, the same in every
run and on every machine) and a caption's embedding is their sum, rescaled to
unit RMS. Captions that share words get similar embeddings; word order is
ignored. They are good enough to train the precomputed-embedding models and
test pipelines, not a replacement for char-CNN-RNN features.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from ganreg.data.tokenizer import tokenize

EMBEDDING_DIM = 1024


@lru_cache(maxsize=65536)
def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(f"ganreg-bow:{word}".encode(), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    v.setflags(write=False)
    return v


def caption_embedding(text: str, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """float32 ``[dim]``: the bag-of-words random projection of ``text`` (unit RMS)."""
    words = tokenize(text) or ["<unk>"]
    e = np.zeros(dim, dtype=np.float32)
    for w in words:
        e += _word_vector(w, dim)
    rms = float(np.sqrt(np.mean(e * e)))
    return e / rms if rms > 0 else e
