"""CUB-200-2011's bounding boxes, for ``data.crop = "bbox"`` (DF-GAN's and StackGAN's 1.5x box crop)."""

from __future__ import annotations

from pathlib import Path

from ganreg.data._util import read_text
from ganreg.errors import DataError

BOX_DIR_CANDIDATES = ("CUB_200_2011", ".")
"""Where ``crop="bbox"`` looks for CUB's ``images.txt`` and ``bounding_boxes.txt``, under the root."""


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
