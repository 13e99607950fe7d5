"""NVlabs ProGAN TensorFlow networks (``G_paper`` / ``D_paper``) rebuilt as :mod:`sgtrain.models.progan` modules.

Two NVlabs sources write these records, both read here without TensorFlow and without running their code:

- ``tkarras/progressive_growing_of_gans`` ``networks.py`` pickled by ``tfutil.Network`` (state version 2): the
  official ``karras2018iclr-*.pkl`` files and that repository's training snapshots. Its fused upsampling conv
  stores its weight as ``[k, k, fmaps_out, fmaps_in]``; its ``D_paper`` has no label input and an auxiliary
  classifier: ``4x4/Dense1`` has ``1 + label_size`` outputs.
- ``NVlabs/stylegan`` ``training/networks_progan.py`` pickled by ``dnnlib.tflib.Network`` (state version 3). Its
  fused upsampling conv stores ``[k, k, fmaps_in, fmaps_out]``; its ``D_paper`` outputs one score and ignores labels.

Which one wrote a record is read from, in order: the weight shapes where they tell (non-square fused upsampling
convs; ``Dense1``'s width), the embedded build module source read as text (never executed; sgtrain's own fixtures
replace it by a placeholder), and the state version. Keyword arguments of the other network (``latent_size`` in a
D record...) are ignored, as the TF build functions ignore them; ``dtype``, ``structure`` and
``is_template_graph`` only change how TF builds the same function; any other keyword, and any variable sgtrain has
no place for, raises :class:`~sgtrain.io.errors.UnsupportedNetworkError` naming it.

Variable mapping (TF -> sgtrain): ``lod`` -> buffer ``lod``; ``{R}x{R}/<Layer>/weight|bias`` -> ``b{R}.<layer>.*``
(lower case); ``ToRGB_lod{k}`` -> ``torgb_lod{k}``, ``FromRGB_lod{k}`` -> ``fromrgb_lod{k}``. Conv weights
``[k, k, in, out]`` become ``[out, in, k, k]``, dense weights ``[in, out]`` become ``[out, in]``.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import torch

from sgtrain.io.errors import UnsupportedNetworkError
from sgtrain.io.nvlabs import load_state_dict_checked
from sgtrain.io.safe_pickle import TFNetworkRecord
from sgtrain.models.progan.networks import Discriminator, Generator

__all__ = ["G_KEYWORDS", "D_KEYWORDS", "convert", "detect_variant", "tf_variable_key"]

# Keywords of the TF build functions (same in both reference files) that the sgtrain modules take.
G_KEYWORDS = ("num_channels", "resolution", "label_size", "fmap_base", "fmap_decay", "fmap_max", "latent_size",
              "normalize_latents", "use_wscale", "use_pixelnorm", "pixelnorm_epsilon", "use_leakyrelu", "fused_scale")
D_KEYWORDS = ("num_channels", "resolution", "label_size", "fmap_base", "fmap_decay", "fmap_max", "use_wscale",
              "mbstd_group_size", "fused_scale")
# TF-only: how the graph is built ('linear'/'recursive' give the same numbers), or the activation dtype.
_TF_ONLY = ("structure", "is_template_graph", "dtype")
_DTYPES = ("float32", "float16")

_G_DEFAULTS = {k: p.default for k, p in inspect.signature(Generator).parameters.items()}
_SCOPE_RE = re.compile(r"^(?:(\d+)x\1/(\w+)|(ToRGB|FromRGB)_lod(\d+))/(weight|bias)$")

# Text that only one of the two reference modules contains.
_PGGAN_MARKERS = ("labels_out", "fmaps=1+label_size")
_STYLEGAN_MARKERS = ("num_new_features", "Network architectures used in the ProGAN paper")


def detect_variant(record: TFNetworkRecord) -> str:
    """Which reference wrote ``record``, from its source text and state version (weight shapes: :func:`convert`).

    Returns:
        ``'pggan'`` (progressive_growing_of_gans ``networks.py``) or ``'stylegan'`` (stylegan ``networks_progan.py``).
    """
    src = record.build_module_src or ""
    if any(m in src for m in _PGGAN_MARKERS):
        return "pggan"
    if any(m in src for m in _STYLEGAN_MARKERS):
        return "stylegan"
    return "pggan" if record.version == 2 else "stylegan"


def tf_variable_key(name: str) -> str | None:
    """sgtrain state_dict key of a TF ProGAN variable name (``'8x8/Conv0_up/weight'`` -> ``'b8.conv0_up.weight'``).

    Returns:
        The key, or None for a name that has no place in sgtrain's modules.
    """
    if name == "lod":
        return "lod"
    m = _SCOPE_RE.match(name)
    if not m:
        return None
    res, layer, rgb, lod, param = m.groups()
    if res is not None:
        return f"b{res}.{layer.lower()}.{param}"
    return f"{rgb.lower()}_lod{lod}.{param}"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _kwargs(record: TFNetworkRecord, what: str) -> dict[str, Any]:
    own = G_KEYWORDS if record.func == "G_paper" else D_KEYWORDS
    known = set(G_KEYWORDS) | set(D_KEYWORDS) | set(_TF_ONLY)
    kw = {str(k): _plain(v) for k, v in record.static_kwargs.items()}
    unknown = sorted(k for k in kw if k not in known)
    if unknown:
        raise UnsupportedNetworkError(
            f"{what}: TensorFlow ProGAN {record.func} with keyword(s) {unknown} that sgtrain's ProGAN does not know "
            f"(known: {', '.join(own)})"
        )
    dtype = kw.get("dtype", "float32")
    if str(dtype) not in _DTYPES:
        raise UnsupportedNetworkError(f"{what}: TensorFlow ProGAN {record.func} with dtype={dtype!r}; sgtrain runs "
                                      f"ProGAN in float32 and accepts files built with dtype {' or '.join(_DTYPES)}")
    return {k: v for k, v in kw.items() if k in own}


def _nf(kw: dict[str, Any], defaults: dict[str, Any]):
    base, decay, fmax = (kw.get(k, defaults[k]) for k in ("fmap_base", "fmap_decay", "fmap_max"))
    return lambda stage: min(int(base / (2.0 ** (stage * decay))), fmax)


def _variant_from_shapes(record: TFNetworkRecord, kw: dict[str, Any]) -> str | None:
    """'stylegan' / 'pggan' when a non-square fused upsampling conv shows its layout; None when none does."""
    nf = _nf(kw, _G_DEFAULTS)
    for name, v in record.variables.items():
        m = re.match(r"^(\d+)x\1/Conv0_up/weight$", name)
        if not m or v.ndim != 4:
            continue
        res_log2 = int(np.log2(int(m.group(1))))
        fin, fout = nf(res_log2 - 2), nf(res_log2 - 1)
        if fin == fout:
            continue
        if tuple(v.shape[2:]) == (fin, fout):
            return "stylegan"
        if tuple(v.shape[2:]) == (fout, fin):
            return "pggan"
    return None


def _to_torch(name: str, value: np.ndarray, upconv_layout: str) -> torch.Tensor:
    t = torch.from_numpy(np.array(value, dtype=np.float32))
    if t.ndim == 4:  # conv [k, k, in, out] -> [out, in, k, k]
        if upconv_layout == "pggan" and "/Conv0_up/" in name:  # stored [k, k, out, in]
            return t.permute(2, 3, 0, 1).contiguous()
        return t.permute(3, 2, 0, 1).contiguous()
    if t.ndim == 2:  # dense [in, out] -> [out, in]
        return t.t().contiguous()
    return t


def convert(record: TFNetworkRecord, what: str = "network") -> torch.nn.Module:
    """Build the sgtrain ProGAN module for a TF ``G_paper`` / ``D_paper`` record and load its variables.

    Args:
        record: a :class:`~sgtrain.io.safe_pickle.TFNetworkRecord` whose build function is ``G_paper`` or
            ``D_paper``.
        what: name for error messages (``'G_ema'``, ``'D'``...).

    Returns:
        :class:`sgtrain.models.progan.Generator` or :class:`~sgtrain.models.progan.Discriminator` (eval mode,
        float32, CPU) with the record's weights and ``lod``. A progressive_growing_of_gans D gets
        ``aux_labels=True``.

    Raises:
        UnsupportedNetworkError: another build function, unknown keywords or variables, or shapes that do not fit.
    """
    if record.func not in ("G_paper", "D_paper"):
        raise UnsupportedNetworkError(f"{what}: {record.build_func_name!r} is not a ProGAN G_paper / D_paper network")
    kw = _kwargs(record, what)
    variant = detect_variant(record)
    if record.func == "G_paper":
        variant = _variant_from_shapes(record, kw) or variant
        try:
            module: torch.nn.Module = Generator(**kw)
        except (TypeError, ValueError) as e:
            raise UnsupportedNetworkError(f"{what}: cannot build ProGAN Generator({kw}): {e}") from e
    else:
        label_size = int(kw.get("label_size", 0))
        dense1 = record.variables.get("4x4/Dense1/weight")
        if label_size > 0 and dense1 is not None and dense1.ndim == 2:
            aux = dense1.shape[1] == 1 + label_size  # the weights say it, whatever wrote them
        else:
            aux = variant == "pggan"
        try:
            module = Discriminator(**kw, aux_labels=aux)
        except (TypeError, ValueError) as e:
            raise UnsupportedNetworkError(f"{what}: cannot build ProGAN Discriminator({kw}): {e}") from e

    own = module.state_dict()
    sd: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, value in record.variables.items():
        key = tf_variable_key(name)
        if key is None or key not in own:
            unknown.append(name)
            continue
        sd[key] = _to_torch(name, value, variant)
    if unknown:
        raise UnsupportedNetworkError(
            f"{what}: TensorFlow ProGAN {record.func} variable(s) {sorted(unknown)[:10]} have no counterpart in "
            f"sgtrain's {type(module).__name__} built from its keywords {kw}"
        )
    if "lod" in sd:
        sd["lod"] = sd["lod"].reshape([])
    load_state_dict_checked(module, sd, f"{what} (TensorFlow ProGAN {record.func}, {variant} layout)")
    return module.eval()
