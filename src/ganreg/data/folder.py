"""Folder layout: what Oxford-102 / CUB look like after download and unpacking.

::

    <root>/<images_dir>/<class>/<stem>.jpg     (CUB: CUB_200_2011/images/<class>/...)
      or  <root>/<images_dir>/<stem>.jpg       (Oxford-102: jpg/image_00001.jpg)
    <root>/text_c10/<class>/<stem>.txt         one caption per line (blank lines ignored)
    <root>/trainvalclasses.txt                 class folder names, one per line
    <root>/testclasses.txt                     (also trainclasses.txt, valclasses.txt)
      or  <root>/train/filenames.pickle        DF-GAN / AttnGAN's download: ``<class>/<image>``
          <root>/test/filenames.pickle         names, whose class folders make the split
          (with its captions in <root>/text/ instead of text_c10/)
    <root>/CUB_200_2011/images.txt             CUB's own tables, for ``crop="bbox"``:
    <root>/CUB_200_2011/bounding_boxes.txt     ``<id> <path>`` and ``<id> <x> <y> <w> <h>``

Without class lists, the captions may instead sit beside their images (``photo.jpg`` + ``photo.txt``) or
in one table (``metadata.jsonl`` / ``metadata.csv``, see :mod:`ganreg.data.metadata`), or in one table
per split folder (``train/``, ``test/``): a user's own images, every image its own class
(:meth:`FolderDataset._split_images`).

Every caption file is one image; its image is found by the file's stem
(``.jpg``, ``.jpeg`` or ``.png``, any case). Names starting with ``.`` (macOS's
``._<name>`` AppleDouble files, ``.DS_Store``) and ``__MACOSX`` folders are
skipped. Text files (captions, class lists) are UTF-8, a leading byte-order
mark dropped; anything else is an error naming the file and the byte. Which
class list each split uses is decided by :func:`choose_split_files` alone.
The index (classes, stems, image paths, captions) is built once and cached
under ``<cache_dir>/folder-index/``, keyed by the size and mtime of every
caption file and image folder, so editing the data rebuilds it. A caption
table is read afresh each time instead: it may name images in any folder,
which no cheap key covers (40k rows take about 0.8 s).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ganreg.data._util import (
    NotUtf8,
    SplitMissing,
    box_crop,
    cached_json,
    check_split,
    choose_classes,
    decode_pil,
    is_hidden,
    load_plain_pickle,
    mix_seed,
    read_text,
    reencode_fix,
    refuse_shared_classes,
)
from ganreg.data.base import CaptionedImageDataset
from ganreg.data.config import DEFAULT_SPLIT_FILES
from ganreg.data.metadata import (
    METADATA_NAMES,
    SPLIT_FOLDERS,
    find_metadata,
    find_split_tables,
    item_name,
    read_metadata,
    unread_tables,
)
from ganreg.errors import DataError

IMAGE_DIR_CANDIDATES = ("images", "jpg", "CUB_200_2011/images", "oxford-102-flowers/images")
"""Reed et al.'s / the archives' image folders, then DF-GAN's flowers layout (``code/lib/datasets.py``)."""
CAPTION_DIR_CANDIDATES = ("text_c10", "text")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
INDEX_VERSION = 3
"""2: strict UTF-8 captions, byte-order marks dropped, hidden files skipped (older indexes may hold U+FFFD).
3: ``.TXT`` caption files read, a caption file of two images refused."""
UNLABELLED_TEST_SHARE = 10
"""Captions in no class folders: one image in this many is held out as the test split (at least one)."""
BOX_DIR_CANDIDATES = ("CUB_200_2011", ".")
"""Where ``crop="bbox"`` looks for CUB's ``images.txt`` and ``bounding_boxes.txt``, under the root."""


def is_caption_name(name: str) -> bool:
    """A caption file's name: ``<stem>.txt``, the extension in any case (``.TXT`` from Windows tools too)."""
    return name.lower().endswith(".txt")


def _listing(d: Path) -> dict[str, str]:
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


def choose_split_files(root: Path, candidates: dict[str, Sequence[str]] | None = None) -> dict[str, Path]:
    """The class list each split uses: per split, the first of ``candidates`` (default
    :data:`~ganreg.data.config.DEFAULT_SPLIT_FILES`) that is a file under ``root``; splits without one
    are left out.

    The one place this is decided: the folder dataset (training), ``ganreg data info`` and ``ganreg data
    make hdf5`` all call it, so one folder gives one train set. By default the training split is
    ``trainvalclasses.txt`` when it exists (Reed et al.'s protocol: the original Lua training reads
    trainvalids.txt), else ``trainclasses.txt``; ``valclasses.txt`` is then a subset of it.
    """
    found: dict[str, Path] = {}
    for split, names in (candidates or DEFAULT_SPLIT_FILES).items():
        for name in names:
            if (root / name).is_file():
                found[split] = root / name
                break
    return found


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


