"""``sgtrain-metrics download inception|vgg16``: fetch NVlabs' feature-network file once, check it, keep it.

The file goes to :func:`sgtrain.metrics.detector_files.default_detector_dir` (``~/.cache/sgtrain/metrics/detectors``,
where the metrics look first) or ``--dir``, under NVlabs' file name. It is streamed into a temporary file beside the
destination, its sha256 compared with the value sgtrain records, and only then renamed into place: a wrong hash, a
short read (Content-Length not met), an HTTP error or no network leave nothing behind and raise
:class:`DownloadError` with one line naming the reason.

Hashes: :data:`SHA256` records one value per URL. sgtrain could not download NVlabs' files when this was written
(no internet) and found no published sha256 for them, so the table holds None and a download is refused until the
value is recorded (or given with ``--sha256`` after checking the file another way). Only ``https://`` URLs are
fetched, except ``http://127.0.0.1`` / ``localhost`` (tests).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request

from sgtrain.errors import FileContentError, UserError
from sgtrain.io.atomic import atomic_write
from sgtrain.metrics.detector_files import DETECTORS, default_detector_dir

__all__ = ["SHA256", "DownloadError", "download_detector"]

#: sha256 (hex) of each published file by URL; None = not recorded: the download is refused.
SHA256: dict[str, str | None] = {url: None for info in DETECTORS.values() for url in info.urls}
_CHUNK = 1 << 20


class DownloadError(UserError, RuntimeError):
    """A download that did not produce a verified file (the message names why); nothing was written."""


def _check_url(url: str) -> None:
    u = urllib.parse.urlparse(url)
    local = u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1")
    if u.scheme != "https" and not local:
        raise DownloadError(f"refusing {url}: only https:// URLs are fetched (http only from 127.0.0.1)")


def download_detector(kind: str, dest_dir: str | os.PathLike | None = None, url: str | None = None,
                      sha256: str | None = None, timeout: float = 60.0) -> str:
    """Download feature network ``kind`` ('inception' or 'vgg16') and return the path of the verified file.

    Args:
        kind: 'inception' (FID, KID, IS) or 'vgg16' (precision/recall, PPL).
        dest_dir: folder to write into (created); default :func:`default_detector_dir`.
        url: override NVlabs' URL (tests, mirrors); the file name is taken from its path.
        sha256: the expected hex digest; default the recorded :data:`SHA256` value of the URL.
        timeout: seconds per network operation.

    Returns:
        The file path (``<dest_dir>/<file name>``).

    Raises:
        KeyError: unknown kind.
        DownloadError: no recorded hash, a non-https URL, network or HTTP error, a partial body, a hash mismatch.
    """
    if kind not in DETECTORS:
        raise FileContentError(f"unknown feature network {kind!r}: use one of {', '.join(sorted(DETECTORS))}")
    url = url or DETECTORS[kind].urls[0]
    _check_url(url)
    expected = (sha256 or SHA256.get(url) or "").strip().lower()
    if not expected:
        raise DownloadError(f"sgtrain has no recorded sha256 for {url}, so it will not download it unchecked: "
                            "download it yourself and pass it with --detector, or give --sha256 HEX")
    if len(expected) != 64 or any(ch not in "0123456789abcdef" for ch in expected):
        raise DownloadError(f"--sha256 {expected!r} is not 64 hex digits")
    name = os.path.basename(urllib.parse.urlparse(url).path) or DETECTORS[kind].file_names[0]
    folder = os.fspath(dest_dir) if dest_dir is not None else default_detector_dir()
    os.makedirs(folder, exist_ok=True)
    dest = os.path.join(folder, name)

    def write(tmp: str) -> None:
        digest = hashlib.sha256()
        got = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                length = r.headers.get("Content-Length")
                while True:
                    chunk = r.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
        except urllib.error.HTTPError as e:
            raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"download of {url} failed: {reason} (no network?)") from e
        if length is not None and got != int(length):
            raise DownloadError(f"download of {url} is partial: {got} of {int(length)} bytes")
        if digest.hexdigest() != expected:
            raise DownloadError(f"{url}: sha256 {digest.hexdigest()} differs from the recorded {expected}; "
                                "nothing was written")

    atomic_write(dest, write)
    return dest


def main(argv: list[str]) -> int:
    """``sgtrain-metrics download KIND [--dir D] [--url U] [--sha256 H]``; returns the exit status."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="sgtrain-metrics download",
                                description="Download NVlabs' feature network (inception or vgg16), check its sha256 "
                                            "and keep it where the metrics look.")
    p.add_argument("kind", choices=sorted(DETECTORS))
    p.add_argument("--dir", default=None, help=f"folder (default {default_detector_dir()})")
    p.add_argument("--url", default=os.environ.get("SGTRAIN_DETECTOR_URL"), help="another URL (or "
                   "$SGTRAIN_DETECTOR_URL)")
    p.add_argument("--sha256", default=os.environ.get("SGTRAIN_DETECTOR_SHA256"), help="expected hash (or "
                   "$SGTRAIN_DETECTOR_SHA256); default the value sgtrain records")
    args = p.parse_args(argv)
    try:
        path = download_detector(args.kind, args.dir, args.url, args.sha256)
    except (DownloadError, OSError) as e:
        print(f"sgtrain-metrics download: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
