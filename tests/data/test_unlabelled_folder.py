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
    root = write_captioned(tmp_path / "mine", 60)
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert 2 <= len(test) <= 12 and len(train) + len(test) == 60  # about a tenth held out
    assert not train.has_classes and not test.has_classes
    assert not set(stems(train)) & set(stems(test))
    assert sorted(stems(train) + stems(test)) == [f"photo_{i:03d}" for i in range(60)]
    assert train.class_names == test.class_names and len(set(train.labels())) == len(train)  # one label per image
    for i in range(len(train)):
        item = train[i]
        n = int(train.class_names[item["label"]].split("_")[1])
        assert item["caption"] in {f"photo {n} caption 0", f"photo {n} caption 1"}
        assert colour_of(item["image"]) == n % len(COLOURS)  # the image of the caption
        assert item["wrong_label"] != item["label"]  # any other image
    assert stems(build_dataset(cfg(root), "test")) == stems(test)  # a pure function of data.seed
    drawn = {tuple(stems(build_dataset(cfg(root, seed=s), "test"))) for s in range(4)}
    assert len(drawn) > 1
    with pytest.raises(SplitMissing, match="no classes"):
        build_dataset(cfg(root), "valid")


def test_adding_images_moves_no_image_between_the_splits(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 40)
    before = {s: set(stems(build_dataset(cfg(root), s))) for s in ("train", "test")}
    write_captioned(tmp_path / "more", 80)
    for f in (tmp_path / "more").iterdir():
        if int(f.stem.split("_")[1]) >= 40:
            f.rename(root / f.name)
    after = {s: set(stems(build_dataset(cfg(root), s))) for s in ("train", "test")}
    assert len(after["train"]) + len(after["test"]) == 80
    assert before["train"] <= after["train"] and before["test"] <= after["test"]


def test_too_few_images_or_names_differing_in_case_are_refused(tmp_path: Path) -> None:
    write_captioned(tmp_path / "two", 2)
    with pytest.raises(DataError, match="2 captioned image"):
        build_dataset(cfg(tmp_path / "two"), "train")
    write_captioned(tmp_path / "three", 3)
    assert len(build_dataset(cfg(tmp_path / "three"), "train")) == 2
    root = write_captioned(tmp_path / "case", 4)
    (root / "PHOTO_001.txt").write_text("another\n")
    with pytest.raises(DataError, match="differ only in case"):
        build_dataset(cfg(root), "train")


def test_num_and_test_classes_count_images(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 12)
    c = cfg(root, num_classes=5, test_classes=3)
    train, test = build_dataset(c, "train"), build_dataset(c, "test")
    assert (len(train), len(test)) == (5, 3) and not set(stems(train)) & set(stems(test))
    with pytest.raises(DataError, match="count images") as err:
        build_dataset(cfg(root, num_classes=11, test_classes=2), "train")
    assert "lower" in (err.value.fix or "")
    with pytest.raises(DataError, match="1 training image"):
        build_dataset(cfg(root, num_classes=1, test_classes=2), "train")


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
    train, test = build_dataset(c, "train"), build_dataset(c, "test")
    assert len(train) + len(test) == 10 and not train.has_classes
    assert train.image_path(0).is_file()


def test_a_caption_file_without_an_image_is_named(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 10)
    (root / "README.txt").write_text("my photos\n")
    with pytest.raises(DataError, match="no image for caption file .*README.txt") as err:
        build_dataset(cfg(root), "train")
    assert "move the caption file out" in (err.value.fix or "")
    assert str(err.value).count("README.jpg") == 1  # one place, named once


@pytest.mark.parametrize("ext", [".webp", ".bmp", ".tiff", ".PNG"])
def test_images_of_other_formats_beside_their_caption_files(tmp_path: Path, ext: str) -> None:
    """A phone's or a web scrape's .webp (and .bmp, .tif) beside its caption file is found like a .jpg (it used to
    be 'no image for caption file', the image right there)."""
    root = write_captioned(tmp_path / "mine", 12, ext=ext)
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert len(train) + len(test) == 12
    item = train[0]
    assert colour_of(item["image"]) == int(train.class_names[item["label"]].split("_")[1]) % len(COLOURS)


def test_captions_both_flat_and_in_class_folders_are_refused(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 10)
    write_captioned(root / "more", 3)
    with pytest.raises(DataError, match="both itself .*photo_000.txt.* and in its folders .*more") as err:
        build_dataset(cfg(root), "train")
    assert "in one place" in (err.value.fix or "")


