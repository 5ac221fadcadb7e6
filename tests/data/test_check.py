"""`ganreg data info PATH --check`: every image decoded before training, every failure named at once; the
decode error met during training points at the check."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from ganreg.cli_data import data
from ganreg.data import DataConfig, ImageDecodeError, build_dataset, make_loader
from ganreg.data.check import find_undecodable
from ganreg.errors import DataError


def run(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=True)


def exit_code(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The exit code of ``ganreg data ARGS`` through the real entry point (user errors exit 2), and stdout + stderr."""
    import sys

    from ganreg.cli import main

    monkeypatch.setattr(sys, "argv", ["ganreg", "data", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _spoil(folder) -> list:
    """A half-truncated JPEG (train), a 0-byte file (train) and an HTML page saved as .jpg (test)."""
    jpg = folder / "jpg"
    trunc, empty, html = jpg / "image_00002.jpg", jpg / "image_00005.jpg", jpg / "image_00010.jpg"
    data_ = trunc.read_bytes()
    trunc.write_bytes(data_[: len(data_) // 2])
    empty.write_bytes(b"")
    html.write_bytes(b"<html><body>403 Forbidden</body></html>")
    return [trunc, empty, html]


def test_check_lists_every_undecodable_image_of_every_split(oxford_folder, monkeypatch, capsys) -> None:
    bad = _spoil(oxford_folder)
    r = run("info", str(oxford_folder), "--check")
    assert isinstance(r.exception, DataError)
    msg = r.exception.message
    assert msg.startswith(f"3 of 10 images in {oxford_folder} do not decode:")
    for p in bad:
        assert f"  {p}: " in msg
    assert "Truncated File Read" in msg and "the file is empty" in msg and "not an image format PIL reads" in msg
    r = run("info", str(oxford_folder), "--check", "--json")
    desc = json.loads(r.output[: r.output.rindex("}") + 1])
    assert desc["check"]["images"] == 10 and len(desc["check"]["undecodable"]) == 3
    code, shown = exit_code(monkeypatch, capsys, "info", str(oxford_folder), "--check")
    assert code == 2 and "3 of 10 images" in shown and "Traceback" not in shown


def test_check_decodes_what_the_header_sample_misses(oxford_folder) -> None:
    """Plain `info` reads the headers of a sample; a JPEG cut after its header passes it, not --check."""
    jpg = oxford_folder / "jpg" / "image_00003.jpg"
    whole = jpg.read_bytes()
    jpg.write_bytes(whole[: len(whole) - 200])
    assert run("info", str(oxford_folder)).exit_code == 0
    r = run("info", str(oxford_folder), "--check")
    assert isinstance(r.exception, DataError) and f"{jpg}: image file is truncated" in r.exception.message


def test_check_passes_a_good_folder_and_a_good_hdf5(oxford_folder, seed_hdf5, monkeypatch, capsys) -> None:
    code, shown = exit_code(monkeypatch, capsys, "info", str(oxford_folder), "--check")
    assert code == 0 and "all 10 images decode" in shown, shown
    h5 = seed_hdf5(layout={"train": {"class_00001": 2, "class_00002": 2}, "test": {"class_00003": 2}})
    r = run("info", str(h5), "--check")
    assert r.exit_code == 0 and "all 6 images decode" in r.output, r.output
    assert run("info", "shapes", "--check", "--count", "48").exit_code == 0


def test_check_an_hdf5_file(seed_hdf5) -> None:
    h5 = seed_hdf5(layout={"train": {"class_00001": 2, "class_00002": 2}, "test": {"class_00003": 2}})
    with h5py.File(h5, "a") as f:
        for c in range(5):  # every caption group of image_00003 holds a truncated copy
            g = f["train"][f"image_00003_{c}"]
            good = g["img"][()].tobytes()
            del g["img"]
            g.create_dataset("img", data=np.void(good[: len(good) // 2]))
    r = run("info", str(h5), "--check")
    assert isinstance(r.exception, DataError)
    assert f"1 of 6 images in {h5} do not decode" in r.exception.message
    assert f"{h5}:train/image_00003_0/img" in r.exception.message and "ganreg data make hdf5" in r.exception.fix


def test_check_in_worker_processes_finds_the_same(oxford_folder) -> None:
    bad = _spoil(oxford_folder)
    datasets = [build_dataset(DataConfig(source="folder", path=str(oxford_folder)), s) for s in ("train", "test")]
    seen = []
    n, problems = find_undecodable(datasets, workers=2, progress=seen.append)
    assert n == 10 and sum(seen) == 10
    assert [p for p, _why in problems] == [str(p) for p in bad]
    assert find_undecodable(datasets, workers=0) == (n, problems)


def test_decode_error_during_training_points_at_the_check(oxford_folder) -> None:
    _spoil(oxford_folder)
    ds = build_dataset(DataConfig(source="folder", path=str(oxford_folder), image_size=32), "train")
    with pytest.raises(ImageDecodeError) as err:
        ds._image_array(1)
    assert f"ganreg data info {oxford_folder} --check" in err.value.fix
    loader = make_loader(ds, batch_size=2, num_workers=1, shuffle=False)  # the error crosses a worker process
    loader.set_epoch(0)
    with pytest.raises(DataError) as err:
        list(loader)
    assert "image_00002.jpg" in err.value.message and "Traceback" not in err.value.message
    assert f"ganreg data info {oxford_folder} --check" in err.value.fix


def test_the_check_hint_keeps_the_recipes_folder_names(oxford_folder) -> None:
    """A recipe that names its image folder gets a --check command that finds the same files."""
    _spoil(oxford_folder)
    (oxford_folder / "jpg").rename(oxford_folder / "photos")
    ds = build_dataset(DataConfig(source="folder", path=str(oxford_folder), image_size=32, images_dir="photos"), "train")
    with pytest.raises(ImageDecodeError) as err:
        ds._image_array(1)
    assert f"ganreg data info {oxford_folder} --images-dir photos --check" in err.value.fix
