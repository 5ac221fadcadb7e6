"""Small helpers shared by the data sources: seeds, caches, images."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shlex
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ganreg.atomic import write_json_atomic
from ganreg.errors import DataError
from ganreg.runfiles import read_json_or_none


def mix_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from ints/strings (same value in every process and Python run)."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "little") >> 1


def default_cache_dir() -> Path:
    """``$GANREG_CACHE`` if set, else ``$XDG_CACHE_HOME/ganreg`` (clusters point it at scratch storage when the
    home quota is small), else ``~/.cache/ganreg``."""
    env = os.environ.get("GANREG_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).expanduser().is_absolute():  # the spec ignores a relative one
        return Path(xdg).expanduser() / "ganreg"
    return Path("~/.cache/ganreg").expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def load_plain_pickle(path: Path, what: str, fix: str) -> Any:
    """A pickle of plain data (lists, dicts, strings, numbers), as the original projects store
    vocabularies and file lists; anything that would import code is refused. Python 2 pickles
    (StackGAN / AttnGAN) read too."""
    import pickle

    class _PlainData(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    try:
        with open(path, "rb") as fh:
            return _PlainData(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}", fix) from None
    except Exception as exc:  # a corrupt pickle can raise nearly anything (MemoryError, OverflowError, ...)
        raise DataError(f"cannot read {path} as {what}: {type(exc).__name__}: {exc}", fix) from None


SPLITS = ("train", "valid", "test")
"""The splits a recipe or a command may name; a source may lack any but train (:class:`SplitMissing`)."""


def check_split(split: str) -> None:
    """Refuse a split name that is none of :data:`SPLITS` (a typo), before any source looks for it."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'", "use train, valid or test")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: taskset, Slurm and containers narrow it), which
    ``os.cpu_count()`` ignores; every count of worker processes starts from this one."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class SplitMissing(DataError):
    """The source has no such split (no class list for it, no such HDF5 group): a caller that can do
    without the split (a run without a held-out set) catches this one, and only this one."""


class ImageDecodeError(DataError):
    """An image that does not decode; ``what`` names the file (and item), ``reason`` says why.

    Constructed as ``ImageDecodeError(message, fix)`` like any :class:`DataError` (a DataLoader worker
    re-raises it that way); :meth:`of` also fills ``what`` and ``reason``."""

    what = ""
    reason = ""

    @classmethod
    def of(cls, what: str, reason: str, fix: str) -> ImageDecodeError:
        exc = cls(f"cannot decode image {what}: {reason}", fix)
        exc.what, exc.reason = what, reason
        return exc


def check_hint(dataset: str | os.PathLike[str] | None, *options: str) -> str:
    """How to list every undecodable image of ``dataset`` at once (for the fix of a decode error);
    ``options``: the ``data info`` options that find its files (``--images-dir photos``), as the recipe set them."""
    target = shlex.quote(str(dataset)) if dataset is not None else "PATH"
    extra = "".join(f" {shlex.quote(o)}" for o in options)
    return f"`ganreg data info {target}{extra} --check` lists every image that does not decode"


DRAFT_MARGIN = 2
"""A JPEG decoded at reduced scale keeps at least this many times the pixels the pipeline resizes to
on each side, so the resize that follows still averages over several source pixels per output pixel."""


MOVED_DATA_FIX = "a trained run's data moved: ganreg run --resume RUN --set data.path=NEW records its new place"
"""The part of a missing data path's fix for a run whose data was moved (folder and HDF5 sources alike)."""


def shown_path(path: Path) -> str:
    """A path as an error names it: a relative one with what it resolves to from the current folder."""
    return str(path) if path.is_absolute() else f"{path} ({path.absolute()})"


EXIF_ORIENTATION = 0x0112
"""The EXIF tag that says how a camera's stored pixels are to be turned for display."""


