"""Word-level tokenizer, vocabulary and the batch collator.

Tokenisation follows DF-GAN (``code/lib/datasets.py``): the
``"\\ufffd\\ufffd"`` pairs of broken CUB captions become a space and the
lower-cased text is split by ``\\w+`` (Unicode word characters). DF-GAN then
keeps each word's ASCII characters only, which turned "très" into "trs" and a
Russian caption into nothing; ganreg's own vocabularies keep the words whole
(in NFC, with their combining marks: :func:`tokenize`), and only a DAMSM vocabulary (and a vocab.json written before, format version 1)
tokenises the ASCII way, so that its word ids match. Differences, on purpose:

* index 0 is ``<pad>`` and 1 is ``<unk>`` (DF-GAN: 0 = ``<end>``, no unknown);
  a vocabulary read from DF-GAN / AttnGAN's ``captions_DAMSM.pickle`` keeps
  their ids instead (0 = ``<end>``, unknown words dropped, as their sampling
  code drops them), so their DAMSM text encoder loads unchanged;
* a caption longer than ``max_words`` keeps its FIRST ``max_words`` words, so a
  batch is a pure function of the captions (DF-GAN keeps a random ordered
  subset: ``data.long_captions: "random"`` has the dataset draw it first);
* an empty caption encodes as one ``<unk>``, so every length is >= 1 (packed
  LSTMs need it).
"""

from __future__ import annotations

import json
import os
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ganreg.errors import DataError

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
_WORD = re.compile(r"\w+")


def tokenize(text: str, ascii_only: bool = False) -> list[str]:
    """Lower-case words of ``text``: runs of letters, digits, combining marks and ``_``, in NFC (so that "très"
    typed as e + combining grave is the same word, and Devanagari's vowel signs stay inside their words).
    ``ascii_only``: DF-GAN's split (``\\w+``, then each word's ASCII characters, empty words dropped), what a
    DAMSM vocabulary's word ids need."""
    text = text.replace("\ufffd\ufffd", " ").lower()
    if ascii_only:
        return [a for a in (w.encode("ascii", "ignore").decode("ascii") for w in _WORD.findall(text)) if a]
    if text.isascii():
        return _WORD.findall(text)
    words, word = [], []
    for ch in unicodedata.normalize("NFC", text):
        if ch == "_" or unicodedata.category(ch)[0] in "LNM":
            word.append(ch)
        elif word:
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return words


def ordered_word_subset(caption: str, n: int, rng: random.Random) -> str:
    """``caption`` as at most ``n`` of its words: all of them, or a random subset in their order
    (DF-GAN / AttnGAN's ``get_caption``, which trains on long captions this way)."""
    words = tokenize(caption)
    if len(words) <= n:
        return caption
    return " ".join(words[i] for i in sorted(rng.sample(range(len(words)), n)))


