"""Captions in one table beside the images: ``metadata.jsonl`` or ``metadata.csv``.

This is Hugging Face's ``imagefolder`` layout, the one most captioned-image tools write::

    <folder>/metadata.jsonl    {"file_name": "0001.png", "text": "a red bird on a branch"}   one object a line
    <folder>/metadata.csv      file_name,text                                              a header row
                               0001.png,a red bird on a branch
    <folder>/0001.png          (``file_name`` is relative to the table's folder; subfolders are fine)
    <folder>/train/metadata.jsonl, <folder>/test/metadata.jsonl       or one table per split (SPLIT_FOLDERS)

The caption column is the one of :data:`CAPTION_COLUMNS` the table has. A JSON value may be a list of
captions; an image named on several rows gets every row's captions, in order. The table is read
whole and checked before training: every row names an image that exists and has a caption, or the
error names the rows (the first few) and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from functools import cache
from pathlib import Path, PurePosixPath

from ganreg.data._util import read_text
from ganreg.errors import DataError

METADATA_NAMES = ("metadata.jsonl", "metadata.csv")
"""The table's file names, as Hugging Face's ``imagefolder`` loader looks for them."""
FILE_COLUMN = "file_name"
CAPTION_COLUMNS = ("text", "caption", "captions", "prompt")
"""Column names read as captions: ``text`` is ``imagefolder``'s and diffusers' default."""
ROWS_SHOWN = 5
"""Rows named in one error about bad rows."""
LAYOUT_FIX = (
    f"write one row per image (or per caption) with a '{FILE_COLUMN}' column (the image's path relative to the "
    f"table's folder) and a caption column ({', '.join(repr(c) for c in CAPTION_COLUMNS)})"
)


SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "valid": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
"""Folder names of each split, as ``imagefolder`` recognises them (``<folder>/metadata.jsonl``)."""


def find_split_tables(root: Path) -> dict[str, Path]:
    """``{split: table}`` of ``root/<split folder>/metadata.*`` (:data:`SPLIT_FOLDERS`), for the splits that
    have one; a split with tables in two of its folders (``val/`` and ``valid/``) is an error."""
    found: dict[str, Path] = {}
    for split, folders in SPLIT_FOLDERS.items():
        tables = [t for t in (find_metadata([root / f]) for f in folders) if t is not None]
        if len(tables) > 1:
            raise DataError(
                f"{root} has two {split} splits: {tables[0].relative_to(root)} and {tables[1].relative_to(root)}",
                "merge them into one folder",
            )
        if tables:
            found[split] = tables[0]
    return found


def find_metadata(folders: list[Path]) -> Path | None:
    """The caption table in one of ``folders``, or None. Two tables (a ``.jsonl`` and a ``.csv``, or one
    in two of the folders) are an error: which one holds the captions is not for ganreg to guess."""
    found = [f / n for f in dict.fromkeys(folders) for n in METADATA_NAMES if (f / n).is_file()]
    if len(found) > 1:
        raise DataError(f"two caption tables: {found[0]} and {found[1]}", "keep the one that holds the captions")
    return found[0] if found else None


def unread_tables(folders: list[Path]) -> list[Path]:
    """Files in ``folders`` that look like a caption table but are not named as ganreg reads them
    (``metadata.json``, ``metadata.parquet``, ``Metadata.JSONL``): named when no captions are found."""
    out = []
    for folder in dict.fromkeys(folders):
        with contextlib.suppress(OSError):
            out += sorted(p for p in folder.iterdir()
                          if p.name.lower().startswith("metadata.") and p.name not in METADATA_NAMES and p.is_file())
    return out


def parquet_shards(root: Path) -> list[Path]:
    """The Parquet files of a dataset downloaded from the Hugging Face Hub (``data/train-00000-of-00002.parquet``,
    ``train/0000.parquet``, or in the folder itself): named when no captions are found, since ganreg reads
    such a dataset once it is exported as split folders with caption tables (README)."""
    folders = [root, root / "data", *(root / f for names in SPLIT_FOLDERS.values() for f in names),
               *(root / "data" / f for names in SPLIT_FOLDERS.values() for f in names)]
    found: list[Path] = []
    for folder in dict.fromkeys(folders):
        with contextlib.suppress(OSError):
            found += sorted(p for p in folder.iterdir() if p.suffix.lower() == ".parquet" and p.is_file()
                            and not p.name.lower().startswith("metadata."))  # a caption table, named as one
    return found


def item_name(file_name: str) -> str:
    """An image's name in the dataset: its path under the table's folder without the extension, ``/``
    written ``__`` (the name keys HDF5 groups, where ``/`` would nest them). String operations, not
    pathlib: it runs once per row of tables of 100k rows."""
    head, sep, last = file_name.rpartition("/")
    stem, dot, _ext = last.rpartition(".")
    if dot and stem:  # a suffix, as PurePosixPath.suffix sees it (".hidden" has none)
        last = stem
    return f"{head}{sep}{last}".replace("/", "__")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, object]]]]:
    """``(columns, [(line number, row), ...])`` of a table (its columns: the CSV header, stripped, or
    every key of the JSON objects)."""
    text = read_text(path, "caption table")
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            reader.fieldnames = [c.strip() for c in reader.fieldnames or []]  # `file_name, text` too
            rows = [(reader.line_num, dict(row)) for row in reader]
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num}: {exc}", LAYOUT_FIX) from None
        return list(reader.fieldnames), rows
    rows = []
    # lines end at \n only: str.splitlines() would also break at U+2028, U+0085 ..., which JSON strings may hold
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {n} is not JSON: {exc.msg}", "write one JSON object a line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n} is not a JSON object: {line.strip()[:80]}", LAYOUT_FIX)
        rows.append((n, row))
    return list(dict.fromkeys(k for _n, row in rows for k in row)), rows


def caption_column(path: Path, columns: list[str]) -> str:
    """The table's caption column: the one of :data:`CAPTION_COLUMNS` it has."""
    if FILE_COLUMN not in columns:
        raise DataError(f"{path} has no '{FILE_COLUMN}' column (its columns: {', '.join(columns) or 'none'})", LAYOUT_FIX)
    found = [c for c in CAPTION_COLUMNS if c in columns]
    if not found:
        raise DataError(f"{path} has no caption column (its columns: {', '.join(columns)})", LAYOUT_FIX)
    if len(found) > 1:
        raise DataError(
            f"{path} has several caption columns: {', '.join(found)}",
            f"rename the ones that are not the captions you want to train on (ganreg reads any of "
            f"{', '.join(CAPTION_COLUMNS)})",
        )
    return found[0]


