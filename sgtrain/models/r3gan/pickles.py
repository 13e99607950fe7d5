"""The authors' R3GAN snapshot pickles, rebuilt as sgtrain modules without their code.

Their ``training_loop.py`` writes ``network-snapshot-<kimg>.pkl``: a plain pickle (no NVlabs persistence, no
embedded source, no ``_init_kwargs``) of ``dict(G, D, G_ema, training_set_kwargs, cur_nimg, ...)`` whose networks are
``training.networks.Generator`` / ``Discriminator`` objects over ``R3GAN.Networks`` modules. The allow-list
unpickler reads each of those modules as a :class:`~sgtrain.io.safe_pickle.ForeignModuleRecord` (the class is named,
never imported; :data:`PICKLE_CLASSES` are the names this family lets it accept); the constructor keywords are read
back from the tensor shapes and attributes (``DataType`` bfloat16 = an FP16 stage), the tensors loaded by key.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import torch

from sgtrain.io.errors import NetworkFileError, UnsupportedNetworkError
from sgtrain.io.nvlabs import jsonable, load_state_dict_checked
from sgtrain.io.safe_pickle import ForeignModuleRecord, collect_state_dict

from .networks import Discriminator, Generator

__all__ = ["PICKLE_CLASSES", "is_r3gan_snapshot", "load_r3gan_snapshot", "record_to_module"]

_NETWORKS = ("Convolution", "ResidualBlock", "UpsampleLayer", "DownsampleLayer", "GenerativeBasis",
             "DiscriminativeBasis", "GeneratorStage", "DiscriminatorStage", "Generator", "Discriminator")
_FUSED = ("BiasedActivationCUDA", "BiasedActivationReference")
_RESAMPLERS = tuple(f"{k}{s}ampler{impl}" for k in ("Interpolative", "Inplace") for s in ("Ups", "Downs")
                    for impl in ("CUDA", "Reference"))

#: Class paths of the authors' modules that their snapshot pickles name (read as records, never imported).
PICKLE_CLASSES: frozenset[str] = frozenset(
    ["training.networks.Generator", "training.networks.Discriminator"]
    + [f"R3GAN.Networks.{n}" for n in _NETWORKS] + [f"R3GAN.FusedOperators.{n}" for n in _FUSED]
    + [f"R3GAN.Resamplers.{n}" for n in _RESAMPLERS])


def _is_net(obj: Any, cls: str) -> bool:
    return isinstance(obj, ForeignModuleRecord) and obj.qualified_name == f"training.networks.{cls}"


def is_r3gan_snapshot(obj: Any) -> bool:
    """True for a dict whose ``G_ema`` or ``G`` is the authors' ``training.networks.Generator`` record."""
    return isinstance(obj, dict) and any(_is_net(obj.get(k), "Generator") for k in ("G_ema", "G"))


def _mods(rec: ForeignModuleRecord) -> dict[str, Any]:
    return rec.state.get("_modules") or {}


def _weight(rec: ForeignModuleRecord, path: str) -> torch.Tensor:
    """The weight of the module at ``path`` (a ``Convolution`` wrapper's is its inner ``Layer``'s)."""
    for part in path.split("."):
        rec = _mods(rec)[part]
    params = rec.state.get("_parameters") or {}
    if params.get("weight") is None and "Layer" in _mods(rec):
        params = _mods(rec)["Layer"].state.get("_parameters") or {}
    return params["weight"]


def _filter_from_kernel(kernel: torch.Tensor) -> list[float]:
    """The 1-D ``ResamplingFilter`` whose :func:`~sgtrain.models.r3gan.networks.lowpass_kernel` is ``kernel``."""
    k = kernel.double().sum(1).numpy()
    f = [k[0]]
    for v in k[1:-1]:
        f.append(v - f[-1])
    f = np.asarray(f) / f[0]
    return [int(round(v)) if abs(v - round(v)) < 1e-6 else float(v) for v in f]