COCO_CAPTIONS = 5
"""Captions read per caption file of a COCO-like folder: DF-GAN's ``CAPTIONS_PER_IMAGE`` for coco (its
``load_captions`` keeps the first 5 non-blank lines, and its DAMSM vocabulary was built from them; a few
COCO images have 6 or 7)."""
COCO_CAPTION_FOLDERS = ("train2014", "val2014")
"""Where a COCO-like folder's caption files may also be, under its caption folder (AttnGAN's
``train2014-text.zip`` / ``val2014-text.zip`` unpacked into ``text/``)."""
COCO_IMAGE_FOLDERS = ("train2014", "val2014", "train2014/jpg", "val2014/jpg")
"""Where a COCO-like folder's images may also be, under its image folder: current DF-GAN reads
``images/train2014/`` and ``images/val2014/``, AttnGAN and the 2020 DF-GAN read ``images/`` itself."""


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
            "write at least one caption per line into it, or delete it together with its image",
        )
    return caps


def _captions_or_collect(path: Path, not_utf8: list[NotUtf8] | None) -> list[str] | None:
    """:func:`read_captions`; with ``not_utf8`` given, a file that is not UTF-8 is collected there (None
    returned), so that one error can name all of them."""
    try:
        return read_captions(path)
    except NotUtf8 as exc:
        if not_utf8 is None:
            raise
        not_utf8.append(exc)
        return None


