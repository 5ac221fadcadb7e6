"""Evaluation caches key on what the data holds, not where it lies (ganreg.metrics.cache.data_key)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ganreg.data.config import DataConfig
from ganreg.metrics.cache import data_key


def _folder_config(root: Path) -> DataConfig:
    return DataConfig(source="folder", path=str(root), image_size=32)


def test_data_key_follows_folder_content_not_its_path(oxford_folder: Path, helpers) -> None:  # type: ignore[no-untyped-def]
    key = data_key(_folder_config(oxford_folder))
    assert data_key(_folder_config(oxford_folder)) == key  # stable

    moved = oxford_folder.parent / "moved_flowers"
    shutil.move(oxford_folder, moved)  # a move keeps the files' timestamps
    assert data_key(_folder_config(moved)) == key

    image = moved / "jpg" / "image_00001.jpg"
    stamp = image.stat()
    image.write_bytes(helpers.encode(helpers.class_image("class_00002", 1, (36, 30))))  # re-cropped in place
    os.utime(image, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    edited_image = data_key(_folder_config(moved))
    assert edited_image != key

    caption = moved / "text_c10" / "class_00004" / "image_00009.txt"  # a held-out (test split) caption
    caption.write_text(caption.read_text(encoding="utf-8").replace("caption 0", "caption zero"), encoding="utf-8")
    assert data_key(_folder_config(moved)) != edited_image


def test_data_key_follows_hdf5_file(seed_hdf5) -> None:  # type: ignore[no-untyped-def]
    path = seed_hdf5()
    config = DataConfig(source="hdf5", path=str(path), image_size=32)
    key = data_key(config)
    stamp = path.stat()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))  # rewritten in place
    assert data_key(config) != key


def test_data_key_of_hdf5_with_random_classes_or_an_empty_valid_group(seed_hdf5) -> None:  # type: ignore[no-untyped-def]
    """Evaluation keys every split it can build: 'valid' drawn empty by class_split random, or an empty HDF5
    group, must not stop an evaluation that never reads it."""
    path = seed_hdf5()
    drawn = DataConfig(source="hdf5", path=str(path), image_size=32, class_split="random", num_classes=3, test_classes=2)
    assert data_key(drawn) != data_key(drawn.model_copy(update={"seed": 1}))
    empty = seed_hdf5("empty_valid.hdf5", layout={"train": {"class_00001": 3, "class_00002": 3}, "valid": {}, "test": {"class_00004": 2, "class_00005": 2}})
    assert data_key(DataConfig(source="hdf5", path=str(empty), image_size=32))


def test_an_evaluation_lists_its_data_once(oxford_folder: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The classifier, the reference statistics and the protocol each ask for the key: within one evaluation
    the dataset is listed and stat'ed once, outside it every call sees the data as it is now."""
    import ganreg.data.build as build
    from ganreg.metrics.cache import data_keys_once

    calls: list[int] = []
    listed = build.content_signatures
    monkeypatch.setattr(build, "content_signatures", lambda config: calls.append(1) or listed(config))
    config = _folder_config(oxford_folder)
    with data_keys_once():
        keys = {data_key(config) for _ in range(3)}
    assert len(keys) == 1 and len(calls) == 1
    data_key(config)
    assert len(calls) == 2
