"""Images that PIL does not turn into the right RGB by itself: grey wider than 8 bits, and photos whose
EXIF orientation says they are stored sideways."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ganreg.data._util import EXIF_ORIENTATION, decode_pil, pil_to_array


def png16(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def tiff(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, "TIFF")
    return buf.getvalue()


RAMP = np.tile(np.linspace(0, 1, 16), (8, 1))
"""Black to white, left to right."""


@pytest.mark.parametrize(
    ("encoded", "mode"),
    [
        (png16(RAMP * 65535), "I;16"),  # a 16-bit grey PNG: PIL's convert("RGB") clipped it all to white
        (tiff((RAMP * 65535).astype(np.int32)), "I"),
        (tiff(RAMP.astype(np.float32)), "F"),  # floats in [0, 1]
        (tiff((RAMP * 255).astype(np.float32)), "F"),  # floats in [0, 255]
        (tiff((RAMP * 255).round().astype(np.int32)), "I"),  # numpy ints of 8-bit values, saved as they are
    ],
    ids=["png16", "tiff-int32", "tiff-float01", "tiff-float255", "tiff-int32-8bit-values"],
)
def test_wide_grey_images_keep_their_tones(encoded: bytes, mode: str) -> None:
    with Image.open(io.BytesIO(encoded)) as im:
        assert im.mode == mode
    rgb = np.asarray(decode_pil(encoded, what="ramp"))
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 16, 3)
    np.testing.assert_allclose(rgb[..., 0], np.round(RAMP * 255), atol=1)
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_exif_orientation_is_applied() -> None:
    """A phone photo stored landscape with "rotate 90 CW" (orientation 6) trains upright, as viewers show it."""
    upright = np.zeros((24, 12, 3), np.uint8)  # portrait: a red top half, a blue bottom half
    upright[:12, :, 0] = 255
    upright[12:, :, 2] = 255
    stored = np.rot90(upright, k=1)  # what the camera wrote: turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(buf, "PNG", exif=exif)
    image = decode_pil(buf.getvalue(), what="photo")
    assert image.size == (12, 24)
    np.testing.assert_array_equal(pil_to_array(image, None), upright)
    # CUB's boxes are in the stored pixels: a box crop decodes as stored
    np.testing.assert_array_equal(pil_to_array(decode_pil(buf.getvalue(), what="photo", upright=False), None), stored)
