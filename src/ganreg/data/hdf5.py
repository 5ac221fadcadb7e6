"""HDF5 files in the layout of the seed projects (aelnouby/Text-to-Image-Synthesis).

Layout (reference §1.10): top-level groups ``train``, ``valid``, ``test``; one
group per (image, caption) pair, named ``<image name>_<c>``, holding

``img``         the raw encoded image file (JPEG) as an opaque ``np.void`` scalar
``embeddings``  float32 ``[1024]``, the caption's char-CNN-RNN embedding
``class``       vlen str, e.g. ``class_00001``
``txt``         vlen str, the caption with its trailing newline
``name``        vlen str, the image name

Files made by the seed converters load unchanged. An ITEM here is an IMAGE:
its captions are the groups that share the key prefix before the last
``_<c>``; each item picks one of them at random (and that caption's
embedding). The "wrong" image always comes from another class, comparing the
decoded class strings (the aelnouby loader compares h5py objects, which are
always unequal, so its "wrong" image can be the same class or the same photo).

The file is indexed once (keys, class strings, captions; cached under
``<cache_dir>/hdf5-index/`` keyed by path, size and mtime) and opened lazily in
each process, so DataLoader workers each get their own handle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ganreg.atomic import atomic_path
from ganreg.data._util import (
    MOVED_DATA_FIX,
    SPLITS,
    SplitMissing,
    check_split,
    cached_json,
    choose_classes,
    decode_pil,
    file_signature,
    refuse_shared_classes,
    shown_path,
    to_rgb,
)
from ganreg.data.base import CaptionedImageDataset
from ganreg.errors import DataError

INDEX_VERSION = 3
"""3: whether the file has classes (``has_classes``)."""
_FIX_CORRUPT = "the file is truncated or corrupt: re-download it or re-create it (ganreg data make hdf5 --from FOLDER)"


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise DataError("the hdf5 source needs h5py", "pip install h5py") from None
    return h5py


def _to_str(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.tolist()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def image_name(key: str) -> str:
    """``image_06734_3`` -> ``image_06734`` (the key itself when it has no ``_<digits>`` suffix)."""
    head, sep, tail = key.rpartition("_")
    return head if sep and tail.isdigit() and head else key


def _suffix(key: str) -> tuple[int, str]:
    tail = key.rpartition("_")[2]
    return (int(tail), key) if tail.isdigit() else (-1, key)


def _not_a_file(p: Path) -> DataError:
    """The error for a data.path of the hdf5 source that is not a file: a folder given by mistake, or nothing."""
    if p.is_dir():
        return DataError(
            f"{p} is a folder, not an HDF5 file",
            "set data.source=folder if it is a dataset folder (images + text_c10/), or set data.path to the .h5 file",
        )
    return DataError(
        f"HDF5 file not found: {shown_path(p)}",
        f"check data.path (or create one with `ganreg data make`; {MOVED_DATA_FIX})",
    )


def open_h5(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    if not p.is_file():
        raise _not_a_file(p)
    try:
        return _h5py().File(p, "r")
    except OSError as exc:
        # another process writes it, or a file system without locks (HDF5 1.10-1.14: "file locking disabled on
        # this file system"); not "sblock", which a truncated file's message names
        if any(words in str(exc).lower() for words in ("unable to lock file", "file locking")):
            raise DataError(
                f"cannot open HDF5 file {p}: it is locked ({exc})",
                "if a process is still writing the file, wait for it; on a network file system without locks "
                "(NFS, Lustre), set HDF5_USE_FILE_LOCKING=FALSE in the environment",
            ) from None
        if not _has_hdf5_signature(p):
            raise DataError(
                f"{p} is not an HDF5 file",
                "give data.path an HDF5 file (.h5); images with captions are read from their folder (data.source folder)",
            ) from None
        raise DataError(f"cannot open HDF5 file {p}: {exc}", _FIX_CORRUPT) from None


def _has_hdf5_signature(p: Path) -> bool:
    """Whether ``p`` carries HDF5's format signature where the format puts it: at byte 0, 512, 1024, 2048, ...
    (after a user block). A truncated or damaged HDF5 file still has it; a JSON file or an image does not."""
    signature = b"\x89HDF\r\n\x1a\n"
    try:
        with open(p, "rb") as fh:
            size, offset = p.stat().st_size, 0
            while offset + len(signature) <= size:
                fh.seek(offset)
                if fh.read(len(signature)) == signature:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return True  # unreadable: let the open's own error speak
    return False


NO_CLASSES_ATTR = "ganreg_no_classes"
"""Root attribute of a file converted from images in no classes (its class strings are the image names):
the dataset then says it has no classes, as the folder did."""


def build_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read every split's keys, class strings and captions (no image is decoded).

    Returns ``{"splits": {split: [[name, class, [keys], [captions]], ...]},
    "embedding_dim": int | None, "has_classes": bool}``.
    """
    p = Path(path)
    out: dict[str, Any] = {"version": INDEX_VERSION, "splits": {}, "embedding_dim": None}
    with open_h5(p) as f:
        try:
            top = list(f.keys())
            out["has_classes"] = f.attrs.get(NO_CLASSES_ATTR) is None
        except (OSError, RuntimeError, KeyError) as exc:
            raise DataError(f"cannot read HDF5 file {p}: {exc}", _FIX_CORRUPT) from None
        splits = [s for s in SPLITS if s in top]
        if not splits:
            raise DataError(
                f"HDF5 file {p} has none of the groups train/valid/test (it has: {', '.join(top) or 'nothing'})",
                "use a file in the seed projects' layout (see `ganreg data make --help`)",
            )
        for split in splits:
            where = f"{p}:{split}"
            images: dict[str, list[Any]] = {}
            try:
                keys = sorted(f[split].keys())
            except (OSError, RuntimeError, KeyError) as exc:
                raise DataError(f"cannot read {where}: {exc}", _FIX_CORRUPT) from None
            grp = f[split]
            prefix_ok: dict[str, bool] = {}
            for key in keys:
                where = f"{p}:{split}/{key}"
                try:
                    g = grp[key]
                    prefix = image_name(key)
                    trusted = prefix_ok.get(prefix)
                    if trusted is None:  # first key of this prefix: does the stored name agree?
                        stored = _to_str(g["name"][()]).strip() if "name" in g else prefix
                        trusted = prefix_ok[prefix] = stored == prefix
                    if trusted:
                        name = prefix
                    else:  # e.g. bare keys "image_00001" with name "image_00001": trust the name
                        stored = _to_str(g["name"][()]).strip() if "name" in g else ""
                        name = stored if stored and key.startswith(stored) else key
                    entry = images.get(name)
                    if entry is None:  # the first group of an image: check it, read its class
                        missing = [k for k in ("img", "class", "txt") if k not in g]
                        if missing:
                            raise DataError(
                                f"{where} lacks {', '.join(missing)}",
                                "every group needs img, class and txt (see `ganreg data make --help`)",
                            )
                        entry = images[name] = [name, _to_str(g["class"][()]).strip(), [], []]
                        if out["embedding_dim"] is None and "embeddings" in g:
                            out["embedding_dim"] = int(np.prod(g["embeddings"].shape))
                    try:
                        txt = _to_str(g["txt"][()]).strip()
                    except KeyError:
                        raise DataError(f"{where} lacks txt", "every group needs img, class and txt") from None
                except DataError:
                    raise
                except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
                    raise DataError(f"cannot read {where}: {exc}", _FIX_CORRUPT) from None
                entry[2].append(key)
                entry[3].append(txt)
            for entry in images.values():  # captions in group order: _0, _1, ..., _10
                order = sorted(range(len(entry[2])), key=lambda j, e=entry: _suffix(e[2][j]))
                entry[2] = [entry[2][j] for j in order]
                entry[3] = [entry[3][j] for j in order]
            out["splits"][split] = [images[n] for n in sorted(images)]
    return out


