"""Built-in captioned shapes: a text-to-image dataset that needs no download.

Each image shows ONE coloured shape on a muted background:

* 6 shapes (circle, square, triangle, star, cross, diamond), 8 colours (red,
  green, blue, yellow, purple, orange, white, black), 2 sizes (small, large),
  5 positions (top left, top right, bottom left, bottom right, center);
* backgrounds: 5 low-saturation mid-grey tints (never within reach of a shape
  colour), plain, as a gradient or speckled with noise;
* 10 captions per image from 14 sentence templates with synonyms
  ("crimson"/"red", "big"/"large", "box"/"square", "at the upper left"/"in the
  top left corner"); every caption names all four attributes.

The class of an image is its (colour, shape) pair: 48 classes, named
``"<colour>_<shape>"``. Train and test are class-disjoint like Oxford-102's
82/20: 10 test classes are drawn from the seed such that no shape and no colour
has more than 2 of its combinations held out, so every shape and every colour
still appears in train (test = unseen combinations of seen words).

Everything is a pure function of ``(seed, index)``: image ``i`` has the same
pixels whatever the number of processes drawing it. Shapes are drawn at 2-4x
the resolution and box-filtered down (anti-aliasing). Images are cached as a
uint8 ``.npy`` (memory-mapped when read) under
``<cache_dir>/shapes/v<VERSION>-seed<seed>-n<num>-px<size>/``; captions and
attributes are recomputed (cheap).
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ganreg.atomic import atomic_write_bytes
from ganreg.data._util import mix_seed, resolve_cache_dir, usable_cpus
from ganreg.data.base import CaptionedImageDataset
from ganreg.errors import DataError

VERSION = 1
"""Bump when the drawing or the captions change: old caches are then ignored."""

SHAPES: list[str] = ["circle", "square", "triangle", "star", "cross", "diamond"]
COLOURS: list[str] = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SIZES: list[str] = ["small", "large"]
POSITIONS: list[str] = ["top left", "top right", "bottom left", "bottom right", "center"]

ATTRIBUTES: dict[str, list[str]] = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}

RGB: dict[str, tuple[int, int, int]] = {
    "red": (210, 20, 30),
    "green": (20, 160, 50),
    "blue": (30, 70, 225),
    "yellow": (250, 225, 30),
    "purple": (130, 40, 180),
    "orange": (255, 135, 0),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
"""The exact fill of each colour (the interior pixels of a shape have it)."""

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128),
    "beige": (150, 140, 122),
    "bluish grey": (112, 122, 138),
    "greenish grey": (120, 136, 118),
    "brownish grey": (138, 122, 114),
}
BACKGROUND_STYLES = ["plain", "gradient", "speckled"]

COLOUR_WORDS: dict[str, list[str]] = {
    "red": ["red", "crimson", "scarlet"],
    "green": ["green", "emerald", "grass green"],
    "blue": ["blue", "azure", "royal blue"],
    "yellow": ["yellow", "golden", "lemon yellow"],
    "purple": ["purple", "violet", "plum"],
    "orange": ["orange", "tangerine", "bright orange"],
    "white": ["white", "snow white", "pure white"],
    "black": ["black", "jet black", "pitch black"],
}
SHAPE_WORDS: dict[str, list[str]] = {
    "circle": ["circle", "disc", "round disk"],
    "square": ["square", "box", "square block"],
    "triangle": ["triangle", "upward triangle", "three sided shape"],
    "star": ["star", "five pointed star", "star shape"],
    "cross": ["cross", "plus sign", "plus shape"],
    "diamond": ["diamond", "rhombus", "lozenge"],
}
SIZE_WORDS: dict[str, list[str]] = {
    "small": ["small", "little", "tiny"],
    "large": ["large", "big", "huge"],
}
POSITION_WORDS: dict[str, list[str]] = {
    "top left": ["in the top left corner", "at the upper left", "in the top left", "near the top left corner"],
    "top right": ["in the top right corner", "at the upper right", "in the top right", "near the top right corner"],
    "bottom left": [
        "in the bottom left corner",
        "at the lower left",
        "in the bottom left",
        "near the bottom left corner",
    ],
    "bottom right": [
        "in the bottom right corner",
        "at the lower right",
        "in the bottom right",
        "near the bottom right corner",
    ],
    "center": ["in the center", "in the middle", "at the centre", "right in the middle"],
}
"""Synonyms used in the captions (each caption names every attribute with one of them)."""

TEMPLATES: list[str] = [
    "a {size} {colour} {shape} {pos}",
    "this picture shows a {size} {colour} {shape} {pos} on a {bg} background",
    "{pos}, there is a {size} {colour} {shape}",
    "the image contains one {colour} {shape} that is {size}, located {pos}",
    "a {colour} {shape} of {size} size sits {pos}",
    "there is a {size} {shape} coloured {colour} {pos}",
    "{size} {colour} {shape} {pos} against a {bg} backdrop",
    "an image of a {colour} {shape}, {size}, {pos}",
    "the {shape} is {colour} and {size} and it is {pos}",
    "we see a {size} {colour} {shape} {pos}",
    "a picture with a {size} {shape} in {colour} {pos}",
    "a {colour} {shape}, {size} in size, placed {pos} on a {bg} background",
    "this is a {size} {shape}; it is {colour} and sits {pos}",
    "one {size} {colour} {shape} drawn {pos}",
]
CAPTIONS_PER_IMAGE = 10
NUM_CLASSES = len(SHAPES) * len(COLOURS)
NUM_TEST_CLASSES = 10

_CENTRES = {
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
    "center": (0.5, 0.5),
}
_RADIUS = {"small": 0.13, "large": 0.23}
"""Radius of the shape's bounding circle, as a fraction of the image side."""

