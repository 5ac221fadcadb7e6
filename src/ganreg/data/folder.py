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
(``.jpg``, ``.jpeg``, ``.png``, ``.webp``, ``.bmp``, ``.tif`` or ``.tiff``, any case). Names starting with ``.`` (macOS's
``._<name>`` AppleDouble files, ``.DS_Store``) and ``__MACOSX`` folders are
skipped. Text files (captions, class lists) are UTF-8, a leading byte-order
mark dropped; anything else is an error naming the file and the byte.

Modules: :mod:`~ganreg.data.folder_files` reads each file, :mod:`~ganreg.data.folder_layout` finds the
parts and builds the (cached) index, :mod:`~ganreg.data.cub_boxes` reads CUB's boxes, and this module
makes the splits and items of training from them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ganreg.data._util import (
    SplitMissing,
    box_crop,
    check_split,
    choose_classes,
    decode_pil,
    mix_seed,
    refuse_shared_classes,
)
from ganreg.data.base import CaptionedImageDataset
from ganreg.data.cub_boxes import read_bounding_boxes
from ganreg.data.folder_layout import FolderLayout
from ganreg.errors import DataError

UNLABELLED_TEST_SHARE = 10
"""Captions in no class folders: one image in this many is held out as the test split (at least one)."""


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

    def _files_signature(self) -> Any:
        def stamp(rel: str) -> tuple[int, int] | None:
            try:
                st = (self.root / rel).stat()
            except OSError:
                return None  # missing: reading it names the problem
            return st.st_size, st.st_mtime_ns

        return {"images": [(rel, stamp(rel)) for _stem, rel, _caps in self.items], "boxes": self.boxes}

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
        im = decode_pil(self.image_bytes(index), what=what, dataset=self.root, options=self.check_options, min_side=side,
                        upright=self.boxes is None)  # CUB's boxes are in the stored pixels
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
