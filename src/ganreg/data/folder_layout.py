"""Where a folder dataset's parts are: its image and caption folders, the class list (or image list) of
each split, caption tables, and the index of classes, images and captions built from them (cached).

The layouts read are described in :mod:`ganreg.data.folder`. Which class list each split uses is decided
by :func:`choose_split_files` alone. The index is built once and cached under
``<cache_dir>/folder-index/``, keyed by the size and mtime of every caption file and image folder, so
editing the data rebuilds it. A caption table is read afresh each time instead: it may name images in any
folder, which no cheap key covers (40k rows take about 0.8 s).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganreg.data._util import (
    MOVED_DATA_FIX, NotUtf8, SplitMissing, cached_json, is_hidden, refuse_shared_classes, shown_path,
)
from ganreg.data.config import DEFAULT_SPLIT_FILES
from ganreg.data.folder_files import (
    IMAGE_EXTS,
    IMAGE_EXTS_SHOWN,
    captions_or_collect,
    image_lists,
    file_listing,
    is_caption_name,
    not_utf8_error,
    read_class_list,
)
from ganreg.data.metadata import (
    METADATA_NAMES,
    SPLIT_FOLDERS,
    find_metadata,
    find_split_tables,
    item_name,
    parquet_shards,
    read_metadata,
    unread_tables,
)
from ganreg.errors import DataError

IMAGE_DIR_CANDIDATES = ("images", "jpg", "CUB_200_2011/images", "oxford-102-flowers/images")
"""Reed et al.'s / the archives' image folders, then DF-GAN's flowers layout (``code/lib/datasets.py``)."""
CAPTION_DIR_CANDIDATES = ("text_c10", "text")
INDEX_VERSION = 4
"""2: strict UTF-8 captions, byte-order marks dropped, hidden files skipped (older indexes may hold U+FFFD).
3: ``.TXT`` caption files read, a caption file of two images refused.
4: images beside caption files may also be .webp, .bmp, .tif, .tiff."""


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
            raise DataError(
                f"dataset folder not found: {shown_path(self.root)}",
                f"check data.path (a relative one starts in the current folder; {MOVED_DATA_FIX})",
            )
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
            self._refuse_table_and_caption_files(captions)
            return
        if images is None and captions is not None and not flat:  # Reed's layout, its images not unpacked
            raise DataError(f"no image folder in {self.root} (looked for {', '.join(IMAGE_DIR_CANDIDATES)})", image_fix)
        self.images = images or self.root  # captions beside the images (photo.jpg + photo.txt) in the root itself
        self.captions = captions or self.images
        self.unlabelled = bool(self.image_lists) or (not self.split_files and bool(self.flat_captions(self.captions)))
        """The captions are ``<captions>/<stem>.txt``, in no class folders, and there are no class lists: a
        user's own captioned images, every image its own class (see :class:`FolderDataset`); or COCO's
        lists of bare names pick the images (:meth:`_listed_entries` finds their files)."""
        if self.unlabelled and not self.image_lists and images is not None and images_dir is None and captions_dir is None:
            self._refuse_captioned_images_beside(images)
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
            raise self._no_captions_error()

    def _refuse_captioned_images_beside(self, images: Path) -> None:
        """Captioned images in the root as well as in its ``images/`` (or ``jpg/``) folder, which is the one
        read: the root's were left out without a word."""
        listing = file_listing(self.root)
        stray = [t for t in self.flat_captions(self.root) if any(t[:-4].lower() + ext in listing for ext in IMAGE_EXTS)]
        if stray:
            raise DataError(
                f"{self.root} holds captioned images both itself ({stray[0]}, ...) and in {images.relative_to(self.root)}/,"
                f" which is the folder read: the {len(stray)} in {self.root.resolve().name}/ would be left out",
                f"keep them in one place: move them all into {images.relative_to(self.root)}/ (or all out of it)",
            )

    def _refuse_table_and_caption_files(self, captions: Path | None) -> None:
        """A caption table and caption files too (a caption folder, or ``<image>.txt`` beside its image) would
        give an image two sets of captions: refused, naming both."""
        listing = file_listing(self.images)
        beside = [t for t in self.flat_captions(self.images) if any(t[:-4].lower() + ext in listing for ext in IMAGE_EXTS)]
        holds_captions = captions is not None and bool(self.flat_captions(captions) or self._class_captions(captions))
        clash = captions if holds_captions else (self.images / beside[0] if beside else None)
        if clash is not None:
            table = self.metadata or next(iter(self.split_tables.values()))
            raise DataError(
                f"{self.root} has captions both in {table.relative_to(self.root)} and as caption files ({clash})",
                f"keep them in one place: the table, or one <image>.txt per image (then move {table.name} out)",
            )

    def _no_captions_error(self) -> DataError:
        """The error for a folder without class lists where no captions were found: a table ganreg does not
        read is named with its conversion, then a Hub download of Parquet files with its export, else every place
        that was looked in and each layout's fix."""
        splits = [self.root / f for folders in SPLIT_FOLDERS.values() for f in folders]
        unread = unread_tables([self.root, self.images, *splits])
        if unread:
            return DataError(
                f"no captions in {self.root}: {unread[0]} looks like a caption table, but ganreg reads only "
                f"{' or '.join(METADATA_NAMES)}",
                "write it as metadata.jsonl (one JSON object a line, file_name and text) or metadata.csv (a header "
                "row file_name,text); pandas converts most tables: pandas.read_parquet(p).to_json('metadata.jsonl', "
                "orient='records', lines=True)",
            )
        shards = parquet_shards(self.root)
        if shards:
            return DataError(
                f"no captions in {self.root}: it holds Parquet files ({shards[0].relative_to(self.root)}"
                + (f" and {len(shards) - 1} more" if len(shards) > 1 else "") + "), the Hugging Face Hub's dataset "
                "format, which ganreg does not read directly",
                "export it once as split folders of images with a metadata.jsonl each: the README's "
                "hub_to_folder.py (section 'Your own captioned images') does it with the datasets library; then "
                "set data.path to the folder it writes",
            )
        return DataError(
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
            for low, name in file_listing(folder).items():
                other = out.setdefault(low, folder / name)
                if other != folder / name:
                    raise DataError(f"{other} and {folder / name} are one file of the data", "delete one of them")
        return out

    def _listed_entries(self, not_utf8: list[NotUtf8] | None) -> list[list[Any]]:
        """The index entries of a COCO-like folder: only the images its lists name (a user with the train
        images alone trains on them), each ``<captions>/<name>.txt`` (its first :data:`COCO_CAPTIONS`
        captions) in one of :meth:`_coco_caption_folders` and ``<name>.<one of IMAGE_EXTS>`` in one of
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
            captions = captions_or_collect(txt, not_utf8)
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
            names = [n for n in file_listing(cls).values() if is_caption_name(n)]
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
        split_names = {name for folders in SPLIT_FOLDERS.values() for name in folders}
        folders = self.all_class_folders() if self.captions.is_dir() else []
        if folders and all(f.lower() in split_names for f in folders):  # train/ test/ read as two classes
            return SplitMissing(
                f"{self.root} holds split folders ({', '.join(folders)}) with caption files beside their images: "
                "ganreg reads split folders only with a caption table in each (train/metadata.jsonl)",
                "write a metadata.jsonl (or .csv) into each split folder, or put all the images and caption files "
                "in one folder (ganreg then holds out a tenth of them as the test split)",
            )
        return SplitMissing(
            f"no class split file for the '{split}' split in {self.root} (looked for {names})",
            f"write the {split} class folder names, one per line, into {self.root / names.split(' or ')[0]} "
            "(a recipe can instead set data.split_files, or data.class_split='random' with data.num_classes "
            "and data.test_classes)",
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
        per_class = file_listing(self.images / cls)
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
                places = dict.fromkeys(f"{d / stem}.{IMAGE_EXTS_SHOWN}" for d in (self.images / cls, self.images))
                raise DataError(
                    f"no image for caption file {txt} (looked for {' and '.join(places)})",
                    "add the image, move the caption file out, or set data.images_dir",
                )
            captions = captions_or_collect(txt, not_utf8)
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
            flat = file_listing(self.images)
            not_utf8: list[NotUtf8] = []
            out = {cls: self.build_class(cls, flat, not_utf8) for cls in classes}
            if not_utf8:
                raise not_utf8_error(not_utf8)
            return out

        if self.metadata is not None or self.split_tables:  # names images in any subfolder: no cheap key covers them
            return build()
        return cached_json(cache_dir, "folder-index", self._signature(classes), build)
