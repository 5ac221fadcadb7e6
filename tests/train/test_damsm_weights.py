"""DF-GAN / AttnGAN's pretrained DAMSM text encoder: its weights (text_encoder200.pth) and its vocabulary
(captions_DAMSM.pickle) load into the `lstm` encoder and give the sentence embeddings the original computes."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ganreg.data import Vocabulary
from ganreg.errors import DataError, UserError
from ganreg.text_encoders.lstm import LSTMTextEncoder
from ganreg.text_encoders.params import LSTMParams
from ganreg.train.setup import read_vocabulary
from ganreg.train.weights import load_weights

TRAIN = ["this bird has a red crown and black wings", "a small yellow bird with a short beak",
         "the bird is blue with white belly and long tail feathers"]
TEST = ["a large grey bird with a hooked beak", "red bird, black wings!"]


class ReferenceRNNEncoder(nn.Module):
    """DF-GAN's RNN_ENCODER (reference §2.4) written from the spec: Embedding 'encoder' (ntoken, 300),
    dropout, LSTM 'rnn' (300 -> 128, bidirectional) over length-sorted packed sequences from zero states;
    sentence = final hidden states of both directions, [B, 256]."""

    def __init__(self, ntoken: int) -> None:
        super().__init__()
        self.encoder = nn.Embedding(ntoken, 300)
        self.drop = nn.Dropout(0.5)
        self.rnn = nn.LSTM(300, 128, 1, batch_first=True, bidirectional=True)
        self.encoder.weight.data.uniform_(-0.1, 0.1)

    def forward(self, captions: list[list[int]]) -> torch.Tensor:
        order = sorted(range(len(captions)), key=lambda i: -len(captions[i]))  # the originals sort, then unsort
        lens = [len(captions[i]) for i in order]
        tokens = torch.zeros(len(captions), max(lens), dtype=torch.long)
        for row, i in enumerate(order):
            tokens[row, : lens[row]] = torch.tensor(captions[i])
        h0 = torch.zeros(2, len(captions), 128)
        _, (h, _) = self.rnn(pack_padded_sequence(self.drop(self.encoder(tokens)), lens, batch_first=True), (h0, h0))
        sent = h.transpose(0, 1).contiguous().view(-1, 256)
        out = torch.empty_like(sent)
        out[torch.tensor(order)] = sent
        return out


@pytest.fixture
def damsm(tmp_path: Path, damsm_pickle):  # type: ignore[no-untyped-def]
    wordtoix = damsm_pickle(tmp_path / "captions_DAMSM.pickle", TRAIN, TEST)
    torch.manual_seed(0)
    ref = ReferenceRNNEncoder(len(wordtoix)).eval()
    torch.save(ref.state_dict(), tmp_path / "text_encoder200.pth")
    return tmp_path, ref, wordtoix


def _ours(path: Path, captions: list[str]) -> tuple[LSTMTextEncoder, Vocabulary]:
    vocab = read_vocabulary(path / "captions_DAMSM.pickle", captions)
    enc = LSTMTextEncoder(len(vocab), LSTMParams(embedding_dim=300, hidden=256, dropout=0.5))
    load_weights(enc, path / "text_encoder200.pth", "text_encoder")
    return enc.eval(), vocab


def _sentences(enc: LSTMTextEncoder, vocab: Vocabulary, captions: list[str]) -> torch.Tensor:
    from ganreg.interfaces import TextBatch

    tokens, lengths = vocab.encode_batch(captions, max_words=18)
    with torch.no_grad():
        return enc(TextBatch(tokens=tokens, lengths=lengths)).sentence


def test_damsm_weights_and_vocabulary_give_the_original_sentence_embeddings(damsm) -> None:  # type: ignore[no-untyped-def]
    path, ref, wordtoix = damsm
    enc, vocab = _ours(path, TRAIN)
    assert vocab.unknown == "drop" and vocab.words[0] == "<end>" and len(vocab) == len(wordtoix)
    assert all(vocab.index[w] == i for w, i in wordtoix.items())  # the original's ids, unchanged
    captions = TRAIN + TEST
    ids = [[wordtoix[w] for w in re.findall(r"\w+", c.lower())] for c in captions]
    with torch.no_grad():
        expected = ref(ids)
    torch.testing.assert_close(_sentences(enc, vocab, captions), expected, rtol=1e-5, atol=1e-6)
    # unknown words are left out, as DF-GAN's sampling code leaves them out
    torch.testing.assert_close(
        _sentences(enc, vocab, ["a small zzyzx yellow bird"]), _sentences(enc, vocab, ["a small yellow bird"])
    )


def test_the_vocabulary_survives_a_run_directory(damsm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, _ref, _ = damsm
    vocab = read_vocabulary(path / "captions_DAMSM.pickle", TRAIN)
    vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(tmp_path / "vocab.json")
    assert again == vocab and again.encode("red zzyzx bird") == vocab.encode("red bird")
    assert again.encode_batch([""])[0].tolist() == [[0]]  # an empty caption is one padding word, length 1


def test_mismatches_are_named(damsm, damsm_pickle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, _ref, _ = damsm
    with pytest.raises(UserError, match="knows only"):
        read_vocabulary(path / "captions_DAMSM.pickle", ["completely different words everywhere here"])
    other = tmp_path / "other"
    other.mkdir()
    damsm_pickle(other / "captions_DAMSM.pickle", TRAIN + ["one more caption with extra vocabulary"], TEST)
    vocab = read_vocabulary(other / "captions_DAMSM.pickle", TRAIN)
    enc = LSTMTextEncoder(len(vocab), LSTMParams())
    with pytest.raises(UserError, match=r"do not fit.*embed\.weight") as err:
        load_weights(enc, path / "text_encoder200.pth", "text_encoder")
    assert "text_encoder.vocabulary" in err.value.fix
    with pytest.raises(UserError, match="not found"):
        load_weights(enc, tmp_path / "missing.pth", "text_encoder")
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps([[], [], {0: "<end>"}, {"<end>": 0}, Path("x")]))
    with pytest.raises(DataError, match="refusing to load"):
        Vocabulary.from_damsm_pickle(evil)


def test_a_recipe_trains_and_generates_with_damsm_weights(
    tmp_path: Path, make_recipe, registry, installed_registry, damsm_pickle
) -> None:  # type: ignore[no-untyped-def]
    """The shapes captions get their own DAMSM-format files; the frozen encoder keeps the loaded weights,
    the run keeps the vocabulary, and `generate` reads both back."""
    from ganreg.data import DataConfig, build_dataset
    from ganreg.generate import load_run
    from ganreg.train.trainer import start_or_resume

    cfg = DataConfig(source="shapes", image_size=32, num_images=96)
    caps = [build_dataset(cfg, s).all_captions() for s in ("train", "test")]
    wordtoix = damsm_pickle(tmp_path / "captions_DAMSM.pickle", caps[0], caps[1])
    torch.manual_seed(1)
    ref = ReferenceRNNEncoder(len(wordtoix))
    torch.save(ref.state_dict(), tmp_path / "text_encoder200.pth")
    recipe = make_recipe(**{
        "text_encoder": {"name": "lstm", "mode": "frozen", "weights": str(tmp_path / "text_encoder200.pth"),
                         "vocabulary": str(tmp_path / "captions_DAMSM.pickle")},
        "train.steps": 2,
    })
    trainer = start_or_resume(recipe, registry, tmp_path / "run", "cpu", resume=False)
    assert trainer.fit() == "finished"
    loaded = trainer.nets.text_encoder.state_dict()
    torch.testing.assert_close(loaded["embed.weight"], ref.state_dict()["encoder.weight"], rtol=0, atol=0)
    run = load_run(tmp_path / "run", device="cpu")
    assert run.vocab.unknown == "drop" and len(run.vocab) == len(wordtoix)
    images = run.generate(["a big red circle in the center"], per_caption=2, seed=0)
    assert images.shape == (2, 3, 32, 32)


def test_weights_are_not_pretrained_over() -> None:
    from pydantic import ValidationError

    from ganreg.recipe import TextEncoderSpec

    with pytest.raises(ValidationError, match="would be overwritten"):
        TextEncoderSpec(name="lstm", mode="pretrain", weights="text_encoder200.pth")
