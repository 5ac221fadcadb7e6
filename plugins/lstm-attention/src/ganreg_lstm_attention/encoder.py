"""Bi-LSTM + multi-head self-attention sentence encoder (seed project 004).

The LSTM reads the caption in order (local context); self-attention then lets every word look at
every other (global context), as the seed's ``LSTM -> MultiHeadSelfAttention`` text path does. Each
attention block is post-norm with a residual, ``x = LayerNorm(x + Attention(x))``, and masks the
padding as keys. The sentence embedding is the mean of the attended word features over the real
words, so it is independent of how far a batch is padded (tested).

Parameters: ``V·E`` (embedding) + ``2·(4h(E + h) + 8h)`` with ``h = hidden/2`` (bi-LSTM; 440,320 at
E 300, hidden 256, as the core 'lstm' encoder) + ``layers · (4·hidden² + 6·hidden)`` (attention
projections with biases, LayerNorm).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, TextBatch, TextEncoder, TextOutput
from ganreg_lstm_attention.params import LSTMAttentionParams


class SelfAttentionBlock(nn.Module):
    """``x = LayerNorm(x + MultiheadAttention(x, x, x))`` with the padded words masked as keys."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attn(x, x, x, key_padding_mask=padding, need_weights=False)
        return self.norm(x + attended)


class LSTMAttentionTextEncoder(TextEncoder):
    """Embedding -> dropout -> bi-LSTM (packed) -> self-attention blocks -> mean over the real words."""

    def __init__(self, vocab_size: int, params: LSTMAttentionParams) -> None:
        super().__init__()
        self.out_dim = params.hidden
        self.embed = nn.Embedding(vocab_size, params.embedding_dim)
        self.drop = nn.Dropout(params.dropout)
        self.rnn = nn.LSTM(params.embedding_dim, params.hidden // 2, num_layers=1, batch_first=True, bidirectional=True)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(params.hidden, params.heads, params.attention_dropout) for _ in range(params.layers)
        )
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, text: TextBatch) -> TextOutput:
        if text.tokens is None or text.lengths is None:
            raise UserError(
                "text encoder 'lstm_attention' needs token ids; this batch has none", "use a dataset with captions"
            )
        tokens = text.tokens
        lengths = text.lengths.detach().cpu().clamp(min=1)
        steps = tokens.shape[1]
        x = self.drop(self.embed(tokens))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        real = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T], on the CPU as lengths are
        real = real.to(words.device)
        for block in self.blocks:
            words = block(words, ~real)
        keep = real.unsqueeze(-1).to(words.dtype)
        words = words * keep  # padded positions are zero, as pad_packed_sequence leaves them
        sentence = words.sum(1) / keep.sum(1)
        return TextOutput(sentence=sentence, words=words.transpose(1, 2))


def build_lstm_attention(params: LSTMAttentionParams, ctx: BuildContext) -> LSTMAttentionTextEncoder:
    """Bi-LSTM + multi-head self-attention over the words (seed project 004); joint, pretrained-and-frozen, or frozen."""
    if ctx.vocab_size < 2:
        raise UserError(
            "text encoder 'lstm_attention' needs a vocabulary, and the data gave none", "check the dataset's captions"
        )
    return LSTMAttentionTextEncoder(ctx.vocab_size, params)
