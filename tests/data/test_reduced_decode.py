"""Large JPEGs decode at reduced scale (libjpeg's 1/2, 1/4, 1/8) when the pipeline needs far fewer pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from ganreg.data import DataConfig, build_dataset
from ganreg.data._util import DRAFT_MARGIN, decode_pil, pil_to_array
from ganreg.errors import DataError


def photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Photo-like pixels: smooth gradients and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack([(xx * 0.3) % 256, (yy * 0.4) % 256, (xx + yy) * 0.2 % 256], -1)
    return np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)


def encoded(arr: np.ndarray, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_large_jpeg_decodes_smaller_and_resizes_to_the_same_pixels(mode: str) -> None:
    data = encoded(photo(1600, 1200), mode=mode)
    full, reduced = decode_pil(data, what="x"), decode_pil(data, what="x", min_side=76)
    assert full.size == (1600, 1200) and reduced.size == (400, 300)  # 1/4: both sides still >= 2 x 76
    assert reduced.mode == "RGB" and min(reduced.size) >= DRAFT_MARGIN * 76
    diff = np.abs(pil_to_array(full, 64).astype(int) - pil_to_array(reduced, 64).astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 4  # 8-bit levels, after the resize to 64 px


def test_small_jpegs_and_other_formats_decode_whole() -> None:
    assert decode_pil(encoded(photo(300, 200)), what="x", min_side=76).size == (300, 200)  # under 4 x 76
    assert decode_pil(encoded(photo(1600, 1200), "PNG"), what="x", min_side=76).size == (1600, 1200)
    with pytest.raises(DataError, match="truncated|broken|image file"):
        decode_pil(encoded(photo(1600, 1200))[:20000], what="x", min_side=76)  # still fully decoded


def test_datasets_decode_at_the_side_their_pipeline_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Squashed images need image_size, random crops their load size; CUB's boxes (full-size pixels) decode whole."""
    from PIL import Image

    import ganreg.data.folder as folder

    root = tmp_path / "mine"
    root.mkdir()
    for i in range(3):
        Image.fromarray(photo(800, 600, i)).save(root / f"p{i}.jpg", quality=90)
        (root / f"p{i}.txt").write_text(f"photo {i}\n")
    seen: list[int | None] = []
    real = folder.decode_pil
    monkeypatch.setattr(folder, "decode_pil", lambda *a, **k: (seen.append(k.get("min_side")), real(*a, **k))[1])
    squash = build_dataset(DataConfig(source="folder", path=str(root), image_size=64), "train")
    crop = build_dataset(DataConfig(source="folder", path=str(root), image_size=64, random_crop=76 / 64), "train")
    assert squash[0]["image"].shape == crop[0]["image"].shape == (3, 64, 64)
    assert seen == [64, 64, 76, 76]  # the image and the wrong image of each item