class FolderLayout:
    """Resolved paths of a folder dataset (root, images, captions, split files)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        images_dir: str | None = None,
        captions_dir: str | None = None,
        split_files: dict[str, Sequence[str]] | None = None,
    ) -> None:
        self.root = Path(root)
        if self.root.is_file():
            raise DataError(
                f"{self.root} is a file, not a dataset folder",
                "set data.source=hdf5 if it is an HDF5 file, or set data.path to the folder that holds the images "
                "and text_c10/",
            )
        if not self.root.is_dir():
            raise DataError(f"dataset folder not found: {self.root}", "check data.path")
        files = {k: list(v) for k, v in (split_files or DEFAULT_SPLIT_FILES).items()}
        self.split_file_candidates = files
        self.split_files: dict[str, Path] = choose_split_files(self.root, files)
        self.image_lists: dict[str, list[str]] = image_lists(self.split_files)
        """``{split: image names}`` of COCO's ``filenames.pickle`` (bare names, no classes; AttnGAN / DF-GAN's
        download): the lists give the splits, and the folder is read as one without classes."""
        self.list_files = self.split_files if self.image_lists else {}
        if self.image_lists:
            self.split_files = {}
        self.not_captions = {n.lower() for names in files.values() for n in names if "/" not in n} | {"allclasses.txt"}
        """Names of the root's ``.txt`` files that are class lists (Reed et al.'s), never captions."""
        self.listed_in: dict[str, list[Path]] = {}
        """class -> the class split files that list it (filled by :meth:`class_pools`)."""
        caption_fix = "unpack the captions (text_c10/<class>/<image>.txt) there or set data.captions_dir"
        captions = self._folder(captions_dir, CAPTION_DIR_CANDIDATES, "caption", caption_fix)
        flat = captions is not None and not self.split_files and bool(self.flat_captions(captions))
        image_fix = "unpack the images there or set data.images_dir"
        images = self._folder(images_dir, IMAGE_DIR_CANDIDATES, "image", image_fix)
        self.metadata: Path | None = None
        """The caption table (``metadata.jsonl`` / ``.csv``, Hugging Face's ``imagefolder``) of a folder without
        class lists, in the root or the image folder; its images are named relative to its own folder."""
        self.split_tables: dict[str, Path] = {}
        """``{split: table}`` when the tables are ``<root>/train/metadata.jsonl``, ``<root>/test/...`` (the
        ``imagefolder`` splits): they give the splits, and images are named relative to the root."""
        if not self.split_files and not self.image_lists and captions_dir is None:
            self.metadata = find_metadata([self.root, images or self.root])
            tables = self._usable_split_tables(find_split_tables(self.root)) if self.metadata is None else {}
            if list(tables) == ["train"]:  # one table for all images, in a folder named train/
                self.metadata = tables["train"]
            elif tables:
                self.split_tables = tables
        if self.metadata is not None or self.split_tables:
            self.images = self.captions = self.metadata.parent if self.metadata is not None else self.root
            self.unlabelled = True
            listing = _listing(self.images)
            beside = [t for t in self.flat_captions(self.images)
                      if any(t[:-4].lower() + ext in listing for ext in IMAGE_EXTS)]
            holds_captions = captions is not None and bool(self.flat_captions(captions) or self._class_captions(captions))
            clash = captions if holds_captions else (self.images / beside[0] if beside else None)
            if clash is not None:
                table = self.metadata or next(iter(self.split_tables.values()))
                raise DataError(
                    f"{self.root} has captions both in {table.relative_to(self.root)} and as caption files ({clash})",
                    f"keep them in one place: the table, or one <image>.txt per image (then move {table.name} out)",
                )
            return
        if images is None and captions is not None and not flat:  # Reed's layout, its images not unpacked
            raise DataError(f"no image folder in {self.root} (looked for {', '.join(IMAGE_DIR_CANDIDATES)})", image_fix)
        self.images = images or self.root  # captions beside the images (photo.jpg + photo.txt) in the root itself
        self.captions = captions or self.images
        self.unlabelled = bool(self.image_lists) or (not self.split_files and bool(self.flat_captions(self.captions)))
        """The captions are ``<captions>/<stem>.txt``, in no class folders, and there are no class lists: a
        user's own captioned images, every image its own class (see :class:`FolderDataset`); or COCO's
        lists of bare names pick the images (:meth:`_listed_entries` finds their files)."""
        nested = self._class_captions(self.captions) if self.unlabelled and not self.image_lists else None
        if nested is not None:
            raise DataError(
                f"{self.captions} holds caption files both itself ({self.flat_captions(self.captions)[0]}, ...) and in "
                f"its folders ({nested.relative_to(self.root)})",
                "keep them in one place: all beside their images in one folder (no classes), or in one folder per "
                "class with class lists (trainclasses.txt, testclasses.txt)",
            )
        beside = captions is not None or self.unlabelled or self._class_captions(self.images) is not None
        if not beside and self.split_files:  # Reed's or DF-GAN's layout, its captions not unpacked
            raise DataError(
                f"no caption folder in {self.root} (looked for {', '.join(CAPTION_DIR_CANDIDATES)})", caption_fix
            )
        if not beside:
            splits = [self.root / f for folders in SPLIT_FOLDERS.values() for f in folders]
            unread = unread_tables([self.root, self.images, *splits])
            if unread:
                raise DataError(
                    f"no captions in {self.root}: {unread[0]} looks like a caption table, but ganreg reads only "
                    f"{' or '.join(METADATA_NAMES)}",
                    "write it as metadata.jsonl (one JSON object a line, file_name and text) or metadata.csv (a header "
                    "row file_name,text); pandas converts most tables: pandas.read_parquet(p).to_json('metadata.jsonl', "
                    "orient='records', lines=True)",
                )
            raise DataError(
                f"no captions in {self.root} (looked for the folders {', '.join(CAPTION_DIR_CANDIDATES)}, for "
                f"<image>.txt files beside the images in {self.images}, and for {' or '.join(METADATA_NAMES)})",
                "put one caption file per image, one caption a line, beside it (photo.jpg + photo.txt), or the captions "
                "in a metadata.jsonl / metadata.csv (file_name, text), or unpack text_c10/<class>/<image>.txt there, "
                "or set data.captions_dir (or data.images_dir=. for images and captions in the folder itself beside "
                "an images/ folder)",
            )

    def _usable_split_tables(self, tables: dict[str, Path]) -> dict[str, Path]:
        """The split tables to use: train's and a held-out one (test's, else validation's, which then is
        the test split), or train's alone."""
        if not tables:
            return {}
        if "train" not in tables:
            raise DataError(
                f"{self.root} has {' and '.join(str(t.relative_to(self.root)) for t in tables.values())} but no "
                "training table",
                f"add train/{METADATA_NAMES[0]} (or point data.path at a folder holding one table for all images)",
            )
        if len(tables) == 1:
            return tables
        if "test" not in tables:
            return {"train": tables["train"], "test": tables["valid"]}
        return {s: tables[s] for s in ("train", "valid", "test") if s in tables}

    @property
    def table_folders(self) -> dict[str, str]:
        """``{split: its folder under the root}`` of the split tables (the index's keys)."""
        return {s: str(t.parent.relative_to(self.root)) for s, t in self.split_tables.items()}

    def _table_entries(self, table: Path, prefix: str) -> list[list[Any]]:
        """The index entries of a caption table: names ``prefix + file_name`` (see :func:`item_name`)."""
        rows = read_metadata(table)
        folder = table.parent.relative_to(self.root).as_posix()
        under = "" if folder == "." else f"{folder}/"  # the path relative to the root, joined as strings (per row)
        return [[item_name(prefix + f), under + f, caps] for f, caps in rows.items()]

    def _coco_image_folders(self) -> list[Path]:
        """The image folder and those of :data:`COCO_IMAGE_FOLDERS` under it that exist."""
        return [self.images] + [self.images / d for d in COCO_IMAGE_FOLDERS if (self.images / d).is_dir()]

    def _coco_caption_folders(self) -> list[Path]:
        """The caption folder and those of :data:`COCO_CAPTION_FOLDERS` under it that exist."""
        return [self.captions] + [self.captions / d for d in COCO_CAPTION_FOLDERS if (self.captions / d).is_dir()]

    @staticmethod
    def _merged_listing(folders: list[Path]) -> dict[str, Path]:
        """lower-case file name -> file, over ``folders``; one name in two of them is an error."""
        out: dict[str, Path] = {}
        for folder in folders:
            for low, name in _listing(folder).items():
                other = out.setdefault(low, folder / name)
                if other != folder / name:
                    raise DataError(f"{other} and {folder / name} are one file of the data", "delete one of them")
        return out

    def _listed_entries(self, not_utf8: list[NotUtf8] | None) -> list[list[Any]]:
        """The index entries of a COCO-like folder: only the images its lists name (a user with the train
        images alone trains on them), each ``<captions>/<name>.txt`` (its first :data:`COCO_CAPTIONS`
        captions) in one of :meth:`_coco_caption_folders` and ``<name>.jpg|jpeg|png`` in one of
        :meth:`_coco_image_folders`."""
        texts = self._merged_listing(self._coco_caption_folders())
        images = self._merged_listing(self._coco_image_folders())
        listed = {name: split for split, names in self.image_lists.items() for name in names}
        entries, no_text, no_image = [], [], []
        for name, split in listed.items():
            txt = texts.get(name.lower() + ".txt")
            image = next((images[name.lower() + ext] for ext in IMAGE_EXTS if name.lower() + ext in images), None)
            if txt is None:
                no_text.append((name, split))
                continue
            if image is None:
                no_image.append((name, split))
                continue
            captions = _captions_or_collect(txt, not_utf8)
            if captions is not None:
                entries.append([name, str(image.relative_to(self.root)), captions[:COCO_CAPTIONS]])
        for missing, what, fix in (
            (no_text, "no caption file <name>.txt in " + " or ".join(str(d) for d in self._coco_caption_folders()),
             f"unpack the dataset's captions into {self.root / 'text'} (flat, or in its train2014/ and val2014/)"),
            (no_image, "no image <name>.jpg in " + " or ".join(str(d) for d in self._coco_image_folders()),
             "unpack COCO's train2014 / val2014 images into images/ (or images/train2014/, images/val2014/)"),
        ):
            if missing:
                name, split = missing[0]
                raise DataError(
                    f"{len(missing)} listed image(s) have {what} (first: {name}, listed in {self.list_files[split]})",
                    f"{fix}, or use the filenames.pickle of the same download",
                )
        return entries

    def _folder(self, given: str | None, candidates: Sequence[str], what: str, fix: str) -> Path | None:
        """``root/given`` (an error if it is not a folder), else the first of ``candidates`` that exists
        under the root, else None (the caller decides: captions may sit beside the images)."""
        if given is not None:
            path = self.root / given
            if not path.is_dir():
                raise DataError(f"{what} folder not found: {path}", fix)
            return path
        return next((self.root / c for c in candidates if (self.root / c).is_dir()), None)

    def flat_captions(self, folder: Path) -> list[str]:
        """The caption files in ``folder`` itself (sorted; the root's class lists are not captions)."""
        skip = self.not_captions if folder == self.root else set()
        try:
            with os.scandir(folder) as it:
                names = [e.name for e in it if e.is_file() and not is_hidden(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if is_caption_name(n) and n.lower() not in skip)

    @staticmethod
    def _class_captions(folder: Path) -> Path | None:
        """A caption file in a class folder of ``folder`` (CUB-like images with their captions), or None."""
        with os.scandir(folder) as it:
            classes = sorted(Path(e.path) for e in it if e.is_dir() and not is_hidden(e.name))
        for cls in classes:
            names = [n for n in _listing(cls).values() if is_caption_name(n)]
            if names:
                return cls / names[0]
        return None

    def class_pools(self, disjoint: bool = True) -> dict[str, list[str]]:
        """Classes of each split that has a split file.

        ``disjoint``: a class in both the training and the test class list is an error (the held-out
        metrics would score classes the model was trained on). ``class_split="random"`` pools every
        list and draws disjoint splits itself, so it passes False.
        """
        pools = {s: read_class_list(p) for s, p in self.split_files.items()}
        self.listed_in = {}
        for split, classes in pools.items():
            for cls in dict.fromkeys(classes):
                self.listed_in.setdefault(cls, []).append(self.split_files[split])
        if disjoint and "train" in pools and "test" in pools:
            refuse_shared_classes(
                pools["train"],
                pools["test"],
                f"the training class list {self.split_files['train']}",
                f"the test class list {self.split_files['test']}",
                "remove them from one of the two files: test classes must be unseen in training, or the "
                "held-out metrics score classes the model was trained on",
            )
        return pools

    def all_class_folders(self) -> list[str]:
        with os.scandir(self.captions) as it:
            return sorted(e.name for e in it if e.is_dir() and not is_hidden(e.name))

    def missing_split_error(self, split: str) -> SplitMissing:
        names = " or ".join(self.split_file_candidates.get(split, [f"{split}classes.txt"]))
        return SplitMissing(
            f"no class split file for the '{split}' split in {self.root} (looked for {names})",
            f"write the {split} class folder names, one per line, into {self.root / names.split(' or ')[0]} "
            "(a recipe can instead set data.split_files, or data.class_split='random')",
        )

    def _missing_class_error(self, cls: str) -> DataError:
        files = self.listed_in.get(cls)
        where = " and ".join(str(f) for f in files) if files else "a class split file"
        return DataError(
            f"class '{cls}' is listed in {where} but {self.captions / cls} does not exist",
            "fix the class split file or add the class's caption folder",
        )

    def _signature(self, classes: Sequence[str]) -> str:
        parts = [f"v{INDEX_VERSION}", str(self.root.resolve()), str(self.images), str(self.captions)]
        if self.images != self.captions or not self.unlabelled:  # else the caption folder's listing covers them
            parts.append(f"{self.images}:{self.images.stat().st_mtime_ns}")
        if self.image_lists:  # COCO: the lists pick the images, which may be in train2014/ and val2014/
            parts += [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in self.list_files.values()]
            parts += [f"{d}:{d.stat().st_mtime_ns}" for d in self._coco_image_folders()]
            classes = [*classes, *(str(d.relative_to(self.captions)) for d in self._coco_caption_folders()[1:])]
        for cls in classes:
            cdir = self.captions / cls
            try:
                with os.scandir(cdir) as it:
                    # files only: a folder inside (a run directory under the data) is never read, and its
                    # mtime changing must not rebuild the index
                    ents = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it
                                  if not is_hidden(e.name) and e.is_file())
            except OSError:
                ents = [("<missing>", 0, 0)]
            parts.append(f"{cls}:{ents}")
            idir = self.images / cls
            if self.images != self.captions and idir.is_dir():
                parts.append(f"img:{cls}:{idir.stat().st_mtime_ns}")
        return "\n".join(parts)

    def build_class(self, cls: str, flat: dict[str, str], not_utf8: list[NotUtf8] | None = None) -> list[list[Any]]:
        """``[[stem, image path relative to root, [captions]], ...]`` of one class.

        With ``not_utf8`` given, caption files that are not UTF-8 are collected there (and left out)
        instead of raised, so one error can name all of them."""
        if cls == "" and self.metadata is not None:
            return self._table_entries(self.metadata, "")
        if cls == "" and self.image_lists:
            return self._listed_entries(not_utf8)
        tables = {folder: self.split_tables[s] for s, folder in self.table_folders.items()}
        if cls in tables:
            return self._table_entries(tables[cls], f"{cls}/")
        cdir = self.captions / cls
        if not cdir.is_dir():
            raise self._missing_class_error(cls)
        per_class = _listing(self.images / cls)
        entries = []
        if cls == "":  # captions in no class folders (see FolderLayout.unlabelled)
            txts = [cdir / name for name in self.flat_captions(cdir)]
        else:
            txts = sorted(p for p in cdir.iterdir() if is_caption_name(p.name) and not is_hidden(p.name) and p.is_file())
        if not txts:
            raise DataError(f"caption folder {cdir} has no .txt files", "add the captions or drop the class")
        for txt in txts:
            stem = txt.stem
            image: Path | None = None
            for folder, listing in ((self.images / cls, per_class), (self.images, flat)):
                names = [n for n in (listing.get(stem.lower() + ext) for ext in IMAGE_EXTS) if n is not None]
                if len(names) > 1:
                    raise DataError(
                        f"caption file {txt} is for two images: {' and '.join(str(folder / n) for n in names)}",
                        "rename or delete one of them (its stem names the image its caption file describes)",
                    )
                if names:
                    image = folder / names[0]
                    break
            if image is None:
                places = dict.fromkeys(f"{d / stem}.jpg|jpeg|png" for d in (self.images / cls, self.images))
                raise DataError(
                    f"no image for caption file {txt} (looked for {' and '.join(places)})",
                    "add the image, move the caption file out, or set data.images_dir",
                )
            captions = _captions_or_collect(txt, not_utf8)
            if captions is not None:
                entries.append([stem, str(image.relative_to(self.root)), captions])
        return entries

    def index(self, classes: Sequence[str], cache_dir: str | os.PathLike[str] | None = None) -> dict[str, list]:
        """``{class: [[stem, image relpath, [captions]], ...]}`` for ``classes`` (cached)."""
        classes = sorted(set(classes))
        for cls in classes:
            if not (self.captions / cls).is_dir():
                raise self._missing_class_error(cls)

        def build() -> dict[str, list]:
            flat = _listing(self.images)
            not_utf8: list[NotUtf8] = []
            out = {cls: self.build_class(cls, flat, not_utf8) for cls in classes}
            if not_utf8:
                raise not_utf8_error(not_utf8)
            return out

        if self.metadata is not None or self.split_tables:  # names images in any subfolder: no cheap key covers them
            return build()
        return cached_json(cache_dir, "folder-index", self._signature(classes), build)


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


