"""Decoding (issue 27): pyspng / simplejpeg where installed give Pillow's pixels; Pillow alone works; bad data fails."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sgtrain.data import decode
from sgtrain.data.decode import available_decoders, decode_image


def _natural(h: int, w: int, c: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise (compresses like a photo, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = np.stack([np.sin(6 * xx + k) * np.cos(4 * yy - k) for k in range(c)], axis=-1) * 100 + 128
    return np.clip(base + rng.normal(0, 12, [h, w, c]), 0, 255).astype(np.uint8)


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode).save(buf, fmt, **kw)
    return buf.getvalue()


CASES = [("png", c, {"compress_level": 6}) for c in (1, 3, 4)] + [("jpeg", c, {"quality": q}) for c in (1, 3)
                                                                   for q in (75, 95)]
CASES += [("jpeg", 3, {"quality": 90, "subsampling": 0}), ("jpeg", 3, {"quality": 90, "subsampling": 2})]


@pytest.mark.parametrize("fmt, channels, kw", CASES)
def test_fast_decoders_give_pillows_pixels(fmt, channels, kw):
    need = "pyspng" if fmt == "png" else "simplejpeg"
    if not available_decoders()[need]:
        pytest.skip(f"{need} is not installed")
    for seed, (h, w) in enumerate([(37, 53), (64, 64), (256, 128)]):
        data = _encode(_natural(h, w, channels, seed), fmt.upper(), **kw)
        fast = decode_image(data, "fast")
        slow = decode_image(data, "pillow")
        assert fast.dtype == np.uint8 and fast.shape == slow.shape == (h, w, channels)
        np.testing.assert_array_equal(fast, slow)


def test_fast_path_is_taken_when_installed(monkeypatch):
    if not available_decoders()["pyspng"]:
        pytest.skip("pyspng is not installed")
    calls = []
    real = decode._pyspng.load
    monkeypatch.setattr(decode._pyspng, "load", lambda d: calls.append(1) or real(d))
    data = _encode(_natural(8, 8, 3, 0), "PNG")
    decode_image(data, "auto")
    decode_image(data, "pillow")
    monkeypatch.setenv("SGTRAIN_DECODER", "pillow")
    decode_image(data)
    assert calls == [1]


def test_layouts_pyspng_would_change_go_to_pillow():
    pal = Image.fromarray(_natural(8, 8, 3, 1)).convert("P")
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    expanded = np.asarray(pal.convert("RGBA"))
    for d in ("fast", "pillow"):  # palette indices expanded to colours, with the palette's transparency as alpha
        np.testing.assert_array_equal(decode_image(buf.getvalue(), d), expanded)
    rgb = Image.fromarray(_natural(8, 8, 3, 2))
    buf = io.BytesIO()
    rgb.save(buf, "PNG", transparency=(0, 0, 0))  # tRNS on RGB: Pillow keeps RGB, pyspng would add alpha
    assert decode_image(buf.getvalue(), "fast").shape == (8, 8, 3)
    gray16 = Image.fromarray(np.full([4, 4], 300, np.uint16))
    buf = io.BytesIO()
    gray16.save(buf, "PNG")
    with pytest.raises(ValueError, match="dtype"):
        decode_image(buf.getvalue(), "fast")


@pytest.mark.parametrize("decoder", ["fast", "pillow"])
def test_corrupt_data_raises(decoder):
    good = _encode(_natural(16, 16, 3, 0), "PNG")
    for bad in (good[: len(good) // 2], b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8\xff\xe0garbage", b""):
        with pytest.raises((OSError, ValueError, SyntaxError)):
            decode_image(bad, decoder)
    with pytest.raises(ValueError, match="unknown image decoder"):
        decode_image(good, "turbo")
