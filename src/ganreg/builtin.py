"""ganreg's own components, registered through the same entry-point hook
(group ``ganreg``, name ``core``) a third-party plugin uses."""

from __future__ import annotations

from ganreg.plugins import hookimpl
from ganreg.text_encoders.lstm import LSTMParams, build_lstm
from ganreg.text_encoders.precomputed import PrecomputedParams, build_precomputed


@hookimpl
def ganreg_register(register) -> None:  # type: ignore[no-untyped-def]
    register(
        "text_encoder",
        "precomputed",
        build_precomputed,
        params=PrecomputedParams,
        paper="Reed et al. 2016, Learning Deep Representations of Fine-Grained Visual Descriptions",
    )
    register(
        "text_encoder",
        "lstm",
        build_lstm,
        params=LSTMParams,
        paper="Xu et al. 2018 (AttnGAN DAMSM), as used by Tao et al. 2022 (DF-GAN)",
    )
