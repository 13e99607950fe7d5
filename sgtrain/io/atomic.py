"""Atomic file writes that keep the user's umask.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, and ``os.replace`` keeps that mode, so
files written through it could not be read by the user's group (a shared run directory, a web server serving
snapshots). Here the temporary file is created with ``os.open(..., 0o666)``, which the kernel masks with the umask
exactly as a plain ``open(path, "w")`` would, under a unique name in the destination's directory, then renamed.
Writers that replace the file they are given with one of their own (safetensors' ``save_file`` leaves 0600) get
that mode put back before the rename.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "file_sha256"]


def atomic_write(dest: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Write ``dest`` atomically: ``write(tmp)`` fills a new temporary file beside it, then it replaces ``dest``.

    Readers see the old file or the complete new one, never a partial file; a failed ``write`` leaves ``dest`` as
    it was and removes the temporary file. The new file has the permissions a plain ``open(dest, "w")`` gives
    (``0o666 & ~umask``).

    Args:
        dest: path of the file to (re)write; its directory must exist.
        write: callable that writes the whole content to the path it is given (it may reopen and truncate it).

    Raises:
        OSError: the directory is not writable, or from ``write``.
    """
    dest = Path(dest)
    while True:
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 & ~umask, as the kernel applied it
        finally:
            os.close(fd)
        break
    try:
        write(str(tmp))
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``, read in 4 MiB blocks (no cache: what is on disk now)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
