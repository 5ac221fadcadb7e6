"""Class split files: one rule picks them (training, `data info`, `data make hdf5`), errors name them, and a
class in both the training and the test list is refused; a source given the wrong kind of path says so."""

from __future__ import annotations

import json

import h5py
import pytest
from click.testing import CliRunner

from ganreg.cli_data import data
from ganreg.data import DataConfig, SplitMissing, build_dataset
from ganreg.data.folder_layout import choose_split_files
from ganreg.errors import DataError


def cfg(root, **kw) -> DataConfig:
    return DataConfig(source="folder", path=str(root), image_size=32, **kw)


def run(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=True)


def test_missing_class_names_the_split_file_listing_it(oxford_folder) -> None:
    (oxford_folder / "testclasses.txt").write_text("class_00004\nclass_00099\n")
    with pytest.raises(DataError) as err:
        build_dataset(cfg(oxford_folder), "test")
    assert f"class 'class_00099' is listed in {oxford_folder / 'testclasses.txt'} but" in err.value.message
    r = run("info", str(oxford_folder))
    assert str(oxford_folder / "testclasses.txt") in str(r.exception)


def test_class_in_train_and_test_lists_is_refused(oxford_folder, tmp_path) -> None:
    (oxford_folder / "testclasses.txt").write_text("class_00004\nclass_00003\nclass_00002\n")
    for split in ("train", "test"):  # either build fails: a run never trains with a spoilt test set
        with pytest.raises(DataError) as err:
            build_dataset(cfg(oxford_folder), split)
        msg = err.value.message
        assert "class_00002, class_00003" in msg and "2 class(es)" in msg
        assert str(oxford_folder / "trainvalclasses.txt") in msg and str(oxford_folder / "testclasses.txt") in msg
        assert not isinstance(err.value, SplitMissing)
    assert "class_00002" in str(run("info", str(oxford_folder)).exception)
    out = tmp_path / "f.h5"
    assert "class_00002" in str(run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out)).exception)
    assert not out.exists()
    # a random class split pools the lists and draws disjoint splits itself: the overlap does not matter
    c = cfg(oxford_folder, class_split="random", num_classes=2, test_classes=1)
    assert build_dataset(c, "train") and build_dataset(c, "test")


def test_hdf5_with_a_class_in_train_and_test_is_refused(seed_hdf5) -> None:
    layout = {"train": {"class_00001": 2, "class_00002": 2}, "test": {"class_00002": 1, "class_00003": 2}}
    path = seed_hdf5(layout=layout)
    for split in ("train", "test"):  # as for folders: either build fails, so no run scores seen classes
        with pytest.raises(DataError) as err:
            build_dataset(DataConfig(source="hdf5", path=str(path), image_size=32), split)
        assert err.value.message.startswith("1 class(es) are both in the 'train' split of")
        assert err.value.message.endswith("its 'test' split: class_00002")
        assert 'class_split = "random"' in err.value.fix
    c = DataConfig(source="hdf5", path=str(path), image_size=32, class_split="random", num_classes=2, test_classes=1)
    train, test = build_dataset(c, "train"), build_dataset(c, "test")
    assert not {train.class_names[i] for i in train.labels()} & {test.class_names[i] for i in test.labels()}


def test_overlap_error_names_the_first_few_classes(oxford_folder) -> None:
    classes = "".join(f"class_{k:05d}\n" for k in range(1, 9))
    (oxford_folder / "trainvalclasses.txt").write_text(classes)
    (oxford_folder / "testclasses.txt").write_text(classes)
    with pytest.raises(DataError) as err:
        build_dataset(cfg(oxford_folder), "train")
    assert err.value.message.startswith("8 class(es)")
    assert err.value.message.endswith(": class_00001, class_00002, class_00003, class_00004, class_00005 and 3 more")


def _four_lists(root) -> None:
    (root / "trainclasses.txt").write_text("class_00001\nclass_00002\n")
    (root / "valclasses.txt").write_text("class_00003\n")
    (root / "trainvalclasses.txt").write_text("class_00001\nclass_00002\nclass_00003\n")
    (root / "testclasses.txt").write_text("class_00004\n")


def test_one_rule_picks_the_split_files(oxford_folder, tmp_path) -> None:
    """Reed et al.'s four lists: training, `data info` and `data make hdf5` all train on trainvalclasses.txt."""
    _four_lists(oxford_folder)
    chosen = choose_split_files(oxford_folder)
    assert {s: p.name for s, p in chosen.items()} == {
        "train": "trainvalclasses.txt", "valid": "valclasses.txt", "test": "testclasses.txt"
    }
    train = build_dataset(cfg(oxford_folder), "train")
    trained_on = {train.class_names[k] for k in train.labels()}
    assert trained_on == {"class_00001", "class_00002", "class_00003"}
    out = tmp_path / "f.h5"
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "class lists: train trainvalclasses.txt" in " ".join(r.output.split())
    with h5py.File(out, "r") as f:
        converted = {f["train"][k]["class"][()].decode() for k in f["train"]}
    assert converted == trained_on
    r = run("info", str(oxford_folder), "--json")
    desc = json.loads(r.output)
    assert desc["split_files"] == {"train": "trainvalclasses.txt", "valid": "valclasses.txt", "test": "testclasses.txt"}
    assert desc["splits"]["train"]["classes"] == 3
    assert any("valid is not held out" in n for n in desc["notes"])
    shown = " ".join(run("info", str(oxford_folder)).output.split())
    assert "class lists: train trainvalclasses.txt, valid valclasses.txt, test testclasses.txt" in shown
    # without trainvalclasses.txt, all three fall back to trainclasses.txt alike
    (oxford_folder / "trainvalclasses.txt").unlink()
    assert choose_split_files(oxford_folder)["train"].name == "trainclasses.txt"
    assert len(set(build_dataset(cfg(oxford_folder), "train").labels())) == 2


def test_a_missing_split_is_its_own_error(oxford_folder, seed_hdf5) -> None:
    """Callers that can do without a split (a run without a held-out set) catch SplitMissing only."""
    (oxford_folder / "testclasses.txt").unlink()
    with pytest.raises(SplitMissing):
        build_dataset(cfg(oxford_folder), "test")
    with pytest.raises(SplitMissing):
        build_dataset(DataConfig(), "valid")
    h5 = seed_hdf5(layout={"train": {"class_00001": 2, "class_00002": 2}})
    with pytest.raises(SplitMissing):
        build_dataset(DataConfig(source="hdf5", path=str(h5), image_size=32), "test")


def test_wrong_source_for_the_path_says_so(oxford_folder, seed_hdf5, tmp_path) -> None:
    h5 = seed_hdf5()
    with pytest.raises(DataError) as err:
        build_dataset(cfg(h5), "train")
    assert err.value.message == f"{h5} is a file, not a dataset folder" and "data.source=hdf5" in err.value.fix
    with pytest.raises(DataError) as err:
        build_dataset(DataConfig(source="hdf5", path=str(oxford_folder), image_size=32), "train")
    assert err.value.message == f"{oxford_folder} is a folder, not an HDF5 file" and "data.source=folder" in err.value.fix
    with pytest.raises(DataError, match="HDF5 file not found"):  # nothing there: still "not found"
        build_dataset(DataConfig(source="hdf5", path=str(tmp_path / "none.h5"), image_size=32), "train")
    r = run("make", "hdf5", "--from", str(h5), "--out", str(tmp_path / "x.h5"))
    assert f"{h5} is a file, not a dataset folder" in str(r.exception) and "--from" in r.exception.fix