def test_captioned_images_both_in_the_folder_and_its_images_folder_are_refused(tmp_path: Path) -> None:
    """images/ is the folder read: the root's captioned images were left out without a word."""
    root = tmp_path / "mine"
    write_captioned(root / "images", 10)
    write_captioned(root, 2)
    with pytest.raises(DataError, match=r"both itself \(photo_000.txt, ...\) and in images/.* the 2 in mine/") as err:
        build_dataset(cfg(root), "train")
    assert "move them all into images/" in (err.value.fix or "")
    (root / "photo_000.txt").unlink()
    (root / "photo_001.txt").unlink()  # images alone in the root (a cover picture) are no captioned images
    assert len(build_dataset(cfg(root), "train")) + len(build_dataset(cfg(root), "test")) == 10


def test_class_lists_keep_the_classed_layouts_as_they_were(oxford_folder: Path, tmp_path: Path, helpers) -> None:
    """A stray .txt beside the class folders of text_c10/ is ignored as before (the class lists decide), and a
    Reed-style root whose captions are not unpacked is told to unpack text_c10/, not to delete its class lists."""
    (oxford_folder / "text_c10" / "README.txt").write_text("captions of Oxford-102\n")
    (oxford_folder / "allclasses.txt").write_text("class_00001\n")
    ds = build_dataset(cfg(oxford_folder), "train")
    assert ds.has_classes and len(ds) == 8
    (oxford_folder / "jpg").rename(oxford_folder / "images_elsewhere")
    with pytest.raises(DataError, match="no image folder .*jpg"):
        build_dataset(cfg(oxford_folder), "train")
    (oxford_folder / "images_elsewhere").rename(oxford_folder / "jpg")
    (oxford_folder / "text_c10").rename(oxford_folder / "captions_elsewhere")
    with pytest.raises(DataError, match="no caption folder .*text_c10") as err:
        build_dataset(cfg(oxford_folder), "train")
    assert "unpack the captions (text_c10" in (err.value.fix or "")
    # without class lists, the same stray file among class folders is named
    root = helpers.write_folder(tmp_path / "noclasslists", {"class_00001": 2, "class_00002": 2})
    (root / "text_c10" / "README.txt").write_text("x\n")
    with pytest.raises(DataError, match="both itself \\(README.txt"):
        build_dataset(cfg(root), "train")


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


def test_an_hdf5_made_from_it_keeps_having_no_classes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ganreg.cli_data import data

    root = write_captioned(tmp_path / "mine", 10)
    res = CliRunner().invoke(data, ["make", "hdf5", "--from", str(root), "--out", str(tmp_path / "mine.h5")])
    assert res.exit_code == 0, res.output
    assert "no classes" in res.output
    h5 = DataConfig(source="hdf5", path=str(tmp_path / "mine.h5"), image_size=32)
    train, test = build_dataset(h5, "train"), build_dataset(h5, "test")
    assert not train.has_classes and len(train) + len(test) == 10
    assert stems(test) == stems(build_dataset(cfg(root), "test"))  # the folder's split at seed 0
    res = CliRunner().invoke(data, ["info", str(tmp_path / "mine.h5")])
    assert res.exit_code == 0 and "no classes" in res.output
    from ganreg.data.hdf5 import write_hdf5  # a file of classes keeps them

    write_hdf5(tmp_path / "classes.h5", {"train": [("a", "roses", b"x", ["c"]), ("b", "tulips", b"y", ["d"])]})
    assert build_dataset(DataConfig(source="hdf5", path=str(tmp_path / "classes.h5")), "train").has_classes