def read_bounding_boxes(root: Path) -> dict[str, tuple[float, float, float, float]]:
    """CUB-200-2011's boxes: lower-case image stem -> ``(x, y, w, h)`` in whole pixels.

    Joins ``images.txt`` (``<id> <class>/<file>.jpg``) with ``bounding_boxes.txt``
    (``<id> <x> <y> <w> <h>``), both from the CUB archive, found in one of
    :data:`BOX_DIR_CANDIDATES` under ``root``.
    """
    where = [root / d for d in BOX_DIR_CANDIDATES]
    found = next((d for d in where if (d / "bounding_boxes.txt").is_file() and (d / "images.txt").is_file()), None)
    if found is None:
        raise DataError(
            f"data.crop 'bbox' needs CUB's images.txt and bounding_boxes.txt (looked in "
            f"{', '.join(str(d) for d in where)})",
            "unpack CUB_200_2011.tgz under data.path, or set data.crop to 'none'",
        )

    def table(name: str) -> dict[str, list[str]]:
        path = found / name
        lines = read_text(path, "CUB table").splitlines()
        out = {}
        for n, line in enumerate(lines, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(f"{path} line {n} is malformed: {line!r}", "restore the file from the CUB archive")
            out[parts[0]] = parts[1:]
        return out

    names, boxes = table("images.txt"), table("bounding_boxes.txt")
    out: dict[str, tuple[float, float, float, float]] = {}
    for image_id, (rel, *_rest) in names.items():
        box = boxes.get(image_id)
        if box is None:
            continue  # reported per item, only if the dataset uses the image
        try:
            x, y, w, h = (int(float(v)) for v in box)  # truncated to pixels, as DF-GAN's .astype(int)
        except ValueError:
            raise DataError(
                f"{found / 'bounding_boxes.txt'}: the box of image {image_id} is not 4 numbers: {box}",
                "restore the file from the CUB archive",
            ) from None
        out[Path(rel).stem.lower()] = (x, y, w, h)
    return out


class FolderDataset(CaptionedImageDataset):
    """Images + per-image caption files + class split files (Oxford-102 / CUB layout)."""

    source = "folder"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        image_size: int = 64,
        seed: int = 0,
        flip: bool = False,
        random_crop: float = 1.0,
        crop: str = "none",
        num_classes: int | None = None,
        test_classes: int | None = None,
        class_split: str = "files",
        images_dir: str | None = None,
        captions_dir: str | None = None,
        split_files: dict[str, Sequence[str]] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(split=split, image_size=image_size, seed=seed, flip=flip, random_crop=random_crop)
        if crop not in ("none", "bbox"):
            raise DataError(f"unknown crop '{crop}'", "use 'none' or 'bbox' (CUB's bounding boxes)")
        check_split(split)
        self.layout = FolderLayout(root, images_dir=images_dir, captions_dir=captions_dir, split_files=split_files)
        self.root = self.layout.root
        # `ganreg data info ROOT --check` must find the same files: the folders the recipe named
        self.check_options = [f for flag, value in (("--images-dir", images_dir), ("--captions-dir", captions_dir))
                              if value for f in (flag, str(value))]
        self.items: list[tuple[str, str, list[str]]] = []
        self._labels: list[int] = []
        if self.layout.unlabelled:
            self._split_images(split, num_classes, test_classes, cache_dir)
        else:
            self._split_classes(split, num_classes, test_classes, class_split, cache_dir)
        self.boxes: list[tuple[float, float, float, float]] | None = None
        """Per item, CUB's bounding box ``(x, y, w, h)`` when ``crop="bbox"``."""
        if crop == "bbox":
            table = read_bounding_boxes(self.root)
            missing = [stem for stem, _rel, _caps in self.items if stem.lower() not in table]
            if missing:
                raise DataError(
                    f"{len(missing)} of {len(self.items)} images have no bounding box in CUB's tables "
                    f"(first: {missing[0]})",
                    "use the images.txt / bounding_boxes.txt of the same CUB archive, or set data.crop to 'none'",
                )
            self.boxes = [table[stem.lower()] for stem, _rel, _caps in self.items]

    def _split_classes(
        self, split: str, num_classes: int | None, test_classes: int | None, class_split: str,
        cache_dir: str | os.PathLike[str] | None,
    ) -> None:
        """Items and labels of ``split``: the images of its classes (class lists, or a random draw)."""
        if class_split == "random":
            pools = self.layout.class_pools(disjoint=False) or {"train": self.layout.all_class_folders()}
            if split == "valid":
                raise SplitMissing("class_split 'random' draws only train and test classes", "use split train or test")
        else:
            if split not in self.layout.split_files:
                raise self.layout.missing_split_error(split)
            pools = self.layout.class_pools()
        chosen = choose_classes(
            pools,
            seed=self.seed,
            num_classes=num_classes,
            test_classes=test_classes,
            class_split=class_split,
            what=str(self.root),
        )
        self._class_names = sorted({c for cs in chosen.values() for c in cs})
        class_index = {c: i for i, c in enumerate(self._class_names)}
        mine = chosen.get(split, [])
        if not mine:
            raise DataError(f"{self.root}: split '{split}' has no classes", "check the class split files")
        index = self.layout.index(mine, cache_dir)
        for cls in sorted(mine):
            for stem, rel, caps in index[cls]:
                self.items.append((stem, rel, caps))
                self._labels.append(class_index[cls])

    def _split_images(
        self, split: str, num_images: int | None, test_images: int | None, cache_dir: str | os.PathLike[str] | None
    ) -> None:
        """Items and labels of ``split`` for captions in no class folders: every image is its own class, so
        a wrong image is any other image (as DF-GAN's rolled pairs are).

        The held-out images are never trained on. By default each image is held out or not by a hash of
        ``(seed, name)`` (about one in :data:`UNLABELLED_TEST_SHARE`, at least one), so adding images
        later moves none of the others between the splits. ``test_images`` / ``num_images`` instead take
        that many images in the hash's order, held-out ones first."""
        if self.layout.split_tables:
            self._split_by_tables(split, num_images, test_images, cache_dir)
            return
        if self.layout.image_lists:
            self._split_by_lists(split, num_images, test_images, cache_dir)
            return
        if split == "valid":
            raise SplitMissing(
                f"{self.root} has no classes, so no 'valid' split (train and test are drawn from its images)",
                "use split train or test",
            )
        entries = self.layout.index([""], cache_dir)[""]
        if len(entries) < 3:
            raise DataError(
                f"{self.root} has {len(entries)} captioned image(s): training needs two (a wrong image is another "
                "image) and one is held out",
                "add captioned images (photo.jpg + photo.txt, one caption a line)",
            )
        by_name: dict[str, str] = {}
        for stem, _rel, _caps in entries:
            other = by_name.setdefault(stem.lower(), stem)
            if other != stem:
                raise DataError(
                    f"{self.root}: caption files {other}.txt and {stem}.txt differ only in case, so both name one image",
                    "rename or delete one of them",
                )
        rank = {stem: mix_seed("holdout", self.seed, stem) for stem, _rel, _caps in entries}
        ranked = sorted(rank, key=rank.__getitem__)
        if num_images is None and test_images is None:
            test = {s for s in ranked if rank[s] % UNLABELLED_TEST_SHARE == 0} or {ranked[0]}
            train = set(ranked) - test
        else:
            n_test = test_images if test_images is not None else max(1, len(ranked) // UNLABELLED_TEST_SHARE)
            n_train = num_images if num_images is not None else len(ranked) - n_test
            if n_test + n_train > len(ranked):
                raise DataError(
                    f"{self.root}: asked for {n_train} training + {n_test} held-out images but there are {len(ranked)} "
                    "(with no class folders, data.num_classes and data.test_classes count images)",
                    "lower data.num_classes / data.test_classes (training needs at least two images)",
                )
            test, train = set(ranked[:n_test]), set(ranked[n_test : n_test + n_train])
        if len(train) < 2:
            raise DataError(
                f"{self.root}: {len(train)} training image(s) of {len(ranked)}; a wrong image must be another image",
                "hold out fewer images (data.test_classes) or add captioned images",
            )
        self._class_names = sorted(train | test)
        class_index = {c: i for i, c in enumerate(self._class_names)}
        mine = train if split == "train" else test
        for stem, rel, caps in entries:
            if stem in mine:
                self.items.append((stem, rel, caps))
                self._labels.append(class_index[stem])

    def _split_by_tables(
        self, split: str, num_images: int | None, test_images: int | None, cache_dir: str | os.PathLike[str] | None
    ) -> None:
        """:meth:`_split_given` by the caption table of each split folder (``train/metadata.jsonl``, ...)."""
        folders = self.layout.table_folders
        index = self.layout.index(list(folders.values()), cache_dir)
        given = {s: index[f] for s, f in folders.items()}
        self._split_given(split, given, {s: f"{f}/" for s, f in folders.items()}, num_images, test_images)

    def _split_by_lists(
        self, split: str, num_images: int | None, test_images: int | None, cache_dir: str | os.PathLike[str] | None
    ) -> None:
        """:meth:`_split_given` by COCO's ``filenames.pickle`` of each split, its captions in one folder."""
        lists, files = self.layout.image_lists, self.layout.list_files
        entries = {stem: (stem, rel, caps) for stem, rel, caps in self.layout.index([""], cache_dir)[""]}
        refuse_shared_classes(
            lists.get("train", []), lists.get("test", []), f"the training list {files.get('train')}",
            f"the test list {files.get('test')}", "use the train/ and test/ filenames.pickle of one download",
            what="image(s)",
        )
        if "train" not in lists:
            raise DataError(
                f"{self.root} has {', '.join(str(f.relative_to(self.root)) for f in files.values())} but no "
                "training list",
                "add train/filenames.pickle of the same download",
            )
        given = {s: [entries[n] for n in names] for s, names in lists.items()}
        self._split_given(split, given, {s: str(f.relative_to(self.root)) for s, f in files.items()}, num_images,
                          test_images)

    def _split_given(
        self, split: str, given: dict[str, list[Any]], where: dict[str, str], num_images: int | None,
        test_images: int | None,
    ) -> None:
        """Items and labels of ``split`` when the data gives each split's images (``given``: split ->
        index entries; ``where``: what gave them, for messages): every image its own class, as in
        :meth:`_split_images`. ``num_images`` / ``test_images`` keep that many images of the train / test
        split, the first in the order of a hash of ``(seed, name)``."""
        if split not in given:
            raise SplitMissing(
                f"{self.root} has no '{split}' split: its splits are {', '.join(f'{s} ({w})' for s, w in where.items())}",
                "use split " + " or ".join(given),
            )
        names = {s: [stem for stem, _rel, _caps in entries] for s, entries in given.items()}
        for s, wanted in (("train", num_images), ("test", test_images)):
            if wanted is None or s not in names:
                continue
            if wanted > len(names[s]):
                raise DataError(
                    f"{self.root}: asked for {wanted} {s} images but {where[s]} has {len(names[s])} (with no classes, "
                    "data.num_classes and data.test_classes count images)",
                    f"lower data.{'num_classes' if s == 'train' else 'test_classes'}",
                )
            names[s] = sorted(names[s], key=lambda n: mix_seed("holdout", self.seed, n))[:wanted]
        if len(names.get("train", [])) < 2:
            raise DataError(
                f"{self.root}: {len(names.get('train', []))} training image(s) in {where.get('train', 'no train split')}; "
                "a wrong image must be another image",
                "add captioned images to the training split",
            )
        self._class_names = sorted(n for ns in names.values() for n in ns)
        class_index = {c: i for i, c in enumerate(self._class_names)}
        mine = set(names[split])
        for stem, rel, caps in given[split]:
            if stem in mine:
                self.items.append((stem, rel, caps))
                self._labels.append(class_index[stem])

    def __len__(self) -> int:
        return len(self.items)

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def has_classes(self) -> bool:
        return not self.layout.unlabelled

    def labels(self) -> list[int]:
        return list(self._labels)

    def _label_of(self, index: int) -> int:
        return self._labels[index]

    def captions_of(self, index: int) -> list[str]:
        return list(self.items[index][2])

    def all_captions(self) -> list[str]:
        return [c for item in self.items for c in item[2]]

    def image_path(self, index: int) -> Path:
        return self.root / self.items[index][1]

    def image_bytes(self, index: int) -> bytes:
        path = self.image_path(index)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read image {path} (item {index}): {exc}", "restore the file") from None

    def item_name(self, index: int) -> str:
        return f"{self.image_path(index)} (item {index})"

    def _source_image(self, index: int) -> Any:
        what = self.item_name(index)
        # CUB's boxes are in the full image's pixels: those images decode at their own size
        side = self.decode_side() if self.boxes is None else None
        im = decode_pil(self.image_bytes(index), what=what, dataset=self.root, options=self.check_options, min_side=side)
        if self.boxes is None:
            return im
        try:
            return box_crop(im, self.boxes[index])
        except ValueError as exc:
            raise DataError(f"cannot crop {what}: {exc}", "check that bounding_boxes.txt matches the images") from None

    def records(self) -> Iterator[tuple[str, str, bytes, list[str]]]:
        """``(image name, class, encoded bytes, captions)`` of every item (for conversion); each image is
        decoded once on the way, so a corrupt file is named now, not at training time."""
        for i, (stem, _rel, caps) in enumerate(self.items):
            data = self.image_bytes(i)
            decode_pil(data, what=self.item_name(i), dataset=self.root, options=self.check_options)
            yield stem, self._class_names[self._labels[i]], data, caps
