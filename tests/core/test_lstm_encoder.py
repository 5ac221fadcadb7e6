"""The lstm text encoder has DAMSM's shape (reference §2.4)."""

from __future__ import annotations

import torch

from ganreg.interfaces import BuildContext, TextBatch
from ganreg.text_encoders.lstm import LSTMParams, build_lstm


def test_parameter_count_matches_damsm() -> None:
    for ntoken in (1000, 5000):
        enc = build_lstm(LSTMParams(), BuildContext(vocab_size=ntoken))
        assert sum(p.numel() for p in enc.parameters()) == 300 * ntoken + 440_320


def test_sentence_is_final_states_of_both_directions_and_ignores_padding() -> None:
    torch.manual_seed(0)
    enc = build_lstm(LSTMParams(hidden=16, embedding_dim=8, dropout=0.0), BuildContext(vocab_size=30)).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    out = enc(TextBatch(tokens=tokens, lengths=torch.tensor([3, 5])))
    assert out.sentence.shape == (2, 16) and out.words.shape == (2, 16, 5)
    alone = enc(TextBatch(tokens=tokens[:1, :3], lengths=torch.tensor([3])))
    torch.testing.assert_close(out.sentence[:1], alone.sentence)
    # forward half of the sentence = forward output at the last real token
    torch.testing.assert_close(out.sentence[0, :8], out.words[0, :8, 2])
    # backward half = backward output at the first token
    torch.testing.assert_close(out.sentence[0, 8:], out.words[0, 8:, 0])