_AN = re.compile(r"\ba (?=[aeiou])")


def class_id(shape: str | int, colour: str | int) -> int:
    s = SHAPES.index(shape) if isinstance(shape, str) else int(shape)
    c = COLOURS.index(colour) if isinstance(colour, str) else int(colour)
    return c * len(SHAPES) + s


def class_names() -> list[str]:
    """All 48 class names ``"<colour>_<shape>"``, indexed by :func:`class_id`."""
    return [f"{c}_{s}" for c in COLOURS for s in SHAPES]


def class_split(seed: int) -> tuple[list[int], list[int]]:
    """(train class ids, test class ids): 38/10, disjoint, every shape and colour in train."""
    rng = random.Random(mix_seed("shapes-split", seed))
    while True:
        test = sorted(rng.sample(range(NUM_CLASSES), NUM_TEST_CLASSES))
        per_shape = [0] * len(SHAPES)
        per_colour = [0] * len(COLOURS)
        for k in test:
            per_colour[k // len(SHAPES)] += 1
            per_shape[k % len(SHAPES)] += 1
        if max(per_shape) <= 2 and max(per_colour) <= 2:
            train = [k for k in range(NUM_CLASSES) if k not in test]
            return train, test


@dataclass(frozen=True)
class ShapeSpec:
    """Everything about one image: its attributes, how it is drawn, its captions."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    background_style: str
    cx: float
    cy: float
    radius: float
    angle: float
    captions: tuple[str, ...]

    @property
    def label(self) -> int:
        return class_id(self.shape, self.colour)

    @property
    def attribute_ids(self) -> tuple[int, int, int, int]:
        return (
            SHAPES.index(self.shape),
            COLOURS.index(self.colour),
            SIZES.index(self.size),
            POSITIONS.index(self.position),
        )


def make_captions(rng: random.Random, shape: str, colour: str, size: str, position: str, background: str) -> list[str]:
    """10 distinct captions naming all four attributes (random templates and synonyms)."""
    out: list[str] = []
    templates = rng.sample(TEMPLATES, len(TEMPLATES))
    i = 0
    while len(out) < CAPTIONS_PER_IMAGE:
        t = templates[i % len(templates)]
        i += 1
        cap = t.format(
            size=rng.choice(SIZE_WORDS[size]),
            colour=rng.choice(COLOUR_WORDS[colour]),
            shape=rng.choice(SHAPE_WORDS[shape]),
            pos=rng.choice(POSITION_WORDS[position]),
            bg=background,
        )
        cap = _AN.sub("an ", cap)
        if cap not in out or i > 4 * len(templates):
            out.append(cap)
    return out


def image_spec(seed: int, index: int) -> ShapeSpec:
    """The attributes, geometry and captions of image ``index`` (no drawing)."""
    block, pos_in_block = divmod(index, NUM_CLASSES)
    order = list(range(NUM_CLASSES))
    random.Random(mix_seed("shapes-classes", seed, block)).shuffle(order)
    k = order[pos_in_block]
    colour, shape = COLOURS[k // len(SHAPES)], SHAPES[k % len(SHAPES)]
    rng = random.Random(mix_seed("shapes-image", seed, index))
    size = rng.choice(SIZES)
    position = rng.choice(POSITIONS)
    background = rng.choice(list(BACKGROUNDS))
    style = rng.choice(BACKGROUND_STYLES)
    cx, cy = _CENTRES[position]
    cx += rng.uniform(-0.02, 0.02)
    cy += rng.uniform(-0.02, 0.02)
    radius = _RADIUS[size] * rng.uniform(0.93, 1.07)
    angle = rng.uniform(-8.0, 8.0)
    captions = make_captions(rng, shape, colour, size, position, background)
    return ShapeSpec(shape, colour, size, position, background, style, cx, cy, radius, angle, tuple(captions))


@lru_cache(maxsize=4)
def all_specs(seed: int, num_images: int) -> tuple[ShapeSpec, ...]:
    """:func:`image_spec` of every image (memoised: train and test share it)."""
    return tuple(image_spec(seed, i) for i in range(num_images))


def _polygon(shape: str, cx: float, cy: float, r: float, angle_deg: float) -> list[tuple[float, float]] | None:
    a = math.radians(angle_deg)
    if shape == "square":
        h = 0.76 * r
        pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
    elif shape == "diamond":
        pts = [(0.0, -r), (0.7 * r, 0.0), (0.0, r), (-0.7 * r, 0.0)]
    elif shape == "triangle":
        pts = [(r * math.cos(t), r * math.sin(t) + 0.12 * r) for t in (math.radians(d) for d in (-90, 30, 150))]
    elif shape == "star":
        pts = []
        for j in range(10):
            rad = r if j % 2 == 0 else 0.45 * r
            t = math.radians(-90 + 36 * j)
            pts.append((rad * math.cos(t), rad * math.sin(t) + 0.05 * r))
    elif shape == "cross":
        w = 0.32 * r
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w)]
        pts += [(w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    else:
        return None
    ca, sa = math.cos(a), math.sin(a)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]


def _supersample(size: int) -> int:
    return 4 if size <= 64 else (3 if size <= 128 else 2)


def _bbox(spec: ShapeSpec, size: int) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` that holds the whole shape (with a margin)."""
    r = 1.15 * spec.radius * size  # cross arms and the shifted triangle reach ~1.07 r
    x0 = max(0, int(math.floor(spec.cx * size - r)) - 1)
    y0 = max(0, int(math.floor(spec.cy * size - r)) - 1)
    x1 = min(size, int(math.ceil(spec.cx * size + r)) + 1)
    y1 = min(size, int(math.ceil(spec.cy * size + r)) + 1)
    return x0, y0, x1, y1


def shape_mask(spec: ShapeSpec, size: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] (float32) of the shape: ``[size, size]``, or only ``box``.

    Drawn at ``ss`` times the resolution and box-filtered down; the box is on
    the pixel grid, so the crop is exactly the full mask's crop.
    """
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = box if box is not None else (0, 0, size, size)
    ss = _supersample(size)
    im = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
    draw = ImageDraw.Draw(im)
    big = size * ss
    cx, cy, r = spec.cx * big - x0 * ss, spec.cy * big - y0 * ss, spec.radius * big
    poly = _polygon(spec.shape, cx, cy, r, spec.angle)
    if poly is None:
        rr = 0.92 * r
        draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
    else:
        draw.polygon(poly, fill=255)
    small = im.resize((x1 - x0, y1 - y0), Image.BOX)
    return np.asarray(small, dtype=np.float32) * (1.0 / 255.0)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
    return xs, ys


def background_array(spec: ShapeSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    """float32 ``[size, size, 3]`` background."""
    tint = np.asarray(BACKGROUNDS[spec.background], dtype=np.float32)
    if spec.background_style == "plain":
        return np.broadcast_to(tint, (size, size, 3)).copy()
    if spec.background_style == "gradient":
        theta = rng.uniform(0, 2 * math.pi)
        xs, ys = _grid(size)
        ramp = (xs * math.cos(theta) + ys * math.sin(theta)) * 2.0  # in ~[-1.4, 1.4]
        return tint[None, None, :] + (18.0 * ramp)[..., None]
    noise = rng.normal(0.0, 7.0, size=(size, size, 1)).astype(np.float32)
    return tint[None, None, :] + noise


def render(spec: ShapeSpec, size: int, seed: int, index: int) -> np.ndarray:
    """uint8 ``[size, size, 3]`` image of ``spec``."""
    rng = np.random.default_rng(mix_seed("shapes-pixels", seed, index))
    out = background_array(spec, size, rng)
    x0, y0, x1, y1 = _bbox(spec, size)
    a = shape_mask(spec, size, (x0, y0, x1, y1))[..., None]
    col = np.asarray(RGB[spec.colour], dtype=np.float32)
    region = out[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = region * (1.0 - a) + col * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _render_range(args: tuple[int, int, int, int]) -> np.ndarray:
    seed, size, start, stop = args
    out = np.empty((stop - start, size, size, 3), dtype=np.uint8)
    for j, i in enumerate(range(start, stop)):
        out[j] = render(image_spec(seed, i), size, seed, i)
    return out


def _ignore_ctrl_c() -> None:
    """In a drawing worker: Ctrl-C reaches the whole process group, and each worker would print its own
    KeyboardInterrupt traceback; the parent alone handles it (leaving the pool terminates the workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def generate_images(seed: int, num_images: int, size: int, processes: int | None = None) -> np.ndarray:
    """uint8 ``[N, size, size, 3]``; identical for any number of processes."""
    import multiprocessing as mp

    if processes is None:
        processes = min(usable_cpus(), 8) if num_images >= 2000 else 1
    if processes <= 1 or mp.current_process().daemon:  # daemonic workers cannot fork a pool
        return _render_range((seed, size, 0, num_images))

    chunk = max(256, num_images // (processes * 4))
    jobs = [(seed, size, s, min(s + chunk, num_images)) for s in range(0, num_images, chunk)]
    # fork on Linux only: on macOS it is unsafe (system libraries run threads; CPython's own default there is
    # spawn), and spawn works anywhere, importing torch once per worker (about 2 s more for 4000 images)
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context("spawn")
    with ctx.Pool(processes, initializer=_ignore_ctrl_c) as pool:  # Ctrl-C: the parent stops them, quietly
        parts = pool.map(_render_range, jobs)
    return np.concatenate(parts, axis=0)


def cache_path(cache_dir: str | os.PathLike[str] | None, seed: int, num_images: int, size: int) -> Path:
    return resolve_cache_dir(cache_dir) / "shapes" / f"v{VERSION}-seed{seed}-n{num_images}-px{size}" / "images.npy"


def load_or_generate(
    seed: int, num_images: int, size: int, cache_dir: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """The images, memory-mapped from the cache; generated and cached on first use."""
    path = cache_path(cache_dir, seed, num_images, size)
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (num_images, size, size, 3) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass
        path.unlink(missing_ok=True)  # corrupt or stale: regenerate
    images = generate_images(seed, num_images, size)
    try:
        atomic_write_bytes(path, lambda fh: np.save(fh, images))
    except OSError:
        # A read-only cache must not stop training: keep the images in memory.
        return images
    return np.load(path, mmap_mode="r")


class ShapesDataset(CaptionedImageDataset):
    """The built-in captioned shapes (see the module doc).

    ``split``: "train" (38 classes) or "test" (10 unseen colour-shape pairs);
    "all" gives every image. ``num_images`` counts images over all 48 classes
    (balanced), so train has about 38/48 of them.
    """

    source = "shapes"

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 64,
        num_images: int = 10000,
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        classes: Sequence[int] | None = None,
        flip: bool = False,
    ) -> None:
        if flip:
            raise DataError(
                "horizontal flips would contradict the shapes captions (left/right positions)",
                "set data.flip=false for the shapes source",
            )
        super().__init__(split=split, image_size=image_size, seed=seed, flip=False)
        if not 32 <= image_size <= 1024:
            raise DataError(f"shapes image_size {image_size} is out of range", "use 32..256")
        self.num_images = int(num_images)
        self.cache_dir = cache_dir
        train, test = class_split(seed)
        if classes is None:
            if split == "train":
                classes = train
            elif split == "test":
                classes = test
            elif split == "all":
                classes = list(range(NUM_CLASSES))
            else:
                raise DataError(
                    f"the shapes source has no '{split}' split",
                    "use split 'train' or 'test' (test classes are unseen colour-shape pairs)",
                )
        keep = set(int(c) for c in classes)
        self.specs_all = all_specs(seed, self.num_images)
        self.indices = [i for i, s in enumerate(self.specs_all) if s.label in keep]
        self._labels = [self.specs_all[i].label for i in self.indices]
        self._images: np.ndarray | None = None
        _ = self.images  # generate (or map) now, in this process, not in every DataLoader worker

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def class_names(self) -> list[str]:
        return class_names()

    @property
    def attributes(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in ATTRIBUTES.items()}

    def labels(self) -> list[int]:
        return list(self._labels)

    def _label_of(self, index: int) -> int:
        return self._labels[index]

    def spec(self, index: int) -> ShapeSpec:
        return self.specs_all[self.indices[index]]

    def captions_of(self, index: int) -> list[str]:
        return list(self.spec(index).captions)

    def _attributes(self, index: int) -> Sequence[int]:
        return self.spec(index).attribute_ids

    @property
    def images(self) -> np.ndarray:
        """uint8 ``[num_images, S, S, 3]`` of ALL classes (index with ``self.indices``)."""
        if self._images is None:
            self._images = load_or_generate(self.seed, self.num_images, self.image_size, self.cache_dir)
        return self._images

    def _image_array(self, index: int) -> np.ndarray:
        return np.asarray(self.images[self.indices[index]])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if isinstance(state.get("_images"), np.memmap):
            state["_images"] = None  # re-opened (memory-mapped) in the worker
        return state