def load_index(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise _not_a_file(p)
    key = f"hdf5-index-v{INDEX_VERSION}|{file_signature(p)}"
    return cached_json(cache_dir, "hdf5-index", key, lambda: build_index(p))


class HDF5Dataset(CaptionedImageDataset):
    """Images and captions (and their precomputed embeddings) from a seed-layout HDF5 file."""

    source = "hdf5"

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str = "train",
        *,
        image_size: int = 64,
        seed: int = 0,
        flip: bool = False,
        random_crop: float = 1.0,
        num_classes: int | None = None,
        test_classes: int | None = None,
        class_split: str = "files",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(split=split, image_size=image_size, seed=seed, flip=flip, random_crop=random_crop)
        self.path = str(Path(path))
        index = load_index(self.path, cache_dir)
        self._embedding_dim: int | None = index["embedding_dim"]
        self._has_classes: bool = index.get("has_classes", True)
        pools = {s: [img[1] for img in imgs] for s, imgs in index["splits"].items()}
        chosen = choose_classes(
            pools,
            seed=seed,
            num_classes=num_classes,
            test_classes=test_classes,
            class_split=class_split,
            what=self.path,
        )
        check_split(split)
        if class_split == "files" and split not in index["splits"]:
            raise SplitMissing(
                f"HDF5 file {self.path} has no '{split}' split (it has: {', '.join(index['splits'])})",
                "use one of the splits it has",
            )
        if class_split == "files" and "train" in chosen and "test" in chosen:
            refuse_shared_classes(
                chosen["train"],
                chosen["test"],
                f"the 'train' split of {self.path}",
                "its 'test' split",
                'set data.class_split = "random" with data.num_classes and data.test_classes to draw disjoint '
                "train and test classes from the file's classes, or re-create the file with disjoint class lists "
                "(ganreg data make hdf5 --from FOLDER)",
            )
        if class_split == "random" and not chosen.get(split):  # "valid" is drawn empty
            raise SplitMissing("class_split 'random' draws only train and test classes", "use split train or test")
        keep = set(chosen.get(split, []))
        if not keep:
            raise DataError(f"{self.path}: split '{split}' has no classes", "check data.class_split / num_classes")
        self._class_names = sorted({c for cs in chosen.values() for c in cs})
        class_index = {c: i for i, c in enumerate(self._class_names)}
        sources = [split] if class_split == "files" else list(index["splits"])
        self.items: list[tuple[str, str, list[str], list[str]]] = []
        for s in sources:
            for name, cls, keys, caps in index["splits"][s]:
                if cls in keep:
                    self.items.append((s, name, keys, caps))
        self._labels: list[int] = []
        for s in sources:
            for _name, cls, _keys, _caps in index["splits"][s]:
                if cls in keep:
                    self._labels.append(class_index[cls])
        self._h5: Any = None
        self._pid: int | None = None

    # -- file handle, opened lazily once per process
    def _file(self) -> Any:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = open_h5(self.path)
            self._pid = os.getpid()
        return self._h5

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    # -- contract
    def __len__(self) -> int:
        return len(self.items)

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def embedding_dim(self) -> int | None:
        return self._embedding_dim

    @property
    def has_classes(self) -> bool:
        return self._has_classes

    def labels(self) -> list[int]:
        return list(self._labels)

    def _label_of(self, index: int) -> int:
        return self._labels[index]

    def captions_of(self, index: int) -> list[str]:
        return list(self.items[index][3])

    def all_captions(self) -> list[str]:
        return [c for item in self.items for c in item[3]]

    def _files_signature(self) -> Any:
        st = Path(self.path).stat()
        return {"keys": [self.item_key(i) for i in range(len(self))], "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def item_key(self, index: int, caption_index: int = 0) -> str:
        split, _name, keys, _caps = self.items[index]
        return f"{split}/{keys[caption_index]}"

    def _read(self, key: str, field: str) -> Any:
        where = f"{self.path}:{key}/{field}"
        try:
            return self._file()[key][field][()]
        except DataError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"cannot read {where}: {exc}", _FIX_CORRUPT) from None

    def image_bytes(self, index: int) -> bytes:
        """The stored (encoded) image file of item ``index``."""
        value = self._read(self.item_key(index), "img")
        if isinstance(value, np.void):
            return value.tobytes()
        arr = np.asarray(value)
        if arr.dtype == np.uint8 and arr.ndim == 1:
            return arr.tobytes()
        if isinstance(value, (bytes, np.bytes_)):
            return bytes(value)
        raise DataError(
            f"{self.path}:{self.item_key(index)}/img is not an encoded image (dtype {arr.dtype}, shape {arr.shape})",
            "store the image file's bytes as np.void (as the seed converters do)",
        )

    def item_name(self, index: int) -> str:
        return f"{self.path}:{self.item_key(index)}/img"

    def _source_image(self, index: int) -> Any:
        key = self.item_key(index)
        value = self._read(key, "img")
        arr = np.asarray(value)
        if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
            from PIL import Image  # raw pixels (some third-party converters store them)

            return to_rgb(Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr))
        return decode_pil(self.image_bytes(index), what=self.item_name(index), dataset=self.path, min_side=self.decode_side())

    def _embedding(self, index: int, caption_index: int) -> np.ndarray | None:
        if self._embedding_dim is None:
            return None
        key = self.item_key(index, caption_index)
        value = np.asarray(self._read(key, "embeddings"), dtype=np.float32).reshape(-1)
        if value.size != self._embedding_dim:
            raise DataError(
                f"{self.path}:{key}/embeddings has {value.size} values, expected {self._embedding_dim}",
                "all embeddings of a file must have the same size",
            )
        return value


