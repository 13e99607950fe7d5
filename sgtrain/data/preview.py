"""Look at a packed dataset: the card, a sample grid, shard checksums (``sgtrain-data inspect``)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
from PIL import Image

from sgtrain.errors import InputError

from .card import DatasetCard, load_card
from .decode import decode_stored


def read_samples(out: str | os.PathLike, n: int) -> tuple[np.ndarray, list[str]]:
    """The first ``n`` images of a packed dataset in packing order.

    Returns:
        ``(images uint8 [n', H, W, C], keys)`` with ``n' <= n`` (fewer when the dataset is smaller), decoded from
        PNG or read from raw ``.npy`` members as the card's ``storage`` says.

    Raises:
        InputError, OSError, ValueError: a sample that does not hold what the card says (named by shard and key).
    """
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    out = os.fspath(out)
    card = load_card(out)
    imgs, keys = [], []
    shape = (card.size[1], card.size[0], card.channels)
    for shard in card.shards:
        with open(os.path.join(out, shard.name), "rb") as f:
            for s in group_by_keys({**x, "__url__": shard.name} for x in tar_file_iterator(f)):
                try:
                    imgs.append(np.array(decode_stored(s, card.storage, shape)))
                except (OSError, ValueError) as e:
                    raise InputError(f"{shard.name}#{s['__key__']}: {e}") from e
                keys.append(s["__key__"])
                if len(imgs) >= n:
                    return np.stack(imgs), keys
    return (np.stack(imgs) if imgs else np.zeros([0, *shape], np.uint8)), keys


def make_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile uint8 [N, H, W, C] images into one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, C] grid on white."""
    n, h, w, c = images.shape
    cols = cols or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / cols)))
    grid = np.full([rows * (h + pad) + pad, cols * (w + pad) + pad, c], 255, dtype=np.uint8)
    for i in range(n):
        y, x = divmod(i, cols)
        grid[pad + y * (h + pad) : pad + y * (h + pad) + h, pad + x * (w + pad) : pad + x * (w + pad) + w] = images[i]
    return grid


def write_grid(out: str | os.PathLike, path: str | os.PathLike | None = None, n: int = 64) -> str:
    """Write a PNG grid of the first ``n`` images; default path ``OUT/grid.png``. Returns the path."""
    images, _ = read_samples(out, n)
    grid = make_grid(images)
    path = os.fspath(path) if path is not None else os.path.join(os.fspath(out), "grid.png")
    Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid).save(path)
    return path


def verify_shards(out: str | os.PathLike, card: DatasetCard | None = None) -> list[str]:
    """Check every shard's size and sha256 against the card; returns a list of problems (empty when all match)."""
    out = os.fspath(out)
    card = card or load_card(out)
    problems = []
    for s in card.shards:
        p = os.path.join(out, s.name)
        if not os.path.isfile(p):
            problems.append(f"{s.name}: missing")
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != s.sha256:
            problems.append(f"{s.name}: sha256 mismatch (file changed or damaged)")
    return problems
