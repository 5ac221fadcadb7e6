"""The originals' image pipeline: CUB's bounding-box crop and Resize(int(S * 76/64)) + RandomCrop(S)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from ganreg.data import DataConfig, build_dataset
from ganreg.data._util import box_crop, load_size, resize_short_side
from ganreg.errors import DataError


def _u8(t: torch.Tensor) -> np.ndarray:
    """[-1, 1] CHW -> uint8 HWC, exact for images that went through uint8."""
    return np.rint((t.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)


def _pattern(w: int, h: int, seed: int) -> np.ndarray:
    """Pixels that differ everywhere, so every window of the image is unique."""
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _cub(root, images: dict[str, np.ndarray], boxes: dict[str, tuple[float, ...]], *, tables: bool = True):
    """A CUB-like folder (PNG images, so pixels survive exactly) with CUB's images.txt and bounding_boxes.txt."""
    cls = "001.Black_footed_Albatross"
    (root / "CUB_200_2011" / "images" / cls).mkdir(parents=True)
    (root / "text_c10" / cls).mkdir(parents=True)
    other = "002.Laysan_Albatross"
    (root / "CUB_200_2011" / "images" / other).mkdir(parents=True)
    (root / "text_c10" / other).mkdir(parents=True)
    names, lines = [], []
    for n, (stem, arr) in enumerate(images.items(), 1):
        c = cls if n % 2 else other
        Image.fromarray(arr).save(root / "CUB_200_2011" / "images" / c / f"{stem}.png")
        (root / "text_c10" / c / f"{stem}.txt").write_text(f"a bird number {n}\n", encoding="utf-8")
        names.append(f"{n} {c}/{stem}.jpg\n")
        if stem in boxes:
            lines.append(f"{n} " + " ".join(str(v) for v in boxes[stem]) + "\n")
    if tables:
        (root / "CUB_200_2011" / "images.txt").write_text("".join(names), encoding="utf-8")
        (root / "CUB_200_2011" / "bounding_boxes.txt").write_text("".join(lines), encoding="utf-8")
    (root / "trainvalclasses.txt").write_text(f"{cls}\n{other}\n", encoding="utf-8")
    return root


def test_box_crop_is_the_stackgan_square_clipped_at_the_border() -> None:
    arr = _pattern(120, 80, 0)
    im = Image.fromarray(arr)
    # r = int(30 * 0.75) = 22, centre (int(120 / 2), int(70 / 2)) = (60, 35): x 38..82, y 13..57
    np.testing.assert_array_equal(np.asarray(box_crop(im, (50.0, 20.0, 20.0, 30.0))), arr[13:57, 38:82])
    # r = 7 around (5, 35): clipped on the left to x 0..12, so 12 wide and 14 high
    np.testing.assert_array_equal(np.asarray(box_crop(im, (0.0, 30.0, 10.0, 10.0))), arr[28:42, 0:12])
    with pytest.raises(ValueError, match="outside"):
        box_crop(im, (500.0, 500.0, 4.0, 4.0))


def test_resize_short_side_keeps_the_aspect_like_torchvision() -> None:
    assert load_size(256, 76 / 64) == 304 and load_size(64, 76 / 64) == 76 and load_size(64, 1.0) == 64
    im = Image.fromarray(_pattern(500, 375, 1))  # a typical CUB / flowers landscape image
    assert resize_short_side(im, 304).size == (405, 304)  # torchvision: int(304 * 500 / 375) = 405
    assert resize_short_side(Image.fromarray(_pattern(375, 500, 1)), 304).size == (304, 405)


def test_bbox_crop_feeds_the_dataset(tmp_path) -> None:
    arr = _pattern(120, 80, 2)
    root = _cub(tmp_path / "birds", {"Bird_0001": arr, "Bird_0002": _pattern(90, 90, 3)},
                {"Bird_0001": (50, 20, 20, 30), "Bird_0002": (10, 10, 50, 50)})
    cfg = DataConfig(source="folder", path=str(root), image_size=44, crop="bbox")
    ds = build_dataset(cfg, "train")
    i = [ds.items[k][0] for k in range(len(ds))].index("Bird_0001")
    np.testing.assert_array_equal(_u8(ds.image(i)), arr[13:57, 38:82])  # 44 x 44 already: no resize
    assert ds[i]["image"].shape == ds[i]["wrong_image"].shape == (3, 44, 44)


