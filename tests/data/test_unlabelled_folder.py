"""A user's own captioned images: ``photo.jpg`` + ``photo.txt`` in no class folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ganreg.data import DataConfig, build_dataset
from ganreg.data._util import SplitMissing
from ganreg.errors import DataError

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 220), (230, 220, 40), (200, 60, 220), (30, 200, 210)]


def write_captioned(folder: Path, n: int, captions: int = 2, ext: str = ".jpg") -> Path:
    """``n`` solid-colour images (colour ``COLOURS[i % 6]``, so a test can read which image it got back)
    with a caption file of the same stem beside each."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.zeros((30, 40, 3), np.uint8) + np.array(COLOURS[i % len(COLOURS)], np.uint8)
        Image.fromarray(arr).save(folder / f"photo_{i:03d}{ext}")
        lines = [f"photo {i} caption {j}" for j in range(captions)]
        (folder / f"photo_{i:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(source="folder", path=str(root), image_size=32, **kw)


def colour_of(t) -> int:  # t: [3, H, W] in [-1, 1] -> index into COLOURS
    mean = ((t.mean(dim=(1, 2)) + 1) * 127.5).numpy()
    return int(np.argmin([np.sum((mean - np.array(c)) ** 2) for c in COLOURS]))


def stems(ds) -> list[str]:
    return [ds.class_names[k] for k in ds.labels()]


def test_each_image_is_its_own_class_and_a_tenth_is_held_out(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 25)
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert len(train) == 23 and len(test) == 2  # 25 // 10 held out
    assert not train.has_classes and not test.has_classes
    assert not set(stems(train)) & set(stems(test))
    assert sorted(stems(train) + stems(test)) == [f"photo_{i:03d}" for i in range(25)]
    assert train.class_names == test.class_names and len(set(train.labels())) == 23  # one label per image
    for i in range(len(train)):
        item = train[i]
        n = int(train.class_names[item["label"]].split("_")[1])
        assert item["caption"] in {f"photo {n} caption 0", f"photo {n} caption 1"}
        assert colour_of(item["image"]) == n % len(COLOURS)  # the image of the caption
        assert item["wrong_label"] != item["label"]  # any other image
    assert stems(build_dataset(cfg(root), "test")) == stems(test)  # a pure function of data.seed
    drawn = {tuple(stems(build_dataset(cfg(root, seed=s), "test"))) for s in range(6)}
    assert len(drawn) > 1
    with pytest.raises(SplitMissing, match="no classes"):
        build_dataset(cfg(root), "valid")


def test_num_and_test_classes_count_images(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 12)
    c = cfg(root, num_classes=5, test_classes=3)
    train, test = build_dataset(c, "train"), build_dataset(c, "test")
    assert (len(train), len(test)) == (5, 3) and not set(stems(train)) & set(stems(test))
    with pytest.raises(DataError, match="count images") as err:
        build_dataset(cfg(root, num_classes=11, test_classes=2), "train")
    assert "lower" in (err.value.fix or "")


@pytest.mark.parametrize("where", ["root", "images", "captions_dir"])
def test_captions_beside_the_images_or_in_a_flat_caption_folder(tmp_path: Path, where: str) -> None:
    root = tmp_path / "mine"
    if where == "root":
        write_captioned(root, 10, ext=".PNG")
        c = cfg(root)
    elif where == "images":
        write_captioned(root / "images", 10)
        c = cfg(root)
    else:  # images in pics/, captions in text_c10/ without class folders
        write_captioned(root / "pics", 10)
        (root / "text_c10").mkdir()
        for txt in (root / "pics").glob("*.txt"):
            txt.rename(root / "text_c10" / txt.name)
        c = cfg(root, images_dir="pics")
    train = build_dataset(c, "train")
    assert len(train) == 9 and not train.has_classes
    assert train.image_path(0).is_file()


def test_a_caption_file_without_an_image_is_named(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 10)
    (root / "README.txt").write_text("my photos\n")
    with pytest.raises(DataError, match="no image for caption file .*README.txt") as err:
        build_dataset(cfg(root), "train")
    assert "delete the caption file" in (err.value.fix or "")


def test_class_lists_with_captions_in_no_class_folders_are_refused(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 10)
    (root / "trainclasses.txt").write_text("roses\n")
    with pytest.raises(DataError, match="class lists \\(trainclasses.txt\\).*not in class folders") as err:
        build_dataset(cfg(root), "train")
    assert "delete the class lists" in (err.value.fix or "")


def test_no_captions_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "jpg").mkdir(parents=True)
    with pytest.raises(DataError, match="no captions in .*text_c10, text.*beside the images in .*jpg") as err:
        build_dataset(cfg(root), "train")
    assert "photo.jpg + photo.txt" in (err.value.fix or "")
    write_captioned(root / "only", 1)
    with pytest.raises(DataError, match="1 captioned image"):
        build_dataset(cfg(root / "only"), "train")


def test_captions_beside_images_in_class_folders_keep_their_classes(tmp_path: Path) -> None:
    """CUB-like class folders with each caption beside its image: classed data, split by class lists."""
    root = tmp_path / "mine"
    for cls in ("roses", "tulips", "daisies"):
        write_captioned(root / "images" / cls, 3)
        for p in (root / "images" / cls).iterdir():
            p.rename(p.with_name(f"{cls}_{p.name}"))
    (root / "trainclasses.txt").write_text("roses\ntulips\n")
    (root / "testclasses.txt").write_text("daisies\n")
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert train.has_classes and (len(train), len(test)) == (6, 3)
    assert {train.class_names[k] for k in train.labels()} == {"roses", "tulips"}


def test_the_evaluation_classifier_refuses_data_without_classes(tmp_path: Path) -> None:
    from ganreg.errors import UserError
    from ganreg.metrics.classifier import load_labelled_images

    root = write_captioned(tmp_path / "mine", 10)
    with pytest.raises(UserError, match="no classes") as err:
        load_labelled_images(cfg(root), 32)
    assert "--extractor inception" in (err.value.fix or "")
