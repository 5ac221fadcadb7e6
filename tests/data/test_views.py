"""Dataset views: items without their pictures, for caption-only passes and losses without wrong images."""

from __future__ import annotations

import pytest
import torch

from ganreg.data import DataConfig, Vocabulary, build_dataset
from ganreg.data.tokenizer import collate
from ganreg.errors import DataError


def test_views_drop_pictures_but_keep_every_random_choice(seed_hdf5) -> None:
    ds = build_dataset(DataConfig(source="hdf5", path=str(seed_hdf5()), image_size=32, flip=True), "train")
    lean = ds.view(wrong_images=False)
    text = ds.view(images=False, wrong_images=False)
    for key in [(0, 0), (3, 1), (7, 5)]:
        full = ds[key]
        assert set(full) - set(lean[key]) == {"wrong_image", "wrong_label"}
        assert set(full) - set(text[key]) == {"image", "wrong_image", "wrong_label"}
        assert torch.equal(lean[key]["image"], full["image"])  # same flip
        assert text[key]["caption"] == lean[key]["caption"] == full["caption"]
        assert torch.equal(text[key]["embedding"], full["embedding"])  # the chosen caption's embedding
    assert ds.with_images and ds.with_wrong_images and not ds.raw_images  # the dataset itself is unchanged
    assert lean.view(raw_images=True)[0]["image"].dtype == torch.uint8
    batch = collate([text[i] for i in range(4)], Vocabulary.build(ds.all_captions()))
    assert "images" not in batch and "wrong_images" not in batch and batch["tokens"].shape[0] == 4


def test_a_one_class_split_serves_items_without_wrong_images(seed_hdf5) -> None:
    path = seed_hdf5(layout={"train": {"class_00001": 2, "class_00002": 2}, "test": {"class_00003": 3}})
    test = build_dataset(DataConfig(source="hdf5", path=str(path), image_size=32), "test")
    with pytest.raises(DataError, match="only one class"):
        test[0]
    item = test.view(wrong_images=False)[0]
    assert item["image"].shape == (3, 32, 32) and "wrong_image" not in item
