"""The dataset contract every data source implements.

Every item is a dict:

``image``        float32 ``[3, S, S]`` in [-1, 1] (uint8 on a ``view(raw_images=True)``)
``wrong_image``  like ``image``: a real image of ANOTHER class (class ids are
                 compared, never h5py objects: the aelnouby loader's bug)
``caption``      str, one of the image's captions, chosen at random per item
``embedding``    float32 ``[E]``, only when the source stores precomputed embeddings
                 (HDF5); it belongs to the chosen caption
``label``        int, index into ``dataset.class_names`` (the source's classes of
                 every split, so train and test labels never collide)
``wrong_label``  int, the class of ``wrong_image`` (always != ``label``)
``attributes``   int64 ``[A]``, only for sources with attributes (shapes)
``index``        int

Evaluation reads a ``view(augment=False)``: the centre square, unflipped.
``image`` is left out of the items of a ``view(images=False)`` and
``wrong_image`` / ``wrong_label`` of a ``view(wrong_images=False)``: decoding
a picture is most of an item's cost, and a caption-only pass (sampling,
evaluation) or a loss without wrong images (DF-GAN) has no use for it.

Randomness (caption choice, wrong-image draw, crops, flips) is a pure function of
``(seed, epoch, index)``: call :meth:`CaptionedImageDataset.set_epoch` at the
start of every epoch, so a resumed run sees exactly the same data. With
``persistent_workers=True`` a DataLoader keeps stale copies of the dataset in
its workers; either keep ``persistent_workers=False`` (the default) or index the
dataset with ``(epoch, index)`` tuples (see :class:`EpochSampler`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ganreg.data._util import load_size, mix_seed, pil_to_array, resize_short_side, uint8_chw, uint8_to_tensor
from ganreg.data.tokenizer import ordered_word_subset
from ganreg.errors import DataError


class CaptionedImageDataset(Dataset):
    """Base class of the data sources (shapes, hdf5, folder).

    Subclasses implement ``__len__``, :attr:`class_names`, :meth:`labels`,
    :meth:`captions_of` and either :meth:`_source_image` (sources of image
    files, which then support ``random_crop``) or :meth:`_image_array`;
    optionally :meth:`_embedding`, :meth:`_attributes`, :attr:`embedding_dim`
    and :attr:`attributes`.

    ``random_crop`` > 1 is the augmentation of StackGAN, AttnGAN and DF-GAN:
    the shorter side is resized to ``int(image_size * random_crop)`` (76/64 in
    the originals), then a random ``image_size`` square is cut, per item and
    epoch. :meth:`image` (the un-augmented view) cuts the centre square instead.
    """

    source: str = "?"

    def __init__(
        self, *, split: str, image_size: int, seed: int = 0, flip: bool = False, random_crop: float = 1.0
    ) -> None:
        self._split = split
        self._image_size = int(image_size)
        self.seed = int(seed)
        self.flip = bool(flip)
        if random_crop < 1.0:
            raise DataError(f"random_crop {random_crop} is below 1", "use 1 (no crop) or more, e.g. 1.1875 (76/64)")
        self.random_crop = float(random_crop)
        self.word_subset: int | None = None
        """When set (``data.long_captions: "random"``), a caption with more words keeps a random subset of this many, in order (DF-GAN's
        ``get_caption``), drawn from the item's stream right after the caption."""
        self.epoch = 0
        self._wrong_table: tuple[np.ndarray, dict[int, int], dict[int, int]] | None = None
        self._label_cache: np.ndarray | None = None
        self.raw_images = False
        """Items carry uint8 ``[3, S, S]`` images (see :meth:`view`)."""
        self.with_images = True
        """Items carry ``image`` (see :meth:`view`)."""
        self.with_wrong_images = True
        """Items carry ``wrong_image`` and ``wrong_label`` (see :meth:`view`)."""
        self.augment = True
        """Random crops and flips; off: the centre square, unflipped (see :meth:`view`)."""

    # ------------------------------------------------------------ to implement
    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def labels(self) -> list[int]:  # pragma: no cover - interface
        """The class index of every item, without decoding any image."""
        raise NotImplementedError

    def captions_of(self, index: int) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def item_name(self, index: int) -> str:
        """Where item ``index`` lives, for error messages (the file, or the HDF5 group)."""
        return f"item {index} of the {self.source} split '{self.split}'"

    def _source_image(self, index: int) -> Any:  # pragma: no cover - interface
        """Item ``index``'s picture as an RGB PIL image at its own size (after any crop the source
        defines, such as CUB's bounding box)."""
        raise NotImplementedError(f"the {self.source} source has no full-size images")

    def decode_side(self) -> int:
        """The shorter side the pipeline resizes a source image to (``image_size``, or the
        ``random_crop`` load size): what a JPEG must keep when decoded at reduced scale."""
        return load_size(self.image_size, self.random_crop)

    def _image_array(self, index: int) -> np.ndarray:
        """uint8 ``[S, S, 3]`` RGB of item ``index`` at :attr:`image_size` (squashed to the square)."""
        return pil_to_array(self._source_image(index), self.image_size)

    def _cropped_array(self, index: int, rng: random.Random | None) -> np.ndarray:
        """uint8 ``[S, S, 3]``: the ``random_crop`` square, at a random offset from ``rng`` or, without
        one, the centre."""
        im = resize_short_side(self._source_image(index), load_size(self.image_size, self.random_crop))
        w, h = im.size
        s = self.image_size
        if rng is None:
            x, y = (w - s) // 2, (h - s) // 2
        else:
            x, y = rng.randint(0, w - s), rng.randint(0, h - s)
        return np.asarray(im.crop((x, y, x + s, y + s)), dtype=np.uint8)

    def _embedding(self, index: int, caption_index: int) -> np.ndarray | None:
        return None

    def _attributes(self, index: int) -> Sequence[int] | None:
        return None

    @property
    def embedding_dim(self) -> int | None:
        """Size of the precomputed caption embeddings, or None when there are none."""
        return None

    @property
    def attributes(self) -> dict[str, list[str]] | None:
        """Attribute name -> value names, ordered like the ``attributes`` tensor; or None."""
        return None

    # ----------------------------------------------------------------- common
    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def split(self) -> str:
        return self._split

    @property
    def has_classes(self) -> bool:
        """False when the labels only tell images apart (a folder of captioned images in no class
        folders): wrong images still work, but nothing that learns or reports classes (the evaluation
        classifier, alignment) means anything."""
        return True

    @property
    def num_classes(self) -> int:
        """``len(class_names)``: the size a class-embedding table needs."""
        return len(self.class_names)

    def all_captions(self) -> list[str]:
        """Every caption of the split (to build the vocabulary)."""
        out: list[str] = []
        for i in range(len(self)):
            out.extend(self.captions_of(i))
        return out

    def captions_sha256(self) -> str:
        """The sha256 of every caption of the split, in item order: what a cache of things learnt from the
        captions (a pretrained text encoder) and a run's record of its data (run.json) key on."""
        return hashlib.sha256("\n".join(self.all_captions()).encode("utf-8")).hexdigest()

    def content_signature(self) -> str:
        """A hash of what the split yields: its labels, class names, captions in item order and the
        :meth:`_files_signature` of the files its images come from; not where the data lies. Evaluation
        caches (the real-image classifier, the reference statistics) key on it: data edited in place gets
        new ones, data moved or copied with its timestamps keeps them."""
        payload = [self.source, len(self), self.class_names, self.labels(), self.captions_sha256(), self._files_signature()]
        return hashlib.sha256(json.dumps(payload, default=str).encode("utf-8")).hexdigest()

    def _files_signature(self) -> Any:
        """What changes when an image file of the split is replaced or modified (names relative to the data,
        sizes, modification times); None for a source whose images follow from its config alone."""
        return None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random choices the next items use."""
        self.epoch = int(epoch)

    def item_rng(self, index: int, epoch: int | None = None) -> random.Random:
        """The item's random stream, a pure function of ``(seed, epoch, index)``."""
        e = self.epoch if epoch is None else int(epoch)
        return random.Random(mix_seed("item", self.seed, e, int(index)))

    def wrong_index(self, index: int, rng: random.Random) -> int:
        """An index drawn uniformly from the items of every OTHER class."""
        if self._wrong_table is None:
            labels = np.asarray(self.labels(), dtype=np.int64)
            order = np.argsort(labels, kind="stable")
            uniq, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
            self._wrong_table = (
                order,
                {int(u): int(s) for u, s in zip(uniq, starts, strict=True)},
                {int(u): int(c) for u, c in zip(uniq, counts, strict=True)},
            )
        order, starts, counts = self._wrong_table
        label = self._label_of(index)
        n_other = len(order) - counts[label]
        if n_other <= 0:
            raise DataError(
                f"{self.source} split '{self.split}' has only one class ({self.class_names[label]!r}); "
                "a wrong image must come from another class",
                "use a split with at least two classes (check the class split files / num_classes)",
            )
        r = rng.randrange(n_other)
        if r >= starts[label]:
            r += counts[label]
        return int(order[r])

    def _label_of(self, index: int) -> int:
        if self._label_cache is None:
            self._label_cache = np.asarray(self.labels(), dtype=np.int64)
        return int(self._label_cache[index])

    def _array(self, index: int, rng: random.Random | None) -> np.ndarray:
        """uint8 ``[S, S, 3]`` of item ``index``: augmented by ``rng`` (crop, then flip) or, without
        one, the un-augmented view (the centre square of ``random_crop``, unflipped)."""
        arr = self._cropped_array(index, rng) if self.random_crop > 1.0 else self._image_array(index)
        if rng is not None and self.flip and rng.random() < 0.5:
            arr = arr[:, ::-1]
        return arr

    def _tensor(self, index: int, rng: random.Random) -> torch.Tensor:
        arr = self._array(index, rng if self.augment else None)
        return uint8_chw(arr) if self.raw_images else uint8_to_tensor(arr)

    def image(self, index: int) -> torch.Tensor:
        """Item ``index``'s image in [-1, 1], un-augmented, without drawing a caption or decoding a wrong image
        (for references that compare real images, such as the diversity metric's)."""
        return uint8_to_tensor(self._array(index, None))

    def attributes_of(self, index: int) -> Sequence[int] | None:
        """The attribute ids of item ``index`` (ordered like :attr:`attributes`), without decoding its image."""
        return self._attributes(index)

    def view(
        self,
        *,
        raw_images: bool | None = None,
        images: bool | None = None,
        wrong_images: bool | None = None,
        augment: bool | None = None,
    ) -> CaptionedImageDataset:
        """A view of this dataset (everything shared) whose items carry other things; None keeps
        this dataset's choice.

        ``raw_images``: uint8 images, for the training stream: a quarter of the bytes through the
        loader's workers and the host-to-device copy, converted to [-1, 1] on the device
        (:func:`ganreg.data._util.to_unit_range`). ``images`` / ``wrong_images``: whether items carry
        them at all. ``augment=False``: images as :meth:`image` gives them (centre square, no flip),
        for evaluation. Every view draws the same caption for an ``(epoch, index)`` (it is drawn first)."""
        view = copy.copy(self)
        if augment is not None:
            view.augment = bool(augment)
        if raw_images is not None:
            view.raw_images = bool(raw_images)
        if images is not None:
            view.with_images = bool(images)
        if wrong_images is not None:
            view.with_wrong_images = bool(wrong_images)
        return view

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            epoch, index = int(key[0]), int(key[1])
        else:
            epoch, index = self.epoch, int(key)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        rng = self.item_rng(index, epoch)
        captions = self.captions_of(index)
        ci = rng.randrange(len(captions))
        caption = captions[ci]
        emb = self._embedding(index, ci)
        if self.word_subset is not None and emb is None:  # a precomputed embedding is of the whole caption
            caption = ordered_word_subset(caption, self.word_subset, rng)
        item: dict[str, Any] = {"caption": caption, "label": self._label_of(index), "index": index}
        if self.with_images:
            item["image"] = self._tensor(index, rng)
        if self.with_wrong_images:
            wi = self.wrong_index(index, rng)
            item["wrong_image"] = self._tensor(wi, rng)
            item["wrong_label"] = self._label_of(wi)
        if emb is not None:
            item["embedding"] = torch.as_tensor(np.asarray(emb, dtype=np.float32))
        attrs = self._attributes(index)
        if attrs is not None:
            item["attributes"] = torch.as_tensor(np.asarray(attrs, dtype=np.int64))
        return item

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (used by ``ganreg data info``)."""
        labels = self.labels()
        caps = [len(self.captions_of(i)) for i in range(len(self))]
        return {
            "split": self.split,
            "images": len(self),
            "captions": int(sum(caps)),
            "classes": len(set(labels)) if self.has_classes else None,
            "class_examples": [self.class_names[c] for c in sorted(set(labels))[:5]] if self.has_classes else [],
            "example_captions": [self.captions_of(i)[0] for i in range(min(3, len(self)))],
            "embedding_dim": self.embedding_dim,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, items={len(self)}, "
            f"classes={len(set(self.labels()))}/{self.num_classes}, image_size={self.image_size})"
        )


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys, so workers need no :meth:`set_epoch`.

    Wraps any sampler of indices (RandomSampler, DistributedSampler, ...); call
    :meth:`set_epoch` on it (it forwards to the inner sampler when it has one).
    Use it as ``sampler=`` of a DataLoader whose workers are persistent.
    """

    def __init__(self, inner: Sampler | Sequence[int]) -> None:
        self.inner = inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.inner:
            yield (self.epoch, int(i))

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]
