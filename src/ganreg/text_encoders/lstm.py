"""Word-level bi-LSTM sentence encoder, shaped like DF-GAN's DAMSM encoder.

Reference §2.4: ``Embedding(ntoken, 300)`` initialised U(-0.1, 0.1), dropout
0.5 on the embeddings, a one-layer bidirectional LSTM with ``hidden/2`` units
per direction over packed sequences; the sentence embedding is the final
hidden state of both directions concatenated, ``[B, hidden]``; word features
are the per-step outputs ``[B, hidden, T]``. Parameters: 300·ntoken + 440,320
at hidden 256.

The state dict of AttnGAN / DF-GAN's ``RNN_ENCODER`` (``text_encoder200.pth``)
loads as it is: its ``encoder.weight`` is this module's ``embed.weight`` and
the LSTM's names are the same. Its word ids are those of its
``captions_DAMSM.pickle`` (``text_encoder.vocabulary``).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, TextBatch, TextEncoder, TextOutput
from ganreg.text_encoders.params import LSTMParams


class LSTMTextEncoder(TextEncoder):
    """Bi-LSTM over word ids; sentence = final states of both directions."""

    def __init__(self, vocab_size: int, params: LSTMParams) -> None:
        super().__init__()
        self.out_dim = params.hidden
        self.embed = nn.Embedding(vocab_size, params.embedding_dim)
        self.drop = nn.Dropout(params.dropout)
        self.rnn = nn.LSTM(params.embedding_dim, params.hidden // 2, num_layers=1, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.register_load_state_dict_pre_hook(_accept_damsm_names)

    def forward(self, text: TextBatch) -> TextOutput:
        if text.tokens is None or text.lengths is None:
            raise UserError("text encoder 'lstm' needs token ids; this batch has none", "use a dataset with captions")
        tokens, lengths = text.tokens, text.lengths
        x = self.drop(self.embed(tokens))
        packed = pack_padded_sequence(x, lengths.detach().cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.rnn(packed)
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        sentence = h.transpose(0, 1).reshape(tokens.shape[0], -1)
        return TextOutput(sentence=sentence, words=words.transpose(1, 2))


def _accept_damsm_names(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """Rename DAMSM's ``encoder.weight`` (its word embedding) to ``embed.weight`` in place."""
    old, new = prefix + "encoder.weight", prefix + "embed.weight"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old)


def build_lstm(params: LSTMParams, ctx: BuildContext) -> LSTMTextEncoder:
    """Word-level bi-LSTM (DF-GAN's DAMSM text encoder shape); joint, pretrained-and-frozen, or frozen."""
    if ctx.vocab_size < 2:
        raise UserError("text encoder 'lstm' needs a vocabulary, and the data gave none", "check the dataset's captions")
    return LSTMTextEncoder(ctx.vocab_size, params)