def test_random_crop_cuts_windows_of_the_resized_image(tmp_path) -> None:
    arr = _pattern(60, 40, 4)
    root = _cub(tmp_path / "birds", {"Bird_0001": arr, "Bird_0002": _pattern(40, 40, 5)}, {})
    # shorter side 40 = int(32 * 1.25): no resize, so every crop is an exact window of the file
    cfg = DataConfig(source="folder", path=str(root), image_size=32, random_crop=1.25, seed=3)
    ds = build_dataset(cfg, "train")
    i = [ds.items[k][0] for k in range(len(ds))].index("Bird_0001")
    windows = {(x, y): arr[y:y + 32, x:x + 32] for x in range(29) for y in range(9)}
    offsets = set()
    for epoch in range(12):
        got = _u8(ds[(epoch, i)]["image"])
        match = [xy for xy, w in windows.items() if np.array_equal(w, got)]
        assert len(match) == 1, f"epoch {epoch}: the crop is not one window of the image"
        offsets.add(match[0])
        np.testing.assert_array_equal(_u8(ds[(epoch, i)]["image"]), got)  # a pure function of (epoch, index)
    assert len(offsets) >= 6, f"crops barely move: {sorted(offsets)}"
    np.testing.assert_array_equal(_u8(ds.image(i)), arr[4:36, 14:46])  # the un-augmented view: the centre
    flipping = build_dataset(cfg.model_copy(update={"flip": True}), "train").view(augment=False)
    for epoch in range(4):  # what evaluation reads: the centre, never flipped, whatever the epoch
        np.testing.assert_array_equal(_u8(flipping[(epoch, i)]["image"]), arr[4:36, 14:46])


def test_random_crop_on_hdf5_images(seed_hdf5) -> None:
    cfg = DataConfig(source="hdf5", path=str(seed_hdf5()), image_size=32, random_crop=76 / 64)
    ds = build_dataset(cfg, "train")
    item = ds[0]
    assert item["image"].shape == item["wrong_image"].shape == ds.image(0).shape == (3, 32, 32)
    crops = torch.stack([ds[(e, 0)]["image"] for e in range(8)])
    assert (crops - crops[0]).abs().amax() > 0  # no flips: the crop alone changes with the epoch


def test_crop_settings_are_checked(tmp_path, seed_hdf5) -> None:
    with pytest.raises(ValidationError, match="random_crop must be 1 for source 'shapes'"):
        DataConfig(source="shapes", random_crop=1.2)
    with pytest.raises(ValidationError, match="crop 'bbox' needs source 'folder'"):
        DataConfig(source="hdf5", path="x.h5", crop="bbox")
    with pytest.raises(ValidationError):
        DataConfig(source="folder", path="x", random_crop=0.9)
    no_tables = _cub(tmp_path / "a", {"Bird_0001": _pattern(40, 40, 6), "Bird_0002": _pattern(40, 40, 7)}, {},
                     tables=False)
    with pytest.raises(DataError, match="images.txt and bounding_boxes.txt") as err:
        build_dataset(DataConfig(source="folder", path=str(no_tables), crop="bbox"), "train")
    assert "CUB_200_2011.tgz" in err.value.fix
    one_box = _cub(tmp_path / "b", {"Bird_0001": _pattern(40, 40, 6), "Bird_0002": _pattern(40, 40, 7)},
                   {"Bird_0001": (1, 1, 20, 20)})
    with pytest.raises(DataError, match=r"1 of 2 images have no bounding box .*Bird_0002"):
        build_dataset(DataConfig(source="folder", path=str(one_box), crop="bbox"), "train")


def test_long_captions_keep_a_random_ordered_subset_like_dfgan(tmp_path) -> None:
    """DF-GAN's get_caption: a caption over WORDS_NUM words keeps a random subset of them in their order,
    drawn per item; shorter captions are untouched."""
    root = _cub(tmp_path / "birds", {"Bird_0001": _pattern(40, 40, 8), "Bird_0002": _pattern(40, 40, 9)}, {})
    long = " ".join(f"w{k}" for k in range(30))
    for stem, cls in (("Bird_0001", "001.Black_footed_Albatross"), ("Bird_0002", "002.Laysan_Albatross")):
        (root / "text_c10" / cls / f"{stem}.txt").write_text(f"{long}\nshort caption here\n", encoding="utf-8")
    first = build_dataset(DataConfig(source="folder", path=str(root), max_words=18), "train")
    rand = build_dataset(DataConfig(source="folder", path=str(root), max_words=18, long_captions="random"), "train")
    subsets = set()
    for epoch in range(20):
        a, b = first[(epoch, 0)]["caption"], rand[(epoch, 0)]["caption"]
        if a != long:
            assert a == b == "short caption here"
            continue
        words = b.split()
        assert len(words) == 18 and words == sorted(words, key=lambda w: int(w[1:]))  # 18 of them, in order
        assert rand[(epoch, 0)]["caption"] == b  # a pure function of (epoch, index)
        subsets.add(b)
    assert len(subsets) >= 5, "the subset must change from draw to draw"


def test_captions_with_precomputed_embeddings_stay_whole(seed_hdf5) -> None:
    """An HDF5 caption's stored embedding is of the whole caption: a word subset would not match it."""
    cfg = DataConfig(source="hdf5", path=str(seed_hdf5()), image_size=32, max_words=3, long_captions="random")
    ds = build_dataset(cfg, "train")
    for epoch in range(3):
        item = ds[(epoch, 0)]
        assert item["caption"] in ds.captions_of(0) and len(item["caption"].split()) > 3 and "embedding" in item
