"""Pack an image folder, zip, NVlabs dataset zip or LMDB into webdataset tar shards plus a dataset card.

Output layout (``OUT`` is a directory):

- ``OUT/<name>-000000.tar``, ``OUT/<name>-000001.tar``, ...: webdataset shards. Each sample has ``__key__`` = its
  8-digit index in packing order, ``png`` (the image, lossless, W x H, L, RGB or RGBA) or, with ``storage="raw"``,
  ``npy`` (the decoded uint8 [H, W, C] array, ``np.save`` without pickles), and ``cls``
  (class index as text) or ``json`` (``{"label": [floats]}``) when the dataset has labels.
- ``OUT/dataset.json``: the :class:`~sgtrain.data.card.DatasetCard`.
- ``OUT/skipped.txt``: one line ``<path inside SRC>\\t<reason>`` per input that was not packed.
- ``OUT/index.tsv``: one line ``<key>\\t<shard>\\t<path inside SRC>`` per packed sample, to trace an image back.
- ``OUT/labels.npy``: float32 [count, c_dim], only for vector labels.

Packing is deterministic: inputs are read in a fixed order (the sorted paths permuted with a fixed seed, or sorted with
``order="sorted"``; LMDB key order) and written in that order whatever the number of worker processes, and tar
headers carry a fixed mtime, so the same SRC and options give byte-identical shards.
"""

from __future__ import annotations

import collections
import glob
import io
import json
import multiprocessing as mp
import os
import random
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from sgtrain.errors import UserError
from sgtrain.io.atomic import file_sha256

from .card import CARD_NAME, DatasetCard, ShardInfo
from .decode import STORAGES, encode_raw

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SKIPPED_NAME = "skipped.txt"
INDEX_NAME = "index.tsv"
ORDER_SEED = 0  # the packing order's permutation seed: fixed, so that packs are reproducible
MAX_MEMBER_BYTES = 1 << 30  # a tar member declaring more than this is skipped unread (no image is 1 GiB encoded)
LABEL_MODES = ("auto", "none", "folders")
TAR_EXTS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_RESAMPLE = {"box": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}


class PackError(UserError, ValueError):
    """A pack that cannot start or cannot produce a dataset (the CLI exits with status 2)."""


def parse_size(text: str | int | float) -> int:
    """Parse a byte size: ``1GB`` = 1e9, ``512MB``, ``64KiB`` = 65536, ``1e9``, ``1000000``.

    Raises:
        PackError: unparseable text.
    """
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?)(i?)B?\s*", text.strip(), flags=re.IGNORECASE)
    if not m:
        raise PackError(f"cannot parse size {text!r}; write it like 1GB, 256MB, 64MiB or a number of bytes")
    value = float(m.group(1))
    unit = m.group(2).upper()
    base = 1024 if m.group(3) else 1000
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]
    return int(value * base**power)


# ----------------------------------------------------------------------------------------------- sources


