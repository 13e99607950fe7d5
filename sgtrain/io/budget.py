"""What a network file may make sgtrain allocate: checked on the ``meta`` device before a module is built.

A network file names constructor keywords (portable ``init_kwargs``, NVlabs ``_init_kwargs``) and holds tensors. A
hostile or broken file may name keywords far larger than its tensors (``z_dim=2**25`` in a 3.5 KB JSON would
allocate 4.7 GB). :func:`check_before_build` builds the module on the ``meta`` device first (no memory), compares
every state_dict shape with the tensors the file holds and the module's total size with a ceiling, and only then
lets the caller build it for real.

The ceiling is ``SGTRAIN_MAX_NETWORK_BYTES`` (bytes; default 8 GiB, far above the largest published StyleGAN
networks, about 0.4 GB for a 1024x1024 G + D) — raise it for a legitimately giant network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

from sgtrain.io.errors import NetworkFileError

__all__ = ["DEFAULT_MAX_BYTES", "INFLATION", "check_before_build", "check_zip_inflation", "max_network_bytes"]

#: How much larger than the file its compressed zip entries may unpack to (torch.save stores entries uncompressed;
#: a deflated entry that unpacks to more than this is a "deflate bomb": 3.1 MB that would take 3.67 GB).
INFLATION = 4

DEFAULT_MAX_BYTES = 8 << 30


def max_network_bytes() -> int:
    """The ceiling on the bytes of one network built from a file (``SGTRAIN_MAX_NETWORK_BYTES``, default 8 GiB)."""
    try:
        return int(os.environ.get("SGTRAIN_MAX_NETWORK_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES


def check_before_build(build: Callable[[], torch.nn.Module], tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Build ``build()`` on the meta device and refuse what the file cannot back.

    Args:
        build: the constructor call (no arguments) that the caller will then run for real.
        tensors: the file's tensors for this network, keyed like its state_dict.
        what: the file and network for the message.

    Raises:
        NetworkFileError: a tensor of the file whose shape is not the built module's, or a module larger than
            ``SGTRAIN_MAX_NETWORK_BYTES`` (the message names the keys or the size and the variable to raise).
    """
    try:
        with torch.device("meta"):
            probe = build()
    except Exception:  # a module whose constructor needs real data: the real build reports keyword errors itself
        return
    want = {k: v for k, v in probe.state_dict().items() if isinstance(v, torch.Tensor)}
    wrong = [f"{k} {tuple(tensors[k].shape)} in the file, {tuple(v.shape)} from its keywords"
             for k, v in want.items() if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
    if wrong:
        raise NetworkFileError(f"{what}: its constructor keywords do not fit its tensors ({'; '.join(wrong[:3])}"
                               f"{'; ...' if len(wrong) > 3 else ''}): the file is damaged or was edited")
    size = sum(v.numel() * v.element_size() for v in want.values())
    if size > max_network_bytes():
        raise NetworkFileError(f"{what}: its keywords build a network of {size / 2**30:.1f} GiB, above the ceiling of "
                               f"{max_network_bytes() / 2**30:.1f} GiB; if you trust the file, raise "
                               "SGTRAIN_MAX_NETWORK_BYTES")


def check_zip_inflation(fileobj, file_bytes: int, what: str) -> None:
    """Refuse a zip (a torch file) whose compressed entries would unpack to more than ``INFLATION`` times the file's
    size (and at least 64 MiB): the sizes are read from the zip directory, nothing is unpacked.

    Args:
        fileobj: the zip, a path or a seekable binary file.
        file_bytes: the size of the file on disk (bytes).
        what: the file, for the message.

    Raises:
        NetworkFileError: the entries declare too much, or the zip directory cannot be read.
    """
    import zipfile

    try:
        with zipfile.ZipFile(fileobj) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise NetworkFileError(f"{what}: not a readable zip ({e})") from e
    packed = sum(i.file_size for i in infos if i.compress_type != zipfile.ZIP_STORED)
    limit = max(64 << 20, INFLATION * int(file_bytes))
    if packed > limit:
        raise NetworkFileError(f"{what}: its compressed entries unpack to {packed / 2**20:.0f} MiB from a "
                               f"{file_bytes / 2**20:.1f} MiB file (more than {INFLATION}x); refusing a deflate bomb")
