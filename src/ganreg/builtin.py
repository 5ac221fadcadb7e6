"""ganreg's own components, registered through the same entry-point hook
(group ``ganreg``, name ``core``) a third-party plugin uses."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.text_encoders.params import LSTMParams, PrecomputedParams


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "text_encoder",
        "precomputed",
        "ganreg.text_encoders.precomputed:build_precomputed",
        summary="Precomputed sentence embeddings from the dataset (e.g. char-CNN-RNN, 1024-d); no parameters.",
        params=PrecomputedParams,
        paper="Reed et al. 2016, Learning Deep Representations of Fine-Grained Visual Descriptions",
    )
    register(
        "text_encoder",
        "lstm",
        "ganreg.text_encoders.lstm:build_lstm",
        summary="Word-level bi-LSTM (DF-GAN's DAMSM text encoder shape); joint, pretrained-and-frozen, or frozen.",
        params=LSTMParams,
        paper="Xu et al. 2018 (AttnGAN DAMSM), as used by Tao et al. 2022 (DF-GAN)",
    )