def _captions(value: object) -> list[str] | None:
    """A cell's captions (blank ones dropped), or None when it is neither a string nor a list of strings."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return [" ".join(v.split()) for v in value if v.strip()]


@cache
def image_extensions() -> frozenset[str]:
    """The file extensions PIL opens here (``.webp``, ``.bmp``, ... and a plugin's such as pillow-heif's)."""
    from PIL import Image

    return frozenset(Image.registered_extensions())


LIKELY_IMAGE_FOLDERS = ("images", "jpg", "train")
"""Where a missing image is looked for to say that ``file_name`` is relative to the table's folder."""


def _missing_fix(base: Path, name: str) -> str:
    """The fix for a ``file_name`` with no image: the usual one, or, when the image is in a folder below
    the table's, that names are relative to the table's folder."""
    under = next((d for d in LIKELY_IMAGE_FOLDERS if (base / d / name).is_file()), None)
    if under is None:
        return "add the images, or delete their rows"
    return (
        f"{FILE_COLUMN} is relative to the table's folder {base}, and {name} is in {under}/: write "
        f"{under}/{name} (for each row), or move the table into {under}/"
    )


def _refuse(path: Path, what: str, bad: list[str], fix: str) -> None:
    if bad:
        shown = "; ".join(bad[:ROWS_SHOWN]) + (f"; ... and {len(bad) - ROWS_SHOWN} more" if len(bad) > ROWS_SHOWN else "")
        raise DataError(f"{path}: {len(bad)} row(s) {what}: {shown}", fix)


def read_metadata(path: Path) -> dict[str, list[str]]:
    """``{file_name: [captions]}`` of a caption table, in the order of first appearance, every image
    checked to exist (a file under the table's folder) and to have a caption."""
    columns, rows = _rows(path)
    if not rows:
        raise DataError(f"caption table {path} has no rows", LAYOUT_FIX)
    column = caption_column(path, columns)
    base = path.parent.resolve()
    out: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    bad_name: list[str] = []
    bad_caption: list[str] = []
    no_caption: list[str] = []
    not_image: list[str] = []
    readable = image_extensions()
    for line, row in rows:
        name, value = row.get(FILE_COLUMN), row.get(column)
        rel = PurePosixPath(name.strip().replace("\\", "/")) if isinstance(name, str) and name.strip() else None
        if rel is None or rel.is_absolute() or ".." in rel.parts:
            bad_name.append(f"line {line} ({FILE_COLUMN} {name!r})")
            continue
        if rel.suffix.lower() not in readable:
            not_image.append(f"line {line} ({rel})")
            continue
        caps = _captions(value)
        if value is None or caps == []:
            no_caption.append(f"{rel} (line {line})")
            continue
        if caps is None:
            bad_caption.append(f"line {line} ({column} {value!r:.40})")
            continue
        out.setdefault(str(rel), []).extend(caps)
        first_line.setdefault(str(rel), line)
    _refuse(path, f"name no image under {base}", bad_name, f"give each {FILE_COLUMN} as a relative path, e.g. 0001.png")
    _refuse(
        path, "name files that are not images PIL reads", not_image,
        "convert them to PNG or JPEG (or install the Pillow plugin of their format, e.g. pillow-heif for .heic), or "
        "delete their rows",
    )
    _refuse(path, f"give an image no caption (no '{column}', or it is blank)", no_caption,
            "write a caption on each row, or delete the row")
    _refuse(path, "have captions that are neither text nor a list of texts", bad_caption, LAYOUT_FIX)
    missing = [name for name in out if not os.path.isfile(os.path.join(base, name))]
    _refuse(path, "name images that do not exist", [f"{n} (line {first_line[n]})" for n in missing],
            _missing_fix(base, missing[0]) if missing else "")
    names: dict[str, str] = {}
    for name in out:
        other = names.setdefault(item_name(name).lower(), name)
        if other != name:
            raise DataError(
                f"{path}: {other} and {name} give one image name ({item_name(name)}) up to case and extension",
                "rename one of the images",
            )
    return out

