"""Emoji demo recipe: CBDT/CBLC reader on a tiny colour-bitmap font built here, build(), font-missing message."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from sgtrain.data import emoji, load_card
from sgtrain.data.preview import read_samples


def _png(color, size=(12, 10)) -> bytes:
    arr = np.zeros([size[1], size[0], 4], np.uint8)
    arr[..., :3] = color
    arr[..., 3] = 255
    arr[:, : size[0] // 2, 3] = 0  # left half transparent
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def _font(pngs: list[bytes]) -> bytes:
    """A minimal sfnt with CBLC (one strike, index format 1, image format 17) and CBDT holding ``pngs``."""
    cbdt = bytearray(struct.pack(">HH", 3, 0))
    offsets = [0]
    for p in pngs:
        glyph = struct.pack(">BBbbB", 10, 12, 0, 10, 12) + struct.pack(">I", len(p)) + p  # smallGlyphMetrics
        cbdt += glyph
        offsets.append(offsets[-1] + len(glyph))
    first, last = 1, len(pngs)
    subtable = struct.pack(">HHI", 1, 17, 4) + b"".join(struct.pack(">I", o) for o in offsets)
    array = struct.pack(">HHI", first, last, 8) + subtable
    size_rec = (
        struct.pack(">IIII", 56, len(array), 1, 0) + b"\0" * 24 + struct.pack(">HHBBBb", first, last, 109, 109, 32, 1)
    )
    cblc = struct.pack(">HHI", 3, 0, 1) + size_rec + array
    assert len(size_rec) == 48
    head = struct.pack(">IHHHH", 0x00010000, 2, 32, 1, 0)
    off_cblc = 12 + 2 * 16
    off_cbdt = off_cblc + len(cblc)
    records = struct.pack(">4sIII", b"CBDT", 0, off_cbdt, len(cbdt)) + struct.pack(
        ">4sIII", b"CBLC", 0, off_cblc, len(cblc)
    )
    return head + records + cblc + bytes(cbdt)


def test_cbdt_reader_and_build(tmp_path, capsys):
    pngs = [_png((255, 0, 0)), _png((0, 0, 255)), _png((0, 200, 0))]
    font = tmp_path / "tiny.ttf"
    font.write_bytes(_font(pngs))
    got = list(emoji.iter_color_bitmaps(str(font)))
    assert [g for g, _ in got] == [1, 2, 3] and [p for _, p in got] == pngs

    out = tmp_path / "emoji"
    assert emoji.build(str(out), resolution=16, font=str(font), workers=0, progress=False) is True
    card = load_card(out)
    assert card.count == 3 and card.resolution == 16 and card.channels == 3 and card.c_dim == 0
    imgs, _ = read_samples(out, 10)
    # 12x10 bitmap centred on a 12x12 canvas: top/bottom rows and the transparent left half are white
    assert imgs.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(imgs[:, 0], 255)
    np.testing.assert_array_equal(imgs[:, 4:12, :4], 255)
    colors = sorted(tuple(int(v) for v in im[8, 14]) for im in imgs)  # packing order is shuffled
    expected = sorted([(255, 0, 0), (0, 0, 255), (0, 200, 0)])
    assert all(max(abs(a - b) for a, b in zip(c, e)) <= 2 for c, e in zip(colors, expected)), colors
    for im in imgs:
        assert np.all(im[4:12, 12:16] == im[8, 14])  # the opaque right half is one flat colour
    assert (out / "grid.png").is_file()
    capsys.readouterr()
    assert emoji.main([str(out), "--font", str(font)]) == 0  # idempotent
    assert "nothing to do" in capsys.readouterr().out


def test_missing_font_names_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(emoji, "FONT_PATHS", (str(tmp_path / "none.ttf"),))
    with pytest.raises(emoji.EmojiError, match="fonts-noto-color-emoji"):
        emoji.find_font(install=False)
    assert emoji.main([str(tmp_path / "out"), "--no-install"]) == 2
    assert "apt-get install fonts-noto-color-emoji" in capsys.readouterr().err
    (tmp_path / "plain.ttf").write_bytes(b"\x00\x01\x00\x00" + b"\0" * 8)
    with pytest.raises(emoji.EmojiError, match="CBDT"):
        list(emoji.iter_color_bitmaps(str(tmp_path / "plain.ttf")))