def test_data_info_says_there_are_no_classes(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from ganreg.cli_data import data

    root = write_captioned(tmp_path / "mine", 30)
    res = CliRunner().invoke(data, ["info", str(root), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert {s: d["classes"] for s, d in info["splits"].items()} == {"train": None, "test": None}
    assert sum(d["images"] for d in info["splits"].values()) == 30
    assert any(n.startswith("no classes") for n in info["notes"])


def test_upper_case_txt_is_a_caption_file_and_two_images_of_one_stem_are_refused(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 6)
    (root / "photo_002.txt").rename(root / "photo_002.TXT")
    names = stems(build_dataset(cfg(root), "train")) + stems(build_dataset(cfg(root), "test"))
    assert sorted(names) == [f"photo_{i:03d}" for i in range(6)]
    (root / "photo_004.png").write_bytes((root / "photo_004.jpg").read_bytes())
    with pytest.raises(DataError, match="photo_004.txt is for two images: .*photo_004.jpg and .*photo_004.png") as err:
        build_dataset(cfg(root), "train")
    assert "rename or delete one" in (err.value.fix or "")
    (root / "photo_004.png").rename(root / "photo_004.JPG")
    if not (root / "photo_004.jpg").samefile(root / "photo_004.JPG"):  # a case-sensitive file system
        with pytest.raises(DataError, match="photo_004.JPG and photo_004.jpg, which differ only in case"):
            build_dataset(cfg(root), "train")


def test_a_run_directory_inside_the_data_folder_keeps_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ganreg.data.folder_layout import FolderLayout

    root = write_captioned(tmp_path / "mine", 6)
    c = cfg(root, cache_dir=str(tmp_path / "cache"))
    built = []
    real = FolderLayout.build_class
    monkeypatch.setattr(FolderLayout, "build_class", lambda self, *a, **k: built.append(1) or real(self, *a, **k))
    build_dataset(c, "train")
    (root / "runs" / "dfgan-1").mkdir(parents=True)
    (root / "runs" / "dfgan-1" / "log.txt").write_text("step 1\n")
    build_dataset(c, "train")
    (root / "runs" / "dfgan-2").mkdir()  # the folder's mtime changes
    build_dataset(c, "train")
    assert len(built) == 1
    (root / "photo_001.txt").write_text("an edited caption\n")
    assert "an edited caption" in build_dataset(c, "train").all_captions() + build_dataset(c, "test").all_captions()
    assert len(built) == 2


def write_coco(root: Path, train: int, test: int) -> tuple[list[str], list[str]]:
    """COCO as AttnGAN / DF-GAN ship it: images/<name>.jpg, text/<name>.txt (5 captions), and train/ and
    test/ filenames.pickle of bare names (Python 2 pickles, as theirs)."""
    import pickle

    names = {"train": [f"COCO_train2014_{i:012d}" for i in range(train)],
             "test": [f"COCO_val2014_{i:012d}" for i in range(test)]}
    write_captioned(root / "images", train + test, captions=5)
    for i, name in enumerate(names["train"] + names["test"]):
        (root / "images" / f"photo_{i:03d}.jpg").rename(root / "images" / f"{name}.jpg")
        (root / "text").mkdir(exist_ok=True)
        (root / "images" / f"photo_{i:03d}.txt").rename(root / "text" / f"{name}.txt")
    for split, ns in names.items():
        (root / split).mkdir()
        (root / split / "filenames.pickle").write_bytes(pickle.dumps(ns, protocol=2))
    return names["train"], names["test"]


def test_coco_as_dfgan_ships_it_splits_by_its_image_lists(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    train_names, test_names = write_coco(root, 8, 3)
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert sorted(stems(train)) == train_names and sorted(stems(test)) == test_names
    assert not train.has_classes and train.class_names == test.class_names
    assert len(train.captions_of(0)) == 5 and train.layout.captions.name == "text"
    item = train[0]
    n = train_names.index(train.class_names[item["label"]])
    assert item["caption"].startswith(f"photo {n} caption") and colour_of(item["image"]) == n % len(COLOURS)
    with pytest.raises(SplitMissing, match="no 'valid' split: its splits are train"):
        build_dataset(cfg(root), "valid")
    assert len(build_dataset(cfg(root, num_classes=4, test_classes=2), "test")) == 2


def test_coco_lists_that_overlap_or_lack_captions_are_named(tmp_path: Path) -> None:
    import pickle

    root = tmp_path / "coco"
    train_names, test_names = write_coco(root, 6, 2)
    (root / "test" / "filenames.pickle").write_bytes(pickle.dumps(test_names + train_names[:1], protocol=2))
    with pytest.raises(DataError, match=r"1 image\(s\) are both in the training list .* COCO_train2014_000000000000"):
        build_dataset(cfg(root), "train")
    (root / "test" / "filenames.pickle").write_bytes(pickle.dumps(test_names, protocol=2))
    (root / "text" / f"{train_names[2]}.txt").unlink()
    with pytest.raises(DataError, match=r"1 listed image\(s\) have no caption file .*first: COCO_train2014_000000000002, "
                                        r"listed in .*train/filenames.pickle") as err:
        build_dataset(cfg(root), "train")
    assert "unpack the dataset's captions into" in (err.value.fix or "")
    (root / "text" / f"{train_names[2]}.txt").write_text("a caption\n")
    (root / "images" / f"{test_names[1]}.jpg").unlink()
    with pytest.raises(DataError, match=r"1 listed image\(s\) have no image .*first: COCO_val2014_000000000001") as err:
        build_dataset(cfg(root), "train")
    assert "train2014" in (err.value.fix or "")
    (root / "test" / "filenames.pickle").unlink()  # only the train list: no test split, training still works
    assert len(build_dataset(cfg(root), "train")) == 6


def test_coco_as_current_dfgan_reads_it_train2014_val2014_and_names_with_extensions(tmp_path: Path) -> None:
    """Current DF-GAN reads images/train2014/ and images/val2014/ (captions here in text/train2014/ and
    text/val2014/, as AttnGAN's text archives unpack); a caption file's first 5 lines are its
    captions (DF-GAN's CAPTIONS_PER_IMAGE); captions of images no list names are not read; names listed
    with their extension are the same names; a test list alone is told to add the train list."""
    import pickle

    root = tmp_path / "coco"
    train_names, test_names = write_coco(root, 6, 2)
    for folder, names in (("train2014", train_names), ("val2014", test_names)):
        (root / "images" / folder).mkdir()
        (root / "text" / folder).mkdir()  # AttnGAN's train2014-text.zip / val2014-text.zip, unpacked into text/
        for n in names:
            (root / "images" / f"{n}.jpg").rename(root / "images" / folder / f"{n}.jpg")
            (root / "text" / f"{n}.txt").rename(root / "text" / folder / f"{n}.txt")
    (root / "text" / "train2014" / f"{train_names[0]}.txt").write_text("".join(f"caption {j}\n" for j in range(7)))
    (root / "text" / "COCO_val2014_999999999999.txt").write_text("an image that is not there\n")  # listed nowhere
    (root / "train" / "filenames.pickle").write_bytes(pickle.dumps([f"{n}.jpg" for n in train_names], protocol=2))
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert sorted(stems(train)) == train_names and sorted(stems(test)) == test_names
    first = stems(train).index(train_names[0])
    assert train.captions_of(first) == [f"caption {j}" for j in range(5)]
    assert {train.image_path(i).parent.name for i in range(len(train))} == {"train2014"}
    assert {test.image_path(i).parent.name for i in range(len(test))} == {"val2014"}
    (root / "train" / "filenames.pickle").unlink()
    with pytest.raises(DataError, match="no training list") as err:
        build_dataset(cfg(root), "test")
    assert "add train/filenames.pickle" in (err.value.fix or "")


def test_coco_data_info_and_make_hdf5(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from ganreg.cli_data import data

    root = tmp_path / "coco"
    train_names, test_names = write_coco(root, 6, 2)
    res = CliRunner().invoke(data, ["info", str(root), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["image_lists"] == {"train": "train/filenames.pickle", "test": "test/filenames.pickle"}
    assert {s: d["images"] for s, d in info["splits"].items()} == {"train": 6, "test": 2}
    assert any("COCO-like" in n for n in info["notes"])
    res = CliRunner().invoke(data, ["make", "hdf5", "--from", str(root), "--out", str(tmp_path / "coco.h5")])
    assert res.exit_code == 0, res.output
    h5 = DataConfig(source="hdf5", path=str(tmp_path / "coco.h5"), image_size=32)
    assert sorted(stems(build_dataset(h5, "test"))) == test_names


def test_data_info_reads_a_quoted_home_path_and_names_missing_paths_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ganreg data info '~/photos'` (the shell leaves a quoted ~ alone) reads the folder as a recipe's data.path does."""
    from ganreg.cli_data import describe_path

    monkeypatch.setenv("HOME", str(tmp_path))
    write_captioned(tmp_path / "photos", 12)
    assert describe_path("~/photos")["source"] == "folder"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'} does not exist"):
        describe_path("nowhere")


def test_split_folders_with_caption_files_are_named_as_such(tmp_path: Path) -> None:
    """train/ and test/ holding images with caption files were read as two classes, and the error asked for a class
    list: it now says that split folders need a table, or that one folder of all the images will do."""
    write_captioned(tmp_path / "mine" / "train", 10)
    write_captioned(tmp_path / "mine" / "test", 4)
    with pytest.raises(DataError, match="holds split folders \\(test, train\\)") as err:
        build_dataset(cfg(tmp_path / "mine"), "train")
    assert "metadata.jsonl" in (err.value.fix or "") and "one folder" in (err.value.fix or "")
