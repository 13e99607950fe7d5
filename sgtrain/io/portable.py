"""Portable network files: ``<stem>.safetensors`` (tensors) + ``<stem>.json`` (what to build).

The safetensors file holds every network's ``state_dict()`` under a prefix (``G_ema.``, ``G.``, ``D.``), float
tensors as saved (float32 for sgtrain's networks). The JSON holds, per network, the import
path of its class (``sgtrain.models.stylegan2.networks.Generator``, or a class of the user's own family package) and
its ``init_kwargs``, plus the sgtrain version and
training info (kimg, augment_p, ...). The same JSON is also stored in the safetensors metadata (key
``sgtrain``), so a lone ``.safetensors`` still opens. Neither file can carry code: the class path is checked
against the trusted family packages before anything is imported (:func:`sgtrain.models.family.trusted_class`).

JSON layout (``format_version`` 1)::

    {"format": "sgtrain-network", "format_version": 1, "sgtrain_version": "0.1.0",
     "networks": {"G_ema": {"class": "sgtrain.models.stylegan2.networks.Generator", "family": "stylegan2",
                            "init_kwargs": {...}},
                  "G": ..., "D": ...},
     "augment_p": 0.12,                 # optional
     "training_info": {"kimg": 1200, ...}}
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import sgtrain
from sgtrain.io.atomic import atomic_write
from sgtrain.io.errors import NetworkFileError, UnsupportedNetworkError
from sgtrain.io.nvlabs import jsonable, load_state_dict_checked
from sgtrain.models.family import family_of, registered, resolve, trusted_class

__all__ = ["FORMAT", "FORMAT_VERSION", "build_module", "load_portable", "network_header", "portable_paths",
           "save_network"]

FORMAT = "sgtrain-network"
FORMAT_VERSION = 1
NETWORK_NAMES = ("G_ema", "G", "D")


def portable_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)`` for a path given with either suffix or none."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def class_name(module: torch.nn.Module) -> str:
    """The import path recorded for ``module``'s class (``'sgtrain.models.stylegan2.networks.Generator'``, or a
    family of the user's own package): a class of a family package (one defining ``FAMILY``).

    Raises:
        TypeError: a class of no family, or a module without an ``init_kwargs`` dict.
    """
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    if family_of(module) is None or "<" in name:
        raise TypeError(f"cannot save a {name} in a portable network file: only a network class of a family package "
                        "(one whose __init__ defines FAMILY = sgtrain.models.family.Family(...)) can be rebuilt")
    if not isinstance(getattr(module, "init_kwargs", None), dict):
        raise TypeError(f"{name} has no init_kwargs dict: the portable file could not rebuild it")
    return name


def network_header(G_ema: torch.nn.Module, G: torch.nn.Module | None = None, D: torch.nn.Module | None = None,
                   augment_p: float | None = None, training_info: dict[str, Any] | None = None,
                   **info: Any) -> dict[str, Any]:
    """The JSON document of a portable file (also usable as a checkpoint entry that describes the networks).

    Args:
        G_ema, G, D: sgtrain networks (``init_kwargs`` attribute required); G and D optional.
        augment_p: ADA augmentation probability in [0, 1], or None.
        training_info: free JSON-serialisable fields (kimg, cur_nimg, config...); ``**info`` is merged into it.

    Raises:
        TypeError: a network that is not an sgtrain model, or info that is not JSON-serialisable.
    """
    nets = {"G_ema": G_ema, "G": G, "D": D}
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sgtrain_version": sgtrain.__version__,
        "networks": {k: {"class": class_name(m), "family": family_of(m).name, "init_kwargs": jsonable(m.init_kwargs)}
                     for k, m in nets.items() if m is not None},
    }
    if augment_p is not None:
        header["augment_p"] = float(augment_p)
    header["training_info"] = jsonable({**(training_info or {}), **info})
    return header


def save_network(path: str | os.PathLike, G_ema: torch.nn.Module, G: torch.nn.Module | None = None,
                 D: torch.nn.Module | None = None, augment_p: float | None = None,
                 training_info: dict[str, Any] | None = None, **info: Any) -> tuple[Path, Path]:
    """Write a portable network file pair ``<stem>.safetensors`` + ``<stem>.json`` (atomically, each).

    Args:
        path: ``<stem>``, ``<stem>.safetensors`` or ``<stem>.json``; parent folders are created.
        G_ema: the generator used for inference (required). G, D: training copies (optional, for fine-tuning).
        augment_p: ADA probability, stored for resuming augmentation. training_info / ``**info``: JSON fields
            (kimg, ...), merged.

    Returns:
        The two paths written.

    Raises:
        TypeError: a network that is not an sgtrain model, or info that is not JSON-serialisable.
    """
    st_path, json_path = portable_paths(path)
    header = network_header(G_ema, G, D, augment_p=augment_p, training_info=training_info, **info)
    tensors: dict[str, torch.Tensor] = {}
    for name, m in (("G_ema", G_ema), ("G", G), ("D", D)):
        if m is not None:
            for k, v in m.state_dict().items():
                tensors[f"{name}.{k}"] = v.detach().to("cpu", copy=True).contiguous()
    text = json.dumps(header, indent=2, sort_keys=False)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(st_path, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT, "sgtrain": text}))
    _atomic(json_path, lambda tmp: Path(tmp).write_text(text + "\n"))
    return st_path, json_path


def _atomic(dest: Path, write) -> None:
    atomic_write(dest, write)  # with the umask's permissions (tempfile.mkstemp would give 0600)


def build_module(cls_name: str, init_kwargs: dict[str, Any], what: str, family: str | None = None) -> torch.nn.Module:
    """Construct the network class named ``cls_name`` (an import path read from a file) with ``init_kwargs``; a
    class that moved since is found in the package of its ``family`` (the name recorded beside it).

    Only a class of a family package is built, and only a trusted package is imported
    (:func:`sgtrain.models.family.trusted_class`: ``sgtrain.models.*``, families already imported, packages in
    ``SGTRAIN_FAMILIES``); files of sgtrain <= this change name ``sgtrain.models.<family>.<class>``, which the
    family packages still export.

    Raises:
        UnsupportedNetworkError: an untrusted or unknown class, a class of no family, or keywords the class does
            not take.
    """
    cls_name = str(cls_name)
    if not trusted_class(cls_name):
        top = cls_name.split(".")[0]
        raise UnsupportedNetworkError(
            f"{what}: class {cls_name!r} is not in sgtrain.models nor in a family package you trust; if you trust the "
            f"package {top!r}, name it in SGTRAIN_FAMILIES (export SGTRAIN_FAMILIES={top}) or import it first")
    try:
        cls = resolve(cls_name)
    except (ImportError, AttributeError) as e:
        # the class moved since the file was written: its family package (which exports its networks) still has it
        fam = registered().get(str(family)) if family else None
        cls = getattr(importlib.import_module(fam.package), cls_name.rpartition(".")[2], None) if fam else None
        if cls is None:
            raise UnsupportedNetworkError(f"{what}: {cls_name} does not exist in this sgtrain version: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)) or family_of(cls) is None:
        raise UnsupportedNetworkError(f"{what}: {cls_name} is not a network class of a family package")
    if not isinstance(init_kwargs, dict):
        raise NetworkFileError(f"{what}: init_kwargs is not a JSON object")
    try:
        return cls(**init_kwargs)
    except TypeError as e:
        raise UnsupportedNetworkError(f"{what}: {cls_name}(**init_kwargs) failed: {e}") from e


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON document of a portable file: from ``<stem>.json``, else from the safetensors metadata."""
    st_path, json_path = portable_paths(path)
    if json_path.exists():
        header = json.loads(json_path.read_text())
    elif st_path.exists():
        with safe_open(st_path, framework="pt") as f:
            meta = f.metadata() or {}
        if "sgtrain" not in meta:
            raise NetworkFileError(f"{st_path}: no {json_path.name} beside it and no 'sgtrain' metadata inside; "
                                   "it is not a portable sgtrain network file")
        header = json.loads(meta["sgtrain"])
    else:
        raise NetworkFileError(f"portable network file not found: neither {st_path} nor {json_path} exists")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise NetworkFileError(f"{json_path}: not an sgtrain network description (format != {FORMAT!r})")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise NetworkFileError(f"{json_path}: format_version {header.get('format_version')} is newer than this "
                               f"sgtrain ({FORMAT_VERSION}); upgrade sgtrain")
    return header


