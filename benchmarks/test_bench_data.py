"""The training stream's host side: a batch of float32 images built on the CPU (the dataset's own
items) vs the uint8 images the stream now carries (converted on the device by the trainer).

    pytest benchmarks/test_bench_data.py --benchmark-enable

Batch 32 at 256 px (``GANREG_BENCH_DATA_PX`` to change it), loaded in the main process: what a step waits for when the loader's workers cannot keep up. Compare the two rows
of the same run (``extra_info["ms_per_batch"]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ganreg.data import Vocabulary, build_dataset, make_loader
from ganreg.data.config import DataConfig

PX = int(os.environ.get("GANREG_BENCH_DATA_PX", "256"))
BATCH = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache: Path = tmp_path_factory.mktemp("bench-data")
    return build_dataset(DataConfig(source="shapes", image_size=PX, num_images=4 * BATCH + 64, cache_dir=str(cache)), "train")


@pytest.mark.parametrize("images", ["float32", "uint8"])
def test_stream_batch(benchmark, dataset, images: str) -> None:  # type: ignore[no-untyped-def]
    source = dataset.with_raw_images() if images == "uint8" else dataset
    loader = make_loader(source, batch_size=BATCH, vocab=Vocabulary.build(dataset.all_captions()), num_workers=0)

    def one_epoch_batch() -> None:
        batch = next(iter(loader))
        assert batch["images"].shape == (BATCH, 3, PX, PX)

    benchmark.pedantic(one_epoch_batch, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: a smoke run, nothing measured
        return
    benchmark.extra_info.update({"ms_per_batch": 1e3 * benchmark.stats.stats.mean, "batch": BATCH, "image_size": PX})
