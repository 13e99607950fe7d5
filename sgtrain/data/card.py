"""The dataset card: ``dataset.json`` written next to the shards by ``sgtrain-data pack``.

The card is the single description of a packed dataset that the rest of sgtrain reads: the datamodule takes the
resolution, channel count, label dimension and the shard list (with per-shard sample counts) from it, and the training
module takes the label distribution from it to draw conditioning labels for generated images.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from sgtrain.errors import InputError, MissingFileError

CARD_NAME = "dataset.json"
CARD_FORMAT = "sgtrain-shards"
CARD_VERSION = 1


@dataclass
class ShardInfo:
    """One tar shard of a packed dataset.

    Attributes:
        name: file name relative to the card's directory, e.g. ``ffhq-000000.tar``.
        count: number of samples (images) in the shard.
        sha256: hex SHA-256 of the shard file, for integrity checks after copies to other storage.
        size: shard size in bytes.
    """

    name: str
    count: int
    sha256: str
    size: int = 0


@dataclass
class DatasetCard:
    """Description of a packed dataset (contents of ``OUT/dataset.json``).

    Attributes:
        name: dataset name; shard files are ``<name>-NNNNNN.tar``.
        count: total number of samples over all shards.
        resolution: the longer image side in pixels (a power of two: the networks' ``img_resolution``); every image
            is ``resolution x resolution`` unless ``width``/``height`` say otherwise.
        channels: 3 (RGB), 1 (grayscale) or 4 (RGBA).
        c_dim: label dimension; 0 for an unconditional dataset. Class labels are stored as an integer class index
            (sample field ``cls``) and become float32 one-hot vectors of length ``c_dim``; vector labels (NVlabs
            dataset.json with lists of floats) are stored as ``lbl.json`` and kept as they are.
        label_type: ``None`` (no labels), ``"class"`` or ``"vector"``.
        label_names: one name per class (folder name, or the class index as a string for NVlabs labels); empty for
            vector labels and unconditional datasets.
        class_counts: number of samples per class (length ``c_dim``) for class labels; the empirical label
            distribution that :meth:`sample_labels` draws from.
        shards: the shards in order, each with count and sha256.
        pack: the pack options and statistics (source, crop, filter, skipped count, ...).
        format, version: card format identifier.
        width, height: image width and height in pixels for a W x H dataset (``--resolution WxH``); None = square
            (``resolution``). Read them through :attr:`size`.
        storage: how each image is stored in the shards: ``"png"`` (member ``<key>.png``, lossless; the default and
            what cards without the field mean) or ``"raw"`` (``sgtrain-data pack --storage raw``: member
            ``<key>.npy``, the decoded uint8 [H, W, C] array, read without a decode; see
            :func:`sgtrain.data.decode.decode_raw`).
    """

    name: str
    count: int
    resolution: int
    channels: int
    c_dim: int = 0
    label_type: str | None = None
    label_names: list[str] = field(default_factory=list)
    class_counts: list[int] = field(default_factory=list)
    shards: list[ShardInfo] = field(default_factory=list)
    pack: dict[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT
    version: int = CARD_VERSION
    width: int | None = None
    height: int | None = None
    storage: str = "png"

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of every image in pixels."""
        return int(self.width or self.resolution), int(self.height or self.resolution)

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """The card as a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetCard:
        """Build a card from a parsed ``dataset.json``.

        Raises:
            ValueError: the dict is not an sgtrain dataset card (for example an NVlabs ``dataset.json``, which only
                holds labels: pack that dataset with ``sgtrain-data pack`` first), or its ``storage`` is unknown.
        """
        if d.get("format") != CARD_FORMAT:
            raise InputError(
                "this dataset.json is not an sgtrain dataset card (no 'format': 'sgtrain-shards'); "
                "if it is an NVlabs dataset, pack it first with `sgtrain-data pack SRC OUT --resolution R`"
            )
        d = dict(d)
        from .decode import STORAGES

        if d.get("storage", "png") not in STORAGES:
            raise InputError(f"dataset.json says storage {d.get('storage')!r}, which this sgtrain cannot read (it "
                             f"reads {', '.join(STORAGES)}): update sgtrain, or repack with --storage png")
        d["shards"] = [ShardInfo(**s) for s in d.get("shards", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, directory: str | os.PathLike) -> str:
        """Write ``directory/dataset.json`` atomically; returns its path."""
        from sgtrain.io.atomic import atomic_write

        path = os.path.join(os.fspath(directory), CARD_NAME)

        def write(tmp: str) -> None:
            with open(tmp, "w") as f:
                json.dump(self.to_dict(), f, indent=2)
                f.write("\n")

        atomic_write(path, write)
        return path

    # ---------------------------------------------------------------- labels
    @property
    def label_shape(self) -> list[int]:
        """``[c_dim]`` (NVlabs' ``label_shape``)."""
        return [self.c_dim]

    @property
    def has_labels(self) -> bool:
        return self.c_dim > 0

    def label_probabilities(self) -> np.ndarray:
        """Empirical class frequencies, float64 [c_dim] summing to 1 (class labels only).

        Raises:
            ValueError: the dataset has no class labels.
        """
        if self.label_type != "class" or not self.class_counts:
            raise InputError(f"dataset '{self.name}' has no class labels (label_type={self.label_type!r})")
        counts = np.asarray(self.class_counts, dtype=np.float64)
        return counts / counts.sum()

    def sample_labels(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> torch.Tensor:
        """Draw ``n`` conditioning labels from the dataset's label distribution.

        This is what a conditional GAN feeds the generator for fake images (NVlabs draws the label of a random
        training image; drawing from the class frequencies is the same distribution without reading images).

        Args:
            n: number of labels.
            generator: optional torch RNG for reproducible draws.
            device: device of the result.

        Returns:
            float32 [n, c_dim]: one-hot rows for class labels; [n, 0] for an unconditional dataset.

        Raises:
            NotImplementedError: vector labels (draw from ``labels.npy`` with :func:`sample_vector_labels`).
        """
        if self.c_dim == 0:
            return torch.zeros([n, 0], dtype=torch.float32, device=device)
        if self.label_type != "class":
            raise NotImplementedError(
                "vector labels: use sgtrain.data.sample_vector_labels(card_dir, n) which draws rows of labels.npy"
            )
        probs = torch.as_tensor(self.label_probabilities(), dtype=torch.float64)
        idx = torch.multinomial(probs, n, replacement=True, generator=generator)
        return torch.nn.functional.one_hot(idx, self.c_dim).to(dtype=torch.float32, device=device)

    def summary(self) -> str:
        """Human-readable multi-line summary (what ``sgtrain-data inspect`` prints)."""
        lines = [
            f"name        {self.name}",
            f"count       {self.count}",
            f"resolution  {self.size[0]}x{self.size[1]}",
            f"channels    {self.channels}",
            f"storage     {self.storage}" + (" (decoded uint8 arrays, .npy)" if self.storage == "raw" else ""),
            f"labels      {self.label_type or 'none'} (c_dim={self.c_dim})",
        ]
        if self.label_names:
            names = ", ".join(
                f"{n}:{c}" for n, c in zip(self.label_names, self.class_counts or [None] * len(self.label_names))
            )
            lines.append(f"classes     {names}")
        total = sum(s.size for s in self.shards)
        lines.append(f"shards      {len(self.shards)} ({total / 1e6:.1f} MB)")
        for s in self.shards:
            lines.append(f"  {s.name}  {s.count} samples  {s.size / 1e6:.1f} MB  sha256 {s.sha256[:16]}...")
        if self.pack:
            lines.append("pack        " + json.dumps(self.pack, sort_keys=True))
        return "\n".join(lines)


def size_of(card: DatasetCard | dict[str, Any]) -> tuple[int, int]:
    """``(width, height)`` of a card or of its parsed ``dataset.json`` dict."""
    if isinstance(card, DatasetCard):
        return card.size
    res = int(card["resolution"])
    return int(card.get("width") or res), int(card.get("height") or res)


def init_res_of(width: int, height: int) -> list[int]:
    """``[h0, w0]``, the 4x4 level of a network of ``img_resolution = max(width, height)`` that outputs
    ``height x width`` images (StyleGAN2's ``init_res``): ``[4, 4]`` for square data, ``[2, 4]`` for 64x32.

    Raises:
        ValueError: the longer side is not a power of two >= 4, or a side is not a multiple of ``longer / 4``
            (no network doubles its way from a whole-pixel first block to that shape).
    """
    res = max(width, height)
    if res < 4 or res & (res - 1):
        raise ValueError(f"{width}x{height}: the longer side must be a power of two >= 4")
    step = res // 4
    if width % step or height % step:
        raise ValueError(f"{width}x{height}: each side must be a multiple of {step} (the longer side / 4), so that the "
                         f"first 4-pixel block doubles up to it (e.g. {res}x{res // 2} or {res}x{3 * step})")
    return [height // step, width // step]


def load_card(path: str | os.PathLike) -> DatasetCard:
    """Read a dataset card from a directory holding ``dataset.json`` or from the json file itself.

    Raises:
        FileNotFoundError: no card there (pack the data first with ``sgtrain-data pack``).
        ValueError: the file is not an sgtrain card.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, CARD_NAME)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"no dataset card at {path}; pack the images first with `sgtrain-data pack SRC OUT --resolution R`"
        )
    with open(path) as f:
        return DatasetCard.from_dict(json.load(f))


LABELS_NAME = "labels.npy"


@functools.lru_cache(maxsize=8)
def _load_labels(path: str, mtime_ns: int, size: int) -> torch.Tensor:
    labels = np.load(path)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise InputError(f"{path} must hold a float array [count, c_dim] with count > 0, got shape {labels.shape}")
    return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))


def load_vector_labels(card_dir: str | os.PathLike) -> torch.Tensor:
    """The vector labels of a pack directory, ``labels.npy`` as float32 [count, c_dim], read once per process.

    The file is read on the first call and kept (keyed by its path, size and modification time, so a repacked
    directory is read again); later calls return the same tensor without touching the disk. Treat it as read-only.

    Raises:
        FileNotFoundError: no ``labels.npy`` in ``card_dir``.
        ValueError: the array is not 2-D or is empty.
    """
    path = os.path.abspath(os.path.join(os.fspath(card_dir), LABELS_NAME))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise MissingFileError(
            f"no {LABELS_NAME} in {os.fspath(card_dir)}: vector-labelled datasets keep their labels there "
            "(written by `sgtrain-data pack`); repack the dataset, or train unconditionally with dataset.cond=false"
        ) from None
    return _load_labels(path, st.st_mtime_ns, st.st_size)


def sample_vector_labels(card_dir: str | os.PathLike, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` rows of ``labels.npy`` (vector-labelled datasets) uniformly with replacement, float32 [n, c_dim].

    The file is read once per process (:func:`load_vector_labels`), not at every call.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_vector_labels`.
    """
    labels = load_vector_labels(card_dir)
    idx = torch.randint(0, labels.shape[0], [n], generator=generator)
    return labels[idx]


def local_dir_of(path: str | os.PathLike | list | tuple) -> str | None:
    """The local directory of a dataset location, or None when it is remote.

    A pack directory is its own directory; ``dataset.json``, a shard file, a local brace pattern or a list of local
    shards give the directory of the (first) file; ``file://`` is stripped. URLs (``http://``, ``s3://`` ...) and
    ``pipe:`` commands give None.
    """
    first = path[0] if isinstance(path, (list, tuple)) and path else path
    if isinstance(first, (list, tuple)):
        return None
    p = os.fspath(first)
    if p.startswith("file://"):
        p = p[len("file://") :]
    elif p.startswith("pipe:") or "://" in p:
        return None
    if os.path.isdir(p):
        return p
    d = os.path.dirname(p) or "."
    return d if os.path.isdir(d) else None
