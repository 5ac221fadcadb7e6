"""The files of a folder dataset, one at a time: caption files, class lists and DF-GAN / AttnGAN's
``filenames.pickle``, and the listing of a folder's image and caption files.

Text files are UTF-8, a leading byte-order mark dropped; anything else is an error naming the file and the
byte (:func:`not_utf8_error` names many at once). Names starting with ``.`` are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from ganreg.data._util import NotUtf8, is_hidden, load_plain_pickle, read_text, reencode_fix
from ganreg.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
"""Image files found by a caption file's stem: what PIL decodes and cameras, phones and datasets write."""
IMAGE_EXTS_SHOWN = "|".join(e[1:] for e in IMAGE_EXTS)
"""``jpg|jpeg|png|...``, as messages name them."""


def is_caption_name(name: str) -> bool:
    """A caption file's name: ``<stem>.txt``, the extension in any case (``.TXT`` from Windows tools too)."""
    return name.lower().endswith(".txt")


def file_listing(d: Path) -> dict[str, str]:
    """lower-case name -> actual name of the files in ``d`` (empty if missing). Two images whose names
    differ only in case (``a.jpg``, ``a.JPG``) are an error: a caption file names both."""
    try:
        with os.scandir(d) as it:
            names = sorted(e.name for e in it if e.is_file() and not is_hidden(e.name))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out: dict[str, str] = {}
    for name in names:
        other = out.setdefault(name.lower(), name)
        if other != name and Path(name).suffix.lower() in IMAGE_EXTS:
            raise DataError(f"{d} holds {other} and {name}, which differ only in case", "rename or delete one of them")
    return out


def read_class_list(path: Path) -> list[str]:
    """A split's classes: one class folder per line, or the class folders of a ``filenames.pickle``."""
    if path.suffix.lower() == ".pickle":
        return classes_of_filenames(path)
    lines = read_text(path, "class split file").splitlines()
    classes = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not classes:
        raise DataError(f"class split file {path} lists no classes", "write one class folder name per line")
    return classes


FILENAMES_FIX = "pass the train/ or test/ filenames.pickle of the dataset's download, or write a class list file"


def read_filenames(path: Path) -> list[str]:
    """The image names of a StackGAN / AttnGAN ``filenames.pickle``: ``<class>/<image>`` (CUB, Oxford-102)
    or bare ``<image>`` (COCO as AttnGAN / DF-GAN ship it)."""
    names = load_plain_pickle(path, "a filenames.pickle", FILENAMES_FIX)
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path} is not a list of image names", FILENAMES_FIX)
    return list(names)


def classes_of_filenames(path: Path) -> list[str]:
    """The class folders of the ``<class>/<image>`` names in a StackGAN / AttnGAN ``filenames.pickle``."""
    names = read_filenames(path)
    if not all("/" in n for n in names):
        raise DataError(f"{path} names images without their class folder ({names[0]!r})", FILENAMES_FIX)
    return sorted({n.split("/", 1)[0] for n in names})


def _strip_image_ext(name: str) -> str:
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_EXTS else name


def image_lists(split_files: dict[str, Path]) -> dict[str, list[str]]:
    """``{split: image names}`` when every split file is a ``filenames.pickle`` of bare image names (COCO:
    no classes, the lists are the splits), else ``{}`` (class lists; a mix is an error)."""
    pickles = {s: p for s, p in split_files.items() if p.suffix.lower() == ".pickle"}
    lists = {}
    for split, path in pickles.items():
        names = read_filenames(path)
        if not any("/" in n for n in names):
            # a name listed twice is one image; a name given with its extension is the same name
            lists[split] = list(dict.fromkeys(_strip_image_ext(n) for n in names))
    if lists and len(lists) < len(split_files):
        bare, other = next(iter(lists)), next(s for s in split_files if s not in lists)
        raise DataError(
            f"{split_files[bare]} lists bare image names (no classes) but {split_files[other]} lists classes",
            "use the split files of one download: all filenames.pickle of bare names (COCO), or all class lists",
        )
    return lists


def read_captions(path: Path) -> list[str]:
    """The captions of one caption file: its non-blank lines, stripped (UTF-8, a byte-order mark dropped)."""
    text = read_text(path, "caption file")
    caps = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not caps:
        raise DataError(
            f"caption file {path} is empty",
            "write the image's captions into it, one a line, or delete it together with its image",
        )
    return caps


def captions_or_collect(path: Path, not_utf8: list[NotUtf8] | None) -> list[str] | None:
    """:func:`read_captions`; with ``not_utf8`` given, a file that is not UTF-8 is collected there (None
    returned), so that one error can name all of them."""
    try:
        return read_captions(path)
    except NotUtf8 as exc:
        if not_utf8 is None:
            raise
        not_utf8.append(exc)
        return None


NOT_UTF8_SHOWN = 10
"""Caption files named in the error about caption files that are not UTF-8."""


def not_utf8_error(problems: list[NotUtf8]) -> DataError:
    """One error naming every caption file that is not UTF-8 (the first few), each with its first bad byte."""
    if len(problems) == 1:
        return problems[0]
    lines = [f"{len(problems)} caption files are not UTF-8 text:"]
    lines += [
        f"  {p.path}: byte 0x{p.byte:02x} at byte offset {p.offset} (line {p.line})"
        for p in problems[:NOT_UTF8_SHOWN]
    ]
    if len(problems) > NOT_UTF8_SHOWN:
        lines.append(f"  ... and {len(problems) - NOT_UTF8_SHOWN} more")
    return DataError("\n".join(lines), reencode_fix([p.path for p in problems if p.path is not None]))