@dataclass
class _Source:
    """Everything the packer needs from an input: the ordered candidates, labels and a byte reader."""

    kind: str  # folder | zip | nvlabs-zip | nvlabs-folder | tar | lmdb
    path: str
    names: list[str] = field(default_factory=list)  # image candidates in packing order (not used for lmdb)
    pre_skipped: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, Any] | None = None  # name -> int class or list of floats
    label_type: str | None = None
    label_names: list[str] = field(default_factory=list)
    total: int = 0
    tar_members: dict[str, tarfile.TarInfo] = field(default_factory=dict)  # tar only: the listed members

    def iter_bytes(self) -> Iterator[tuple[str, bytes | None, str | None]]:
        """Yield ``(name, data, error)`` in packing order; ``data`` is None when the read failed."""
        if self.kind in ("folder", "nvlabs-folder"):
            for name in self.names:
                try:
                    with open(os.path.join(self.path, name), "rb") as f:
                        yield name, f.read(), None
                except OSError as e:
                    yield name, None, f"unreadable: {e.strerror or e}"
        elif self.kind in ("zip", "nvlabs-zip"):
            with zipfile.ZipFile(self.path) as zf:
                for name in self.names:
                    try:
                        yield name, zf.read(name), None
                    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
                        yield name, None, f"unreadable zip member: {e}"
        elif self.kind == "tar":
            with tarfile.open(self.path, "r:*") as tf:
                for name in self.names:
                    m = self.tar_members[name]
                    if m.size > MAX_MEMBER_BYTES:
                        yield name, None, f"tar member declares {m.size} bytes, over {MAX_MEMBER_BYTES} (not read)"
                        continue
                    try:
                        f = tf.extractfile(m)
                        data = f.read(m.size) if f is not None else b""
                        if len(data) != m.size:
                            raise tarfile.ReadError(f"{len(data)} of {m.size} bytes")
                        yield name, data, None
                    except (OSError, tarfile.TarError, EOFError) as e:
                        yield name, None, f"unreadable tar member: {e}"
        elif self.kind == "lmdb":
            lmdb = _import_lmdb()

            env = lmdb.open(self.path, readonly=True, lock=False, readahead=False, max_readers=1, subdir=True)
            try:
                with env.begin(write=False) as txn:
                    for key, value in txn.cursor():
                        yield key.decode("utf-8", "replace"), bytes(value), None
            finally:
                env.close()
        else:  # pragma: no cover
            raise AssertionError(self.kind)


