"""Decode stored images (PNG, JPEG; WebP and BMP through Pillow) to uint8 HWC arrays, with the fastest decoder here.

PNG goes through pyspng (libspng) and JPEG through simplejpeg (libjpeg-turbo) when they are installed, as NVlabs'
loader uses pyspng when it is installed; Pillow decodes everything else and is the fallback. The fast decoders give
the same pixels as Pillow (PNG is lossless; simplejpeg decodes with libjpeg-turbo's accurate integer DCT and fancy
upsampling, Pillow's defaults: tests/test_data_decode.py compares them where installed). Any image a fast decoder
refuses or gives in another layout (a palette, a 16-bit or a CMYK image, a PNG with a tRNS chunk) is decoded again by
Pillow, so the choice never changes what a sample decodes to.

``SGTRAIN_DECODER=pillow`` in the environment forces Pillow (for a comparison, or a decoder build that misbehaves).

Shards packed with ``--storage raw`` hold decoded pixels instead: one ``.npy`` member per image (uint8 [H, W, C],
NumPy's format 1.0 as ``np.save(..., allow_pickle=False)`` writes it), read by :func:`decode_raw` without a decoder.
A shard is treated as hostile input: the header is parsed by a strict pattern (never by ``ast`` or pickle), and a
member whose dtype, shape or byte count disagrees with the dataset card is refused before any array is made; the
pixels are a view of the member's bytes (no further allocation).
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
from PIL import Image

from sgtrain.errors import InputError

__all__ = ["DECODERS", "STORAGES", "RawArrayError", "available_decoders", "decode_image", "decode_raw", "decode_stored",
           "encode_raw"]

DECODERS = ("auto", "pillow", "fast")
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")  # PNG first: skips PIL's probing of every other plugin
#: How a pack stores its images -> the webdataset field (tar member extension) of each sample's pixels.
STORAGES = {"png": "png", "raw": "npy"}
_NPY_MAGIC = b"\x93NUMPY"
_NPY_MAX_HEADER = 4096  # NumPy writes about 128 bytes; anything longer is not an image header
# What np.save writes for a uint8 array (its dict's keys in this order), spaces and the closing newline tolerated.
_NPY_HEADER = re.compile(rb"\{\s*'descr'\s*:\s*'([^']{1,16})'\s*,\s*'fortran_order'\s*:\s*(False|True)\s*,\s*"
                         rb"'shape'\s*:\s*\(\s*((?:\d{1,9}\s*,\s*){0,7}\d{0,9})\s*\)\s*,?\s*\}\s*")

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


class RawArrayError(InputError):
    """A raw (``.npy``) shard member that is not the uint8 [H, W, C] array the dataset card promises (a damaged or
    hostile shard). Raised by :func:`decode_raw`; the loaders skip and count such a sample, as a corrupt PNG."""


def encode_raw(arr: np.ndarray) -> bytes:
    """The ``.npy`` bytes of one decoded image, as ``--storage raw`` packs it.

    Args:
        arr: uint8 [H, W, C], C = 1, 3 or 4 (a 2-D array is taken as C = 1).

    Returns:
        ``np.save(..., allow_pickle=False)`` of the C-contiguous array (format 1.0, about 128 header bytes).

    Raises:
        ValueError: another dtype or layout.
    """
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"raw storage holds uint8 [H, W, 1|3|4] images, got {arr.dtype} {list(arr.shape)}")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def decode_raw(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """The pixels of a raw (``.npy``) shard member, checked against the card's shape, without a decode.

    Args:
        data: the member's bytes (bounded by the tar reader's ``MAX_MEMBER_BYTES``).
        shape: ``(H, W, C)`` from the dataset card.

    Returns:
        uint8 [H, W, C], a read-only view of ``data``.

    Raises:
        RawArrayError: not an ``.npy`` array, a header over 4 KiB or not in NumPy's layout, a dtype other than
            uint8 (an object array, whose pickle is never read, included), Fortran order, a shape other than
            ``shape``, or a byte count that disagrees with the shape (one line naming what was found).
    """
    if len(data) < 10 or not data.startswith(_NPY_MAGIC):
        raise RawArrayError("not a raw .npy image (no NumPy magic); the card says --storage raw: repack the shard")
    major = data[6]
    if major == 1:
        start, hlen = 10, int.from_bytes(data[8:10], "little")
    elif major in (2, 3) and len(data) >= 12:
        start, hlen = 12, int.from_bytes(data[8:12], "little")
    else:
        raise RawArrayError(f"raw .npy member of unknown format version {major}; repack the shard")
    if hlen > _NPY_MAX_HEADER or start + hlen > len(data):
        raise RawArrayError(f"raw .npy member with a {hlen}-byte header in {len(data)} bytes (damaged or hostile "
                            "shard; repack it)")
    m = _NPY_HEADER.fullmatch(data[start:start + hlen])
    if m is None:
        raise RawArrayError("raw .npy member whose header is not NumPy's {'descr', 'fortran_order', 'shape'} "
                            "(damaged or hostile shard; repack it)")
    descr, fortran = m.group(1).decode("ascii", "replace"), m.group(2) == b"True"
    dims = tuple(int(v) for v in m.group(3).split(b",") if v.strip())
    if descr not in ("|u1", "<u1", ">u1"):
        raise RawArrayError(f"raw .npy member of dtype {descr!r}, expected uint8 ('|u1'); repack the shard")
    if fortran:
        raise RawArrayError("raw .npy member in Fortran order, expected C order; repack the shard")
    want = tuple(int(v) for v in shape)
    if dims != want:
        raise RawArrayError(f"raw .npy member of shape {list(dims)} where the card says {list(want)} (H, W, C); "
                            "repack the shard or fix dataset.json")
    n = want[0] * want[1] * want[2]
    got = len(data) - start - hlen
    if got != n:
        raise RawArrayError(f"raw .npy member with {got} pixel bytes where shape {list(want)} needs {n} "
                            "(truncated or padded; repack the shard)")
    return np.frombuffer(data, dtype=np.uint8, count=n, offset=start + hlen).reshape(want)


def decode_stored(sample: dict, storage: str, shape: tuple[int, int, int]) -> np.ndarray:
    """The pixels of one shard sample (a ``{field: bytes}`` webdataset sample) in the card's ``storage``.

    Args:
        sample: the sample; its ``png`` (``storage="png"``; JPEG/WebP/BMP bytes also decode) or ``npy``
            (``storage="raw"``) field is read.
        storage: ``png`` or ``raw`` (the card's :attr:`~sgtrain.data.card.DatasetCard.storage`).
        shape: ``(H, W, C)`` the card promises.

    Returns:
        uint8 [H, W, C].

    Raises:
        InputError: an unknown storage, or the sample lacks the storage's member. RawArrayError, OSError,
        ValueError: bad pixels or a shape other than ``shape``.
    """
    if storage not in STORAGES:
        raise InputError(f"unknown shard storage {storage!r}: use one of {', '.join(STORAGES)}")
    data = sample.get(STORAGES[storage])
    if data is None:
        fields = sorted(k for k in sample if not k.startswith("__"))
        raise InputError(f"sample without a .{STORAGES[storage]} member (it has {fields}) where the card says storage "
                         f"{storage!r}; repack the shard or fix dataset.json")
    if storage == "raw":
        return decode_raw(data, shape)
    arr = decode_image(data)
    if arr.shape != tuple(shape):
        raise ValueError(f"shape {arr.shape} differs from the card's {tuple(shape)}")
    return arr
