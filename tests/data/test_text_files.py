"""Text files of a folder dataset (captions, class lists, CUB's tables): UTF-8 or a clear error, byte-order
marks dropped; hidden files (macOS AppleDouble ``._*``) skipped."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ganreg.cli_data import data
from ganreg.data import DataConfig, NotUtf8, Vocabulary, build_dataset
from ganreg.data.cub_boxes import read_bounding_boxes
from ganreg.errors import DataError

BOM = b"\xef\xbb\xbf"


def cfg(root, **kw) -> DataConfig:
    return DataConfig(source="folder", path=str(root), image_size=32, **kw)


def run(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=True)


def test_latin1_caption_file_is_an_error_naming_file_and_byte(oxford_folder, tmp_path) -> None:
    cap = oxford_folder / "text_c10" / "class_00001" / "image_00002.txt"
    good = cap.read_bytes()
    cap.write_bytes(good + "this flower has p\xe9tals the colour of caf\xe9\n".encode("latin-1"))
    offset = len(good) + len(b"this flower has p")
    with pytest.raises(NotUtf8) as err:
        build_dataset(cfg(oxford_folder), "train")
    msg = str(err.value)
    assert str(cap) in msg and f"byte offset {offset}" in msg and "0xe9" in msg and "line 11" in msg
    assert "iconv -f latin1 -t utf-8" in err.value.fix
    # the same error from `data info` and `data make hdf5`; nothing is written
    r = run("info", str(oxford_folder))
    assert r.exit_code != 0 and isinstance(r.exception, DataError) and str(cap) in str(r.exception)
    out = tmp_path / "x.h5"
    r = run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out))
    assert isinstance(r.exception, DataError) and f"byte offset {offset}" in str(r.exception)
    assert not out.exists()


def test_every_non_utf8_caption_file_is_named_at_once(oxford_folder) -> None:
    bad = [oxford_folder / "text_c10" / c / f"image_{n:05d}.txt" for c, n in (("class_00001", 1), ("class_00002", 5))]
    for p in bad:
        p.write_bytes(b"a caf\xe9 coloured flower\n")
    with pytest.raises(DataError) as err:
        build_dataset(cfg(oxford_folder), "train")
    assert "2 caption files are not UTF-8" in str(err.value)
    assert all(str(p) in str(err.value) for p in bad) and "byte offset 5" in str(err.value)


def test_a_cached_index_does_not_hide_a_bad_file(oxford_folder) -> None:
    """An index cached before the file went bad (or by an older ganreg) is rebuilt: its key has the file's
    size and mtime."""
    assert len(build_dataset(cfg(oxford_folder), "train")) == 8
    (oxford_folder / "text_c10" / "class_00002" / "image_00004.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(NotUtf8):
        build_dataset(cfg(oxford_folder), "train")


def test_byte_order_marks_are_dropped(oxford_folder) -> None:
    cap = oxford_folder / "text_c10" / "class_00001" / "image_00001.txt"
    cap.write_bytes(BOM + "a flower with a \u00e9clat of red petals\nsecond caption\n".encode())
    split = oxford_folder / "trainvalclasses.txt"
    split.write_bytes(BOM + b"class_00001\r\nclass_00002\r\nclass_00003\r\n")
    ds = build_dataset(cfg(oxford_folder), "train")
    assert len(ds) == 8 and "class_00001" in ds.class_names
    assert ds.captions_of(0) == ["a flower with a \u00e9clat of red petals", "second caption"]
    assert not any("\ufeff" in c for c in ds.all_captions())
    assert "\ufeff" not in "".join(Vocabulary.build(ds.all_captions()).words)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_caption_files_with_their_mark_read_as_text(oxford_folder, encoding: str) -> None:
    """Windows Notepad's "Unicode": the old fix (iconv from Latin-1) turned it into NUL-ridden captions."""
    cap = oxford_folder / "text_c10" / "class_00001" / "image_00001.txt"
    text = "a flower with a \u00e9clat of red petals\r\nsecond caption\r\n"
    cap.write_bytes(text.encode(encoding) if encoding == "utf-16" else b"\xfe\xff" + text.encode(encoding))
    ds = build_dataset(cfg(oxford_folder), "train")
    assert ds.captions_of(0) == ["a flower with a \u00e9clat of red petals", "second caption"]
    cap.write_bytes("a red flower\n".encode("utf-32"))  # its mark starts like UTF-16's: refused, not single letters
    with pytest.raises(NotUtf8):
        build_dataset(cfg(oxford_folder), "train")


def test_cub_tables_are_read_as_utf8_sig(tmp_path, helpers) -> None:
    root = tmp_path / "cub"
    (root / "CUB_200_2011").mkdir(parents=True)
    (root / "CUB_200_2011" / "images.txt").write_bytes(BOM + b"1 001.Albatross/Black_Footed_0001.jpg\n")
    (root / "CUB_200_2011" / "bounding_boxes.txt").write_bytes(BOM + b"1 10.0 12.0 30.0 20.0\n")
    assert read_bounding_boxes(root) == {"black_footed_0001": (10, 12, 30, 20)}
    (root / "CUB_200_2011" / "images.txt").write_bytes(b"1 001.Albatross/Black_F\xf6oted_0001.jpg\n")
    with pytest.raises(NotUtf8, match="images.txt"):
        read_bounding_boxes(root)


def test_non_utf8_split_file_is_named(oxford_folder) -> None:
    (oxford_folder / "testclasses.txt").write_bytes(b"class_0000\xb4\n")
    with pytest.raises(NotUtf8, match=r"testclasses.txt is not UTF-8 text: byte 0xb4 at byte offset 10"):
        build_dataset(cfg(oxford_folder), "test")


def test_appledouble_and_hidden_files_are_skipped(oxford_folder, tmp_path) -> None:
    """What unzipping on a Mac leaves: ._<name> next to every file, .DS_Store, __MACOSX/."""
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    cdir = oxford_folder / "text_c10" / "class_00001"
    (cdir / "._image_00001.txt").write_bytes(apple)
    (cdir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (oxford_folder / "jpg" / "._image_00001.jpg").write_bytes(apple)
    (oxford_folder / "text_c10" / ".hidden_class").mkdir()
    (oxford_folder / "text_c10" / "__MACOSX").mkdir()
    ds = build_dataset(cfg(oxford_folder), "train")
    assert len(ds) == 8 and all(not ds.image_path(i).name.startswith(".") for i in range(len(ds)))
    r = run("info", str(oxford_folder), "--json")
    assert r.exit_code == 0, r.output
    assert "have no caption file" not in r.output  # ._image_00001.jpg is not an uncaptioned image
    out = tmp_path / "f.h5"
    assert run("make", "hdf5", "--from", str(oxford_folder), "--out", str(out)).exit_code == 0
    # random class draws never pick a hidden folder as a class
    for name in ("trainvalclasses.txt", "testclasses.txt"):
        (oxford_folder / name).unlink()
    c = cfg(oxford_folder, class_split="random", num_classes=3, test_classes=1)
    tr, te = build_dataset(c, "train"), build_dataset(c, "test")
    assert set(tr.class_names) == {"class_00001", "class_00002", "class_00003", "class_00004"}
    assert len(tr) + len(te) == 10