# --------------------------------------------------------------------- writing
def write_hdf5(
    out: str | os.PathLike[str],
    splits: dict[str, Iterable[tuple[str, str, bytes, Sequence[str]]]],
    *,
    embed: Any = None,
    has_classes: bool = True,
) -> dict[str, int]:
    """Write ``{split: [(image name, class, encoded image bytes, captions), ...]}`` in the seed layout.

    One group ``<name>_<c>`` per caption, written with the converter's own
    h5py calls. ``embed(caption) -> float32 [E]`` gives the embeddings
    (default: :func:`ganreg.data.embeddings.caption_embedding`). Atomic: the
    file appears under ``out`` only when complete. Returns groups per split. ``has_classes=False``
    (images in no classes, each its own) marks the file with :data:`NO_CLASSES_ATTR`.
    """
    h5py = _h5py()
    if embed is None:
        from ganreg.data.embeddings import caption_embedding as embed
    str_dt = h5py.special_dtype(vlen=str)
    counts: dict[str, int] = {}
    with atomic_path(out, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        if not has_classes:
            f.attrs[NO_CLASSES_ATTR] = True
        for split, records in splits.items():
            grp = f.create_group(split)
            n = 0
            for name, cls, img_bytes, captions in records:
                txt = np.array([c.rstrip("\n") + "\n" for c in captions])
                img = np.void(img_bytes)
                for c in range(len(txt)):
                    e = np.asarray(embed(str(txt[c])), dtype=np.float32)
                    ex = grp.create_group(f"{name}_{c}")
                    ex.create_dataset("name", data=name)
                    ex.create_dataset("img", data=img)
                    ex.create_dataset("embeddings", data=e)
                    ex.create_dataset("class", data=cls)
                    ex.create_dataset("txt", data=txt[c].astype(object), dtype=str_dt)
                    n += 1
            counts[split] = n
    return counts
