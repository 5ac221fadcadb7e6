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

import csv
import io
import json
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
    """The first folder's caption table, or None. Both a ``.jsonl`` and a ``.csv`` in one folder is an
    error: which one holds the captions is not for ganreg to guess."""
    for folder in dict.fromkeys(folders):
        found = [folder / n for n in METADATA_NAMES if (folder / n).is_file()]
        if len(found) > 1:
            raise DataError(
                f"{folder} holds both {found[0].name} and {found[1].name}", "keep the one that holds the captions"
            )
        if found:
            return found[0]
    return None


def item_name(file_name: str) -> str:
    """An image's name in the dataset: its path under the table's folder without the extension, ``/``
    written ``__`` (the name keys HDF5 groups, where ``/`` would nest them)."""
    return str(PurePosixPath(file_name).with_suffix("")).replace("/", "__")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, object]]]]:
    """``(columns, [(line number, row), ...])`` of a table (its columns: the CSV header, or the first
    JSON object's keys)."""
    text = read_text(path, "caption table")
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            rows = [(reader.line_num, dict(row)) for row in reader]
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num}: {exc}", LAYOUT_FIX) from None
        return [c.strip() for c in reader.fieldnames or []], rows
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {n} is not JSON: {exc.msg}", "write one JSON object a line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n} is not a JSON object: {line.strip()[:80]}", LAYOUT_FIX)
        rows.append((n, row))
    return (list(rows[0][1]) if rows else []), rows


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
    for line, row in rows:
        name, caps = row.get(FILE_COLUMN), _captions(row.get(column))
        rel = PurePosixPath(name.strip().replace("\\", "/")) if isinstance(name, str) and name.strip() else None
        if rel is None or rel.is_absolute() or ".." in rel.parts:
            bad_name.append(f"line {line} ({FILE_COLUMN} {name!r})")
            continue
        if caps is None:
            bad_caption.append(f"line {line} ({column} is not text)")
            continue
        out.setdefault(str(rel), []).extend(caps)
        first_line.setdefault(str(rel), line)
    _refuse(path, f"name no image under {base}", bad_name, f"give each {FILE_COLUMN} as a relative path, e.g. 0001.png")
    _refuse(path, "have captions that are not text", bad_caption, LAYOUT_FIX)
    missing = [f"{name} (line {first_line[name]})" for name in out if not (base / name).is_file()]
    _refuse(path, "name images that do not exist", missing, "add the images, or delete their rows")
    empty = [f"{name} (line {first_line[name]})" for name, caps in out.items() if not caps]
    _refuse(path, "give images no caption", empty, "write a caption for each, or delete their rows")
    names: dict[str, str] = {}
    for name in out:
        other = names.setdefault(item_name(name).lower(), name)
        if other != name:
            raise DataError(
                f"{path}: {other} and {name} give one image name ({item_name(name)}) up to case and extension",
                "rename one of the images",
            )
    return out

