"""NVlabs StyleGAN TensorFlow networks (``G_style``, ``D_basic``) as :mod:`sgtrain.models.stylegan` modules.

Reads what the allow-list unpickler made of an NVlabs ``stylegan`` pickle (``karras2019stylegan-*.pkl`` and that
repository's ``network-snapshot-*.pkl``, state version 3): the build function's keyword arguments and the variables
as numpy arrays. sgtrain's StyleGAN classes take NVlabs' TF keywords, so the keywords pass through unchanged (each
one checked); each variable is mapped onto one tensor, with TF's [k, k, in, out] / [in, out] weight layouts
transposed. Buffers ``lod`` (synthesis, D) and ``w_avg`` (NVlabs' ``dlatent_avg``) come from the file; the lod of
``G_style`` itself is the one NVlabs copies into its synthesis network before every run, so it is the one used.

Also the shared helpers of the TF converters: :class:`TFVariables` (each variable used once, the rest reported).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sgtrain.io.errors import UnsupportedNetworkError
from sgtrain.io.nvlabs import jsonable, load_state_dict_checked
from sgtrain.io.safe_pickle import TFNetworkRecord

__all__ = [
    "TFVariables",
    "build",
    "check_keywords",
    "conv_weight",
    "convert",
    "convert_discriminator",
    "convert_generator",
    "dense_weight",
    "fill_from_tf",
]


class TFVariables:
    """The variables of a TF network record by name, with bookkeeping of which ones a converter used.

    Args:
        variables: ``{name: array}`` (e.g. ``TFNetworkRecord.variables``).
        what: the network, for messages.
    """

    def __init__(self, variables: dict[str, np.ndarray], what: str) -> None:
        self.values = dict(variables)
        self.what = what
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> np.ndarray:
        """The array of variable ``name`` (marked used).

        Raises:
            UnsupportedNetworkError: the record has no such variable.
        """
        if name not in self.values:
            raise UnsupportedNetworkError(f"{self.what}: the TensorFlow network has no variable {name!r} that its "
                                          f"keywords imply; it has {sorted(self.values)[:12]}...")
        self.used.add(name)
        return self.values[name]

    def skip(self, *names: str) -> None:
        """Mark variables as deliberately unused (when present)."""
        self.used.update(n for n in names if n in self.values)

    def check_all_used(self) -> None:
        """Raises UnsupportedNetworkError naming every variable no sgtrain tensor took."""
        unused = sorted(set(self.values) - self.used)
        if unused:
            raise UnsupportedNetworkError(f"{self.what}: TensorFlow variables that sgtrain's network has no place "
                                          f"for: {unused} (a modified architecture?)")


def conv_weight(w: np.ndarray) -> np.ndarray:
    """TF conv weight [k, k, in, out] -> torch [out, in, k, k]."""
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def dense_weight(w: np.ndarray) -> np.ndarray:
    """TF dense weight [in, out] -> torch [out, in]."""
    return np.ascontiguousarray(w.T)


def fill_from_tf(module: torch.nn.Module, name_map: Callable[[str], tuple[TFVariables, str, Callable] | None],
             groups: tuple[TFVariables, ...], what: str) -> None:
    """Load every state_dict tensor of ``module`` from the TF variable that ``name_map(key)`` names.

    ``name_map(key) -> (TFVariables, variable name, transform)``, or None for a tensor the architecture fixes
    (e.g. a FIR filter buffer), which keeps the module's own value; afterwards every variable of ``groups`` must
    have been used.

    Raises:
        UnsupportedNetworkError: a missing variable, a shape mismatch, or TF variables left over.
    """
    sd = {}
    for key, own in module.state_dict().items():
        entry = name_map(key)
        if entry is None:
            sd[key] = own
            continue
        tf_vars, tf_name, transform = entry
        sd[key] = torch.from_numpy(np.array(transform(tf_vars.get(tf_name)), dtype=np.float32))
    for tf_vars in groups:
        tf_vars.check_all_used()
    load_state_dict_checked(module, sd, f"{what} (NVlabs TensorFlow network)")


def check_keywords(kwargs: dict[str, Any], known: set[str], what: str, family: str) -> None:
    """Raises UnsupportedNetworkError naming keywords outside ``known``."""
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UnsupportedNetworkError(f"{what}: {family} keyword(s) {unknown} unknown to sgtrain's converter "
                                      "(a modified network?); known: " + ", ".join(sorted(known)))


def build(cls: type, kwargs: dict[str, Any], what: str) -> torch.nn.Module:
    """``cls(**kwargs)`` with constructor errors turned into UnsupportedNetworkError."""
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UnsupportedNetworkError(f"{what}: sgtrain's {cls.__module__}.{cls.__name__} cannot be built with "
                                      f"{kwargs}: {e}") from e


def _keywords_of(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _component(record: TFNetworkRecord, key: str, func: str, what: str) -> TFNetworkRecord:
    comp = record.components.get(key)
    if not isinstance(comp, TFNetworkRecord) or comp.func != func:
        found = comp.build_func_name if isinstance(comp, TFNetworkRecord) else type(comp).__name__
        raise UnsupportedNetworkError(f"{what}: G_style's {key} component should be built by {func}, found {found}")
    return comp


def _synthesis_layer_scope(layer: str, res: int, const_input: bool) -> tuple[str, int]:
    """(TF scope, layer index) of sgtrain synthesis layer ``b{res}.{layer}``."""
    k = int(np.log2(res))
    if res == 4:
        return {"input": ("4x4/Const" if const_input else "4x4/Dense", 0), "conv": ("4x4/Conv", 1)}[layer]
    return {"conv_up": (f"{res}x{res}/Conv0_up", 2 * k - 4), "conv": (f"{res}x{res}/Conv1", 2 * k - 3)}[layer]


def convert_generator(record: TFNetworkRecord, what: str = "G") -> torch.nn.Module:
    """NVlabs ``G_style`` record -> :class:`sgtrain.models.stylegan.Generator` with its variables.

    Raises:
        UnsupportedNetworkError: other components, unknown keywords, keywords the components disagree on,
            missing or left-over variables, shape mismatches.
    """
    from sgtrain.models.stylegan.networks import Generator

    kwargs = jsonable(dict(record.static_kwargs))
    known = _keywords_of(Generator)
    check_keywords(kwargs, known, what, "G_style")
    mapping = _component(record, "mapping", "G_mapping", what)
    synthesis = _component(record, "synthesis", "G_synthesis", what)
    for comp in (mapping, synthesis):
        comp_kwargs = jsonable(dict(comp.static_kwargs))
        comp_kwargs.pop("dlatent_broadcast", None)
        check_keywords(comp_kwargs, known, f"{what} {comp.name}", comp.func)
        differ = sorted(k for k, v in comp_kwargs.items() if k in kwargs and kwargs[k] != v or k not in kwargs)
        if differ:
            raise UnsupportedNetworkError(f"{what}: {comp.name} was built with keywords {differ} that differ from "
                                          "G_style's; sgtrain's Generator takes one set of keywords")
    G = build(Generator, kwargs, what)

    top = TFVariables(record.variables, what)
    map_vars = TFVariables(mapping.variables, f"{what} {mapping.name}")
    syn_vars = TFVariables(synthesis.variables, f"{what} {synthesis.name}")
    syn_vars.skip("lod")  # NVlabs overwrites it with G_style's lod before every run
    const_input = bool(kwargs.get("const_input_layer", True))
    R = G.synthesis.resolution_log2
    same = (lambda a: a)  # noqa: E731

    def name_map(key: str) -> tuple[TFVariables, str, Callable[[np.ndarray], np.ndarray]]:
        if key == "synthesis.lod":
            return top, "lod", same
        if key == "mapping.w_avg":
            return top, "dlatent_avg", same
        if key == "mapping.embed":
            return map_vars, "LabelConcat/weight", dense_weight
        m = re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key)
        if m:
            return map_vars, f"Dense{m.group(1)}/{m.group(2)}", dense_weight if m.group(2) == "weight" else same
        m = re.fullmatch(r"synthesis\.b(\d+)\.torgb\.(weight|bias)", key)
        if m:
            lod = R - int(np.log2(int(m.group(1))))
            return syn_vars, f"ToRGB_lod{lod}/{m.group(2)}", conv_weight if m.group(2) == "weight" else same
        m = re.fullmatch(r"synthesis\.b(\d+)\.(input|conv_up|conv)\.(.+)", key)
        if m:
            scope, layer_idx = _synthesis_layer_scope(m.group(2), int(m.group(1)), const_input)
            param = m.group(3)
            if param == "noise_const":
                return syn_vars, f"noise{layer_idx}", lambda a: a.reshape(a.shape[-2:])
            if param == "const":
                return syn_vars, f"{scope}/const", lambda a: a.reshape(a.shape[1:])
            if param == "weight":
                return syn_vars, f"{scope}/weight", conv_weight if scope.split("/")[1] != "Dense" else dense_weight
            tf_param = {"noise_strength": "Noise/weight", "bias": "bias", "affine.weight": "StyleMod/weight",
                        "affine.bias": "StyleMod/bias"}.get(param)
            if tf_param is not None:
                return syn_vars, f"{scope}/{tf_param}", dense_weight if param == "affine.weight" else same
        raise UnsupportedNetworkError(f"{what}: no TensorFlow variable known for sgtrain tensor {key!r}")

    fill_from_tf(G, name_map, (top, map_vars, syn_vars), what)
    return G


def convert_discriminator(record: TFNetworkRecord, what: str = "D") -> torch.nn.Module:
    """NVlabs ``D_basic`` record -> :class:`sgtrain.models.stylegan.Discriminator` with its variables.

    Raises:
        UnsupportedNetworkError: unknown keywords, missing or left-over variables, shape mismatches.
    """
    from sgtrain.models.stylegan.networks import Discriminator

    kwargs = jsonable(dict(record.static_kwargs))
    check_keywords(kwargs, _keywords_of(Discriminator), what, "D_basic")
    D = build(Discriminator, kwargs, what)
    tf_vars = TFVariables(record.variables, what)
    R = D.resolution_log2
    same = (lambda a: a)  # noqa: E731

    def name_map(key: str) -> tuple[TFVariables, str, Callable[[np.ndarray], np.ndarray]]:
        if key == "lod":
            return tf_vars, "lod", same
        m = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1_down|conv|dense0|dense1)\.(weight|bias)", key)
        if m:
            res, layer, param = int(m.group(1)), m.group(2), m.group(3)
            if layer == "fromrgb":
                scope = f"FromRGB_lod{R - int(np.log2(res))}"
            else:
                scope = f"{res}x{res}/" + {"conv0": "Conv0", "conv1_down": "Conv1_down", "conv": "Conv",
                                           "dense0": "Dense0", "dense1": "Dense1"}[layer]
            transform = same if param == "bias" else dense_weight if layer.startswith("dense") else conv_weight
            return tf_vars, f"{scope}/{param}", transform
        raise UnsupportedNetworkError(f"{what}: no TensorFlow variable known for sgtrain tensor {key!r}")

    fill_from_tf(D, name_map, (tf_vars,), what)
    return D


def convert(record: TFNetworkRecord, what: str = "network") -> torch.nn.Module:
    """Convert an NVlabs StyleGAN TF record (``G_style`` or ``D_basic``); see the module docstring.

    Raises:
        UnsupportedNetworkError: another build function, or see :func:`convert_generator` /
            :func:`convert_discriminator`.
    """
    if record.func == "G_style":
        return convert_generator(record, what)
    if record.func == "D_basic":
        return convert_discriminator(record, what)
    raise UnsupportedNetworkError(f"{what}: {record.build_func_name} is not a StyleGAN network (G_style, D_basic)")