class Vocabulary:
    """Word <-> id; id 0 pads.

    ``unknown="unk"`` (ganreg's own): ids 0 and 1 are ``<pad>`` and ``<unk>``,
    and unknown words map to 1. ``unknown="drop"`` (DAMSM's): ``words[0]`` is
    the padding word (``<end>``) and unknown words are left out. ``ascii_only``:
    captions are tokenised DF-GAN's way (:func:`tokenize`).
    """

    def __init__(self, words: Sequence[str], unknown: str = "unk", ascii_only: bool = False) -> None:
        words = list(words)
        if unknown == "unk":
            if words[:2] != [PAD, UNK]:
                words = [PAD, UNK] + [w for w in words if w not in (PAD, UNK)]
        elif unknown != "drop" or not words:
            raise DataError(f"bad vocabulary (unknown={unknown!r}, {len(words)} words)", "rebuild the vocabulary")
        self.words: list[str] = words
        self.unknown = unknown
        self.ascii_only = ascii_only
        self.index: dict[str, int] = {w: i for i, w in enumerate(words)}
        if len(self.index) != len(words):
            raise DataError("vocabulary has duplicate words", "rebuild the vocabulary")

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts: Counter[str] = Counter()
        for c in captions:
            counts.update(tokenize(c))  # whole Unicode words
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vocabulary) and self.words == other.words and self.unknown == other.unknown
                and self.ascii_only == other.ascii_only)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` this vocabulary does not know (they become ``<unk>``, or are dropped), as the
        user wrote them: "ünïcödé" is reported as such, not as the "ncd" that tokenizing leaves of it."""
        out = []
        for written in tokenize(text):
            words = tokenize(written, self.ascii_only)
            if not words or any(w not in self.index for w in words):
                out.append(written)
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of the words of ``text`` (unknown words -> 1, or left out); empty text -> ``[]``."""
        if self.unknown == "drop":
            return [i for i in (self.index.get(w) for w in tokenize(text, self.ascii_only)) if i is not None]
        return [self.index.get(w, UNK_ID) for w in tokenize(text, self.ascii_only)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in ids if i != PAD_ID)

    def encode_batch(self, texts: Sequence[str], max_words: int = 18) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens [B, T] int64, lengths [B] int64)``, 0-padded, T = min(max_words, longest).

        Longer captions keep their first ``max_words`` words; empty ones become
        one ``<unk>`` (one padding word when unknown words are dropped): length 1.
        """
        if max_words < 1:
            raise ValueError("max_words must be >= 1")
        if isinstance(texts, str):  # a str is a sequence too: each letter would be a caption
            raise TypeError(f"texts must be a list of captions, not one string: give [{texts!r}]")
        empty = [UNK_ID] if self.unknown == "unk" else [PAD_ID]
        seqs = [(self.encode(t) or empty)[:max_words] for t in texts]
        width = max((len(s) for s in seqs), default=1)
        tokens = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            tokens[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        return tokens, lengths

    def to_dict(self) -> dict[str, Any]:
        return {"format": "ganreg-vocabulary", "version": 2, "words": self.words, "unknown": self.unknown,
                "ascii_only": self.ascii_only}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as JSON (atomically)."""
        from ganreg.atomic import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"vocabulary file not found: {p}", "check the path (runs keep it as vocab.json)") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read vocabulary {p}: {exc}", "restore or rebuild the file") from None
        words = data.get("words") if isinstance(data, dict) else None
        unknown = data.get("unknown", "unk") if isinstance(data, dict) else None
        ok = isinstance(words, list) and len(words) > 0 and all(isinstance(w, str) for w in words)
        if not ok or unknown not in ("unk", "drop") or (unknown == "unk" and words[:2] != [PAD, UNK]):
            raise DataError(f"{p} is not a ganreg vocabulary", "rebuild it (Vocabulary.build(...).save(path))")
        # version 1 files (no "ascii_only") were built from ASCII-filtered words: their runs keep tokenising so
        ascii_only = data.get("ascii_only", True)
        if not isinstance(ascii_only, bool):
            raise DataError(f"{p} is not a ganreg vocabulary", "rebuild it (Vocabulary.build(...).save(path))")
        return cls(words, unknown=unknown, ascii_only=ascii_only)

    @classmethod
    def from_damsm_pickle(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """The vocabulary of DF-GAN / AttnGAN's ``captions_DAMSM.pickle`` (``[train captions, test
        captions, ixtoword, wordtoix]``), with its ids: what their pretrained DAMSM encoder was trained on.

        Read without running code: only plain lists, dicts, ints and strings are accepted."""
        from ganreg.data._util import load_plain_pickle

        p = Path(path)
        fix = ("set text_encoder.vocabulary to the captions_DAMSM.pickle that came with the DAMSM weights "
               "(DF-GAN's data/<dataset>/)")
        data = load_plain_pickle(p, "captions_DAMSM.pickle", fix)
        ixtoword = data[2] if isinstance(data, (list, tuple)) and len(data) >= 4 else None
        if not isinstance(ixtoword, dict) or not all(isinstance(k, int) and isinstance(w, str) for k, w in ixtoword.items()):
            raise DataError(f"{p} is not a captions_DAMSM.pickle ([train, test, ixtoword, wordtoix])", fix)
        if sorted(ixtoword) != list(range(len(ixtoword))):
            raise DataError(f"{p}: the word ids of ixtoword are not 0..{len(ixtoword) - 1}", fix)
        return cls([ixtoword[i] for i in range(len(ixtoword))], unknown="drop", ascii_only=True)


def collate(samples: Sequence[dict[str, Any]], vocab: Vocabulary | None, max_words: int = 18) -> dict[str, Any]:
    """Stack dataset items into a batch dict.

    Keys: ``captions`` (list[str]); ``tokens`` ``[B, T]`` and ``lengths`` ``[B]``
    (when a vocabulary is given); ``labels`` ``[B]``; ``index`` ``[B]``; and, when
    the items have them, ``images`` ``[B, 3, S, S]``, ``wrong_images`` (same) with
    ``wrong_labels`` ``[B]`` (their classes), ``embeddings`` ``[B, E]`` and
    ``attributes`` ``[B, A]``.
    """
    batch: dict[str, Any] = {
        "captions": [s["caption"] for s in samples],
        "labels": torch.tensor([int(s["label"]) for s in samples], dtype=torch.long),
        "index": torch.tensor([int(s["index"]) for s in samples], dtype=torch.long),
    }
    if samples and "image" in samples[0]:
        batch["images"] = torch.stack([s["image"] for s in samples])
    if samples and "wrong_image" in samples[0]:
        batch["wrong_images"] = torch.stack([s["wrong_image"] for s in samples])
        batch["wrong_labels"] = torch.tensor([int(s["wrong_label"]) for s in samples], dtype=torch.long)
    if vocab is not None:
        batch["tokens"], batch["lengths"] = vocab.encode_batch(batch["captions"], max_words)
    if samples and "embedding" in samples[0]:
        batch["embeddings"] = torch.stack([s["embedding"] for s in samples])
    if samples and "attributes" in samples[0]:
        batch["attributes"] = torch.stack([s["attributes"] for s in samples])
    return batch


class Collator:
    """Picklable ``collate_fn`` for DataLoaders (works with worker processes)."""

    def __init__(self, vocab: Vocabulary | None, max_words: int = 18) -> None:
        self.vocab = vocab
        self.max_words = int(max_words)

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return collate(samples, self.vocab, self.max_words)
