"""Feature networks of the quality metrics (Inception-v3, VGG16), opened from local files only.

NVlabs computes FID, KID and IS with a TorchScript translation of TensorFlow's ``inception-2015-12-05`` graph, and
precision/recall and PPL with a TorchScript VGG16 (LPIPS weights included). sgtrain uses the same files, never
downloads them, and calls them with NVlabs' conventions:

- Inception: ``net(img, return_features=True)`` -> float32 [N, 2048] pool features (FID, KID);
  ``net(img, no_output_bias=True)`` -> float32 [N, 1008] class probabilities (IS). ``img``: uint8 [N, 3, H, W].
- VGG16: ``net(img, return_features=True)`` -> float32 [N, 4096] fc features (precision/recall);
  ``net(img, resize_images=False, return_lpips=True)`` -> float32 [N, F] LPIPS features (PPL), ``img`` float32 in
  [0, 255].

Where a file comes from, in this order:

1. an explicit path (``detector=`` in the API, ``--detector PATH`` on the command line);
2. ``<cache_dir>/detectors/<file name>`` (default ``~/.cache/sgtrain/metrics/detectors``);
3. NVlabs' dnnlib download cache, as ``dnnlib.util.open_url`` stores it: ``<DNNLIB_CACHE_DIR or
   ~/.cache/dnnlib>/downloads/<md5 of the URL>_<name>``, for the stylegan3 (``.pkl``) and stylegan2-ada-pytorch
   (``.pt``) URLs.

Nothing found raises :class:`DetectorNotFoundError` at once, naming the file, its URL and the option.

File formats (recognised by content, not by name):

- a TorchScript archive written by ``torch.jit.save`` (a zip file; NVlabs' stylegan2-ada-pytorch ``.pt`` files):
  ``torch.jit.load``;
- a pickle that carries such an archive as a bytes payload (how a TorchScript module travels inside a plain pickle,
  NVlabs' stylegan3 ``.pkl`` files): the pickle is never unpickled. Its opcodes are read as data with
  ``pickletools.genops`` (nothing is imported, called or constructed), the payload that is a TorchScript zip archive
  is taken out and given to ``torch.jit.load``. A pickle without such a payload is refused, naming the globals it
  would have imported. TorchScript code runs in the TorchScript interpreter, which has no access to Python's
  modules, so loading an archive executes no Python code from the file.
- for PPL only, a torchvision-format VGG16 state dict (``sgtrain.metrics.vgg16.load_vgg16``; unit-weight LPIPS,
  which does not give NVlabs' numbers).
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from typing import Any

import torch

from sgtrain.errors import MissingFileError, UserError
from sgtrain.metrics.detector_files import (
    DETECTORS,
    DetectorInfo,
    DetectorNotFoundError,
    default_cache_dir,
    default_detector_dir,
    dnnlib_download_dirs,
    file_sha256,
    find_detector_file,
    not_found_message,
)

__all__ = [
    "DETECTORS",
    "DetectorInfo",
    "DetectorFormatError",
    "DetectorNotFoundError",
    "FeatureDetector",
    "default_cache_dir",
    "default_detector_dir",
    "dnnlib_download_dirs",
    "file_sha256",
    "find_detector_file",
    "load_detector",
    "not_found_message",
    "torchscript_from_pickle",
]


class DetectorFormatError(UserError, ValueError):
    """A feature-network file that is neither a TorchScript archive nor a pickle carrying one."""



_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"
_BYTES_OPS = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_STRING_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE"}


def _is_torchscript_zip(data: bytes) -> bool:
    """True for a zip archive written by ``torch.jit.save`` (it holds ``<archive>/code/``; ``torch.save`` does not)."""
    if not data.startswith(_ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        return False
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def torchscript_from_pickle(data: bytes) -> tuple[bytes | None, list[str]]:
    """Find a TorchScript archive carried as a bytes payload inside a pickle, without unpickling it.

    The opcodes are decoded by ``pickletools.genops`` as data; nothing the pickle names is imported or called.
    Payloads are looked for in bytes opcodes (protocol 3+), bytearrays (protocol 5) and in ``latin-1`` strings
    (protocol 2 stores bytes as ``_codecs.encode(str, 'latin1')``).

    Args:
        data: the whole pickle file.

    Returns:
        ``(archive bytes or None, globals the pickle names)``.

    Raises:
        DetectorFormatError: the data is not a valid pickle stream.
    """
    names: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if op.name in _BYTES_OPS and isinstance(arg, (bytes, bytearray)) and _is_torchscript_zip(bytes(arg)):
                return bytes(arg), names
            if op.name in _STRING_OPS and isinstance(arg, str):
                if arg.startswith("PK\x03\x04"):
                    try:
                        raw = arg.encode("latin-1")
                    except UnicodeEncodeError:
                        raw = b""
                    if _is_torchscript_zip(raw):
                        return raw, names
                strings = (strings + [arg])[-2:]
            elif op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                names.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                names.append(".".join(strings))
    except Exception as err:  # noqa: BLE001 - any decoding failure means "not a pickle we can read"
        raise DetectorFormatError(f"not a readable pickle stream ({err})") from err
    return None, sorted(set(names))


class FeatureDetector:
    """A feature network opened from a file, called with NVlabs' conventions.

    Attributes:
        module: the TorchScript module (None for a torchvision VGG16 state dict, see ``lpips``).
        path: the file it came from.
        name: the file's name without extension and without dnnlib's ``<md5>_`` prefix (``inception-2015-12-05``).
        sha256: hex SHA-256 of the file (part of the real-statistics cache key).
        device: where it runs.

    Call it as NVlabs does: ``det(img_uint8 [N, 3, H, W], return_features=True)`` -> float32 [N, D].
    """

    def __init__(self, module: Any, path: str, device: torch.device, lpips: Any = None) -> None:
        self.module = module
        self.path = path
        base = os.path.splitext(os.path.basename(path))[0]
        parts = base.split("_", 1)
        if len(parts) == 2 and len(parts[0]) == 32 and all(ch in "0123456789abcdef" for ch in parts[0]):
            base = parts[1]
            if "metrics_" in base:  # dnnlib names a file by its URL when the server sends no file name
                base = base.rsplit("metrics_", 1)[1]
        self.name = base
        self.sha256 = file_sha256(path)
        self.device = device
        self._lpips = lpips

    def __call__(self, images: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Run the network: ``images`` uint8 [N, 3, H, W] (or float32 for LPIPS) -> float32 [N, D] on ``device``.

        Raises:
            DetectorFormatError: the file is a VGG16 state dict and a TorchScript call was asked for.
        """
        if self.module is None:
            raise DetectorFormatError(
                f"{self.path} is a torchvision VGG16 state dict: it serves PPL (LPIPS) only; precision/recall need "
                f"NVlabs' TorchScript vgg16 ({DETECTORS['vgg16'].urls[0]})"
            )
        with torch.no_grad():
            out = self.module(images.to(self.device), **kwargs)
        if isinstance(out, (tuple, list)):  # some translations return (features, spatial features)
            out = out[0]
        return out.float().reshape(out.shape[0], -1)

    def lpips_features(self, images: torch.Tensor) -> torch.Tensor:
        """LPIPS features of float32 images in [0, 255], [N, 3, H, W] -> [N, F]; squared distance is LPIPS."""
        with torch.no_grad():
            if self.module is not None:
                return self.module(images.to(self.device), resize_images=False, return_lpips=True).float().flatten(1)
            return self._lpips(images.to(self.device)).float().flatten(1)

    def __repr__(self) -> str:
        return f"FeatureDetector({self.name!r}, sha256={self.sha256[:12]}, device={self.device})"


