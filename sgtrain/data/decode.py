"""Decode stored images (PNG, JPEG; WebP and BMP through Pillow) to uint8 HWC arrays, with the fastest decoder here.

PNG goes through pyspng (libspng) and JPEG through simplejpeg (libjpeg-turbo) when they are installed, as NVlabs'
loader uses pyspng when it is installed; Pillow decodes everything else and is the fallback. The fast decoders give
the same pixels as Pillow (PNG is lossless; simplejpeg decodes with libjpeg-turbo's accurate integer DCT and fancy
upsampling, Pillow's defaults: tests/test_data_decode.py compares them where installed). Any image a fast decoder
refuses or gives in another layout (a palette, a 16-bit or a CMYK image, a PNG with a tRNS chunk) is decoded again by
Pillow, so the choice never changes what a sample decodes to.

``SGTRAIN_DECODER=pillow`` in the environment forces Pillow (for a comparison, or a decoder build that misbehaves).
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

__all__ = ["DECODERS", "available_decoders", "decode_image"]

DECODERS = ("auto", "pillow", "fast")
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")  # PNG first: skips PIL's probing of every other plugin

try:
    import pyspng as _pyspng
except ImportError:  # pragma: no cover - depends on the install
    _pyspng = None
try:
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - depends on the install
    _simplejpeg = None


def available_decoders() -> dict[str, bool]:
    """``{'pyspng': bool, 'simplejpeg': bool, 'pillow': True}``: which decoders this process can use."""
    return {"pyspng": _pyspng is not None, "simplejpeg": _simplejpeg is not None, "pillow": True}


def _pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data), formats=_FORMATS) as img:
        img.load()
        if img.mode == "P":  # palette indices are not pixels: expand (RGBA when the palette has transparency)
            return np.asarray(img.convert("RGBA" if "transparency" in img.info else "RGB"))
        return np.asarray(img)


def _has_trns(data: bytes) -> bool:
    """Whether a PNG has a tRNS chunk before its first IDAT (walks the chunk headers)."""
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"tRNS":
            return True
        if kind == b"IDAT":
            return False
        pos += 12 + length
    return False


def _png_fast(data: bytes) -> np.ndarray | None:
    # pyspng expands palettes and tRNS to RGB(A) where Pillow keeps a palette / RGB: leave those (and 16-bit) to Pillow
    if _pyspng is None or len(data) < 26 or data[25] not in (0, 2, 6) or data[24] != 8 or _has_trns(data):
        return None
    return _pyspng.load(data)


def _jpeg_fast(data: bytes) -> np.ndarray | None:
    if _simplejpeg is None:
        return None
    _, _, colorspace, _ = _simplejpeg.decode_jpeg_header(data)
    if colorspace == "Gray":
        return _simplejpeg.decode_jpeg(data, colorspace="GRAY")
    if colorspace in ("YCbCr", "RGB"):
        return _simplejpeg.decode_jpeg(data, colorspace="RGB")
    return None  # CMYK / YCCK: Pillow's conversion


def decode_image(data: bytes, decoder: str | None = None) -> np.ndarray:
    """Decode one stored image to uint8 [H, W, C], C = 1, 3 or 4 (L, RGB, RGBA).

    Args:
        data: encoded bytes (PNG, JPEG, WebP or BMP).
        decoder: ``auto`` (pyspng / simplejpeg when installed, else Pillow), ``fast`` (the same, named for a
            benchmark), ``pillow``; None = ``$SGTRAIN_DECODER`` or ``auto``.

    Raises:
        OSError, ValueError: corrupt data, an unknown ``decoder``, or a pixel format other than 8-bit L/RGB/RGBA.
    """
    decoder = decoder or os.environ.get("SGTRAIN_DECODER") or "auto"
    if decoder not in DECODERS:
        raise ValueError(f"unknown image decoder {decoder!r}: use one of {', '.join(DECODERS)}")
    arr = None
    if decoder != "pillow":
        try:
            if data.startswith(_PNG):
                arr = _png_fast(data)
            elif data.startswith(_JPEG):
                arr = _jpeg_fast(data)
        except (ValueError, RuntimeError, OSError):
            arr = None  # let Pillow decode it, or say why it cannot
    if arr is None:
        arr = _pillow(data)
    if arr.dtype != np.uint8:
        raise ValueError(f"unexpected pixel dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"unexpected image layout {arr.shape}")
    return arr