def decode_pil(
    data: bytes,
    *,
    what: str,
    dataset: str | os.PathLike[str] | None = None,
    options: Sequence[str] = (),
    min_side: int | None = None,
    upright: bool = True,
) -> Any:
    """Encoded image bytes -> an RGB PIL image, fully decoded (a truncated file fails).

    At its own size, or, given ``min_side``, a JPEG at least :data:`DRAFT_MARGIN` times that on both
    sides, decoded at 1/2, 1/4 or 1/8 scale by libjpeg (PIL's ``draft``): a 12-megapixel photo that
    becomes a 64-px training image then decodes about 5x faster, and nothing smaller changes.
    Grey (16-bit too), palette, RGBA/LA (alpha composited on white) and CMYK images become RGB, turned
    upright as their EXIF orientation says (``upright=False``: as stored, for a crop by boxes given in the
    stored pixels, as CUB's are).
    ``what`` names the file and item in the error; ``dataset`` (the folder or HDF5 file) goes into its
    fix, as the path to check with ``ganreg data info --check``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if min_side is not None:
                im.draft(None, (DRAFT_MARGIN * min_side, DRAFT_MARGIN * min_side))  # JPEG only; others ignore it
            im.load()
            if upright and im.getexif().get(EXIF_ORIENTATION, 1) != 1:  # a phone photo stored sideways
                return to_rgb(ImageOps.exif_transpose(im))
            return to_rgb(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise decode_error(exc, data, what=what, dataset=dataset, options=options) from None


def decode_error(
    exc: Exception, data: bytes, *, what: str, dataset: str | os.PathLike[str] | None, options: Sequence[str] = ()
) -> ImageDecodeError:
    """The error for PIL's ``exc`` on the bytes of ``what``: one wording for a failed decode and a failed
    header read (``ganreg data info`` only opens images), with the command that lists every bad image."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        reason = "not an image format PIL reads" + (" (the file is empty)" if not data else "")
    else:
        reason = str(exc)
    return ImageDecodeError.of(
        what,
        reason,
        "replace or remove the corrupt image (re-run the conversion or re-download the data); "
        + check_hint(dataset, *options),
    )


# ------------------------------------------------------------------ text files
UTF8_BOM = b"\xef\xbb\xbf"


class NotUtf8(DataError):
    """A text file (captions, class list) that is not UTF-8; :meth:`of` fills ``path``, ``offset`` (of the
    first bad byte, counted from the file's start) and ``line``."""

    path: Path | None = None
    offset = 0
    line = 0
    byte = 0

    @classmethod
    def of(cls, what: str, path: Path, raw: bytes, offset: int) -> NotUtf8:
        line = raw.count(b"\n", 0, offset) + 1
        exc = cls(
            f"{what} {path} is not UTF-8 text: byte 0x{raw[offset]:02x} at byte offset {offset} (line {line})",
            reencode_fix([path]),
        )
        exc.path, exc.offset, exc.line, exc.byte = path, offset, line, raw[offset]
        return exc


def reencode_fix(paths: list[Path]) -> str:
    """The fix of text files that are not UTF-8 (such caption files are mostly Latin-1 or Windows-1252)."""
    them = "it" if len(paths) == 1 else "them"
    return (
        f"re-encode {them} as UTF-8, e.g. from Latin-1: iconv -f latin1 -t utf-8 FILE > FILE.utf8 && "
        "mv FILE.utf8 FILE"
    )


