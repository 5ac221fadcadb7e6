"""``ganreg data``: make shapes (both formats), convert, info; atomic writes; errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from ganreg.cli_data import data
from ganreg.data import DataConfig, build_dataset
from ganreg.data.embeddings import caption_embedding
from ganreg.data.hdf5 import HDF5Dataset
from ganreg.errors import DataError, UserError


def run(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=True)


def test_make_shapes_hdf5_info_and_load(tmp_path) -> None:
    out = tmp_path / "sets"
    r = run("make", "shapes", "--out", str(out), "--count", "48", "--size", "32", "--seed", "2")
    assert r.exit_code == 0, r.output
    h5 = out / "shapes.h5"
    assert h5.is_file() and not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp left
    # seed layout: one group per caption, void img, float32 1024 embeddings, vlen str txt with newline
    with h5py.File(h5, "r") as f:
        assert set(f) == {"train", "test"}
        g = f["train"][sorted(f["train"])[0]]
        assert g["img"].dtype.kind == "V" and g["embeddings"].shape == (1024,)
        assert g["embeddings"].dtype == np.float32
        txt = g["txt"][()].decode()
        assert txt.endswith("\n")
        assert np.allclose(g["embeddings"][()], caption_embedding(txt))
        assert g["class"][()].decode().count("_") == 1
    r = run("info", str(h5), "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["source"] == "hdf5" and info["embedding_dim"] == 1024
    tr, te = info["splits"]["train"], info["splits"]["test"]
    assert tr["images"] + te["images"] == 48 and tr["captions"] == 10 * tr["images"]
    assert tr["classes"] == 38 and te["classes"] == 10
    assert tr["image_size"] == {"min": [32, 32], "max": [32, 32]}
    assert run("info", str(h5)).exit_code == 0
    # the written file loads with the hdf5 source, and matches the shapes source's split
    ds = build_dataset(DataConfig(source="hdf5", path=str(h5), image_size=32), "train")
    shapes = build_dataset(DataConfig(num_images=48, image_size=32, seed=2), "train")
    assert len(ds) == len(shapes) and ds.embedding_dim == 1024
    assert sorted(ds.all_captions()) == sorted(shapes.all_captions())
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["embedding"].shape == (1024,)
    assert np.allclose(item["embedding"].numpy(), caption_embedding(item["caption"]))
    assert item["wrong_label"] != item["label"]


def test_make_shapes_folder_then_convert_and_info(tmp_path) -> None:
    root = tmp_path / "shapes_folder"
    r = run(
        "make", "shapes", "--out", str(root), "--count", "48", "--size", "32", "--format", "folder", "--captions", "5"
    )
    assert r.exit_code == 0, r.output
    assert (root / "trainclasses.txt").is_file() and (root / "testclasses.txt").is_file()
    txts = list((root / "text_c10").rglob("*.txt"))
    assert len(txts) == 48 and all(len(t.read_text().splitlines()) == 5 for t in txts)
    ds = build_dataset(DataConfig(source="folder", path=str(root), image_size=32), "test")
    assert len(set(ds.labels())) == 10
    r = run("info", str(root), "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["source"] == "folder" and info["images_dir"] == "images"
    assert info["splits"]["train"]["classes"] == 38
    conv = tmp_path / "conv.h5"
    r = run("make", "hdf5", "--from", str(root), "--out", str(conv))
    assert r.exit_code == 0, r.output
    h = HDF5Dataset(conv, "test", image_size=32)
    assert sorted(h.all_captions()) == sorted(ds.all_captions())
    assert h.class_names == ds.class_names
    # the stored image bytes are the folder's files, unchanged
    by_name = {p.stem: p.read_bytes() for p in (root / "images").rglob("*.jpg")}
    assert h.image_bytes(0) == by_name[h.items[0][1]]


def test_info_shapes() -> None:
    r = run("info", "shapes", "--json", "--count", "96")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["classes"] == 48 and info["splits"]["test"]["classes"] == 10
    assert set(info["attributes"]) == {"shape", "colour", "size", "position"}
    assert run("info", "shapes", "--count", "96").exit_code == 0


def test_errors_are_user_errors(tmp_path) -> None:
    r = run("info", str(tmp_path / "nothing"))
    assert isinstance(r.exception, DataError)
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep me")
    r = run("make", "shapes", "--out", str(out), "--count", "48", "--size", "32")
    assert isinstance(r.exception, UserError) and out.read_bytes() == b"keep me"
    r = run("make", "hdf5", "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "y.h5"))
    assert isinstance(r.exception, DataError) and "not found" in str(r.exception)
    empty = tmp_path / "empty"
    (empty / "text_c10").mkdir(parents=True)
    (empty / "images").mkdir()
    r = run("make", "hdf5", "--from", str(empty), "--out", str(tmp_path / "y.h5"))
    assert isinstance(r.exception, DataError) and "split file" in str(r.exception)
    assert not (tmp_path / "y.h5").exists()


def test_failed_write_leaves_nothing(tmp_path, monkeypatch) -> None:
    import ganreg.data._util as util

    calls = {"n": 0}
    real = util.encode_jpeg

    def flaky(arr, quality=95):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("disk full (simulated)")
        return real(arr, quality)

    monkeypatch.setattr(util, "encode_jpeg", flaky)
    for fmt, out in (("hdf5", tmp_path / "h"), ("folder", tmp_path / "f")):
        calls["n"] = 0
        r = run("make", "shapes", "--out", str(out), "--count", "48", "--size", "32", "--format", fmt)
        assert isinstance(r.exception, RuntimeError)
        left = list(out.rglob("*")) if out.exists() else []
        assert left == [], left
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fmt", ["hdf5", "folder"])
def test_help_mentions_embeddings(fmt: str) -> None:
    r = run("make", "shapes" if fmt == "hdf5" else "hdf5", "--help")
    assert r.exit_code == 0 and "bag of" in r.output and "char-CNN-RNN" in r.output


def test_make_hdf5_names_a_corrupt_image_and_the_options_to_fix(tmp_path, oxford_folder) -> None:
    bad = sorted((oxford_folder / "jpg").iterdir())[2]
    bad.write_bytes(b"<html>not an image</html>")
    out = tmp_path / "f.h5"
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out))
    assert isinstance(r.exception, DataError)
    assert str(bad) in r.exception.message and "not an image format PIL reads" in r.exception.message
    assert "BytesIO" not in str(r.exception) and not out.exists()
    r = run("make", "hdf5", "--from", str(tmp_path / "nope"), "--out", str(out))
    assert "--from" in str(r.exception) and "data.path" not in str(r.exception)
    assert "--resume" not in str(r.exception)  # a run's moved data is not this command's business
    r = run("make", "hdf5", "--from", str(oxford_folder), "--captions-dir", "captions", "--out", str(out))
    assert "--captions-dir" in str(r.exception) and "data.captions_dir" not in str(r.exception)


def test_info_notes_a_missing_split_list_and_uncaptioned_images(tmp_path, oxford_folder) -> None:
    (oxford_folder / "trainvalclasses.txt").unlink()
    spare = oxford_folder / "jpg" / "image_09999.jpg"
    spare.write_bytes(next((oxford_folder / "jpg").iterdir()).read_bytes())
    r = run("info", str(oxford_folder), "--json")
    assert r.exit_code == 0, r.output
    desc = json.loads(r.output)
    assert list(desc["splits"]) == ["test"]
    notes = " ".join(desc["notes"])
    assert "no class list for the 'train' split" in notes and "trainvalclasses.txt" in notes
    assert "1 image(s) have no caption file" in notes and "image_09999.jpg" in notes
    shown = run("info", str(oxford_folder))
    assert "note:" in shown.output and "image_09999.jpg" in " ".join(shown.output.split())
