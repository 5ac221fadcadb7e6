"""The built-in captioned shapes: determinism, captions that match pixels, splits."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ganreg.data import DataConfig, build_dataset, make_loader
from ganreg.data import shapes as S
from ganreg.errors import DataError

N = 96  # two balanced blocks of the 48 classes


@pytest.fixture(scope="module")
def images64() -> np.ndarray:
    return S.generate_images(0, N, 64, processes=1)


def test_same_seed_same_bytes_different_seed_differs(images64: np.ndarray) -> None:
    again = S.generate_images(0, N, 64, processes=1)
    assert again.dtype == np.uint8 and again.shape == (N, 64, 64, 3)
    assert again.tobytes() == images64.tobytes()
    assert S.generate_images(0, N, 64, processes=2).tobytes() == images64.tobytes()
    other = S.generate_images(1, N, 64, processes=1)
    assert other.tobytes() != images64.tobytes()
    assert [S.image_spec(0, i).captions for i in range(N)] == [S.image_spec(0, i).captions for i in range(N)]
    assert [S.image_spec(0, i).captions for i in range(N)] != [S.image_spec(1, i).captions for i in range(N)]


def _colour_pixels(img: np.ndarray) -> dict[str, np.ndarray]:
    x = img.astype(np.int32)
    return {c: (np.abs(x - np.array(rgb)).sum(-1) < 45) for c, rgb in S.RGB.items()}


def test_pixels_match_colour_position_and_size(images64: np.ndarray) -> None:
    areas: dict[tuple[str, str], list[int]] = {}
    for i in range(N):
        spec = S.image_spec(0, i)
        masks = _colour_pixels(images64[i])
        counts = {c: int(m.sum()) for c, m in masks.items()}
        dominant = max(counts, key=counts.get)
        assert dominant == spec.colour, (i, spec, counts)
        ys, xs = np.nonzero(masks[spec.colour])
        cy, cx = ys.mean() / 64, xs.mean() / 64
        if spec.position == "center":
            assert 0.4 < cx < 0.6 and 0.4 < cy < 0.6, (i, spec, cx, cy)
        else:
            assert (cy < 0.5) == spec.position.startswith("top"), (i, spec, cy)
            assert (cx < 0.5) == spec.position.endswith("left"), (i, spec, cx)
        areas.setdefault((spec.shape, spec.size), []).append(counts[spec.colour])
        # the background is never the shape's colour: almost no matching pixels far from the shape
        assert counts[spec.colour] < 0.25 * 64 * 64
    for shape in S.SHAPES:
        small, large = areas.get((shape, "small"), []), areas.get((shape, "large"), [])
        if small and large:
            assert max(small) < min(large), (shape, small, large)


def _mentions(caption: str, words: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", caption) for w in words)


def test_captions_name_every_attribute() -> None:
    for i in range(N):
        spec = S.image_spec(0, i)
        assert len(spec.captions) == S.CAPTIONS_PER_IMAGE == 10
        assert len(set(spec.captions)) == 10
        for cap in spec.captions:
            assert _mentions(cap, S.COLOUR_WORDS[spec.colour]), cap
            assert _mentions(cap, S.SHAPE_WORDS[spec.shape]), cap
            assert _mentions(cap, S.SIZE_WORDS[spec.size]), cap
            assert _mentions(cap, S.POSITION_WORDS[spec.position]), cap
            others = [w for c, ws in S.COLOUR_WORDS.items() if c != spec.colour for w in ws]
            assert not _mentions(cap, others), cap
            assert not re.search(r"\ba [aeiou]", cap), cap


def test_class_split_is_disjoint_and_covers_every_word() -> None:
    for seed in range(5):
        train, test = S.class_split(seed)
        assert len(train) == 38 and len(test) == 10
        assert not set(train) & set(test)
        assert sorted(train + test) == list(range(48))
        assert {k % 6 for k in train} == set(range(6))  # every shape in train
        assert {k // 6 for k in train} == set(range(8))  # every colour in train
    assert S.class_split(0) == S.class_split(0)
    assert S.class_split(0) != S.class_split(1)


def test_datasets_are_class_disjoint_with_attributes() -> None:
    cfg = DataConfig(num_images=N, image_size=32)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(train) + len(test) == N
    assert not set(train.labels()) & set(test.labels())
    assert train.class_names == test.class_names and len(train.class_names) == 48
    assert train.attributes == {"shape": S.SHAPES, "colour": S.COLOURS, "size": S.SIZES, "position": S.POSITIONS}
    assert train.embedding_dim is None
    item = train[3]
    assert set(item) >= {"image", "wrong_image", "caption", "label", "attributes", "index", "wrong_label"}
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["attributes"].dtype == torch.int64 and item["attributes"].shape == (4,)
    spec = train.spec(3)
    assert item["attributes"].tolist() == list(spec.attribute_ids)
    assert item["label"] == S.class_id(spec.shape, spec.colour)
    assert item["caption"] in spec.captions
    assert len(train.all_captions()) == 10 * len(train)
    with pytest.raises(DataError, match="valid"):
        build_dataset(cfg, "valid")


@pytest.mark.parametrize("size", [32, 256])
def test_resolutions(size: int) -> None:
    ds = build_dataset(DataConfig(num_images=48, image_size=size), "train")
    item = ds[0]
    assert item["image"].shape == (3, size, size) and item["wrong_image"].shape == (3, size, size)
    assert ds.image_size == size


def test_items_deterministic_per_seed_epoch_index() -> None:
    cfg = DataConfig(num_images=N, image_size=32)
    a, b = build_dataset(cfg, "train"), build_dataset(cfg, "train")
    for i in (0, 5, 17):
        x, y = a[i], b[i]
        assert x["caption"] == y["caption"] and torch.equal(x["wrong_image"], y["wrong_image"])
        assert x["wrong_label"] != x["label"]
    caps0 = [a[i]["caption"] for i in range(len(a))]
    a.set_epoch(1)
    caps1 = [a[i]["caption"] for i in range(len(a))]
    assert caps0 != caps1
    assert [a[(0, i)]["caption"] for i in range(len(a))] == caps0  # (epoch, index) keys
    a.set_epoch(0)
    assert [a[i]["caption"] for i in range(len(a))] == caps0


def test_image_is_the_items_image_without_the_rest_of_the_item() -> None:
    ds = build_dataset(DataConfig(num_images=N, image_size=32), "train")
    for i in (0, 7):
        img = ds.image(i)
        assert img.dtype == torch.float32 and img.shape == (3, 32, 32) and -1 <= img.min() < img.max() <= 1
        assert torch.equal(img, ds[(3, i)]["image"])
    assert not torch.equal(ds.image(0), ds.image(7))


def test_cached_after_first_use(ganreg_cache) -> None:
    ds = build_dataset(DataConfig(num_images=48, image_size=40, seed=7), "train")
    path = S.cache_path(None, 7, 48, 40)
    assert path.is_file() and str(path).startswith(str(ganreg_cache))
    assert isinstance(ds.images, np.memmap)
    again = build_dataset(DataConfig(num_images=48, image_size=40, seed=7), "train")
    assert np.array_equal(np.asarray(again.images), S.generate_images(7, 48, 40, processes=1))


def test_loader_with_workers_matches_main_process() -> None:
    from ganreg.data import Vocabulary

    ds = build_dataset(DataConfig(num_images=N, image_size=32), "train")
    vocab = Vocabulary.build(ds.all_captions())
    batches = []
    for workers in (0, 2):
        loader = make_loader(ds, batch_size=16, vocab=vocab, num_workers=workers, seed=3)
        loader.set_epoch(2)
        batches.append(next(iter(loader)))
    x, y = batches
    assert torch.equal(x["images"], y["images"]) and torch.equal(x["tokens"], y["tokens"])
    assert x["captions"] == y["captions"]
    assert x["attributes"].shape == (16, 4)
    assert (x["labels"] != x["wrong_labels"]).all()


def test_flip_rejected_for_shapes() -> None:
    with pytest.raises(ValueError, match="flip"):
        DataConfig(source="shapes", flip=True)


@pytest.mark.parametrize("size", [32, 64, 256])
def test_mask_drawn_in_its_box_equals_full_canvas(size: int) -> None:
    for i in range(48):
        spec = S.image_spec(3, i)
        full = S.shape_mask(spec, size)
        x0, y0, x1, y1 = S._bbox(spec, size)
        assert np.array_equal(full[y0:y1, x0:x1], S.shape_mask(spec, size, (x0, y0, x1, y1)))
        full[y0:y1, x0:x1] = 0
        assert full.max() == 0  # nothing of the shape outside its box