def read_text(path: Path, what: str) -> str:
    """A text file of the data (captions, class lists, CUB's tables) with ``utf-8-sig`` semantics: UTF-8,
    a leading byte-order mark dropped; or UTF-16 with its byte-order mark (Windows Notepad's "Unicode").
    Anything else is a :class:`NotUtf8` naming the file and the byte offset of the first bad byte (never
    decoded with replacement characters: they would become words)."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{what} {path} is a folder, not a file", "remove or rename the folder") from None
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc}", "check that the file exists and is readable") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and not raw.startswith(b"\xff\xfe\x00\x00"):  # UTF-32: refused
        try:
            return raw.decode("utf-16")  # the mark says the byte order, and is dropped
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: named below as not UTF-8
    start = len(UTF8_BOM) if raw.startswith(UTF8_BOM) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8.of(what, path, raw, start + exc.start) from None


def is_hidden(name: str) -> bool:
    """A name the folder scans skip: dot-files (macOS's ``._<name>`` AppleDouble files, ``.DS_Store``) and
    macOS's ``__MACOSX`` folder (both appear when an archive made on a Mac is unpacked)."""
    return name.startswith(".") or name == "__MACOSX"


def to_rgb(im: Any) -> Any:
    """Any PIL image -> RGB (transparent pixels composited on white). Grey images of more than 8 bits
    (16-bit PNG, 32-bit integer or float TIFF) are scaled to 8 bits first: PIL's own conversion clips
    them, so a 16-bit image came out all white."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode.startswith("I") or im.mode == "F":
        im = Image.fromarray(_grey_to_uint8(np.asarray(im), im.mode), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")


def _grey_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Wide grey values -> uint8. A 16-bit file (``I;16*``) spans 0-65535; PIL's 32-bit ``I`` holds a
    16-bit PNG's values too, or 8-bit ones (numpy's int arrays saved as they are), taken as such when
    none passes 255; floats are [0, 1] when they stay within it, else [0, 255]."""
    values = values.astype(np.float64)
    top_value = float(np.nanmax(values, initial=0.0))
    if mode == "F":
        top = 1.0 if top_value <= 1.0 else 255.0
    elif mode == "I":
        top = 255.0 if top_value <= 255 else 65535.0
    else:
        top = 65535.0
    return np.clip(np.nan_to_num(values) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def pil_to_array(im: Any, image_size: int | None) -> np.ndarray:
    """A PIL image -> uint8 RGB ``[S, S, 3]``, squashed (bicubic) to ``image_size`` square when given."""
    from PIL import Image

    im = to_rgb(im)
    if image_size is not None and im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def box_crop(im: Any, box: tuple[float, float, float, float]) -> Any:
    """The StackGAN / AttnGAN / DF-GAN bird crop: a square of side 1.5 x max(w, h) centred on the
    bounding box ``(x, y, w, h)``, clipped to the image (so near a border it is not square).
    The integer arithmetic is the originals' (``r = int(max(w, h) * 0.75)``, centre truncated)."""
    x, y, w, h = box
    r = int(max(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    width, height = im.size
    x1, y1 = max(0, cx - r), max(0, cy - r)
    x2, y2 = min(width, cx + r), min(height, cy + r)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bounding box {box} lies outside the {width}x{height} image")
    return im.crop((x1, y1, x2, y2))


def load_size(image_size: int, random_crop: float) -> int:
    """The shorter side images are resized to before a random ``image_size`` crop: DF-GAN's
    ``int(imsize * 76 / 64)`` for ``random_crop = 76/64``."""
    return max(int(image_size), int(image_size * random_crop + 1e-6))


def resize_short_side(im: Any, size: int) -> Any:
    """Resize (bilinear, as torchvision's ``Resize(int)``) so the shorter side is ``size``; the
    longer side keeps the aspect ratio, truncated as torchvision does."""
    from PIL import Image

    w, h = im.size
    if w <= h:
        new = (size, max(size, int(size * h / w)))
    else:
        new = (max(size, int(size * w / h)), size)
    return im if new == im.size else im.resize(new, Image.BILINEAR)


def encode_jpeg(arr: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def uint8_chw(arr: np.ndarray) -> Any:
    """uint8 ``[H, W, 3]`` -> uint8 tensor ``[3, H, W]`` (a copy: the array may be memory-mapped)."""
    import torch

    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def to_unit_range(t: Any) -> Any:
    """uint8 images (any shape, any device) -> float32 in [-1, 1]: the seeds' ``(x - 127.5) / 127.5``.
    The one place this arithmetic lives, so CPU-side and device-side conversion agree bit for bit."""
    import torch

    return t.to(torch.float32).sub_(127.5).div_(127.5)


def uint8_to_tensor(arr: np.ndarray) -> Any:
    """uint8 ``[H, W, 3]`` -> float32 ``[3, H, W]`` in [-1, 1]."""
    return to_unit_range(uint8_chw(arr))


def file_signature(path: Path) -> str:
    """Changes whenever the file is replaced or modified (path, size, mtime)."""
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def cached_json(cache_dir: str | os.PathLike[str] | None, kind: str, key: str, build: Any) -> Any:
    """``build()`` once per ``key``; the JSON result is kept under ``<cache>/<kind>/``.

    The cache is an optimisation only: an unreadable or unwritable cache
    falls back to building.
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()
    path = resolve_cache_dir(cache_dir) / kind / f"{digest}.json"
    hit = read_json_or_none(path)
    if isinstance(hit, dict) and hit.get("key") == key:
        return hit["value"]
    value = build()
    with contextlib.suppress(OSError):
        write_json_atomic(path, {"key": key, "value": value})
    return value


SHARED_CLASSES_SHOWN = 5
"""Classes named in the error about a class in both the training and the test split."""


def refuse_shared_classes(
    train: Iterable[str], test: Iterable[str], train_where: str, test_where: str, fix: str, what: str = "class(es)"
) -> None:
    """Raise when a class (``what``: or an image, in data without classes) is in both the training and the
    test split: the held-out metrics (and ``eval.keep_best``) would score classes the model was trained on,
    and say nothing of unseen text."""
    both = sorted(set(train) & set(test))
    if not both:
        return
    shown = ", ".join(both[:SHARED_CLASSES_SHOWN])
    if len(both) > SHARED_CLASSES_SHOWN:
        shown += f" and {len(both) - SHARED_CLASSES_SHOWN} more"
    raise DataError(f"{len(both)} {what} are both in {train_where} and in {test_where}: {shown}", fix)


def choose_classes(
    pools: dict[str, list[str]],
    *,
    seed: int,
    num_classes: int | None,
    test_classes: int | None,
    class_split: str,
    what: str,
) -> dict[str, list[str]]:
    """The classes of each split after the optional random subsetting.

    ``pools``: the classes each split has in the source. ``files``: train keeps
    ``num_classes`` of its own, test ``test_classes`` of its own, valid all.
    ``random``: every class of every split is pooled and ``num_classes`` train
    plus ``test_classes`` test classes are drawn, disjoint.
    """
    import random

    def subset(classes: list[str], n: int | None, tag: str, split: str) -> list[str]:
        classes = sorted(set(classes))
        if n is None:
            return classes
        if n > len(classes):
            raise DataError(
                f"{what}: asked for {n} {split} classes but the {split} split has {len(classes)}",
                f"set data.{tag} to at most {len(classes)}",
            )
        return sorted(random.Random(mix_seed("classes", seed, split)).sample(classes, n))

    if class_split == "random":
        pool = sorted({c for cs in pools.values() for c in cs})
        need = (num_classes or 0) + (test_classes or 0)
        if need > len(pool):
            raise DataError(
                f"{what}: asked for {num_classes} train + {test_classes} test classes but there are {len(pool)}",
                "lower data.num_classes / data.test_classes",
            )
        rng = random.Random(mix_seed("classes-random", seed))
        drawn = rng.sample(pool, need)
        return {"train": sorted(drawn[:num_classes]), "test": sorted(drawn[num_classes:]), "valid": []}
    out = {}
    for split, classes in pools.items():
        if split == "train":
            out[split] = subset(classes, num_classes, "num_classes", split)
        elif split == "test":
            out[split] = subset(classes, test_classes, "test_classes", split)
        else:
            out[split] = sorted(set(classes))
    return out
