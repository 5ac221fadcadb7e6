"""Bi-LSTM + self-attention text encoder: its parameter count by formula, masking (padding, batch
neighbours and padded words change nothing), that every real word reaches the sentence, and a joint
training step through ganreg."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, TextBatch
from ganreg.testing import registry_with
from ganreg_lstm_attention import plugin
from ganreg_lstm_attention.encoder import LSTMAttentionTextEncoder, build_lstm_attention
from ganreg_lstm_attention.params import LSTMAttentionParams


def _encoder(seed: int = 0, **params: int | float) -> LSTMAttentionTextEncoder:
    torch.manual_seed(seed)
    enc = LSTMAttentionTextEncoder(30, LSTMAttentionParams(embedding_dim=8, hidden=12, heads=3, **params))
    return enc.eval()


def _batch(rows: list[list[int]], pad_to: int) -> TextBatch:
    tokens = torch.zeros(len(rows), pad_to, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return TextBatch(tokens=tokens, lengths=torch.tensor([len(r) for r in rows]))


@pytest.mark.parametrize("layers", [1, 2])
def test_parameter_count_by_formula(layers: int) -> None:
    vocab, emb, hidden = 1000, 300, 256
    enc = LSTMAttentionTextEncoder(vocab, LSTMAttentionParams(embedding_dim=emb, hidden=hidden, layers=layers))
    h = hidden // 2
    lstm = 2 * (4 * h * (emb + h) + 8 * h)
    assert lstm == 440_320  # the core 'lstm' encoder's (DAMSM's) LSTM at these sizes
    attention = 4 * hidden * hidden + 4 * hidden + 2 * hidden  # q, k, v, out projections with biases; LayerNorm
    assert sum(p.numel() for p in enc.parameters()) == vocab * emb + lstm + layers * attention


def test_shapes_and_padded_words_are_zero() -> None:
    enc = _encoder()
    out = enc(_batch([[3, 4, 5], [6, 7]], pad_to=6))
    assert out.sentence.shape == (2, 12) and out.words is not None and out.words.shape == (2, 12, 6)
    assert torch.all(out.words[0, :, 3:] == 0) and torch.all(out.words[1, :, 2:] == 0)
    assert out.words[1, :, :2].abs().sum() > 0


def test_padding_and_batch_neighbours_change_nothing() -> None:
    """The masks make each caption's encoding its own: more padding, other captions in the batch, or
    garbage ids after the caption's length give the same sentence and words (to float rounding)."""
    enc = _encoder(layers=2)
    rows = [[3, 4, 5, 9], [6, 7], [8]]
    short = enc(_batch(rows, pad_to=4))
    long = enc(_batch(rows, pad_to=9))
    alone = enc(_batch(rows[1:2], pad_to=2))
    torch.testing.assert_close(long.sentence, short.sentence, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(long.words[:, :, :4], short.words, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone.sentence[0], short.sentence[1], rtol=1e-5, atol=1e-6)
    garbage = _batch(rows, pad_to=9)
    garbage.tokens[2, 1:] = 29
    torch.testing.assert_close(enc(garbage).sentence, long.sentence, rtol=1e-5, atol=1e-6)


def test_every_real_word_reaches_the_sentence_and_padding_none() -> None:
    enc = _encoder()
    batch = _batch([[3, 4, 5, 6, 7]], pad_to=8)
    emb = enc.embed(batch.tokens).detach().requires_grad_(True)
    enc.embed = torch.nn.Identity()  # feed the embeddings directly, to read their gradient
    enc(TextBatch(tokens=emb, lengths=batch.lengths)).sentence.sum().backward()
    per_word = emb.grad[0].abs().sum(-1)
    assert torch.all(per_word[:5] > 0) and torch.all(per_word[5:] == 0)


def test_attention_changes_the_encoding() -> None:
    """The attention blocks are in the path: the same weights without them give another sentence."""
    enc = _encoder()
    batch = _batch([[3, 4, 5], [6, 7, 8]], pad_to=3)
    with_attention = enc(batch).sentence
    enc.blocks = torch.nn.ModuleList()
    assert not torch.allclose(enc(batch).sentence, with_attention, atol=1e-3)


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="must divide hidden"):
        LSTMAttentionParams(hidden=10, heads=4)
    with pytest.raises(ValueError, match="even"):
        LSTMAttentionParams(hidden=9, heads=3)
    with pytest.raises(UserError, match="needs a vocabulary"):
        build_lstm_attention(LSTMAttentionParams(), BuildContext(vocab_size=0))
    enc = build_lstm_attention(LSTMAttentionParams(hidden=8, heads=2), BuildContext(vocab_size=5))
    with pytest.raises(UserError, match="needs token ids"):
        enc(TextBatch(embeddings=torch.zeros(2, 4)))


def test_registered_with_its_params() -> None:
    info = registry_with(plugin, "lstm_attention").resolve("text_encoder", "lstm_attention")
    assert info.qualified == "lstm_attention:lstm_attention" and info.params is LSTMAttentionParams


def test_trains_jointly_through_ganreg(tmp_path: Path) -> None:
    """A DF-GAN step with the encoder trained jointly moves the encoder's attention weights."""
    from ganreg.testing import trainer_for

    trainer = trainer_for({
        "version": 1,
        "name": "attention-tiny",
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm_attention", "mode": "joint",
                         "params": {"hidden": 16, "embedding_dim": 8, "heads": 2}},
        "generator": {"name": "dfgan", "params": {"nf": 2, "z_dim": 8}},
        "discriminator": {"name": "dfgan", "params": {"nf": 2}},
        "losses": [{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}],
        "train": {"steps": 1, "batch_size": 8},
        "intervals": {"log": 1, "samples": 1, "checkpoint": 1},
        "samples": {"captions": 2, "per_caption": 2},
    }, tmp_path / "run")
    attn = trainer.nets.text_encoder.blocks[0].attn.in_proj_weight
    before = attn.detach().clone()
    trainer.train_step()
    assert not torch.equal(attn, before)