def _ext(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _read_nvlabs_labels(raw: bytes, where: str) -> dict[str, Any] | None:
    try:
        labels = json.loads(raw.decode("utf-8")).get("labels")
    except (ValueError, AttributeError) as e:
        raise PackError(f"{where}: dataset.json is not valid NVlabs label JSON ({e}); fix or remove it") from e
    if labels is None:
        return None
    return {str(k).replace("\\", "/"): v for k, v in labels}


def _split_candidates(names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    keep, skipped = [], []
    for n in names:
        if _ext(n) in IMAGE_EXTS:
            keep.append(n)
        else:
            skipped.append((n, f"not an image file (extension {_ext(n) or 'none'!r})"))
    return keep, skipped


def _folder_class_labels(names: list[str]) -> tuple[dict[str, int], list[str]] | None:
    """Labels from first-level folder names, when every image lies in one and there are at least two."""
    tops = []
    for n in names:
        parts = n.split("/")
        if len(parts) < 2:
            return None
        tops.append(parts[0])
    classes = sorted(set(tops))
    if len(classes) < 2:
        return None
    index = {c: i for i, c in enumerate(classes)}
    return {n: index[t] for n, t in zip(names, tops)}, classes


def _is_lmdb(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "data.mdb"))


def _import_lmdb() -> Any:
    try:
        import lmdb
    except ImportError:
        raise PackError("packing an LMDB needs the lmdb package: pip install lmdb (or sgtrain[lmdb])") from None
    return lmdb


_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF8")


def _looks_like_image(value: bytes) -> bool:
    """Whether bytes start like an encoded JPEG, PNG, WebP, BMP or GIF (what LSUN's LMDB values are)."""
    return value.startswith(_IMAGE_MAGIC) or (value[:4] == b"RIFF" and value[8:12] == b"WEBP")


def _check_lsun_layout(src: str, env: Any, probe: int = 16) -> None:
    """Refuse an LMDB that is not LSUN's layout (one encoded image per value, in the main database).

    Looks at the first ``probe`` entries: at least one must be an encoded image. Other LMDBs seen in GAN code keep a
    ``length`` key and ``<size>-<index>`` keys (rosinality's prepare_data.py), named sub-databases, or pickled arrays.

    Raises:
        PackError: naming what was found and the fix.
    """
    keys: list[bytes] = []
    images = 0
    with env.begin(write=False) as txn:
        for key, value in txn.cursor():
            keys.append(bytes(key))
            images += _looks_like_image(bytes(value[:16]))
            if len(keys) >= probe:
                break
        has_length = txn.get(b"length") is not None
    shown = ", ".join(repr(k.decode("utf-8", "replace")[:40]) for k in keys[:3])
    if has_length:
        raise PackError(f"LMDB {src!r} is not in LSUN's layout: it has a 'length' key and keys like {shown}, as "
                        "rosinality's prepare_data.py writes (every image at several sizes); pack the image folder it "
                        "was made from instead")
    if images:
        return
    hint = ("export its images to a folder (one encoded image file each) and pack that folder, or pass LSUN's own "
            "<category>_<split>_lmdb directory")
    raise PackError(f"LMDB {src!r} is not in LSUN's layout (one JPEG/PNG/WebP image per value): none of its first "
                    f"{len(keys)} values is an encoded image (keys {shown}); {hint}")


def _tar_members(src: str) -> tuple[dict[str, tarfile.TarInfo], tuple[str, str] | None]:
    """The regular-file members of a tar up to the first damaged header or truncated member, and that damage.

    Returns:
        ``({name: TarInfo}, None)``, or with ``(where, reason)`` when the listing stopped early (what was listed
        before it is still packed; the rest is skipped and listed).

    Raises:
        PackError: not even the first header can be read.
    """
    members: dict[str, tarfile.TarInfo] = {}
    try:
        tf = tarfile.open(src, "r:*")
    except (OSError, tarfile.TarError, EOFError) as e:
        raise PackError(f"cannot read tar {src!r} ({e}): check it with tar -tf or unpack it") from e
    with tf:
        try:
            for m in tf:
                if m.isfile():
                    members[m.name] = m
        except (OSError, tarfile.TarError, EOFError) as e:
            last = next(reversed(members)) if members else "(start)"
            return members, (f"(rest of the tar after {last})", f"damaged or truncated tar: {e}")
    return members, None


def _is_tar(path: str) -> bool:
    try:
        return os.path.isfile(path) and tarfile.is_tarfile(path)
    except OSError:
        return False


def open_source(src: str, labels: str = "auto", exclude: str | None = None, order: str = "shuffled") -> _Source:
    """Scan SRC and decide its kind, candidates and labels.

    Args:
        src: folder (recursive), ``.zip`` file, NVlabs dataset folder/zip (``dataset.json`` at its root), a tar
            (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``), or an LSUN LMDB directory (holding
            ``data.mdb``) or the ``data.mdb`` file itself.
        labels: ``auto`` (NVlabs dataset.json, else first-level folder names), ``folders`` (first-level folder names
            only; a dataset.json is ignored) or ``none``.
        exclude: a directory inside SRC to leave out (the pack output when it lies inside SRC).
        order: ``shuffled`` (sorted paths permuted by a fixed seed) or ``sorted``; LMDB keeps its key order.

    Raises:
        PackError: SRC missing, of an unknown kind, without any file, an LMDB not in LSUN's layout, or
            ``labels="folders"`` on images that are not all in one of at least two first-level folders.
    """
    if labels not in LABEL_MODES:
        raise PackError(f"--labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")
    if not os.path.exists(src):
        raise PackError(f"source {src!r} does not exist; give a folder, a .zip, a .tar or an LMDB directory")
    if os.path.isfile(src) and os.path.basename(src) == "data.mdb":
        src = os.path.dirname(os.path.abspath(src))
    if _is_lmdb(src):
        lmdb = _import_lmdb()
        if labels == "folders":
            raise PackError(f"--labels folders: LMDB {src!r} has no folders; use --labels none (LSUN is unlabelled)")
        try:
            env = lmdb.open(src, readonly=True, lock=False, readahead=False, max_readers=1)
        except lmdb.Error as e:
            raise PackError(f"cannot open LMDB {src!r}: {e}") from e
        try:
            total = env.stat()["entries"]
            if total == 0:
                raise PackError(f"LMDB {src!r} is empty; nothing to pack")
            _check_lsun_layout(src, env)
        finally:
            env.close()
        return _Source(kind="lmdb", path=src, total=total)

    tar_error = None
    if os.path.isdir(src):
        names = []
        excl = os.path.realpath(exclude) if exclude else None
        for root, dirs, files in os.walk(src):
            if excl is not None:
                dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) != excl]
            for f in files:
                names.append(os.path.relpath(os.path.join(root, f), src).replace(os.sep, "/"))
        kind = "folder"

        def reader(n: str) -> bytes:
            with open(os.path.join(src, n), "rb") as f:
                return f.read()
    elif zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
        kind = "zip"

        def reader(n: str) -> bytes:
            with zipfile.ZipFile(src) as zf:
                return zf.read(n)
    elif src.lower().endswith(TAR_EXTS) or _is_tar(src):
        members, tar_error = _tar_members(src)
        names = list(members)
        kind = "tar"

        def reader(n: str) -> bytes:
            m = members[n]
            if m.size > MAX_MEMBER_BYTES:
                raise PackError(f"{src}: {n} declares {m.size} bytes; remove it from the tar")
            with tarfile.open(src, "r:*") as tf:
                f = tf.extractfile(n)
                return f.read(m.size) if f is not None else b""
    else:
        raise PackError(f"source {src!r} is neither a folder, a zip, a tar nor an LMDB directory (holding data.mdb)")

    names.sort()
    if not names:
        raise PackError(f"source {src!r} is empty; put images (png, jpg, jpeg, webp, bmp) in it")

    source = _Source(kind=kind, path=src)
    if kind == "tar":
        source.tar_members = members
        if tar_error:
            source.pre_skipped.append(tar_error)
    nv = None
    if "dataset.json" in names:
        names.remove("dataset.json")
        if labels == "auto":
            nv = _read_nvlabs_labels(reader("dataset.json"), src)
            source.kind = {"zip": "nvlabs-zip", "folder": "nvlabs-folder"}.get(kind, kind)
    source.names, source.pre_skipped = _split_candidates(names)
    if labels == "auto":
        if nv is not None:
            source.labels = nv
            values = list(nv.values())
            if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
                c_dim = int(max(values)) + 1
                source.label_type = "class"
                source.label_names = [str(i) for i in range(c_dim)]
            else:
                source.label_type = "vector"
        else:
            fl = _folder_class_labels(source.names)
            if fl is not None:
                source.labels, source.label_names = fl
                source.label_type = "class"
    elif labels == "folders":
        fl = _folder_class_labels(source.names)
        if fl is None:
            flat = next((n for n in source.names if "/" not in n), None)
            why = (f"{flat!r} is not in a sub-folder" if flat is not None
                   else "they all lie in one sub-folder (a class label needs at least two)")
            raise PackError(f"--labels folders: the images of {src!r} must each lie in a first-level sub-folder named "
                            f"after its class, at least two of them, but {why}; move them, or use --labels none")
        source.labels, source.label_names = fl
        source.label_type = "class"
    source.total = len(source.names)
    if order == "shuffled":
        random.Random(ORDER_SEED).shuffle(source.names)
    if source.total == 0:
        raise PackError(
            f"source {src!r} holds no image files (png, jpg, jpeg, webp, bmp); {len(source.pre_skipped)} other files"
        )
    return source


