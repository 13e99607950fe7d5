"""NVlabs StyleGAN2 TensorFlow networks as :mod:`sgtrain.models.stylegan2` modules (NVlabs' PyTorch keys).

Two TF code bases write these pickles (``(G, D, Gs)``, unpickled by the allow-list into TF network records):

- NVlabs/stylegan2 (``training.networks_stylegan2``, state version 4, ``stylegan2-*-config-f.pkl``): ``G_main``
  with ``G_mapping`` and ``G_synthesis_stylegan2`` (configs E-F; architecture orig/skip/resnet) or
  ``G_synthesis_stylegan_revised`` (configs B-D, progressive growing), and ``D_stylegan2`` / ``D_stylegan``;
- NVlabs/stylegan2-ada (``training.networks``, state version 5): ``G_main`` with ``G_mapping`` / ``G_synthesis``, and
  ``D_main``.

The mapping onto sgtrain follows NVlabs' own converter (stylegan2-ada-pytorch ``legacy.py``: channel_base = 2 *
fmap_base, ``mod_bias + 1``, up-convolution kernels flipped, ``ToRGB_lod0`` / ``FromRGB_lod0`` of the progressive
networks taken as the 'orig' architecture's), with these differences, each checked against NVlabs' TF outputs:

- each code base's own defaults: the original D's minibatch-stddev group is 4 (legacy.py uses the whole batch),
  the original mapping's hidden width is 512 and the ADA label embedding's width is latent_size (legacy.py uses
  w_dim for both when the file does not say), ADA's D label mapping width is nf(0);
- keywords that do not change the computation are accepted (``fused_modconv``, ``randomize_noise``, ``structure``,
  truncation and style-mixing defaults, ADA's comparison methods at their off values, ``dtype='float32'``,
  ``fmap_decay`` / ``fmap_min`` / ``fmap_const`` where they give the channel counts sgtrain computes);
- the progressive networks (configs B-D) convert at ``lod == 0`` only (sgtrain's StyleGAN2 has no lod), and
  the original code's labels (``LabelConcat`` in G, a label-sized output in D) are refused with the reason: sgtrain's
  StyleGAN2 embeds labels as NVlabs' ADA code does (``LabelEmbed``, projection discriminator).

Every other keyword or variable raises :class:`~sgtrain.io.errors.UnsupportedNetworkError` naming it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from sgtrain.io.errors import UnsupportedNetworkError
from sgtrain.io.nvlabs import jsonable
from sgtrain.io.safe_pickle import TFNetworkRecord
from sgtrain.models.stylegan.tf import TFVariables, build, check_keywords, conv_weight, dense_weight, fill_from_tf

__all__ = ["convert", "convert_discriminator", "convert_generator"]

_G_MAIN = {"truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta",
           "w_avg_beta", "style_mixing_prob", "mapping_func", "synthesis_func"}
_G_MAPPING = {"latent_size", "label_size", "dlatent_size", "mapping_layers", "mapping_fmaps", "mapping_lrmul",
              "mapping_nonlinearity", "normalize_latents", "dtype"}
_G_SYNTHESIS = {"dlatent_size", "num_channels", "resolution", "fmap_base", "fmap_decay", "fmap_min", "fmap_max",
                "randomize_noise", "architecture", "nonlinearity", "dtype", "resample_kernel", "fused_modconv",
                "structure"}
_ADA_G = {"label_fmaps", "fmap_const", "use_noise", "num_fp16_res", "conv_clamp"}
_D_ORIG = {"num_channels", "resolution", "label_size", "fmap_base", "fmap_decay", "fmap_min", "fmap_max",
           "architecture", "nonlinearity", "mbstd_group_size", "mbstd_num_features", "dtype", "resample_kernel",
           "structure"}
_ADA_D = {"mapping_layers", "mapping_fmaps", "mapping_lrmul", "num_fp16_res", "conv_clamp", "freeze_layers",
          "augment_strength", "pagan_num", "pagan_fade", "use_pagan", "score_size", "score_max", "use_spectral_norm",
          "adaptive_dropout"}
# ADA's comparison methods: accepted only at the values that switch them off.
_ADA_D_OFF = {"use_pagan": False, "score_size": 1, "score_max": 1, "use_spectral_norm": False, "adaptive_dropout": 0}
_SYNTHESIS_FUNCS = {"G_synthesis_stylegan2": "orig", "G_synthesis_stylegan_revised": "revised", "G_synthesis": "ada"}

_same = (lambda a: a)  # noqa: E731


def _flip_conv(w: np.ndarray) -> np.ndarray:
    """Kernel of an upsampling convolution: TF's correlation kernel flipped (NVlabs' PyTorch uses a transposed conv)."""
    return conv_weight(w[::-1, ::-1])


def _nf(stage: int, kw: dict[str, Any]) -> int:
    value = int(kw["fmap_base"] / (2.0 ** (stage * kw["fmap_decay"])))
    return int(np.clip(value, kw["fmap_min"], kw["fmap_max"]))


def _check_channels(kw: dict[str, Any], stages: range, what: str) -> None:
    """TF's nf(stage) must equal sgtrain's min(channel_base // res, channel_max) at res = 2**(stage + 1)."""
    bad = []
    for stage in stages:
        ours = min(2 * kw["fmap_base"] // 2 ** (stage + 1), kw["fmap_max"])
        if _nf(stage, kw) != ours:
            bad.append(f"{2 ** (stage + 1)}x{2 ** (stage + 1)}: {_nf(stage, kw)} vs {ours}")
    if bad:
        raise UnsupportedNetworkError(
            f"{what}: fmap_base={kw['fmap_base']}, fmap_decay={kw['fmap_decay']}, fmap_min={kw['fmap_min']}, "
            f"fmap_max={kw['fmap_max']} give channel counts that sgtrain's StyleGAN2 (min(channel_base // res, "
            f"channel_max)) cannot express: {bad}")


def _resample_filter(kernel: Any) -> list[float]:
    return [1.0, 1.0] if kernel is None else [float(x) for x in np.asarray(kernel, dtype=np.float64).ravel()]


def _require(cond: bool, what: str, message: str) -> None:
    if not cond:
        raise UnsupportedNetworkError(f"{what}: {message}")


def _lod_of(tf_vars: TFVariables) -> float | None:
    return float(tf_vars.get("lod")) if "lod" in tf_vars else None


def convert_generator(record: TFNetworkRecord, what: str = "G") -> torch.nn.Module:
    """NVlabs StyleGAN2-TF ``G_main`` record -> :class:`sgtrain.models.stylegan2.Generator` with its variables.

    Raises:
        UnsupportedNetworkError: unknown keywords or components, the original code's labels (LabelConcat), a
            progressive network at lod != 0, channel counts or options sgtrain's StyleGAN2 cannot express, missing
            or left-over variables.
    """
    from sgtrain.models.stylegan2.networks import Generator

    mapping = record.components.get("mapping")
    synthesis = record.components.get("synthesis")
    _require(isinstance(mapping, TFNetworkRecord) and mapping.func == "G_mapping", what,
             f"G_main's mapping component is not G_mapping ({getattr(mapping, 'build_func_name', mapping)!r})")
    _require(isinstance(synthesis, TFNetworkRecord) and synthesis.func in _SYNTHESIS_FUNCS, what,
             f"G_main's synthesis component {getattr(synthesis, 'build_func_name', synthesis)!r} is none of "
             f"{sorted(_SYNTHESIS_FUNCS)}")
    flavour = _SYNTHESIS_FUNCS[synthesis.func]
    ada = flavour == "ada"
    tf_kw = jsonable(dict(record.static_kwargs))
    check_keywords(tf_kw, _G_MAIN | _G_MAPPING | _G_SYNTHESIS | (_ADA_G if ada else set()), what, "G_main")
    _require(tf_kw.get("mapping_func", "G_mapping") == "G_mapping", what, "mapping_func must be 'G_mapping'")
    _require(tf_kw.get("synthesis_func", synthesis.func) == synthesis.func, what,
             f"synthesis_func {tf_kw.get('synthesis_func')!r} differs from the component ({synthesis.func})")

    kw = dict(latent_size=512, label_size=0, dlatent_size=512, resolution=1024, num_channels=3, mapping_layers=8,
              mapping_fmaps=None if ada else 512, mapping_lrmul=0.01, mapping_nonlinearity="lrelu",
              normalize_latents=True, dtype="float32", fmap_base=16384, fmap_decay=1, fmap_min=1, fmap_max=512,
              fmap_const=None, architecture="skip", nonlinearity="lrelu", resample_kernel=[1, 3, 3, 1],
              use_noise=True, num_fp16_res=0, conv_clamp=None, label_fmaps=None, structure="auto")
    kw.update(tf_kw)
    beta = kw.get("dlatent_avg_beta", kw.get("w_avg_beta", 0.995))
    _require(kw["dtype"] == "float32", what, f"dtype {kw['dtype']!r}: sgtrain converts float32 networks only")
    _require(bool(kw["normalize_latents"]), what, "normalize_latents=False: sgtrain's StyleGAN2 mapping always "
             "normalises z")
    R = int(np.log2(kw["resolution"]))
    _check_channels(kw, range(1, R), what)
    _require(kw["fmap_const"] in (None, _nf(1, kw)), what, f"fmap_const={kw['fmap_const']} differs from the 4x4 "
             f"channels {_nf(1, kw)}; sgtrain's StyleGAN2 has no separate constant width")
    architecture = "orig" if flavour == "revised" else kw["architecture"]

    top = TFVariables(record.variables, what)
    map_vars = TFVariables(mapping.variables, f"{what} {mapping.name}")
    syn_vars = TFVariables(synthesis.variables, f"{what} {synthesis.name}")
    if "LabelConcat/weight" in map_vars:
        raise UnsupportedNetworkError(
            f"{what}: a conditional network of the original NVlabs/stylegan2 code (LabelConcat: labels embedded "
            "and normalised together with z); sgtrain's StyleGAN2 embeds labels as stylegan2-ada does (LabelEmbed, "
            "normalised separately), so it cannot reproduce this generator")
    if flavour == "revised":
        lod = _lod_of(top) if "lod" in top else _lod_of(syn_vars)
        _require(kw["structure"] == "fixed" or lod == 0, what,
                 f"a progressive-growing generator (G_synthesis_stylegan_revised, configs B-D) at lod={lod}; sgtrain "
                 "converts it only at lod 0 (full resolution), where it is StyleGAN2's 'orig' architecture")
    top.skip("lod")
    syn_vars.skip("lod")

    G = build(Generator, dict(
        z_dim=kw["latent_size"], c_dim=kw["label_size"], w_dim=kw["dlatent_size"], img_resolution=kw["resolution"],
        img_channels=kw["num_channels"],
        mapping_kwargs=dict(
            num_layers=kw["mapping_layers"],
            embed_features=kw["label_fmaps"] if kw["label_fmaps"] is not None else kw["latent_size"],
            layer_features=kw["mapping_fmaps"] if kw["mapping_fmaps"] is not None else kw["dlatent_size"],
            activation=kw["mapping_nonlinearity"], lr_multiplier=kw["mapping_lrmul"],
            w_avg_beta=1 if beta is None else beta,
        ),
        channel_base=2 * kw["fmap_base"], channel_max=kw["fmap_max"], num_fp16_res=kw["num_fp16_res"],
        conv_clamp=kw["conv_clamp"], architecture=architecture, resample_filter=_resample_filter(kw["resample_kernel"]),
        use_noise=kw["use_noise"], activation=kw["nonlinearity"],
    ), what)
    if flavour == "revised":  # only the full-resolution ToRGB is used at lod 0
        syn_vars.skip(*(f"ToRGB_lod{k}/{p}" for k in range(1, R - 1) for p in ("weight", "bias", "mod_weight",
                                                                               "mod_bias")))

    def name_map(key: str):
        if key.endswith("resample_filter"):
            return None
        if key == "mapping.w_avg":
            return top, "dlatent_avg", _same
        m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", key)
        if m:
            scope = "LabelEmbed" if m.group(1) == "embed" else f"Dense{m.group(2)}"
            return map_vars, f"{scope}/{m.group(3)}", dense_weight if m.group(3) == "weight" else _same
        if key == "synthesis.b4.const":
            return syn_vars, "4x4/Const/const", lambda a: a[0]
        m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb|skip)\.(.+)", key)
        if m:
            res, layer, param = int(m.group(1)), m.group(2), m.group(3)
            k = int(np.log2(res))
            if layer == "torgb":
                scope = f"ToRGB_lod{R - k}" if flavour == "revised" else f"{res}x{res}/ToRGB"
            elif res == 4:
                scope = "4x4/Conv"
            else:
                scope = f"{res}x{res}/" + {"conv0": "Conv0_up", "conv1": "Conv1", "skip": "Skip"}[layer]
            flip = layer in ("conv0", "skip")
            if param == "weight":
                return syn_vars, f"{scope}/weight", _flip_conv if flip else conv_weight
            if param == "noise_const":
                idx = 0 if res == 4 else 2 * k - (5 if layer == "conv0" else 4)
                return syn_vars, f"noise{idx}", lambda a: a[0, 0]
            tf_param = {"bias": "bias", "noise_strength": "noise_strength", "affine.weight": "mod_weight",
                        "affine.bias": "mod_bias"}.get(param)
            if tf_param == "mod_weight":
                return syn_vars, f"{scope}/mod_weight", dense_weight
            if tf_param == "mod_bias":
                return syn_vars, f"{scope}/mod_bias", lambda a: a + 1
            if tf_param is not None:
                return syn_vars, f"{scope}/{tf_param}", _same
        raise UnsupportedNetworkError(f"{what}: no TensorFlow variable known for sgtrain tensor {key!r}")

    fill_from_tf(G, name_map, (top, map_vars, syn_vars), what)
    return G


def convert_discriminator(record: TFNetworkRecord, what: str = "D") -> torch.nn.Module:
    """NVlabs StyleGAN2-TF ``D_stylegan2`` / ``D_stylegan`` / ``D_main`` record -> sgtrain's StyleGAN2 Discriminator.

    Raises:
        UnsupportedNetworkError: unknown keywords, the original code's labels, ADA comparison methods that are on,
            a progressive D_stylegan at lod != 0, channel counts sgtrain cannot express, missing or left-over
            variables.
    """
    from sgtrain.models.stylegan2.networks import Discriminator

    ada = record.func == "D_main"
    tf_kw = jsonable(dict(record.static_kwargs))
    known = _D_ORIG | (_ADA_D if ada else set())
    if record.func == "D_stylegan":
        known = known - {"architecture"}
    check_keywords(tf_kw, known, what, record.func)
    kw = dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16384, fmap_decay=1, fmap_min=1,
              fmap_max=512, architecture="resnet", nonlinearity="lrelu", mbstd_group_size=None if ada else 4,
              mbstd_num_features=1, dtype="float32", resample_kernel=[1, 3, 3, 1], structure="auto",
              mapping_layers=0, mapping_fmaps=None, mapping_lrmul=0.1, num_fp16_res=0, conv_clamp=None,
              freeze_layers=0)
    kw.update(tf_kw)
    for name, off in _ADA_D_OFF.items():
        _require(kw.get(name, off) == off, what, f"{name}={kw.get(name)!r}: StyleGAN2-ADA comparison methods are "
                 "not part of sgtrain's StyleGAN2 discriminator")
    _require(kw["dtype"] == "float32", what, f"dtype {kw['dtype']!r}: sgtrain converts float32 networks only")
    R = int(np.log2(kw["resolution"]))
    _check_channels(kw, range(1, R), what)
    _require(_nf(0, kw) == _nf(1, kw), what, f"the 4x4 dense layer has nf(0)={_nf(0, kw)} outputs but sgtrain's "
             f"StyleGAN2 epilogue has as many as its 4x4 channels, nf(1)={_nf(1, kw)}")
    tf_vars = TFVariables(record.variables, what)
    progressive = record.func == "D_stylegan"
    if progressive:
        lod = _lod_of(tf_vars)
        _require(kw["structure"] == "fixed" or not lod, what,
                 f"a progressive-growing discriminator (D_stylegan, configs B-D) at lod={lod}; sgtrain converts it "
                 "only at lod 0 (full resolution), where it is StyleGAN2's 'orig' architecture")
        tf_vars.skip("lod", *(f"FromRGB_lod{k}/{p}" for k in range(1, R - 1) for p in ("weight", "bias")))
    architecture = "orig" if progressive else kw["architecture"]
    label_size = kw["label_size"]
    if label_size > 0 and not ada:
        raise UnsupportedNetworkError(
            f"{what}: a conditional discriminator of the original NVlabs/stylegan2 code (scores = sum(Output(x) * c)); "
            "sgtrain's StyleGAN2 discriminator conditions on labels by projection as stylegan2-ada does (LabelEmbed), "
            "so it cannot reproduce it")
    if ada:
        mbstd_group, mbstd_channels = kw["mbstd_group_size"], kw["mbstd_num_features"]
    else:
        enabled = kw["mbstd_group_size"] > 1
        mbstd_group, mbstd_channels = kw["mbstd_group_size"], kw["mbstd_num_features"] if enabled else 0
    cmap = kw["mapping_fmaps"] if kw["mapping_fmaps"] is not None else _nf(0, kw)
    act = kw["nonlinearity"]
    D = build(Discriminator, dict(
        c_dim=label_size, img_resolution=kw["resolution"], img_channels=kw["num_channels"], architecture=architecture,
        channel_base=2 * kw["fmap_base"], channel_max=kw["fmap_max"], num_fp16_res=kw["num_fp16_res"],
        conv_clamp=kw["conv_clamp"], cmap_dim=cmap if label_size > 0 else None,
        block_kwargs=dict(activation=act, resample_filter=_resample_filter(kw["resample_kernel"]),
                          freeze_layers=kw["freeze_layers"]),
        mapping_kwargs=dict(num_layers=kw["mapping_layers"], embed_features=cmap, layer_features=cmap,
                            activation=act, lr_multiplier=kw["mapping_lrmul"]),
        epilogue_kwargs=dict(mbstd_group_size=mbstd_group, mbstd_num_channels=mbstd_channels, activation=act),
    ), what)

    def name_map(key: str):
        if key.endswith("resample_filter"):
            return None
        m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", key)
        if m:
            scope = "LabelEmbed" if m.group(1) == "embed" else f"Mapping{m.group(2)}"
            return tf_vars, f"{scope}/{m.group(3)}", dense_weight if m.group(3) == "weight" else _same
        m = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|skip|conv|fc|out)\.(weight|bias)", key)
        if m:
            res, layer, param = int(m.group(1)), m.group(2), m.group(3)
            if layer == "fromrgb" and progressive:
                scope = "FromRGB_lod0"
            elif layer == "out":
                scope = "Output"
            else:
                scope = f"{res}x{res}/" + {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down",
                                           "skip": "Skip", "conv": "Conv", "fc": "Dense0"}[layer]
            transform = _same if param == "bias" else dense_weight if layer in ("fc", "out") else conv_weight
            return tf_vars, f"{scope}/{param}", transform
        raise UnsupportedNetworkError(f"{what}: no TensorFlow variable known for sgtrain tensor {key!r}")

    fill_from_tf(D, name_map, (tf_vars,), what)
    return D


def convert(record: TFNetworkRecord, what: str = "network") -> torch.nn.Module:
    """Convert an NVlabs StyleGAN2-TF record (``G_main``, ``D_stylegan2``, ``D_stylegan``, ``D_main``).

    Raises:
        UnsupportedNetworkError: another build function, or see :func:`convert_generator` /
            :func:`convert_discriminator`.
    """
    if record.func == "G_main":
        return convert_generator(record, what)
    if record.func in ("D_stylegan2", "D_stylegan", "D_main"):
        return convert_discriminator(record, what)
    raise UnsupportedNetworkError(f"{what}: {record.build_func_name} is not a StyleGAN2-TF network (G_main, "
                                  "D_stylegan2, D_stylegan, D_main)")
