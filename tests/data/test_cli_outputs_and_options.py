"""`ganreg data make hdf5` output paths (checked before converting, a folder as `make shapes` takes it) and
errors that name the options of the command at hand."""

from __future__ import annotations

from click.testing import CliRunner

from ganreg.cli_data import data
from ganreg.data.hdf5 import HDF5Dataset
from ganreg.errors import DataError, UserError


def run(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=True)


def test_make_hdf5_into_an_existing_folder_writes_folder_name_h5(oxford_folder, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out), "--force")
    assert r.exit_code == 0, r.output
    written = out / "flowers.h5"
    assert written.is_file() and len(HDF5Dataset(written, "train")) == 8
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out))
    assert isinstance(r.exception, UserError) and r.exception.message == f"{written} already exists"
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out), "--force")
    assert r.exit_code == 0, r.output
    # the same rule as `make shapes --out DIR` (DIR/shapes.h5)
    assert run("make", "shapes", "--out", str(out), "--count", "48", "--size", "32").exit_code == 0
    assert (out / "shapes.h5").is_file()


def test_make_hdf5_checks_the_output_before_converting(oxford_folder, tmp_path, monkeypatch) -> None:
    import ganreg.data.hdf5 as hdf5

    def never(*_a, **_k):
        raise AssertionError("converted before the output path was checked")

    monkeypatch.setattr(hdf5, "write_hdf5", never)
    taken = tmp_path / "taken.h5"
    taken.write_bytes(b"keep me")
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(taken))
    assert isinstance(r.exception, UserError) and "--force" in r.exception.fix
    inner = tmp_path / "d"
    (inner / "flowers.h5").mkdir(parents=True)
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(inner), "--force")
    assert isinstance(r.exception, UserError) and r.exception.message == f"{inner / 'flowers.h5'} is a folder"
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(a_file / "x.h5"))
    assert isinstance(r.exception, UserError) and "is a file, not a folder" in r.exception.message


def test_make_hdf5_help_names_the_option(tmp_path) -> None:
    r = run("make", "hdf5", "--help")
    assert "--from FOLDER" in r.output and "once per caption" in " ".join(r.output.split())


def test_info_errors_name_info_options_not_recipe_keys(oxford_folder) -> None:
    r = run("info", str(oxford_folder), "--captions-dir", "captions")
    assert isinstance(r.exception, DataError)
    text = str(r.exception)
    assert "--captions-dir" in text and "data.captions_dir" not in text
    (oxford_folder / "text_c10").rename(oxford_folder / "captions")
    r = run("info", str(oxford_folder))
    assert "pass --captions-dir" in r.exception.fix and "data." not in r.exception.fix
    r = run("info", str(oxford_folder), "--captions-dir", "captions", "--json")
    assert r.exit_code == 0, r.output
    (oxford_folder / "jpg" / "image_00001.jpg").unlink()
    r = run("info", str(oxford_folder), "--captions-dir", "captions")
    assert "pass --images-dir" in r.exception.fix and "data.images_dir" not in r.exception.fix


def test_info_reads_at_most_sample_headers() -> None:
    import io as _io

    from PIL import Image

    from ganreg.cli_data import _stored_sizes

    buf = _io.BytesIO()
    Image.new("RGB", (5, 4)).save(buf, format="PNG")

    class Split:
        reads = 0

        def __len__(self) -> int:
            return 1741

        def image_bytes(self, i: int) -> bytes:
            Split.reads += 1
            return buf.getvalue()

    _stored_sizes(Split(), 500)
    assert 400 <= Split.reads <= 500