def modules_from_header(header: dict[str, Any], tensors: dict[str, torch.Tensor], what: str) -> dict[str, Any]:
    """Build every network the header lists and load its prefixed tensors (``G_ema.<key>``...)."""
    nets = header.get("networks") or {}
    if "G_ema" not in nets and "G" not in nets:
        raise NetworkFileError(f"{what}: no G_ema in its network list {sorted(nets)}")
    out: dict[str, Any] = {}
    for name in NETWORK_NAMES:
        spec = nets.get(name)
        if spec is None:
            continue
        module = build_module(spec.get("class"), spec.get("init_kwargs"), f"{what} {name}", spec.get("family"))
        prefix = f"{name}."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_state_dict_checked(module, sd, f"{what} {name}")
        out[name] = module.eval()
    if "G_ema" not in out:
        out["G_ema"] = out["G"]
    if header.get("augment_p") is not None:
        out["augment_p"] = float(header["augment_p"])
    info = dict(header.get("training_info") or {})
    if header.get("sgtrain_version") is not None:
        info.setdefault("sgtrain_version", header["sgtrain_version"])
    out["training_info"] = info
    return out


def load_portable(path: str | os.PathLike) -> dict[str, Any]:
    """Open a portable network file (``.safetensors`` / ``.json`` / stem) as CPU modules.

    Returns:
        dict with ``G_ema`` and, where saved, ``G``, ``D``, ``augment_p``, ``training_info``.

    Raises:
        NetworkFileError: missing files, wrong format. UnsupportedNetworkError: class/keys/shapes do not fit.
    """
    st_path, _ = portable_paths(path)
    header = read_header(path)
    if not st_path.exists():
        raise NetworkFileError(f"{st_path} is missing: the .json describes the networks, the .safetensors beside it "
                               "holds their weights")
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(st_path, framework="pt", device="cpu") as f:
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    return modules_from_header(header, tensors, str(st_path))
