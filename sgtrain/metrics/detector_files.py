"""Where the metrics' feature-network files are: NVlabs' names and URLs, the places searched, file hashes.

Kept free of torch so that a missing file is reported at once, before the heavy imports. See
:mod:`sgtrain.metrics.detectors` for the search order and for opening the files.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass

from sgtrain.errors import FileContentError, UserError

__all__ = [
    "DETECTORS",
    "DetectorInfo",
    "DetectorNotFoundError",
    "default_cache_dir",
    "default_detector_dir",
    "dnnlib_download_dirs",
    "file_sha256",
    "find_detector_file",
    "not_found_message",
]


@dataclass(frozen=True)
class DetectorInfo:
    """A feature network NVlabs publishes: its file names and URLs (stylegan3 first, then stylegan2-ada-pytorch)."""

    kind: str
    file_names: tuple[str, ...]
    urls: tuple[str, ...]
    used_by: str


_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/"
_ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"

DETECTORS: dict[str, DetectorInfo] = {
    "inception": DetectorInfo(
        kind="inception",
        file_names=("inception-2015-12-05.pkl", "inception-2015-12-05.pt"),
        urls=(_NGC + "inception-2015-12-05.pkl", _ADA + "inception-2015-12-05.pt"),
        used_by="FID, KID and IS",
    ),
    "vgg16": DetectorInfo(
        kind="vgg16",
        file_names=("vgg16.pkl", "vgg16.pt"),
        urls=(_NGC + "vgg16.pkl", _ADA + "vgg16.pt"),
        used_by="precision/recall and PPL",
    ),
}


class DetectorNotFoundError(UserError, FileNotFoundError):
    """No file of the feature network a metric needs: the message names the file, its URL and the option."""


def dnnlib_download_dirs() -> list[str]:
    """Directories where NVlabs' ``dnnlib.util.open_url`` keeps downloads, in the order dnnlib chooses them.

    ``$DNNLIB_CACHE_DIR/downloads``, ``$HOME/.cache/dnnlib/downloads``, ``$USERPROFILE/.cache/dnnlib/downloads``,
    ``<tempdir>/.cache/dnnlib/downloads`` (every one that applies; dnnlib itself uses the first).
    """
    out = []
    if os.environ.get("DNNLIB_CACHE_DIR"):
        out.append(os.path.join(os.environ["DNNLIB_CACHE_DIR"], "downloads"))
    for var in ("HOME", "USERPROFILE"):
        if os.environ.get(var):
            out.append(os.path.join(os.environ[var], ".cache", "dnnlib", "downloads"))
    out.append(os.path.join(tempfile.gettempdir(), ".cache", "dnnlib", "downloads"))
    return list(dict.fromkeys(out))


def _dnnlib_cached(url: str) -> str | None:
    """The file ``dnnlib.util.open_url(url)`` would read from its cache: ``<dir>/<md5(url)>_*`` (exactly one)."""
    md5 = hashlib.md5(url.encode("utf-8")).hexdigest()
    for d in dnnlib_download_dirs():
        hits = [f for f in glob.glob(os.path.join(d, md5 + "_*")) if os.path.isfile(f)]
        if len(hits) == 1:
            return hits[0]
    return None


def default_cache_dir() -> str:
    """``$SGTRAIN_CACHE_DIR/metrics`` when set, else ``~/.cache/sgtrain/metrics`` (or the temp dir without HOME)."""
    root = os.environ.get("SGTRAIN_CACHE_DIR")
    if not root:
        home = os.environ.get("HOME") or os.environ.get("USERPROFILE")
        root = os.path.join(home, ".cache", "sgtrain") if home else os.path.join(tempfile.gettempdir(), "sgtrain")
    return os.path.join(root, "metrics")


def default_detector_dir(cache_dir: str | os.PathLike | None = None) -> str:
    """``<cache_dir>/detectors``; ``cache_dir`` defaults to :func:`default_cache_dir`."""
    return os.path.join(os.fspath(cache_dir) if cache_dir is not None else default_cache_dir(), "detectors")


def not_found_message(kind: str, option: str = "--detector PATH (detector= in the API)",
                      cache_dir: str | os.PathLike | None = None, given: str | None = None) -> str:
    """The message of :class:`DetectorNotFoundError`: file name, NVlabs' URLs, the option and the places searched."""
    info = DETECTORS[kind]
    head = f"'{given}' does not exist. " if given else ""
    return (
        f"{head}{info.used_by} need NVlabs' {info.kind} feature network, file {info.file_names[0]} (or "
        f"{info.file_names[1]}); sgtrain never downloads it. Download it once from {info.urls[0]} (or "
        f"{info.urls[1]}) and pass it with {option}, or put it in {default_detector_dir(cache_dir)}/, or leave it "
        f"where NVlabs' code caches downloads (DIR/<md5 of the URL>_<file name>, DIR = "
        f"{' or '.join(dnnlib_download_dirs()[:2])})."
    )


def find_detector_file(kind: str, path: str | os.PathLike | None = None,
                       cache_dir: str | os.PathLike | None = None) -> str:
    """Locate the file of feature network ``kind`` ('inception' or 'vgg16') without opening it.

    Args:
        kind: 'inception' or 'vgg16'.
        path: explicit file; when given it must exist (no other place is searched).
        cache_dir: sgtrain's metrics cache directory (its ``detectors/`` folder is searched).

    Returns:
        The path of an existing file.

    Raises:
        DetectorNotFoundError: nothing found (message: file name, URL, option, places searched).
        KeyError: unknown kind.
    """
    if kind not in DETECTORS:
        raise FileContentError(f"unknown feature network {kind!r}; known: {sorted(DETECTORS)}")
    if path is not None:
        if os.path.isfile(path):
            return os.fspath(path)
        raise DetectorNotFoundError(not_found_message(kind, cache_dir=cache_dir, given=os.fspath(path)))
    info = DETECTORS[kind]
    local = default_detector_dir(cache_dir)
    for name in info.file_names:
        candidate = os.path.join(local, name)
        if os.path.isfile(candidate):
            return candidate
    for url in info.urls:
        hit = _dnnlib_cached(url)
        if hit is not None:
            return hit
    raise DetectorNotFoundError(not_found_message(kind, cache_dir=cache_dir))


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, remembered per (path, size, mtime) for the process."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        from sgtrain.io.atomic import file_sha256 as _plain_sha256

        _SHA_CACHE[key] = _plain_sha256(path)
    return _SHA_CACHE[key]
