"""NVlabs network pickles (stylegan2-ada-pytorch, stylegan3) rebuilt as sgtrain modules, without their code.

A training snapshot (``network-snapshot-<kimg>.pkl``, written by NVlabs' ``training_loop.py``) is
``dict(G, D, G_ema, augment_pipe, training_set_kwargs)``; their pretrained files have the same keys. Each network is a
:class:`~sgtrain.io.safe_pickle.PersistentRecord`: we read its constructor keywords (``state['_init_kwargs']``),
recognise the architecture from the class names of its submodules, build the sgtrain class with those keywords and
load the tensors by key (sgtrain's StyleGAN2 and StyleGAN3 have NVlabs' keys, shapes and buffers). A StyleGAN3
snapshot holds a ``networks_stylegan3.Generator`` (G, G_ema) and a ``networks_stylegan2.Discriminator`` (D).

Keyword differences handled: stylegan2-ada-pytorch's ``Generator(..., synthesis_kwargs={...})`` is flattened into
stylegan3's ``Generator(..., **synthesis_kwargs)`` form; ``dnnlib.EasyDict`` becomes ``dict``; numpy scalars become
Python numbers.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import torch

from sgtrain.io.errors import NetworkFileError, UnsupportedNetworkError
from sgtrain.io.safe_pickle import ForeignModuleRecord, PersistentRecord, collect_state_dict, iter_records
from sgtrain.models.family import resolve

__all__ = ["convert_nvlabs_snapshot", "jsonable", "record_to_module"]

_POSITIONAL = {
    "Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"),
    "Discriminator": ("c_dim", "img_resolution", "img_channels"),
}


def jsonable(v: Any) -> Any:
    """Plain JSON-serialisable copy: dict subclasses -> dict, tuples -> lists, numpy/0-d tensors -> numbers.

    Raises:
        TypeError: a value that has no JSON form (a tensor with more than one element, an arbitrary object).
    """
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.size <= 64:
        return v.tolist()
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"{type(v).__name__} value has no JSON form")


def identify(record: PersistentRecord | ForeignModuleRecord) -> tuple[Any, str]:
    """The family and the class path (``'sgtrain.models.stylegan2.networks.Generator'``) that rebuild an NVlabs
    network record: the first registered family whose descriptor claims its class name (``Family.nvlabs_classes``)
    and all of whose required submodule classes it holds (read from the pickle, never imported).

    Raises:
        UnsupportedNetworkError: the record is no NVlabs Generator/Discriminator that sgtrain knows; the message
            names its class and the classes inside it.
    """
    from sgtrain.models.family import registered

    names = {rec.class_name for _, rec in iter_records(record)}
    claims = [(fam, cls, needed, target) for fam in registered().values() for cls, needed, target in fam.nvlabs_classes]
    for fam, cls, needed, target in claims:
        if record.class_name == cls and needed <= names:
            return fam, target
    defined = record.source_classes() if isinstance(record, PersistentRecord) else []
    inner = sorted(names - {record.class_name})
    known = "; ".join(f"{fam.display_name} {cls}" for fam, cls, _, _ in claims)
    raise UnsupportedNetworkError(
        f"unknown network architecture: class {record.class_name!r} with submodules {inner}"
        + (f" (its embedded source defines {defined})" if defined else "")
        + f"; sgtrain rebuilds NVlabs-style {known}"
    )


def _init_kwargs(record: PersistentRecord) -> dict[str, Any]:
    kwargs = jsonable(record.state.get("_init_kwargs") or {})
    args = record.state.get("_init_args") or ()
    names = _POSITIONAL.get(record.class_name, ())
    if len(args) > len(names):
        raise UnsupportedNetworkError(f"{record.class_name} was built with {len(args)} positional arguments")
    kwargs.update({n: jsonable(a) for n, a in zip(names, args)})
    if record.class_name == "Generator" and isinstance(kwargs.get("synthesis_kwargs"), dict):
        kwargs.update(kwargs.pop("synthesis_kwargs"))  # stylegan2-ada-pytorch's Generator signature
    return kwargs


def record_to_module(record: Any, name: str = "network") -> torch.nn.Module:
    """Build the sgtrain module for one NVlabs network record and load its tensors.

    Args:
        record: a :class:`PersistentRecord` (Generator or Discriminator) from the allow-list unpickler.
        name: the snapshot entry (``'G_ema'``...) for error messages.

    Returns:
        the class the family's descriptor names, in eval mode with NVlabs' weights and buffers, CPU float32.

    Raises:
        UnsupportedNetworkError: unknown architecture, a family this sgtrain version lacks, keywords sgtrain's
            class does not take, or tensors that do not fit by key and shape.
    """
    if not isinstance(record, PersistentRecord):
        raise UnsupportedNetworkError(f"{name} is a {type(record).__name__}, not an NVlabs persistent network")
    family, target = identify(record)
    try:
        cls = resolve(target)
    except (ImportError, AttributeError) as e:
        raise UnsupportedNetworkError(
            f"{name} is an NVlabs {family.display_name} {record.class_name}, which this sgtrain version cannot build "
            f"yet ({target} is missing: {e})"
        ) from e
    kwargs = _init_kwargs(record)
    try:
        module = cls(**kwargs)
    except TypeError as e:
        raise UnsupportedNetworkError(
            f"{name}: {target} does not accept NVlabs' constructor arguments "
            f"{kwargs}: {e}"
        ) from e
    others: list[str] = []
    sd = collect_state_dict(record, on_other=lambda k, v: others.append(f"{k} ({type(v).__name__})"))
    if others:
        raise UnsupportedNetworkError(f"{name}: submodules that are not NVlabs modules: {others}")
    load_state_dict_checked(module, sd, f"{name} (NVlabs {record.class_name})")
    return module.eval()


def load_state_dict_checked(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str,
                            fill_from_module: tuple[str, ...] = ()) -> None:
    """``module.load_state_dict(sd)`` with a clear error; keys ending in ``fill_from_module`` may be absent.

    Raises:
        UnsupportedNetworkError: missing/unexpected keys or shape mismatches (all listed, first 10 of each).
    """
    own = module.state_dict()
    sd = dict(sd)
    for k, v in own.items():
        if k not in sd and k.endswith(fill_from_module):
            sd[k] = v
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs sgtrain {tuple(own[k].shape)}"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise UnsupportedNetworkError(
            f"{what}: tensors do not match sgtrain's {type(module).__name__}: missing {missing[:10]}"
            f"{'...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
            f"{'...' if len(unexpected) > 10 else ''}, shape mismatches {shapes[:10]}"
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)


def convert_nvlabs_snapshot(obj: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Turn the unpickled content of an NVlabs pickle into :func:`sgtrain.io.load_network`'s result.

    Args:
        obj: the object :func:`~sgtrain.io.safe_pickle.safe_load_pickle` returned: a snapshot dict, or a single
            network record (treated as ``G_ema``).
        path: the file, for ``training_info``.

    Returns:
        dict with ``G_ema`` and, where present, ``G``, ``D``, ``augment_p`` (float), ``training_info`` (source,
        file, kimg from the file name, training_set_kwargs, augment_kwargs).

    Raises:
        NetworkFileError: no network in the pickle.
        UnsupportedNetworkError: see :func:`record_to_module`.
    """
    if isinstance(obj, PersistentRecord):
        obj = {"G_ema": obj}
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), PersistentRecord) for k in ("G_ema", "G")):
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise NetworkFileError(f"{path or 'pickle'}: no NVlabs generator in it (found {keys}); expected a snapshot "
                               "dict with G_ema (NVlabs training_loop.py) ")
    out: dict[str, Any] = {}
    for key in ("G_ema", "G", "D"):
        if obj.get(key) is not None:
            out[key] = record_to_module(obj[key], key)
    if "G_ema" not in out:
        out["G_ema"] = out["G"]
    info: dict[str, Any] = {"source": "nvlabs-pickle"}
    if path is not None:
        info["file"] = os.fspath(path)
        m = re.search(r"network-snapshot-(\d+)\.pkl$", os.fspath(path))
        if m:
            info["kimg"] = int(m.group(1))
    pipe = obj.get("augment_pipe")
    if isinstance(pipe, PersistentRecord):
        p = (pipe.state.get("_buffers") or {}).get("p")
        if isinstance(p, torch.Tensor) and p.numel() == 1:
            out["augment_p"] = float(p)
        try:
            info["augment_kwargs"] = jsonable(pipe.state.get("_init_kwargs") or {})
        except TypeError:
            pass
    if obj.get("training_set_kwargs") is not None:
        try:
            info["training_set_kwargs"] = jsonable(obj["training_set_kwargs"])
        except TypeError:
            pass
    out["training_info"] = info
    return out
