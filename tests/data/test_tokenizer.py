"""Tokenizer, vocabulary and collator."""

from __future__ import annotations

import pickle

import pytest
import torch

from ganreg.data import Collator, Vocabulary, collate, tokenize
from ganreg.data.tokenizer import PAD_ID, UNK_ID
from ganreg.errors import DataError

CAPS = [
    "This flower has WHITE petals, and a yellow center.",
    "the petals are white; the center is yellow",
    "a bird with a red head",
]


def test_tokenize_like_dfgan() -> None:
    assert tokenize("This flower has WHITE petals, and a yellow-ish center.\n") == [
        "this",
        "flower",
        "has",
        "white",
        "petals",
        "and",
        "a",
        "yellow",
        "ish",
        "center",
    ]
    assert tokenize("café naïve 2 birds_x", ascii_only=True) == ["caf", "nave", "2", "birds_x"]  # DF-GAN's way
    assert tokenize("") == [] and tokenize(" ,. ") == []


def test_words_beyond_ascii_are_kept_whole() -> None:
    """DF-GAN's ASCII filter made "très" "trs" and a Russian caption nothing (one <unk>): ganreg's own
    vocabularies keep the words; a DAMSM vocabulary and a version-1 vocab.json keep the old tokenisation."""
    caps = ["un cercle rouge très grand", "красный квадрат", "a naïve café"]
    assert tokenize(caps[1]) == ["красный", "квадрат"]
    assert tokenize("हिन्दी पक्षी") == ["हिन्दी", "पक्षी"]  # vowel signs are combining marks, inside the word
    assert tokenize("tre\u0300s grand") == ["très", "grand"]  # NFD input: one word, the NFC one
    v = Vocabulary.build(caps)
    assert {"très", "красный", "квадрат", "naïve", "café"} <= set(v.words) and not v.ascii_only
    assert UNK_ID not in v.encode(caps[1]) and v.decode(v.encode(caps[0])) == caps[0]
    assert v.unknown_words("un carré rouge") == ["carré"]
    old = Vocabulary(["<pad>", "<unk>", "trs", "caf"], ascii_only=True)  # a run trained before keeps its ids
    assert old.encode("très café") == [2, 3] and old.unknown_words("très café crème") == ["crème"]


def test_build_and_round_trip() -> None:
    v = Vocabulary.build(CAPS)
    assert v.words[:2] == ["<pad>", "<unk>"]
    assert v.words[2] == "a"  # most frequent first (3 times)
    ids = v.encode(CAPS[1])
    assert all(i >= 2 for i in ids)
    assert v.decode(ids) == " ".join(tokenize(CAPS[1]))
    assert v.encode("a purple zebra") == [v.index["a"], UNK_ID, UNK_ID]
    rare = Vocabulary.build(CAPS, min_count=2)
    assert "bird" not in rare and "petals" in rare
    assert rare.encode("bird")[0] == UNK_ID


def test_encode_batch_pads_truncates_and_never_empty() -> None:
    v = Vocabulary.build(CAPS)
    tokens, lengths = v.encode_batch(["a red head", "", CAPS[0]], max_words=5)
    assert tokens.dtype == torch.long and lengths.dtype == torch.long
    assert tokens.shape == (3, 5)
    assert lengths.tolist() == [3, 1, 5]
    assert tokens[0, 3:].tolist() == [PAD_ID, PAD_ID]
    assert tokens[1].tolist() == [UNK_ID, 0, 0, 0, 0]
    assert tokens[2].tolist() == v.encode(CAPS[0])[:5]  # first max_words words
    short, short_len = v.encode_batch(["a red head", "a bird"], max_words=18)
    assert short.shape == (2, 3) and short_len.tolist() == [3, 2]  # T = longest when shorter than max


def test_save_load(tmp_path) -> None:
    v = Vocabulary.build(CAPS)
    v.save(tmp_path / "vocab.json")
    w = Vocabulary.load(tmp_path / "vocab.json")
    assert w == v and w.encode(CAPS[0]) == v.encode(CAPS[0])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"words": ["x"]}')
    with pytest.raises(DataError, match="not a ganreg vocabulary"):
        Vocabulary.load(tmp_path / "other.json")
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    # a vocab.json of format version 1 (no "ascii_only") was built from ASCII-filtered words: read as such
    (tmp_path / "v1.json").write_text('{"format": "ganreg-vocabulary", "version": 1, "words": ["<pad>", "<unk>", "trs"], "unknown": "unk"}')
    assert Vocabulary.load(tmp_path / "v1.json").encode("très") == [2]
    assert Vocabulary.load(tmp_path / "vocab.json").ascii_only is False


def _sample(i: int, caption: str, emb: bool = False) -> dict:
    s = {
        "image": torch.full((3, 8, 8), float(i) / 10),
        "wrong_image": torch.zeros(3, 8, 8),
        "caption": caption,
        "label": i,
        "wrong_label": i + 1,
        "index": i,
        "attributes": torch.tensor([i, 0, 1, 2]),
    }
    if emb:
        s["embedding"] = torch.ones(16) * i
    return s


def test_collate_and_picklable_collator() -> None:
    v = Vocabulary.build(CAPS)
    samples = [_sample(i, c, emb=True) for i, c in enumerate(CAPS)]
    batch = collate(samples, v, max_words=4)
    assert batch["images"].shape == (3, 3, 8, 8) and batch["wrong_images"].shape == (3, 3, 8, 8)
    assert batch["tokens"].shape == (3, 4) and batch["lengths"].tolist() == [4, 4, 4]
    assert batch["captions"] == CAPS
    assert batch["labels"].tolist() == [0, 1, 2] and batch["wrong_labels"].tolist() == [1, 2, 3]
    assert batch["embeddings"].shape == (3, 16) and batch["attributes"].shape == (3, 4)
    assert batch["index"].tolist() == [0, 1, 2]
    c = pickle.loads(pickle.dumps(Collator(v, 4)))
    again = c(samples)
    assert torch.equal(again["tokens"], batch["tokens"])
    plain = collate([_sample(0, "x")], None)
    assert "tokens" not in plain and "embeddings" not in plain


def test_tokenize_splits_like_dfgan_before_dropping_non_ascii() -> None:
    """DF-GAN: "\\ufffd\\ufffd" -> space, \\w+ on the lower-cased text, then each word keeps its ASCII
    characters; dropping non-ASCII first would glue words ("blackwhite") that DAMSM's vocabulary lacks."""
    from ganreg.data.tokenizer import tokenize

    assert tokenize("This bird\ufffd\ufffds wings are BLACK\u2014white, caf\u00e9 \u00e9", ascii_only=True) == [
        "this", "bird", "s", "wings", "are", "black", "white", "caf",
    ]


def test_unknown_words_are_reported_as_written() -> None:
    from ganreg.data import Vocabulary

    vocab = Vocabulary.build(["a red flower", "a blue star"])
    assert vocab.unknown_words("A RED flower") == []
    assert vocab.unknown_words("a ünïcödé flower with 日本 petals") == ["ünïcödé", "with", "日本", "petals"]
