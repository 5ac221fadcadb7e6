"""The training stream's host side: what a step waits for when the loader's workers cannot keep up.

    pytest benchmarks/test_bench_data.py --benchmark-enable

Batch 32 at 256 px (``GANREG_BENCH_DATA_PX`` to change it), loaded in the main process:

* ``test_stream_batch``: built-in shapes (images in memory): float32 images built on the CPU (the
  dataset's own items) vs the uint8 images the stream carries (converted on the device by the trainer).
* ``test_jpeg_batch``: a CUB-like folder of 500x375 JPEGs, decoded, resized and (``crop``) cut by
  DF-GAN's Resize(int(S*76/64)) + RandomCrop(S), with and without the wrong images that only the
  matching-aware losses read (the trainer skips them otherwise).

* ``test_photo_decode``: one 12-megapixel JPEG (a phone photo in a user's own folder) to a 64-px training
  image, decoded whole vs at the reduced scale the datasets use (libjpeg's 1/2..1/8, PIL's ``draft``).

Compare rows of the same run (``extra_info["ms_per_batch"]``, ``extra_info["ms_per_image"]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ganreg.data import Vocabulary, build_dataset, make_loader
from ganreg.data.config import DataConfig

PX = int(os.environ.get("GANREG_BENCH_DATA_PX", "256"))
BATCH = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache: Path = tmp_path_factory.mktemp("bench-data")
    return build_dataset(DataConfig(source="shapes", image_size=PX, num_images=4 * BATCH + 64, cache_dir=str(cache)), "train")


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Oxford-102 / CUB-like: 2 classes x 32 photos-like JPEGs (smooth gradients + noise, quality 90)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("bench-jpeg")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for c in range(2):
        (root / "text_c10" / f"class_{c}").mkdir(parents=True)
        (root / "jpg").mkdir(exist_ok=True)
        for k in range(BATCH):
            arr = np.stack([(xx * 0.3 + 90 * c) % 256, (yy * 0.4 + 7 * k) % 256, (xx + yy) * 0.2 % 256], -1)
            arr = np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / "jpg" / f"image_{c}_{k:03d}.jpg", quality=90)
            (root / "text_c10" / f"class_{c}" / f"image_{c}_{k:03d}.txt").write_text("a bird with a red crown\n")
    (root / "trainvalclasses.txt").write_text("class_0\nclass_1\n")
    return root


def _time_first_batch(benchmark, source, **info) -> None:  # type: ignore[no-untyped-def]
    loader = make_loader(source, batch_size=BATCH, vocab=Vocabulary.build(source.all_captions()), num_workers=0)

    def one_epoch_batch() -> None:
        batch = next(iter(loader))
        assert batch["images"].shape == (BATCH, 3, PX, PX)

    benchmark.pedantic(one_epoch_batch, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: a smoke run, nothing measured
        return
    benchmark.extra_info.update({"ms_per_batch": 1e3 * benchmark.stats.stats.mean, "batch": BATCH, "image_size": PX, **info})


@pytest.mark.parametrize("images", ["float32", "uint8"])
def test_stream_batch(benchmark, dataset, images: str) -> None:  # type: ignore[no-untyped-def]
    _time_first_batch(benchmark, dataset.view(raw_images=images == "uint8"))


@pytest.mark.parametrize("crop", [False, True], ids=["squash", "crop"])
@pytest.mark.parametrize("wrong", [True, False], ids=["with-wrong", "no-wrong"])
def test_jpeg_batch(benchmark, jpeg_folder: Path, tmp_path: Path, wrong: bool, crop: bool) -> None:  # type: ignore[no-untyped-def]
    cfg = DataConfig(source="folder", path=str(jpeg_folder), image_size=PX, flip=True,
                     random_crop=76 / 64 if crop else 1.0, cache_dir=str(tmp_path))
    source = build_dataset(cfg, "train").view(raw_images=True, wrong_images=wrong)
    _time_first_batch(benchmark, source, wrong_images=wrong, random_crop=cfg.random_crop)


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """4000x3000 photo-like pixels as a quality-90 JPEG (about 3 MB)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:3000, 0:4000].astype(np.float32)
    arr = np.stack([(xx * 0.06) % 256, (yy * 0.08) % 256, (xx + yy) * 0.05 % 256], -1)
    arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("decode", ["whole", "reduced"])
def test_photo_decode(benchmark, phone_photo: bytes, decode: str) -> None:  # type: ignore[no-untyped-def]
    from ganreg.data._util import decode_pil, pil_to_array

    side = 64 if decode == "reduced" else None

    def to_training_image() -> None:
        assert pil_to_array(decode_pil(phone_photo, what="photo", min_side=side), 64).shape == (64, 64, 3)

    benchmark.pedantic(to_training_image, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info.update({"ms_per_image": 1e3 * benchmark.stats.stats.mean, "pixels": "4000x3000", "image_size": 64})
