"""Entry point (group ``ganreg``, name ``lstm_attention``): registers the bi-LSTM + self-attention text encoder."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg_lstm_attention.params import LSTMAttentionParams

PAPER = (
    "seed project 004 (LSTM text encoding refined by multi-head self-attention); attention as in Vaswani et al. "
    "2017, post-norm with a residual; the bi-LSTM as DAMSM's (Xu et al. 2018)"
)


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "text_encoder",
        "lstm_attention",
        "ganreg_lstm_attention.encoder:build_lstm_attention",
        summary="Word-level bi-LSTM refined by multi-head self-attention, mean-pooled over the words.",
        params=LSTMAttentionParams,
        paper=PAPER,
        test_params={"embedding_dim": 8, "hidden": 8, "heads": 2},
    )
