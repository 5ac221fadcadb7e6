"""Fixtures for the data tests: a private cache, seed-layout HDF5 files, folder datasets."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

# Solid colours of the fixture classes: every image of a class is (close to) its colour,
# so a test can tell the class of any decoded image from its mean colour.
CLASS_COLOURS = {
    "class_00001": (220, 40, 40),
    "class_00002": (40, 200, 60),
    "class_00003": (50, 70, 220),
    "class_00004": (230, 220, 40),
    "class_00005": (200, 60, 220),
}


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ganreg-cache")


@pytest.fixture(autouse=True)
def ganreg_cache(_session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every data test caches into a private folder (shared within the session)."""
    monkeypatch.setenv("GANREG_CACHE", str(_session_cache))
    return _session_cache


def encode(arr: np.ndarray, fmt: str = "JPEG", mode: str | None = None) -> bytes:
    from PIL import Image

    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def class_image(cls: str, i: int, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    """A ``size`` (w, h) image of the class colour with a little per-image texture."""
    rng = np.random.default_rng(i)
    base = np.array(CLASS_COLOURS[cls], dtype=np.float32)
    arr = base + rng.normal(0, 4, size=(size[1], size[0], 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def nearest_class(t) -> str:  # t: [3, H, W] in [-1, 1]
    mean = ((t.mean(dim=(1, 2)) + 1) * 127.5).numpy()
    return min(CLASS_COLOURS, key=lambda c: float(np.sum((mean - np.array(CLASS_COLOURS[c])) ** 2)))


def write_seed_hdf5(
    path: Path,
    layout: dict[str, dict[str, int]],
    *,
    grey: set[str] = frozenset(),
    rgba_png: set[str] = frozenset(),
    cmyk: set[str] = frozenset(),
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write an HDF5 file exactly as aelnouby's convert_flowers_to_hd5_script.py does.

    ``layout``: ``{split: {class: number of images}}``. Each image gets 10
    caption lines (with their newline) and a (10, 1024) float32 embedding
    array; 5 captions are drawn WITH replacement (``np.random.choice(range(10), 5)``)
    and written as groups ``<name>_<c>`` with the converter's create_dataset
    calls. ``grey``/``rgba_png``/``cmyk``: image names stored in those modes.
    Returns ``{image name: its 10 caption lines}``.
    """
    import h5py

    np.random.seed(seed)
    captions_of: dict[str, list[str]] = {}
    f = h5py.File(path, "w")
    counter = 0
    for split_name, classes in layout.items():
        split = f.create_group(split_name)
        for _class, n in classes.items():
            for _ in range(n):
                counter += 1
                example_name = f"image_{counter:05d}"
                arr = class_image(_class, counter)
                if example_name in grey:
                    img_bytes = encode(arr, "JPEG", "L")
                elif example_name in rgba_png:
                    img_bytes = encode(arr, "PNG", "RGBA")
                elif example_name in cmyk:
                    img_bytes = encode(arr, "JPEG", "CMYK")
                else:
                    img_bytes = encode(arr)
                lines = [f"{_class} caption {j} of {example_name} with word w{j}\n" for j in range(10)]
                captions_of[example_name] = lines
                # ---- from here on: the converter's own code
                embeddings = np.random.standard_normal((10, 1024)).astype(np.float32)
                txt = np.array(lines)
                img = np.void(img_bytes)
                txt_choice = np.random.choice(range(10), 5)
                embeddings = embeddings[txt_choice]
                txt = txt[txt_choice]
                dt = h5py.special_dtype(vlen=str)
                for c, e in enumerate(embeddings):
                    ex = split.create_group(example_name + "_" + str(c))
                    ex.create_dataset("name", data=example_name)
                    ex.create_dataset("img", data=img)
                    ex.create_dataset("embeddings", data=e)
                    ex.create_dataset("class", data=_class)
                    ex.create_dataset("txt", data=txt[c].astype(object), dtype=dt)
    f.close()
    return captions_of


@pytest.fixture
def seed_hdf5(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    def make(name: str = "flowers.hdf5", layout: dict | None = None, **kw) -> Path:
        layout = layout or {
            "train": {"class_00001": 4, "class_00002": 4, "class_00003": 3},
            "valid": {"class_00004": 2},
            "test": {"class_00004": 3, "class_00005": 2},
        }
        path = tmp_path / name
        write_seed_hdf5(path, layout, **kw)
        return path

    yield make


def write_folder(
    root: Path,
    classes: dict[str, int],
    *,
    flat_images: bool = True,
    images_dir: str = "jpg",
    split_files: dict[str, list[str]] | None = None,
    captions: int = 10,
) -> Path:
    """An Oxford-102-like folder (flat ``jpg/``) or a CUB-like one (``images/<class>/``)."""
    n = 0
    for cls, count in classes.items():
        (root / "text_c10" / cls).mkdir(parents=True, exist_ok=True)
        idir = root / images_dir if flat_images else root / images_dir / cls
        idir.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            n += 1
            stem = f"image_{n:05d}"
            (idir / f"{stem}.jpg").write_bytes(encode(class_image(cls, n, (36 + n % 5, 30))))
            lines = [f"a {cls} flower number {n} caption {j}" for j in range(captions)]
            (root / "text_c10" / cls / f"{stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for fname, names in (split_files or {}).items():
        (root / fname).write_text("".join(c + "\n" for c in names), encoding="utf-8")
    return root


@pytest.fixture
def oxford_folder(tmp_path: Path) -> Path:
    return write_folder(
        tmp_path / "flowers",
        {"class_00001": 3, "class_00002": 3, "class_00003": 2, "class_00004": 2},
        split_files={
            "trainvalclasses.txt": ["class_00001", "class_00002", "class_00003"],
            "testclasses.txt": ["class_00004"],
        },
    )


@pytest.fixture
def helpers():
    """The helper functions above, for the test modules (importing conftest is fragile)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        CLASS_COLOURS=CLASS_COLOURS,
        encode=encode,
        class_image=class_image,
        nearest_class=nearest_class,
        write_seed_hdf5=write_seed_hdf5,
        write_folder=write_folder,
    )