_LOADED: dict[tuple[str, int, int, str, bool], FeatureDetector] = {}


def load_detector(path: str | os.PathLike, device: str | torch.device = "cpu",
                  allow_vgg_state_dict: bool = False) -> FeatureDetector:
    """Open a feature-network file safely (see the module docstring) and keep it for the process.

    Args:
        path: TorchScript archive, a pickle carrying one (NVlabs' ``.pkl``), or, with ``allow_vgg_state_dict``, a
            torchvision VGG16 state dict (PPL only).
        device: where the network runs.
        allow_vgg_state_dict: accept a torchvision VGG16 state dict (through ``sgtrain.metrics.vgg16.load_vgg16``).

    Returns:
        A :class:`FeatureDetector`; the same object for the same file and device on later calls.

    Raises:
        FileNotFoundError: no such file.
        DetectorFormatError: the file holds no TorchScript module (the message names what it holds).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"feature network file '{path}' does not exist")
    device = torch.device(device)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, str(device), allow_vgg_state_dict)
    if key in _LOADED:
        return _LOADED[key]
    with open(path, "rb") as f:
        head = f.read(4)
    module = None
    lpips = None
    if head == _ZIP_MAGIC:
        with open(path, "rb") as f:
            data = f.read()
        if _is_torchscript_zip(data):
            module = torch.jit.load(io.BytesIO(data), map_location=device)
        elif allow_vgg_state_dict:
            lpips = _vgg_state_dict(path, device)
        else:
            raise DetectorFormatError(f"{path} is a torch.save file (a state dict?), not a TorchScript module; "
                                      "the metrics need NVlabs' TorchScript feature networks")
    elif head[:1] == _PICKLE_PROTO:
        with open(path, "rb") as f:
            data = f.read()
        payload, names = torchscript_from_pickle(data)
        if payload is None:
            raise DetectorFormatError(
                f"{path} is a pickle that carries no TorchScript archive (it names {names[:6]}); sgtrain does not "
                "unpickle feature networks. Use NVlabs' TorchScript file (the stylegan2-ada-pytorch .pt URL) or a "
                "file written by torch.jit.save"
            )
        module = torch.jit.load(io.BytesIO(payload), map_location=device)
    elif path.endswith(".safetensors") and allow_vgg_state_dict:
        lpips = _vgg_state_dict(path, device)
    else:
        raise DetectorFormatError(f"{path} is neither a TorchScript archive nor a pickle carrying one")
    if module is not None:
        module = module.eval()
    det = FeatureDetector(module, path, device, lpips=lpips)
    _LOADED[key] = det
    return det


def _vgg_state_dict(path: str, device: torch.device) -> Any:
    from sgtrain.metrics.vgg16 import load_vgg16

    return load_vgg16(path, device=device)
