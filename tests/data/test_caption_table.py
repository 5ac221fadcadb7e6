"""A user's own captioned images with their captions in one table (``metadata.jsonl`` / ``metadata.csv``,
Hugging Face's ``imagefolder`` layout)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ganreg.data import DataConfig, build_dataset
from ganreg.errors import DataError

from .test_unlabelled_folder import COLOURS, colour_of, stems, write_captioned


def write_images(folder: Path, names: list[str]) -> None:
    """Solid-colour PNGs: ``names[i]`` has colour ``COLOURS[i % 6]``."""
    from PIL import Image

    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((24, 36, 3), np.uint8) + np.array(COLOURS[i % len(COLOURS)], np.uint8)).save(folder / name)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(source="folder", path=str(root), image_size=32, **kw)


def everything(root: Path) -> dict[str, list[str]]:
    """image name -> its captions, over both splits."""
    out = {}
    for split in ("train", "test"):
        ds = build_dataset(cfg(root), split)
        for i in range(len(ds)):
            out[ds.class_names[ds.labels()[i]]] = ds.captions_of(i)
    return out


def test_jsonl_rows_give_each_image_its_captions_in_order(tmp_path: Path) -> None:
    root = tmp_path / "hf"
    names = [f"{'sub/' if i % 4 == 0 else ''}img_{i:02d}.png" for i in range(20)]
    write_images(root, names)
    rows = []
    for i, name in enumerate(names):
        rows.append({"file_name": name, "text": f"image {i} first", "other": 1})
        if i % 2:
            rows.append({"file_name": name, "text": [f"image {i} second", " ", f"image {i}  third "]})
    write_jsonl(root / "metadata.jsonl", rows)
    got = everything(root)
    assert len(got) == 20 and got["sub__img_00"] == ["image 0 first"]  # subfolders: '/' written '__'
    assert got["img_03"] == ["image 3 first", "image 3 second", "image 3 third"]  # blank dropped, spaces collapsed
    train = build_dataset(cfg(root), "train")
    assert not train.has_classes and 1 <= len(build_dataset(cfg(root), "test")) <= 5
    for i in range(len(train)):  # each caption comes with its own image
        item = train[i]
        n = int(train.class_names[item["label"]].split("_")[-1])
        assert item["caption"].startswith(f"image {n} ")
        assert colour_of(item["image"]) == n % len(COLOURS)


@pytest.mark.parametrize("column", ["text", "caption", "prompt"])
def test_csv_with_any_caption_column_and_the_table_in_images(tmp_path: Path, column: str) -> None:
    root = tmp_path / "mine"
    names = [f"p{i}.jpg" for i in range(6)]
    write_images(root / "images", names)
    write_csv(root / "images" / "metadata.csv", [{"file_name": n, column: f"a, quoted\n{n}"} for n in names],
              ["file_name", column])
    got = everything(root)
    assert got == {n[:-4]: [f"a, quoted {n}"] for n in names}


def test_the_index_is_rebuilt_when_the_table_changes(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    names = [f"p{i}.png" for i in range(6)]
    write_images(root, names)
    write_jsonl(root / "metadata.jsonl", [{"file_name": n, "text": "old"} for n in names])
    cache = tmp_path / "cache"
    assert build_dataset(cfg(root, cache_dir=str(cache)), "train").all_captions()[0] == "old"
    write_jsonl(root / "metadata.jsonl", [{"file_name": n, "text": "new caption"} for n in names])
    assert build_dataset(cfg(root, cache_dir=str(cache)), "train").all_captions()[0] == "new caption"


def write_table(root: Path, rows: list[dict], n: int = 6) -> Path:
    write_images(root, [f"p{i}.png" for i in range(n)])
    write_jsonl(root / "metadata.jsonl", rows)
    return root


@pytest.mark.parametrize(
    ("rows", "message", "fix"),
    [
        ([{"file_name": "p0.png", "text": "a"}, {"file_name": "gone.png", "text": "b"}],
         r"1 row\(s\) name images that do not exist: gone.png \(line 2\)", "add the images"),
        ([{"file_name": "../p0.png", "text": "a"}], "name no image under", "relative path"),
        ([{"file_name": "/etc/passwd", "text": "a"}], "name no image under", "relative path"),
        ([{"file_name": "p0.png", "text": " "}], r"give an image no caption .*: p0.png \(line 1\)", "write a caption"),
        ([{"file_name": "p0.png", "text": "a"}, {"file_name": "p1.png", "text": None}, {"file_name": "p2.png"}],
         r"2 row\(s\) give an image no caption \(no 'text', or it is blank\): p1.png \(line 2\); p2.png \(line 3\)",
         "write a caption"),
        ([{"file_name": "p0.png", "text": 3}], r"neither text nor a list of texts: line 1 \(text 3\)", "caption column"),
        ([{"file_name": "p0.png", "text": "a"}, {"file_name": "p1.png", "caption": "b"}],  # every row's keys count
         "several caption columns: text, caption", "rename"),
        ([{"file_name": "clip.mp4", "text": "a"}], r"not images PIL reads: line 1 \(clip.mp4\)", "pillow-heif"),
        ([{"file_name": "p0.png", "label": "a"}], "no caption column .*file_name, label", "'text'"),
        ([{"image": "p0.png", "text": "a"}], "no 'file_name' column", "relative to the table's folder"),
        ([{"file_name": "p0.png", "text": "a", "caption": "b"}], "several caption columns: text, caption", "rename"),
        ([], "has no rows", "one row per image"),
    ],
)
def test_bad_tables_are_named_with_their_fix(tmp_path: Path, rows: list[dict], message: str, fix: str) -> None:
    root = write_table(tmp_path / "mine", rows)
    with pytest.raises(DataError, match=message) as err:
        build_dataset(cfg(root), "train")
    assert fix in (err.value.fix or "")


def test_many_bad_rows_are_counted_and_the_first_few_named(tmp_path: Path) -> None:
    rows = [{"file_name": f"missing_{i}.png", "text": "a"} for i in range(12)]
    root = write_table(tmp_path / "mine", rows)
    with pytest.raises(DataError, match=r"12 row\(s\).*missing_4.png \(line 5\); \.\.\. and 7 more"):
        build_dataset(cfg(root), "train")


def test_lines_that_are_not_json_and_text_that_is_not_utf8(tmp_path: Path) -> None:
    root = write_table(tmp_path / "mine", [])
    (root / "metadata.jsonl").write_text('{"file_name": "p0.png", "text": "a"}\n{"file_name": p1.png}\n')
    with pytest.raises(DataError, match="line 2 is not JSON"):
        build_dataset(cfg(root), "train")
    (root / "metadata.jsonl").write_text('["p0.png", "a"]\n')
    with pytest.raises(DataError, match="line 1 is not a JSON object"):
        build_dataset(cfg(root), "train")
    (root / "metadata.jsonl").write_bytes(b'{"file_name": "p0.png", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="not UTF-8|0xe9"):
        build_dataset(cfg(root), "train")


def test_names_that_clash_and_tables_that_clash_are_refused(tmp_path: Path) -> None:
    root = write_table(tmp_path / "ext", [{"file_name": "p0.png", "text": "a"}, {"file_name": "p0.jpg", "text": "b"}])
    (root / "p0.jpg").write_bytes((root / "p0.png").read_bytes())
    with pytest.raises(DataError, match="p0.png and p0.jpg give one image name"):
        build_dataset(cfg(root), "train")
    root = write_table(tmp_path / "two", [{"file_name": "p0.png", "text": "a"}])
    write_csv(root / "metadata.csv", [{"file_name": "p0.png", "text": "a"}], ["file_name", "text"])
    with pytest.raises(DataError, match="two caption tables: .*two/metadata.jsonl and .*two/metadata.csv") as err:
        build_dataset(cfg(root), "train")
    assert "keep the one" in (err.value.fix or "")


def test_a_table_and_caption_files_at_once_are_refused_but_other_text_files_are_not(tmp_path: Path) -> None:
    root = write_captioned(tmp_path / "mine", 6, ext=".png")
    write_jsonl(root / "metadata.jsonl", [{"file_name": f"photo_{i:03d}.png", "text": "t"} for i in range(6)])
    with pytest.raises(DataError, match="both in metadata.jsonl and as caption files .*photo_000.txt") as err:
        build_dataset(cfg(root), "train")
    assert "in one place" in (err.value.fix or "")
    for txt in root.glob("*.txt"):
        txt.unlink()
    (root / "LICENSE.txt").write_text("CC-BY\n")  # not a caption: no image of that name
    assert sorted(stems(build_dataset(cfg(root), "train")) + stems(build_dataset(cfg(root), "test"))) == [
        f"photo_{i:03d}" for i in range(6)
    ]


def test_class_lists_win_over_a_table(oxford_folder: Path) -> None:
    """A classed dataset (class lists) with a stray metadata.jsonl reads as before."""
    write_jsonl(oxford_folder / "metadata.jsonl", [{"file_name": "nothing.png", "text": "x"}])
    ds = build_dataset(cfg(oxford_folder), "train")
    assert ds.has_classes and len(ds) == 8


def test_data_info_and_make_hdf5_read_the_table(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ganreg.cli_data import data

    root = tmp_path / "mine"
    names = [f"p{i}.png" for i in range(12)]
    write_images(root, names)
    write_images(root / "unused", ["extra.png"])
    write_jsonl(root / "metadata.jsonl", [{"file_name": n, "text": f"caption of {n}"} for n in names])
    res = CliRunner().invoke(data, ["info", str(root), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["captions_file"] == "metadata.jsonl"
    assert sum(d["images"] for d in info["splits"].values()) == 12
    assert any("captions are in metadata.jsonl" in n for n in info["notes"])
    assert any(n.startswith("1 image(s) have no row in metadata.jsonl") and "extra.png" in n for n in info["notes"])
    res = CliRunner().invoke(data, ["make", "hdf5", "--from", str(root), "--out", str(tmp_path / "mine.h5")])
    assert res.exit_code == 0, res.output
    h5 = DataConfig(source="hdf5", path=str(tmp_path / "mine.h5"), image_size=32)
    assert sorted(stems(build_dataset(h5, "train")) + stems(build_dataset(h5, "test"))) == sorted(n[:-4] for n in names)
    assert stems(build_dataset(h5, "test")) == stems(build_dataset(cfg(root), "test"))


def write_split(root: Path, folder: str, n: int, start: int = 0) -> list[str]:
    """``n`` images ``<folder>/img_<k>.png`` (numbering from 0 in every folder, as Hub datasets do) and the
    folder's metadata.jsonl, captions ``<folder> image <k>``."""
    names = [f"img_{k}.png" for k in range(n)]
    write_images(root / folder, names)
    write_jsonl(root / folder / "metadata.jsonl", [{"file_name": m, "text": f"{folder} image {k}"} for k, m in enumerate(names)])
    return names


