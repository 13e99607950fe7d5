"""The embedded demo dataset: every glyph of Noto Color Emoji, 64x64 RGB on white, packed to shards.

    python -m sgtrain.data.emoji OUT [--resolution 64] [--font PATH] [--shard-size 4MB] [--workers N] [--subset smileys]

Noto Color Emoji (Debian package ``fonts-noto-color-emoji``, SIL Open Font License 1.1) is a colour bitmap font: each
glyph, including the ligature glyphs of skin-tone, flag and ZWJ sequences, is a PNG stored in the font's CBDT table
at 109 ppem (136 x 128 px). This recipe reads those PNGs straight from the font (CBLC index + CBDT data, OpenType
spec "CBDT/CBLC"), which is what a renderer draws at size 109 with embedded colour, and does not depend on knowing
the emoji sequences. Each bitmap is centred on a transparent square canvas and packed with ``sgtrain.data.pack``
(alpha composited on white, Lanczos resize to the resolution).

The command is idempotent: when ``OUT/dataset.json`` exists it prints that and does nothing. When the font is
missing it installs the Debian package if it runs as root with apt-get available, and otherwise says what to install.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from PIL import Image

from sgtrain.errors import UserError

DEBIAN_PACKAGE = "fonts-noto-color-emoji"
FONT_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)


class EmojiError(UserError, RuntimeError):
    """The font is missing or unreadable."""


def find_font(install: bool = True) -> str:
    """Path of NotoColorEmoji.ttf; installs the Debian package when missing, root and ``install``.

    Raises:
        EmojiError: not found and not installable here; the message names the package to install.
    """
    for p in FONT_PATHS:
        if os.path.isfile(p):
            return p
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing Debian package {DEBIAN_PACKAGE} (apt-get update && apt-get install -y)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update"], check=False, env=env)
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", DEBIAN_PACKAGE], env=env)
        if r.returncode == 0:
            for p in FONT_PATHS:
                if os.path.isfile(p):
                    return p
    raise EmojiError(
        f"Noto Color Emoji font not found (looked in {', '.join(FONT_PATHS)}). Install the Debian package "
        f"{DEBIAN_PACKAGE} (`sudo apt-get install {DEBIAN_PACKAGE}`) or pass --font /path/to/NotoColorEmoji.ttf"
    )


def _tables(font: bytes) -> dict[str, tuple[int, int]]:
    if font[:4] not in (b"\x00\x01\x00\x00", b"OTTO", b"true"):
        raise EmojiError("not a TrueType/OpenType font file")
    (num,) = struct.unpack_from(">H", font, 4)
    out = {}
    for i in range(num):
        tag, _, off, length = struct.unpack_from(">4sIII", font, 12 + 16 * i)
        out[tag.decode("latin-1")] = (off, length)
    return out


def iter_color_bitmaps(font_path: str) -> Iterator[tuple[int, bytes]]:
    """Yield ``(glyph_id, png_bytes)`` for every glyph with a colour bitmap, largest strike, glyph-id order.

    Reads the OpenType CBLC/CBDT tables (index formats 1-5, image formats 17, 18, 19).

    Raises:
        EmojiError: the font has no CBDT/CBLC tables (not a colour bitmap font).
    """
    with open(font_path, "rb") as f:
        font = f.read()
    tables = _tables(font)
    if "CBLC" not in tables or "CBDT" not in tables:
        raise EmojiError(f"{font_path} has no CBDT/CBLC colour bitmaps (is it Noto Color Emoji?)")
    cblc, _ = tables["CBLC"]
    cbdt, _ = tables["CBDT"]
    (num_sizes,) = struct.unpack_from(">I", font, cblc + 4)
    best = None
    for s in range(num_sizes):
        rec = cblc + 8 + 48 * s
        arr_off, _, n_sub = struct.unpack_from(">III", font, rec)
        ppem = font[rec + 44]
        if best is None or ppem > best[0]:
            best = (ppem, arr_off, n_sub)
    assert best is not None
    _, arr_off, n_sub = best
    arr = cblc + arr_off
    located: dict[int, tuple[int, int, int]] = {}  # glyph -> (image format, start, end) in the font
    for k in range(n_sub):
        first, last, add = struct.unpack_from(">HHI", font, arr + 8 * k)
        sub = arr + add
        index_format, image_format, data_off = struct.unpack_from(">HHI", font, sub)
        base = cbdt + data_off
        body = sub + 8
        if index_format in (1, 3):
            fmt, size = (">I", 4) if index_format == 1 else (">H", 2)
            offs = [struct.unpack_from(fmt, font, body + size * i)[0] for i in range(last - first + 2)]
            for i, g in enumerate(range(first, last + 1)):
                if offs[i + 1] > offs[i]:
                    located[g] = (image_format, base + offs[i], base + offs[i + 1])
        elif index_format == 2:
            (img_size,) = struct.unpack_from(">I", font, body)
            for i, g in enumerate(range(first, last + 1)):
                located[g] = (image_format, base + i * img_size, base + (i + 1) * img_size)
        elif index_format == 4:
            (n,) = struct.unpack_from(">I", font, body)
            pairs = [struct.unpack_from(">HH", font, body + 4 + 4 * i) for i in range(n + 1)]
            for (g, o), (_, o2) in zip(pairs[:-1], pairs[1:]):
                if o2 > o:
                    located[g] = (image_format, base + o, base + o2)
        elif index_format == 5:
            (img_size,) = struct.unpack_from(">I", font, body)
            (n,) = struct.unpack_from(">I", font, body + 12)
            for i in range(n):
                (g,) = struct.unpack_from(">H", font, body + 16 + 2 * i)
                located[g] = (image_format, base + i * img_size, base + (i + 1) * img_size)
    for g in sorted(located):
        image_format, start, _end = located[g]
        if image_format == 17:
            start += 5  # smallGlyphMetrics
        elif image_format == 18:
            start += 8  # bigGlyphMetrics
        elif image_format != 19:
            continue  # not a PNG image format
        (length,) = struct.unpack_from(">I", font, start)
        yield g, font[start + 4 : start + 4 + length]


#: Coherent subsets by Unicode code point (single code points, the font's cmap). ``smileys``: the round yellow
#: faces of the Unicode "Smileys & Emotion" group (face-smiling ... face-negative), without cats, monkeys, costumes,
#: people and the robot, lips and bubble glyphs.
SUBSETS: dict[str, list[tuple[int, int]]] = {
    "smileys": [
        (0x1F600, 0x1F637), (0x1F641, 0x1F644), (0x1F910, 0x1F915), (0x1F917, 0x1F917), (0x1F920, 0x1F920),
        (0x1F922, 0x1F925), (0x1F927, 0x1F92F), (0x1F970, 0x1F976), (0x1F978, 0x1F97A), (0x1F9D0, 0x1F9D0),
        (0x1FAE0, 0x1FAE4), (0x1FAE8, 0x1FAE8), (0x2639, 0x263A),
    ],
}


def subset_glyphs(font_path: str, subset: str) -> set[int]:
    """Glyph ids of a named subset (:data:`SUBSETS`), read from the font's character map with fontTools.

    Raises:
        EmojiError: an unknown subset name.
    """
    if subset not in SUBSETS:
        raise EmojiError(f"unknown emoji subset {subset!r}; known: {', '.join(SUBSETS)}")
    from fontTools.ttLib import TTFont

    font = TTFont(font_path, lazy=True)
    cmap = font.getBestCmap()
    wanted = {cp for lo, hi in SUBSETS[subset] for cp in range(lo, hi + 1)}
    return {font.getGlyphID(cmap[cp]) for cp in sorted(wanted) if cp in cmap}


def render_glyphs(font_path: str, out_dir: str, glyphs: set[int] | None = None) -> int:
    """Write every colour glyph (or those in ``glyphs``) as a square RGBA PNG (bitmap centred, transparent margin);
    returns the count."""
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for g, png in iter_color_bitmaps(font_path):
        if glyphs is not None and g not in glyphs:
            continue
        img = Image.open(io.BytesIO(png)).convert("RGBA")
        side = max(img.size)
        canvas = Image.new("RGBA", (side, side), (255, 255, 255, 0))
        canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
        canvas.save(os.path.join(out_dir, f"glyph{g:05d}.png"), compress_level=1)
        n += 1
    return n


def build(
    out: str,
    resolution: int = 64,
    font: str | None = None,
    shard_size: str = "4MB",
    workers: int | None = None,
    install: bool = True,
    progress: bool = True,
    subset: str | None = None,
) -> bool:
    """Build the emoji dataset in ``out`` unless ``out/dataset.json`` exists. Returns True when it packed.

    Args:
        subset: a name of :data:`SUBSETS` (e.g. ``'smileys'``, the quickstart's 100 faces), None = every glyph.

    Raises:
        EmojiError: font missing (the message says which Debian package to install), or an unknown subset.
    """
    from .pack import pack
    from .preview import write_grid

    if os.path.isfile(os.path.join(out, "dataset.json")):
        print(f"{out}/dataset.json exists: emoji dataset already built, nothing to do")
        return False
    font = font or find_font(install=install)
    glyphs = subset_glyphs(font, subset) if subset else None
    with tempfile.TemporaryDirectory(prefix="sgtrain-emoji-") as tmp:
        n = render_glyphs(font, tmp, glyphs)
        print(f"extracted {n} colour glyphs{f' ({subset})' if subset else ''} from {font}")
        card = pack(
            tmp,
            out,
            resolution,
            crop="center",
            resize_filter="lanczos",
            channels=3,
            labels="none",
            allow_upscale=True,
            shard_size=shard_size,
            workers=workers,
            overwrite=True,
            name=f"emoji-{subset}" if subset else "emoji",
            progress=progress,
        )
    grid = write_grid(out, n=256)
    print(
        f"packed {card.count} emoji at {resolution}x{resolution} into {len(card.shards)} shards in {out}; "
        f"skipped {card.pack['skipped']}; sample grid {grid}"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sgtrain.data.emoji", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="output directory (skipped when it already holds dataset.json)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--font", default=None, help="path to NotoColorEmoji.ttf (default: the Debian package's)")
    p.add_argument("--shard-size", default="4MB")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    p.add_argument("--subset", default=None, choices=sorted(SUBSETS),
                   help="only a coherent group of glyphs (smileys: the ~100 yellow faces of the quickstart)")
    args = p.parse_args(argv)
    try:
        build(args.out, args.resolution, args.font, args.shard_size, args.workers, install=not args.no_install,
              subset=args.subset)
    except EmojiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
