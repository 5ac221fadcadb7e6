"""Sentence embeddings stored in the data (Reed's 1024-d char-CNN-RNN)."""

from __future__ import annotations

import torch

from ganreg.errors import UserError
from ganreg.interfaces import BuildContext, TextBatch, TextEncoder, TextOutput
from ganreg.text_encoders.params import PrecomputedParams


class PrecomputedTextEncoder(TextEncoder):
    """Passes through the embedding the dataset stores with each caption."""

    def __init__(self, dim: int, normalize: bool = False) -> None:
        super().__init__()
        self.out_dim = dim
        self.normalize = normalize

    def forward(self, text: TextBatch) -> TextOutput:
        if text.embeddings is None and text.tokens is not None:  # new text, e.g. `ganreg generate`
            raise UserError(
                "this run's text encoder ('precomputed') passes on the embeddings stored with the dataset's "
                "captions; it cannot embed new text",
                "to generate from any caption, train with a text encoder that reads text (text_encoder.name 'lstm'); "
                "this run's samples/ grids show its own captions",
            )
        if text.embeddings is None:
            raise UserError(
                "text encoder 'precomputed' needs embeddings stored in the data, and this batch has none",
                "use an HDF5 dataset with 'embeddings', or the 'lstm' text encoder",
            )
        emb = text.embeddings.float()
        if self.normalize:
            emb = torch.nn.functional.normalize(emb, dim=1)
        return TextOutput(sentence=emb)


def build_precomputed(params: PrecomputedParams, ctx: BuildContext) -> PrecomputedTextEncoder:
    """Precomputed sentence embeddings from the dataset (e.g. char-CNN-RNN, 1024-d); no parameters."""
    if not ctx.text_embedding_dim:
        raise UserError(
            "text encoder 'precomputed' needs a dataset with stored embeddings (HDF5 'embeddings')",
            "use data.source='hdf5', or text_encoder.name='lstm'",
        )
    return PrecomputedTextEncoder(ctx.text_embedding_dim, params.normalize)
