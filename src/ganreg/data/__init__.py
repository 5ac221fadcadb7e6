"""Data: captioned image datasets, the vocabulary and the batch collator.

Sources (``DataConfig.source``):

* ``shapes``: built-in captioned shapes, generated and cached, no download;
* ``hdf5``: the seed projects' HDF5 layout (aelnouby/Text-to-Image-Synthesis);
* ``folder``: images + ``text_c10`` caption files + class split files
  (Oxford-102 / CUB as unpacked).

Typical use (what the trainer does)::

    train = build_dataset(cfg, "train")
    vocab = Vocabulary.build(train.all_captions(), cfg.min_word_count)   # the training captions' words only
    loader = make_loader(train, batch_size=64, vocab=vocab, max_words=cfg.max_words,
                         num_workers=cfg.num_workers, seed=cfg.seed)
    for epoch in range(start, end):
        loader.set_epoch(epoch)
        for batch in loader: ...   # images, wrong_images, tokens, lengths, captions, labels, ...

Heavy modules (h5py, PIL) are imported only when a source needs them.
"""

from __future__ import annotations

from ganreg.data._util import ImageDecodeError, NotUtf8, SplitMissing
from ganreg.data.base import CaptionedImageDataset, EpochSampler
from ganreg.data.build import (
    DataLoaderWithErrors,
    SeededRandomSampler,
    build_dataset,
    make_loader,
    unwrap_worker_error,
)
from ganreg.data.config import DataConfig
from ganreg.data.tokenizer import Collator, Vocabulary, collate, tokenize

__all__ = [
    "CaptionedImageDataset",
    "Collator",
    "DataConfig",
    "DataLoaderWithErrors",
    "EpochSampler",
    "ImageDecodeError",
    "NotUtf8",
    "SeededRandomSampler",
    "SplitMissing",
    "Vocabulary",
    "build_dataset",
    "collate",
    "make_loader",
    "tokenize",
    "unwrap_worker_error",
]
