#!/usr/bin/env python
"""Make a folder of real photographic images for packing tests and data benchmarks (never commit its output).

There is no internet here except package registries, so the photos come from Debian wallpaper packages
(mate-backgrounds' nature photos and one bird photo from lomiri-wallpapers-20.04). The .deb files are fetched with
`apt-get download` and unpacked with `dpkg-deb -x` into a cache directory: nothing is installed on the system.
Each output image is a square crop (random position and scale, seeded) of one photo, saved at --size pixels in a
mix of formats (jpg, png, webp, bmp) under one folder per source photo.

    python scripts/make_photo_folder.py /tmp/photos --count 5000 --size 96 --plant-bad

--plant-bad adds inputs the packer must skip and list: a corrupt jpg, a truncated png and jpg, an empty file, a text
file, a text file named .png, and an image smaller than 64 px; and one RGBA png that it must keep (on white).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys

import numpy as np
from PIL import Image

PACKAGES = {
    "mate-backgrounds": [
        "Aqua",
        "Blinds",
        "Dune",
        "FreshFlower",
        "Garden",
        "GreenMeadow",
        "LadyBird",
        "RainDrops",
        "Storm",
        "TwoWings",
        "Wood",
        "YellowFlower",
    ],
    "lomiri-wallpapers-20.04": ["Kleiber_by_Lukas_Baubkus"],
}
FORMATS = [("jpg", "JPEG", {"quality": 92}), ("png", "PNG", {}), ("webp", "WEBP", {"quality": 90}), ("bmp", "BMP", {})]


def fetch_photos(cache: str) -> list[str]:
    """Download and unpack the wallpaper packages into ``cache``; return the photo paths in a fixed order."""
    os.makedirs(cache, exist_ok=True)
    root = os.path.join(cache, "x")
    paths = []
    for pkg, stems in PACKAGES.items():
        found = {
            os.path.splitext(os.path.basename(p))[0]: p
            for p in glob.glob(os.path.join(root, "usr/share/backgrounds/**/*.jpg"), recursive=True)
        }
        if not all(s in found for s in stems):
            debs = glob.glob(os.path.join(cache, f"{pkg}_*.deb"))
            if not debs:
                try:
                    subprocess.run(["apt-get", "download", pkg], cwd=cache, check=True)
                except (OSError, subprocess.CalledProcessError) as e:
                    sys.exit(
                        f"cannot download Debian package {pkg} ({e}); run `apt-get update` first, "
                        f"or place {pkg}_*.deb in {cache}"
                    )
                debs = glob.glob(os.path.join(cache, f"{pkg}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", debs[0], root], check=True)
            found = {
                os.path.splitext(os.path.basename(p))[0]: p
                for p in glob.glob(os.path.join(root, "usr/share/backgrounds/**/*.jpg"), recursive=True)
            }
        paths += [found[s] for s in stems]
    return paths


def plant_bad(out: str, good_example: str) -> list[str]:
    """Write the inputs that a pack must skip (and one RGBA image it must keep); return the skipped names."""
    bad = os.path.join(out, "zz_bad")
    os.makedirs(bad, exist_ok=True)
    data = open(good_example, "rb").read()
    rng = np.random.default_rng(123)
    with open(os.path.join(bad, "corrupt.jpg"), "wb") as f:
        f.write(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with open(os.path.join(bad, "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    buf = os.path.join(bad, "truncated.png")
    Image.open(good_example).save(buf)
    png = open(buf, "rb").read()
    with open(buf, "wb") as f:
        f.write(png[: len(png) // 2])
    open(os.path.join(bad, "empty.png"), "wb").close()
    with open(os.path.join(bad, "notes.txt"), "w") as f:
        f.write("not an image\n")
    with open(os.path.join(bad, "text_named.png"), "w") as f:
        f.write("this is text, not a PNG\n")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(os.path.join(bad, "too_small.png"))
    rgba = np.array(Image.open(good_example).convert("RGBA"))
    rgba[:, : rgba.shape[1] // 2, 3] = 0  # left half transparent: must come out white
    Image.fromarray(rgba).save(os.path.join(out, "rgba_half_transparent.png"))
    names = [
        "corrupt.jpg",
        "truncated.jpg",
        "truncated.png",
        "empty.png",
        "notes.txt",
        "text_named.png",
        "too_small.png",
    ]
    return [f"zz_bad/{n}" for n in names]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--size", type=int, default=96, help="side of the saved crops (>= the pack resolution)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "sgtrain", "photo-debs"))
    p.add_argument("--plant-bad", action="store_true")
    args = p.parse_args()
    photos = fetch_photos(args.cache)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    first = None
    for i in range(args.count):
        k = i % len(photos)
        stem = os.path.splitext(os.path.basename(photos[k]))[0]
        if i < len(photos):
            src = Image.open(photos[k]).convert("RGB")
            src.load()
            globals().setdefault("_cache", {})[k] = src
        src = globals()["_cache"][k]
        w, h = src.size
        side = int(rng.uniform(0.08, 0.6) * min(w, h))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = src.resize((args.size, args.size), Image.Resampling.BOX, box=(x, y, x + side, y + side))
        ext, fmt, kw = FORMATS[i % len(FORMATS)]
        d = os.path.join(args.out, stem)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{i:05d}.{ext}")
        crop.save(path, fmt, **kw)
        if first is None and ext == "jpg":
            first = path
    n_bad = 0
    if args.plant_bad:
        n_bad = len(plant_bad(args.out, first))
    print(
        f"wrote {args.count} photo crops from {len(photos)} photos to {args.out}"
        + (f", plus {n_bad} bad inputs and 1 RGBA image" if args.plant_bad else "")
    )


if __name__ == "__main__":
    main()