# ------------------------------------------------------------------------------------------- image work


CROPS = ("center", "none", "center-crop", "center-crop-wide")


def parse_resolution(text: str | int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(width, height)`` from ``256`` or ``"256"`` (square) or ``"512x384"`` (NVlabs' dataset_tool form, W x H).

    Raises:
        PackError: unparseable, or a side below 4.
    """
    if isinstance(text, (tuple, list)):
        w, h = (int(v) for v in text)
    elif isinstance(text, (int, np.integer)):
        w = h = int(text)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
        if not m:
            raise PackError(f"--resolution {text!r}: give a side (256) or width x height (512x384)")
        w = int(m.group(1))
        h = int(m.group(2)) if m.group(2) else w
    if min(w, h) < 4:
        raise PackError(f"--resolution must be at least 4 on each side, got {w}x{h}")
    return w, h


@dataclass(frozen=True)
class _Options:
    resolution: int  # the longer output side
    crop: str
    resize_filter: str
    channels: int
    allow_upscale: bool
    width: int = 0  # 0 = resolution
    height: int = 0
    storage: str = "png"  # png | raw (uint8 .npy)

    @property
    def size(self) -> tuple[int, int]:
        return self.width or self.resolution, self.height or self.resolution


_OPTS: _Options | None = None


def _init_worker(opts: _Options) -> None:
    global _OPTS
    _OPTS = opts
    # The parent's torch thread pool is of no use in a decode worker and would oversubscribe the cores.
    os.environ["OMP_NUM_THREADS"] = "1"


def _flatten(img: Image.Image, channels: int) -> Image.Image:
    """First frame, 16-bit and float scaled to 8-bit, converted to L (1), RGB (3) or RGBA (4).

    With 1 or 3 channels, transparency is composited on white (the default); with 4 it is kept as the alpha channel
    (an image without transparency gets alpha 255).
    """
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        scale = 255.0 / 65535.0 if img.mode != "F" else 255.0
        img = Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), "L")
    if channels == 4:
        return img.convert("RGBA")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        img = white
    return img.convert("RGB" if channels == 3 else "L")


def process_image(data: bytes, opts: _Options) -> tuple[bytes | None, str | None]:
    """Decode, flatten, crop and resize one image, encode it as PNG (or as a raw uint8 ``.npy`` array).

    Returns:
        ``(stored_bytes, None)`` on success, ``(None, reason)`` when the image is skipped.
    """
    if not data:
        return None, "empty file"
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        img = _flatten(img, opts.channels)
    except Image.DecompressionBombError as e:
        return None, f"too large to decode safely: {e}"
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            return None, f"truncated image: {msg}"
        if isinstance(e, Image.UnidentifiedImageError):
            return None, "not a decodable image (corrupt or unknown format)"
        return None, f"corrupt image: {msg}"
    w, h = img.size
    W, H = opts.size
    if opts.crop == "center":  # the largest centred box of the output's aspect W:H
        if w * H >= h * W:
            bw, bh = h * W / H, h
        else:
            bw, bh = w, w * H / W
        box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
    elif opts.crop == "center-crop":  # NVlabs: the largest centred square, resized to W x H
        s = min(w, h)
        bw = bh = s
        box = ((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)
    elif opts.crop == "center-crop-wide":  # NVlabs: full width at the aspect W:H, padded onto a W x W canvas
        ch = int(np.round(W * h / w))
        if w < W or ch < H:
            return None, f"too small for center-crop-wide ({w}x{h}: narrower than {W} or shorter than {H} at {W} wide)"
        bw, bh = w, ch
        box = (0, (h - ch) // 2, w, (h + ch) // 2)
    else:
        if w * H != h * W:
            what = "not square" if W == H else f"not of aspect {W}:{H}"
            return None, f"{what} ({w}x{h}); use --crop center"
        bw, bh = w, h
        box = (0, 0, w, h)
    if (bw < W or bh < H) and not opts.allow_upscale and opts.crop != "center-crop-wide":
        return None, f"too small ({w}x{h} < {W}x{H}); pass --allow-upscale to keep it"
    if (w, h) != (W, H) or box != (0, 0, w, h):
        img = img.resize((W, H), _RESAMPLE[opts.resize_filter], box=box)
    if opts.crop == "center-crop-wide" and H != W:
        canvas = Image.new(img.mode, (W, W), 0)
        canvas.paste(img, (0, (W - H) // 2))
        img = canvas
    if opts.storage == "raw":  # the pixels a decode of the PNG would give (PNG is lossless)
        return encode_raw(np.asarray(img)), None
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue(), None


def _work_chunk(chunk: list[tuple[int, bytes]]) -> list[tuple[int, bytes | None, str | None]]:
    assert _OPTS is not None
    out = []
    for i, data in chunk:
        try:
            png, err = process_image(data, _OPTS)
        except Exception as e:  # noqa: BLE001 - a bad file must never stop the pack
            png, err = None, f"failed to process: {type(e).__name__}: {e}"
        out.append((i, png, err))
    return out


# ------------------------------------------------------------------------------------------------ pack



def _prepare_out(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise PackError(f"output {out!r} exists and is not a directory; choose another OUT")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise PackError(f"output {out!r} already exists and is not empty; pass --overwrite to replace it")
        ours = glob.glob(os.path.join(glob.escape(out), "*-[0-9][0-9][0-9][0-9][0-9][0-9].tar")) + [
            os.path.join(out, n) for n in (CARD_NAME, SKIPPED_NAME, INDEX_NAME, "labels.npy", "grid.png")
        ]
        for p in ours:
            if os.path.isfile(p):
                os.remove(p)
    os.makedirs(out, exist_ok=True)


def pack(
    src: str | os.PathLike,
    out: str | os.PathLike,
    resolution: int | str | tuple[int, int],
    crop: str = "center",
    resize_filter: str = "lanczos",
    channels: int = 3,
    labels: str = "auto",
    shard_size: str | int = "1GB",
    workers: int | None = None,
    allow_upscale: bool = False,
    overwrite: bool = False,
    name: str | None = None,
    progress: bool = True,
    order: str = "shuffled",
    storage: str = "png",
) -> DatasetCard:
    """Pack images from ``src`` into webdataset shards in ``out`` and write the dataset card.

    Args:
        src: folder (recursive; png, jpg, jpeg, webp, bmp), zip, NVlabs dataset zip/folder (labels from its
            ``dataset.json``) or LMDB (LSUN-style: values are encoded images).
        out: output directory; created. Refused when it exists and is not empty unless ``overwrite``.
        resolution: output side R (every stored image R x R), or ``"WxH"`` / ``(W, H)`` (NVlabs' dataset_tool form:
            width x height). A non-square W x H needs its longer side a power of two and each side a multiple of
            that side / 4 (what a StyleGAN2 of ``init_res`` [H, W] * 4 / longer builds, e.g. 64x32, 512x384).
        crop: ``center`` (the largest centred box of aspect W:H, then resize; for a square R the largest centred
            square), ``none`` (images must already have aspect W:H; others skipped), or NVlabs' names:
            ``center-crop`` (the largest centred square resized to W x H) and ``center-crop-wide`` (full width at
            aspect W:H resized to W x H, then padded with black bands onto a W x W canvas: NVlabs' way to train
            wide data on square networks; images narrower than W are skipped).
        resize_filter: ``lanczos`` (as NVlabs' dataset_tool) or ``box`` (area average, faster).
        channels: 3 (RGB), 1 (grayscale) or 4 (RGBA: the alpha channel is kept). With 1 or 3, transparency is
            composited on white.
        labels: ``auto`` (NVlabs dataset.json, else first-level folder names when every image is in one of at
            least two folders) or ``none``.
        shard_size: maximum bytes per shard (``1GB``, ``256MB``, or an int), counted as tar bytes (headers and
            padding included, end-of-archive blocks not); a single sample larger than this gets a shard of its own.
        workers: decode processes; None = number of CPUs; 0 or 1 = in this process.
        allow_upscale: keep images smaller than R (upsampled) instead of skipping them.
        overwrite: replace the shards, card and skip list of an existing ``out``.
        name: shard name prefix; default the basename of ``out``.
        progress: show a tqdm progress bar on stderr.
        order: ``shuffled`` (default): the sorted input paths permuted with a fixed seed, so that shards mix
            classes and folders and a small streaming shuffle buffer suffices; ``sorted``: path order. Both are
            deterministic. LMDB sources keep their key order (LSUN keys are already hash-like).
        storage: ``png`` (default: lossless PNG, decoded by the loader) or ``raw``: each image as its decoded uint8
            [H, W, C] array (a ``.npy`` member, no pickles), so that the loader only checks and copies it: a
            decode-free loader where disk is cheaper than cores (H x W x C bytes an image, 3-10x a photo's PNG).
            The pixels are those the PNG storage decodes to.

    Returns:
        The card that was written to ``out/dataset.json``.

    Raises:
        PackError: missing or empty SRC, existing OUT without overwrite, bad options, or no usable image at all.
    """
    src, out = os.fspath(src), os.fspath(out)
    if crop not in CROPS:
        raise PackError(f"--crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if resize_filter not in _RESAMPLE:
        raise PackError(f"--resize-filter must be one of {sorted(_RESAMPLE)}, got {resize_filter!r}")
    if channels not in (1, 3, 4):
        raise PackError(f"--channels must be 1 (L), 3 (RGB) or 4 (RGBA), got {channels}")
    if storage not in STORAGES:
        raise PackError(f"--storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    width, height = parse_resolution(resolution)
    if crop == "center-crop-wide" and height > width:
        raise PackError(f"--crop center-crop-wide pads W x H onto a W x W canvas and needs W >= H, got {width}x{height}"
                        "; use --crop center")
    if width != height and crop != "center-crop-wide":
        from .card import init_res_of

        try:
            init_res_of(width, height)
        except ValueError as e:
            raise PackError(f"--resolution {width}x{height}: no network builds it ({e}); choose such a size, or "
                            f"--crop center-crop-wide to pad it onto a {width}x{width} square (NVlabs)") from None
    max_bytes = parse_size(shard_size)
    if max_bytes <= 0:
        raise PackError(f"--shard-size must be positive, got {shard_size!r}")
    if order not in ("shuffled", "sorted"):
        raise PackError(f"--order must be 'shuffled' or 'sorted', got {order!r}")
    source = open_source(src, labels=labels, exclude=out, order=order)
    _prepare_out(out, overwrite)
    name = name or os.path.basename(os.path.normpath(os.path.abspath(out))) or "data"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    opts = _Options(max(width, height), crop, resize_filter, int(channels), bool(allow_upscale), width, height,
                    storage)
    out_w, out_h = (width, width) if crop == "center-crop-wide" else (width, height)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)

    import webdataset as wds
    from tqdm import tqdm

    skipped: list[tuple[str, str]] = list(source.pre_skipped)
    shard_counts: dict[str, int] = collections.OrderedDict()
    class_counts = [0] * len(source.label_names)
    vector_labels: list[list[float]] = []
    written = 0
    pattern = os.path.join(out, f"{name}-%06d.tar")
    # An int mtime keeps plain ustar headers (a float one adds a PAX header per member) and makes shards reproducible.
    # The shard size limit is applied here on real tar bytes (ShardWriter's maxsize counts payload only, which
    # underestimates small images by 2-5x).
    writer = wds.ShardWriter(pattern, maxcount=10**12, maxsize=float("inf"), verbose=0, mtime=0)
    shard_bytes = 0
    bar = tqdm(
        total=source.total,
        unit="img",
        desc=f"pack {name}",
        disable=not progress,
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
    )
    index_file = open(os.path.join(out, INDEX_NAME), "w")  # noqa: SIM115 - closed in the finally below

    def write(name_in_src: str, png: bytes) -> None:
        nonlocal written, shard_bytes
        sample: dict[str, Any] = {"__key__": f"{written:08d}", STORAGES[storage]: png}
        if source.labels is not None:
            label = source.labels.get(name_in_src)
            if label is None:
                skipped.append((name_in_src, "no label for this file in dataset.json"))
                return
            if source.label_type == "class":
                if not (0 <= int(label) < len(class_counts)):
                    skipped.append((name_in_src, f"class label {label} out of range"))
                    return
                sample["cls"] = str(int(label))
                class_counts[int(label)] += 1
            else:
                vec = [float(x) for x in np.ravel(np.asarray(label, dtype=np.float64))]
                if vector_labels and len(vec) != len(vector_labels[0]):
                    skipped.append((name_in_src, f"label length {len(vec)} differs from {len(vector_labels[0])}"))
                    return
                sample["json"] = json.dumps({"label": vec}).encode()
                vector_labels.append(vec)
        nbytes = sum(512 + -(-len(v) // 512) * 512 for k, v in sample.items() if k != "__key__")
        if shard_bytes > 0 and shard_bytes + nbytes > max_bytes:
            writer.next_stream()
            shard_bytes = 0
        writer.write(sample)
        shard_bytes += nbytes
        shard_counts[writer.fname] = shard_counts.get(writer.fname, 0) + 1
        index_file.write(f"{sample['__key__']}\t{os.path.basename(writer.fname)}\t{name_in_src}\n")
        written += 1

    def handle(results: list[tuple[int, bytes | None, str | None]], names: dict[int, str]) -> None:
        for i, png, err in results:
            n = names.pop(i)
            if png is None:
                skipped.append((n, err or "unknown error"))
            else:
                write(n, png)
        bar.update(len(results))

    chunk_len = 16
    names: dict[int, str] = {}
    try:
        if workers <= 1:
            _init_worker(opts)
            for i, (n, data, err) in enumerate(source.iter_bytes()):
                names[i] = n
                handle(_work_chunk([(i, data)]) if err is None else [(i, None, err)], names)
        else:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(opts,)) as pool:
                pending: collections.deque = collections.deque()
                chunk: list[tuple[int, bytes]] = []
                for i, (n, data, err) in enumerate(source.iter_bytes()):
                    names[i] = n
                    if err is not None:
                        # Keep the output order: a read failure is queued like a result.
                        if chunk:
                            pending.append(pool.apply_async(_work_chunk, (chunk,)))
                            chunk = []
                        pending.append(_Ready([(i, None, err)]))
                    else:
                        chunk.append((i, data))
                        if len(chunk) >= chunk_len:
                            pending.append(pool.apply_async(_work_chunk, (chunk,)))
                            chunk = []
                    while len(pending) > 4 * workers:
                        handle(pending.popleft().get(), names)
                if chunk:
                    pending.append(pool.apply_async(_work_chunk, (chunk,)))
                while pending:
                    handle(pending.popleft().get(), names)
    finally:
        writer.close()
        bar.close()
        index_file.close()

    skipped.sort()
    with open(os.path.join(out, SKIPPED_NAME), "w") as f:
        for n, reason in skipped:
            f.write(f"{n}\t{reason}\n")

    shards = []
    for path, count in shard_counts.items():
        shards.append(
            ShardInfo(name=os.path.basename(path), count=count, sha256=file_sha256(path), size=os.path.getsize(path))
        )
    # ShardWriter opens a shard before the first write; drop it if nothing went in.
    for path in glob.glob(os.path.join(glob.escape(out), f"{glob.escape(name)}-*.tar")):
        if path not in shard_counts:
            os.remove(path)
    if written == 0:
        raise PackError(
            f"no usable image in {src!r}: all {len(skipped)} inputs were skipped; reasons in {out}/{SKIPPED_NAME}"
        )

    c_dim = len(source.label_names) if source.label_type == "class" else 0
    if source.label_type == "vector":
        arr = np.asarray(vector_labels, dtype=np.float32)
        np.save(os.path.join(out, "labels.npy"), arr)
        c_dim = int(arr.shape[1])
    card = DatasetCard(
        name=name,
        count=written,
        resolution=max(out_w, out_h),
        channels=opts.channels,
        c_dim=c_dim,
        label_type=source.label_type if c_dim > 0 else None,
        label_names=list(source.label_names) if source.label_type == "class" else [],
        class_counts=class_counts if source.label_type == "class" else [],
        shards=shards,
        width=out_w if out_w != out_h else None,
        height=out_h if out_w != out_h else None,
        pack={
            "source": os.path.abspath(src),
            "source_type": source.kind,
            "resolution": opts.resolution if width == height else f"{width}x{height}",
            "crop": crop,
            "resize_filter": resize_filter,
            "channels": opts.channels,
            "labels": labels,
            "order": order if source.kind != "lmdb" else "lmdb-keys",
            "order_seed": ORDER_SEED if order == "shuffled" and source.kind != "lmdb" else None,
            "shard_size": max_bytes,
            "allow_upscale": bool(allow_upscale),
            "inputs": written + len(skipped),
            "skipped": len(skipped),
            "format": STORAGES[storage],
        },
        storage=storage,
    )
    card.save(out)
    return card


class _Ready:
    """A result already known in the main process, queued among pool results to keep the order."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value