def _stage_kwargs(model: ForeignModuleRecord, generator: bool, what: str) -> dict[str, Any]:
    stages = [_mods(_mods(model)["MainLayers"])[k] for k in sorted(_mods(_mods(model)["MainLayers"]), key=int)]
    widths, cards, blocks, fp16 = [], [], [], []
    expansion, kernel_size, resampling = 2, 3, [1, 2, 1]
    for i, st in enumerate(stages):
        layers = [_mods(_mods(st)["Layers"])[k] for k in sorted(_mods(_mods(st)["Layers"]), key=int)]
        res = [r for r in layers if r.class_name == "ResidualBlock"]
        trans = [r for r in layers if r.class_name != "ResidualBlock"]
        if len(trans) != 1:
            raise UnsupportedNetworkError(f"{what}: stage {i} has {len(trans)} transition layers, expected 1")
        blocks.append(len(res))
        if res:
            w1, w2 = _weight(res[0], "LinearLayer1.Layer"), _weight(res[0], "LinearLayer2.Layer")
            expansion, kernel_size = w1.shape[0] // w1.shape[1], int(w2.shape[-1])
            cards.append(int(w1.shape[0] // w2.shape[1]))
        else:
            cards.append(1)
        t = trans[0]
        if "Resampler" in _mods(t):
            resampling = _filter_from_kernel(_mods(t)["Resampler"].state["_buffers"]["Kernel"])
        if generator:  # the stage's output width
            widths.append(int(t.state["_parameters"]["Basis"].shape[0]) if t.class_name == "GenerativeBasis" else
                          int(_weight(t, "LinearLayer").shape[0]) if "LinearLayer" in _mods(t) else widths[-1])
        else:  # the stage's input width
            widths.append(int(_weight(res[0], "LinearLayer1.Layer").shape[1]) if res else
                          int(_weight(t, "Basis").shape[0]) if t.class_name == "DiscriminativeBasis" else
                          int(_weight(t, "LinearLayer").shape[1]) if "LinearLayer" in _mods(t) else None)
        if st.state.get("DataType") == torch.bfloat16:
            fp16.append(i)
    if None in widths:  # a D stage without blocks or channel change: its input width is the previous output's
        for i, w in enumerate(widths):
            if w is None:
                widths[i] = widths[i - 1] if i else int(_weight(model, "ExtractionLayer.Layer").shape[0])
    return dict(WidthPerStage=widths, CardinalityPerStage=cards, BlocksPerStage=blocks, ExpansionFactor=int(expansion),
                KernelSize=kernel_size, ResamplingFilter=resampling, FP16Stages=fp16,
                img_resolution=4 * 2 ** (len(stages) - 1))


def record_to_module(record: Any, name: str = "network") -> torch.nn.Module:
    """Build the sgtrain R3GAN network of one of the authors' ``training.networks`` records and load its tensors.

    Returns:
        :class:`~sgtrain.models.r3gan.networks.Generator` or ``Discriminator`` in eval mode, float32 parameters
        (FP16Stages as in the file).

    Raises:
        UnsupportedNetworkError: not an R3GAN network record, or a structure / tensors sgtrain's class cannot take.
    """
    if not (_is_net(record, "Generator") or _is_net(record, "Discriminator")):
        raise UnsupportedNetworkError(f"{name} is a {getattr(record, 'qualified_name', type(record).__name__)}, not "
                                      "an R3GAN training.networks Generator / Discriminator")
    model = _mods(record).get("Model")
    if not isinstance(model, ForeignModuleRecord) or not model.qualified_name.startswith("R3GAN.Networks."):
        raise UnsupportedNetworkError(f"{name}: no R3GAN.Networks model inside the {record.qualified_name} record")
    is_g = record.class_name == "Generator"
    try:
        kw = _stage_kwargs(model, is_g, name)
        emb = _mods(model).get("EmbeddingLayer")
        c_dim = int(emb.state["_parameters"]["weight"].shape[1]) if emb is not None else 0
        kw.update(c_dim=c_dim, ConditionEmbeddingDimension=int(emb.state["_parameters"]["weight"].shape[0])
                  if emb is not None else 0)
        if is_g:
            basis = _weight(_mods(_mods(_mods(model)["MainLayers"])["0"])["Layers"].state["_modules"]["0"],
                            "LinearLayer")
            kw.update(NoiseDimension=int(basis.shape[1]) - kw["ConditionEmbeddingDimension"],
                      img_channels=int(_weight(model, "AggregationLayer.Layer").shape[0]))
            module: torch.nn.Module = Generator(**kw)
        else:
            kw["img_channels"] = int(_weight(model, "ExtractionLayer.Layer").shape[1])
            module = Discriminator(**kw)
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as e:
        raise UnsupportedNetworkError(f"{name}: not an R3GAN network structure sgtrain can rebuild ({e})") from e
    load_state_dict_checked(module, collect_state_dict(record), f"{name} (R3GAN {record.class_name})")
    return module.eval()


def load_r3gan_snapshot(obj: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The unpickled content of an R3GAN snapshot as :func:`sgtrain.io.load_network`'s result.

    Returns:
        dict with ``G_ema`` (``G`` where the file has no G_ema) and, where present, ``G``, ``D``, ``training_info``
        (source, file, kimg from the file name, cur_nimg, training_set_kwargs).

    Raises:
        NetworkFileError: no R3GAN generator in it.
        UnsupportedNetworkError: see :func:`record_to_module`.
    """
    if not is_r3gan_snapshot(obj):
        raise NetworkFileError(f"{path or 'pickle'}: no R3GAN generator in it; expected their snapshot dict with G_ema")
    out: dict[str, Any] = {k: record_to_module(obj[k], k) for k in ("G_ema", "G", "D") if obj.get(k) is not None}
    out.setdefault("G_ema", out.get("G"))
    info: dict[str, Any] = {"source": "r3gan-pickle"}
    if path is not None:
        info["file"] = os.fspath(path)
        m = re.search(r"network-snapshot-(\d+)\.pkl$", os.fspath(path))
        if m:
            info["kimg"] = int(m.group(1))
    for key in ("cur_nimg", "training_set_kwargs"):
        try:
            if obj.get(key) is not None:
                info[key] = jsonable(obj[key])
        except TypeError:
            pass
    out["training_info"] = info
    return out
