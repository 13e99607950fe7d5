"""NVlabs TensorFlow network pickles (ProGAN, StyleGAN, StyleGAN2-TF) rebuilt as sgtrain modules, without TensorFlow.

An official TF pickle (``karras2018iclr-*.pkl``, ``karras2019stylegan-*.pkl``, ``stylegan2-*-config-f.pkl``, or a
``network-snapshot-*.pkl`` of NVlabs' TF training loops) holds the tuple ``(G, D, Gs)`` of
:class:`~sgtrain.io.safe_pickle.TFNetworkRecord`: each one's build function name, its keyword arguments and its
variables as numpy arrays. The embedded build source is never executed. The build function names the family; the
family's converter (``sgtrain.io.tf_<family>``) maps keywords and variables onto sgtrain's module with the same
architecture (including the ``lod`` variable, which becomes a buffer of the same name).

A converter is a function ``convert(record, what) -> torch.nn.Module`` (module in eval mode, float32, CPU) raising
:class:`~sgtrain.io.errors.UnsupportedNetworkError` with the reason when a keyword or variable has no counterpart.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from sgtrain.io.errors import NetworkFileError, UnsupportedNetworkError
from sgtrain.io.safe_pickle import TFNetworkRecord
from sgtrain.models.family import resolve

__all__ = ["convert_tf_network", "convert_tf_snapshot", "is_tf_snapshot", "tf_build_funcs"]

def tf_build_funcs() -> dict[str, tuple[str, str]]:
    """TF build function short name (``'G_main'``) -> (``'module:function'`` converting it, the family's name), as
    the registered families' descriptors claim them (``Family.tf_builds``)."""
    from sgtrain.models.family import registered

    return {func: (conv, fam.display_name) for fam in registered().values() for func, conv in fam.tf_builds.items()}


def is_tf_snapshot(obj: Any) -> bool:
    """True for what an NVlabs TF pickle unpickles to: a TFNetworkRecord or a tuple/list holding them."""
    if isinstance(obj, TFNetworkRecord):
        return True
    return isinstance(obj, (tuple, list)) and any(isinstance(x, TFNetworkRecord) for x in obj)


def convert_tf_network(record: TFNetworkRecord, what: str = "network") -> torch.nn.Module:
    """Build the sgtrain module for one TF network record and load its variables.

    Args:
        record: a :class:`TFNetworkRecord` from the allow-list unpickler.
        what: name for error messages (``'G_ema'``, ``'D'``...).

    Returns:
        the sgtrain module (eval mode, float32, CPU).

    Raises:
        UnsupportedNetworkError: a build function sgtrain has no converter for (the message names it), or keywords /
            variables the converter cannot map.
    """
    funcs = tf_build_funcs()
    entry = funcs.get(record.func)
    if entry is None:
        known = ", ".join(sorted(funcs))
        raise UnsupportedNetworkError(
            f"{what}: TensorFlow network built by {record.build_func_name!r}, which sgtrain cannot rebuild "
            f"(known build functions: {known})"
        )
    converter, family = entry
    try:
        convert = resolve(converter)
    except (ImportError, AttributeError) as e:
        raise UnsupportedNetworkError(
            f"{what}: an NVlabs {family} TensorFlow network ({record.build_func_name}), which this sgtrain version "
            f"cannot open yet ({converter} is missing)"
        ) from e
    return convert(record, what).eval()


def convert_tf_snapshot(obj: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Turn the unpickled content of an NVlabs TF pickle into :func:`sgtrain.io.load_network`'s result.

    Args:
        obj: ``(G, D, Gs)`` (official files and TF training snapshots), or a single network record (taken as the
            generator ``G_ema``).
        path: the file, for ``training_info``.

    Returns:
        dict with ``G_ema`` (from ``Gs``), ``G`` and ``D`` where present, and ``training_info`` (source, file, the
        TF build functions, and ``lod`` of each network that has one).

    Raises:
        NetworkFileError: the pickle holds no TF generator.
        UnsupportedNetworkError: see :func:`convert_tf_network`.
    """
    if isinstance(obj, TFNetworkRecord):
        obj = (None, None, obj)
    items = list(obj)
    if len(items) != 3 or not isinstance(items[2], TFNetworkRecord):
        raise NetworkFileError(f"{path or 'pickle'}: expected NVlabs' (G, D, Gs) tuple of TensorFlow networks, found "
                               f"{[type(x).__name__ for x in items]}")
    out: dict[str, Any] = {}
    info: dict[str, Any] = {"source": "nvlabs-tf-pickle", "build_funcs": {}}
    for key, rec in zip(("G", "D", "G_ema"), items):
        if isinstance(rec, TFNetworkRecord):
            out[key] = convert_tf_network(rec, key)
            info["build_funcs"][key] = rec.build_func_name
            lods = [float(b) for n, b in out[key].named_buffers() if n == "lod" or n.endswith(".lod")]
            if lods:
                info.setdefault("lod", {})[key] = lods[0]
    if path is not None:
        info["file"] = os.fspath(path)
    out["training_info"] = info
    return out