def test_a_table_per_split_folder_gives_the_splits(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_split(root, "train", 8)
    write_split(root, "test", 3)
    train, test = build_dataset(cfg(root), "train"), build_dataset(cfg(root), "test")
    assert sorted(stems(train)) == [f"train__img_{k}" for k in range(8)]  # same file names, told apart
    assert sorted(stems(test)) == [f"test__img_{k}" for k in range(3)]
    assert not train.has_classes and train.class_names == test.class_names
    assert test.captions_of(0)[0].startswith("test image ")
    assert stems(build_dataset(cfg(root, seed=5), "test")) == stems(test)  # the folders decide, not the seed
    from ganreg.data._util import SplitMissing

    with pytest.raises(SplitMissing, match=r"no 'valid' split: its splits are train \(train/\), test \(test/\)"):
        build_dataset(cfg(root), "valid")
    c = cfg(root, num_classes=5, test_classes=2)
    assert (len(build_dataset(c, "train")), len(build_dataset(c, "test"))) == (5, 2)
    with pytest.raises(DataError, match="asked for 4 test images but test/ has 3"):
        build_dataset(cfg(root, test_classes=4), "train")


def test_validation_is_the_held_out_split_without_test_and_train_alone_is_one_table(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_split(root, "train", 6)
    write_split(root, "validation", 2)
    assert sorted(stems(build_dataset(cfg(root), "test"))) == ["validation__img_0", "validation__img_1"]
    write_split(root, "test", 2)
    assert len(build_dataset(cfg(root), "valid")) == 2 and stems(build_dataset(cfg(root), "test"))[0].startswith("test__")
    alone = tmp_path / "alone"
    write_split(alone, "train", 20)
    train, test = build_dataset(cfg(alone), "train"), build_dataset(cfg(alone), "test")  # held out by the hash
    assert len(train) + len(test) == 20 and 1 <= len(test) <= 5 and stems(test)[0].startswith("img_")
    only_test = tmp_path / "only_test"
    write_split(only_test, "test", 4)
    with pytest.raises(DataError, match="no training table") as err:
        build_dataset(cfg(only_test), "train")
    assert "train/metadata.jsonl" in (err.value.fix or "")
    write_split(root, "val", 2)
    with pytest.raises(DataError, match="two valid splits: validation/metadata.jsonl and val/metadata.jsonl"):
        build_dataset(cfg(root), "train")


def test_data_info_and_make_hdf5_keep_the_split_tables(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ganreg.cli_data import data

    root = tmp_path / "hub"
    write_split(root, "train", 6)
    write_split(root, "test", 3)
    res = CliRunner().invoke(data, ["info", str(root), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["caption_tables"] == {"train": "train/metadata.jsonl", "test": "test/metadata.jsonl"}
    assert {s: d["images"] for s, d in info["splits"].items()} == {"train": 6, "test": 3}
    assert any("each split has its caption table" in n for n in info["notes"])
    res = CliRunner().invoke(data, ["make", "hdf5", "--from", str(root), "--out", str(tmp_path / "hub.h5")])
    assert res.exit_code == 0, res.output
    h5 = DataConfig(source="hdf5", path=str(tmp_path / "hub.h5"), image_size=32)
    assert sorted(stems(build_dataset(h5, "test"))) == [f"test__img_{k}" for k in range(3)]


def test_csv_headers_with_spaces_and_json_with_unicode_line_separators(tmp_path: Path) -> None:
    root = tmp_path / "csv"
    write_images(root, ["p0.png", "p1.png", "p2.png"])
    (root / "metadata.csv").write_text("file_name, text\np0.png, a red one\np1.png,b\np2.png,c\n", encoding="utf-8")
    assert everything(root)["p0"] == ["a red one"]
    root = tmp_path / "jsonl"
    write_images(root, ["p0.png", "p1.png", "p2.png"])
    rows = [json.dumps({"file_name": f"p{i}.png", "text": f"cap\u2028{i}\u0085end"}, ensure_ascii=False) for i in range(3)]
    (root / "metadata.jsonl").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    assert everything(root)["p1"] == ["cap 1 end"]  # one line each, the separators are whitespace


def test_images_beside_the_table_folder_get_the_relative_path_fix(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    write_images(root / "images", ["p0.png", "p1.png", "p2.png"])
    write_jsonl(root / "metadata.jsonl", [{"file_name": f"p{i}.png", "text": "a"} for i in range(3)])
    with pytest.raises(DataError, match="name images that do not exist: p0.png") as err:
        build_dataset(cfg(root), "train")
    assert "write images/p0.png" in (err.value.fix or "") and "move the table into images/" in (err.value.fix or "")


def test_tables_in_two_folders_or_under_other_names(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    write_images(root / "images", ["p0.png", "p1.png", "p2.png"])
    write_jsonl(root / "metadata.jsonl", [{"file_name": f"images/p{i}.png", "text": "a"} for i in range(3)])
    write_csv(root / "images" / "metadata.csv", [{"file_name": "p0.png", "text": "a"}], ["file_name", "text"])
    with pytest.raises(DataError, match="two caption tables: .*metadata.jsonl and .*images/metadata.csv"):
        build_dataset(cfg(root), "train")
    (root / "images" / "metadata.csv").unlink()
    assert len(everything(root)) == 3
    (root / "metadata.jsonl").rename(root / "metadata.parquet")
    with pytest.raises(DataError, match="metadata.parquet looks like a caption table") as err:
        build_dataset(cfg(root), "train")
    assert "to_json('metadata.jsonl'" in (err.value.fix or "")


@pytest.mark.parametrize("shard", ["data/train-00000-of-00002.parquet", "train/0000.parquet", "part-0.parquet"])
def test_a_hub_parquet_download_points_to_its_export(tmp_path: Path, shard: str) -> None:
    """The Hub's layouts (``data/<split>-*.parquet``, ``<split>/*.parquet``, loose shards) are named, with the
    README's export script as the fix, instead of 'no captions'."""
    root = tmp_path / "hub"
    (root / shard).parent.mkdir(parents=True)
    (root / shard).write_bytes(b"PAR1")
    (root / "README.md").write_text("---\ndataset_info: ...\n")
    with pytest.raises(DataError, match=f"holds Parquet files \\({shard}\\), the Hugging Face Hub's") as err:
        build_dataset(cfg(root), "train")
    assert "hub_to_folder.py" in (err.value.fix or "")


def test_an_empty_text_folder_is_no_caption_clash(tmp_path: Path) -> None:
    root = write_table(tmp_path / "mine", [{"file_name": f"p{i}.png", "text": "a"} for i in range(6)])
    (root / "text").mkdir()
    (root / "text" / "notes.md").write_text("x")
    assert len(everything(root)) == 6
    (root / "text" / "p0.txt").write_text("a caption\n")
    with pytest.raises(DataError, match="both in metadata.jsonl and as caption files"):
        build_dataset(cfg(root), "train")


def test_a_table_is_read_afresh_so_a_deleted_image_is_named_up_front(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    write_images(root / "images", [f"p{i}.png" for i in range(6)])
    write_jsonl(root / "metadata.jsonl", [{"file_name": f"images/p{i}.png", "text": "a"} for i in range(6)])
    c = cfg(root, cache_dir=str(tmp_path / "cache"))
    assert len(build_dataset(c, "train")) + len(build_dataset(c, "test")) == 6
    (root / "images" / "p3.png").unlink()
    with pytest.raises(DataError, match=r"do not exist: images/p3.png \(line 4\)"):
        build_dataset(c, "train")


def test_data_info_leaves_run_directories_out_of_the_unused_images(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ganreg.cli_data import data

    root = write_table(tmp_path / "mine", [{"file_name": f"p{i}.png", "text": "a"} for i in range(6)])
    write_images(root / "runs" / "dfgan-1", ["loss_curves.png"])
    (root / "runs" / "dfgan-1" / "run.json").write_text("{}")
    write_images(root / "extra", ["x.webp"])
    res = CliRunner().invoke(data, ["info", str(root), "--json"])
    assert res.exit_code == 0, res.output
    notes = json.loads(res.output)["notes"]
    assert any(n.startswith("1 image(s) have no row") and "extra/x.webp" in n for n in notes), notes
