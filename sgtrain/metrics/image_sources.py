"""Real image sets for the metrics: sgtrain shard directories, image folders and zip files, in a fixed order.

Every source numbers its images 0..count-1 in a fixed *dataset order* (NVlabs' dataset index):

- shards: the card's shard order, then the position inside each tar;
- folders and zips: file names relative to the root, sorted (NVlabs' ``ImageFolderDataset``).

The metrics take the first ``max_items`` images in that order (NVlabs' ``max_real``; ``_full`` metrics take all),
split the work over ranks, and put gathered features back in dataset order, so results do not depend on the number
of processes. Images come out as uint8 [n, C, H, W] with their dataset indices.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image

from sgtrain.errors import InputError, MissingFileError

__all__ = ["FolderSource", "ImageSource", "ShardSource", "open_image_source"]


class ImageSource:
    """A fixed, ordered set of images with optional labels (base class).

    Attributes:
        name: short name for cache files (the dataset's name).
        count: number of images.
        resolution: image height = width in pixels.
        channels: 1, 3 or 4 (L, RGB, RGBA).
        c_dim: label dimension (0 = no labels).
    """

    name: str = "images"
    count: int = 0
    resolution: int = 0
    channels: int = 3
    c_dim: int = 0

    def fingerprint(self) -> str:
        """Hex digest identifying the content (for the real-statistics cache)."""
        raise NotImplementedError

    def iter_batches(self, rank: int = 0, world_size: int = 1, max_items: int | None = None, batch_size: int = 64,
                     workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's share of the first ``max_items`` images: ``(indices int64 [n], img uint8 [n, C, H, W])``.

        Every image index below ``min(count, max_items)`` is yielded by exactly one rank.
        """
        raise NotImplementedError

    def sample_labels(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Labels of ``n`` images drawn uniformly with replacement (NVlabs' ``iterate_random_labels``), float32
        [n, c_dim]; [n, 0] without labels."""
        return torch.zeros([n, 0], dtype=torch.float32)

    def num_items(self, max_items: int | None) -> int:
        """``min(count, max_items)``."""
        return self.count if max_items is None else min(self.count, int(max_items))


def _decode(data: bytes, where: str) -> np.ndarray:
    """Image bytes -> uint8 CHW with 1, 3 or 4 channels (L, RGB, RGBA kept; other modes converted to RGB, or to RGBA
    when they carry transparency)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGBA" if img.mode in ("LA", "PA", "La", "RGBa") or "transparency" in img.info
                              else "RGB")
        arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise InputError(f"{where}: pixel type {arr.dtype}, expected 8-bit")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.transpose(2, 0, 1)


def _stack(arrays: list[np.ndarray], shape: tuple[int, int, int], where: list[str]) -> torch.Tensor:
    for a, w in zip(arrays, where):
        if a.shape != shape:
            raise InputError(f"{w}: image of shape {a.shape} (CHW) where the set has {shape}; every image of a set "
                             f"must have the same size and channels")
    return torch.from_numpy(np.stack(arrays))


class ShardSource(ImageSource):
    """A directory written by ``sgtrain-data pack`` (or a pattern whose directory holds ``dataset.json``).

    Ranks read disjoint shards (shard s goes to rank ``s % world_size``); dataset indices come from the card's
    per-shard counts. PNG shards are decoded; raw shards (``--storage raw``) give their ``.npy`` arrays, checked
    against the card's [H, W, C] (:func:`sgtrain.data.decode.decode_raw`), without a decode. A sample that cannot be
    decoded, or a raw member that disagrees with the card, is skipped with a warning.

    Raises:
        FileNotFoundError: no shards or no dataset card.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from sgtrain.data.stream import resolve_shards

        self.path = os.fspath(path)
        urls, card = resolve_shards(self.path)
        if card is None:
            raise MissingFileError(f"no dataset.json found for shards {self.path!r}; the metrics need the card "
                                    f"written by `sgtrain-data pack` (shard counts, labels, checksums)")
        self.card = card
        self.urls = urls
        self.name = card.name
        self.count = int(card.count)
        self.resolution = int(card.resolution)
        self.channels = int(card.channels)
        self.c_dim = int(card.c_dim)
        by_name = {s.name: int(s.count) for s in card.shards}
        self.shard_counts = [by_name.get(u.rsplit("/", 1)[-1], 0) for u in urls]
        if sum(self.shard_counts) != self.count:
            raise InputError(f"{self.path}: the card counts {self.count} images but its shards list "
                             f"{sum(self.shard_counts)}; repack the data")
        self.offsets = np.concatenate([[0], np.cumsum(self.shard_counts)]).astype(np.int64)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        meta = [self.card.resolution, self.card.channels, self.card.c_dim, self.card.label_type]
        h.update(json.dumps(meta).encode())
        for s in self.card.shards:
            h.update(f"{s.name}:{s.count}:{s.sha256}\n".encode())
        return h.hexdigest()

    def _samples(self, shard: int, stop: int) -> Iterator[tuple[int, dict]]:
        from webdataset import gopen

        from sgtrain.data.stream import iter_tar_samples

        stream = gopen(self.urls[shard])
        try:
            for i, sample in enumerate(iter_tar_samples(stream)):
                if i >= stop:
                    break
                yield int(self.offsets[shard]) + i, sample
        finally:
            stream.close()

    def iter_batches(self, rank: int = 0, world_size: int = 1, max_items: int | None = None, batch_size: int = 64,
                     workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n_max = self.num_items(max_items)
        shape = (self.channels, self.card.size[1], self.card.size[0])  # C, H, W
        raw_shape = (shape[1], shape[2], shape[0]) if self.card.storage == "raw" else None  # H, W, C
        pool = ThreadPoolExecutor(workers) if workers > 0 else None
        try:
            pending: list[tuple[int, bytes, str]] = []

            def flush() -> tuple[torch.Tensor, torch.Tensor] | None:
                items = list(pending)
                pending.clear()
                arrays, keep, where = [], [], []
                decode = functools.partial(_try_decode, raw_shape=raw_shape)
                decoded = pool.map(decode, items) if pool is not None else map(decode, items)
                for (idx, _data, w), arr in zip(items, decoded):
                    if arr is None:
                        continue
                    arrays.append(arr)
                    keep.append(idx)
                    where.append(w)
                if not arrays:
                    return None
                return torch.as_tensor(keep, dtype=torch.int64), _stack(arrays, shape, where)

            for shard in range(rank, len(self.urls), world_size):
                if self.offsets[shard] >= n_max:
                    continue
                stop = int(min(self.shard_counts[shard], n_max - self.offsets[shard]))
                for idx, sample in self._samples(shard, stop):
                    where = f"{self.urls[shard]}#{sample.get('__key__')}"
                    if raw_shape is not None:
                        data = sample.get("npy")
                    else:
                        data = sample.get("png") or sample.get("jpg") or sample.get("jpeg") or sample.get("webp")
                    if data is None:
                        what = "no .npy member (the card says storage raw)" if raw_shape else "no image field"
                        warnings.warn(f"sgtrain.metrics: skipped {where}: {what}", stacklevel=2)
                        continue
                    pending.append((idx, data, where))
                    if len(pending) >= batch_size:
                        out = flush()
                        if out is not None:
                            yield out
            if pending:
                out = flush()
                if out is not None:
                    yield out
        finally:
            if pool is not None:
                pool.shutdown()

    def sample_labels(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.c_dim == 0:
            return torch.zeros([n, 0], dtype=torch.float32)
        if self.card.label_type == "vector":
            from sgtrain.data.card import sample_vector_labels

            root = self.path if os.path.isdir(self.path) else os.path.dirname(self.path)
            return sample_vector_labels(root, n, generator)
        return self.card.sample_labels(n, generator=generator)


def _try_decode(item: tuple[int, bytes, str], raw_shape: tuple[int, int, int] | None = None) -> np.ndarray | None:
    """uint8 CHW of one sample, or None (with a warning) when it cannot be read; ``raw_shape`` = [H, W, C] of a raw
    (``.npy``) member, checked by :func:`sgtrain.data.decode.decode_raw`, else the bytes are decoded."""
    idx, data, where = item
    try:
        if raw_shape is not None:
            from sgtrain.data.decode import decode_raw

            return decode_raw(data, raw_shape).transpose(2, 0, 1)
        return _decode(data, where)
    except Exception as err:  # noqa: BLE001 - a damaged sample is skipped, as in training
        warnings.warn(f"sgtrain.metrics: skipped {where}: {err}", stacklevel=2)
        return None


def _image_extensions() -> set[str]:
    Image.init()
    return {ext.lower() for ext in Image.registered_extensions()}


class FolderSource(ImageSource):
    """An image folder (searched recursively) or a zip of images, NVlabs' ``ImageFolderDataset`` layout.

    Images are the files whose extension PIL knows, sorted by path relative to the root; image ``i`` goes to rank
    ``i % world_size``. Labels come from an NVlabs ``dataset.json`` (``{"labels": [[relpath, label], ...]}``) at the
    root, class indices becoming one-hot vectors.

    Raises:
        FileNotFoundError: the path does not exist or holds no image.
        ValueError: a label file that does not cover every image.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        exts = _image_extensions()
        if os.path.isdir(self.path):
            self.kind = "dir"
            files = []
            for root, _dirs, names in os.walk(self.path):
                for fn in names:
                    files.append(os.path.relpath(os.path.join(root, fn), self.path).replace(os.sep, "/"))
            self._all = set(files)
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
            with zipfile.ZipFile(self.path) as zf:
                self._infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
            self._all = set(self._infos)
        else:
            raise MissingFileError(f"{self.path!r} is neither a directory, a zip file nor a shard directory "
                                    f"with dataset.json")
        self.files = sorted(f for f in self._all if os.path.splitext(f)[1].lower() in exts)
        if not self.files:
            raise MissingFileError(f"no image files in {self.path!r}")
        self.name = os.path.splitext(os.path.basename(os.path.normpath(self.path)))[0] or "images"
        self.count = len(self.files)
        self._zip: zipfile.ZipFile | None = None
        first = _decode(self._read(self.files[0]), self.files[0])
        self.channels, self.resolution = int(first.shape[0]), int(first.shape[1])
        self._shape = tuple(first.shape)
        self.labels = self._load_labels()
        self.c_dim = 0 if self.labels is None else int(self.labels.shape[1])

    def _read(self, name: str) -> bytes:
        if self.kind == "dir":
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip.read(name)

    def _load_labels(self) -> np.ndarray | None:
        if "dataset.json" not in self._all:
            return None
        meta = json.loads(self._read("dataset.json").decode("utf-8"))
        raw = meta.get("labels") if isinstance(meta, dict) else None
        if raw is None:
            return None
        table = dict(raw)
        missing = [f for f in self.files if f not in table]
        if missing:
            raise InputError(f"{self.path}/dataset.json has no label for {missing[:3]} ({len(missing)} images)")
        arr = np.array([table[f] for f in self.files])
        if arr.ndim == 1:
            onehot = np.zeros([len(arr), int(arr.max()) + 1], dtype=np.float32)
            onehot[np.arange(len(arr)), arr.astype(np.int64)] = 1
            return onehot
        return arr.astype(np.float32)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        if self.kind == "zip":
            for name in sorted(self._infos):
                info = self._infos[name]
                h.update(f"{name}:{info.file_size}:{info.CRC}\n".encode())
        else:
            for name in sorted(self._all):
                st = os.stat(os.path.join(self.path, name))
                h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def iter_batches(self, rank: int = 0, world_size: int = 1, max_items: int | None = None, batch_size: int = 64,
                     workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mine = list(range(rank, self.num_items(max_items), world_size))
        pool = ThreadPoolExecutor(workers) if workers > 0 and self.kind == "dir" else None

        def load(i: int) -> np.ndarray:
            return _decode(self._read(self.files[i]), os.path.join(self.path, self.files[i]))

        try:
            for start in range(0, len(mine), batch_size):
                idx = mine[start:start + batch_size]
                arrays = list(pool.map(load, idx)) if pool is not None else [load(i) for i in idx]
                where = [os.path.join(self.path, self.files[i]) for i in idx]
                yield torch.as_tensor(idx, dtype=torch.int64), _stack(arrays, self._shape, where)
        finally:
            if pool is not None:
                pool.shutdown()

    def sample_labels(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.labels is None:
            return torch.zeros([n, 0], dtype=torch.float32)
        idx = torch.randint(0, self.count, [n], generator=generator)
        return torch.from_numpy(self.labels)[idx]


def open_image_source(data: Any) -> ImageSource:
    """An :class:`ImageSource` for a shard directory (or pattern), an image folder or a zip; sources pass through.

    Raises:
        FileNotFoundError: nothing readable at ``data``.
    """
    if isinstance(data, ImageSource):
        return data
    path = os.fspath(data)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "dataset.json")):
        try:
            with open(os.path.join(path, "dataset.json")) as f:
                is_card = json.load(f).get("format") == "sgtrain-shards"
        except (OSError, ValueError, AttributeError):
            is_card = False
        if is_card:
            return ShardSource(path)
    if os.path.isdir(path) or (os.path.isfile(path) and zipfile.is_zipfile(path)):
        return FolderSource(path)
    if os.path.isfile(path) and path.endswith(".json"):
        return ShardSource(path)
    if not os.path.exists(path) and ("{" in path or "://" in path or path.startswith("pipe:")):
        return ShardSource(path)
    raise MissingFileError(f"no image data at {path!r}: expected a shard directory written by `sgtrain-data pack`, "
                            f"an image folder or a zip of images")
