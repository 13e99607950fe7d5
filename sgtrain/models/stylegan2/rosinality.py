"""rosinality/stylegan2-pytorch checkpoints mapped onto sgtrain's NVlabs-layout StyleGAN2 modules.

rosinality's ``train.py`` saves ``{'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'}`` and its
``convert_weight.py`` saves ``{'g_ema', 'latent_avg'}``; both hold state_dicts of its ``model.py``. Its network is
the config-F StyleGAN2 of Karras et al. 2020 with different module names; this module renames every tensor to
NVlabs' key, reshapes where the layout differs and infers the constructor arguments from tensor shapes.

Differences and how they map (all exact up to float rounding, measured max |diff| <= 1e-4 on CPU float32):

- Mapping: ``style.{i+1}`` (EqualLinear, lr_mul 0.01: weight stored as ``randn / lr_mul``, runtime gain
  ``lr_mul / sqrt(in)``, bias times ``lr_mul``) is NVlabs' FullyConnectedLayer with ``lr_multiplier=0.01``
  (same stored values, same gains) -> ``mapping.fc{i}``. rosinality's ``lr_mlp`` is not saved; its train.py
  always uses the default 0.01, which is assumed. ``latent_avg`` -> ``mapping.w_avg``; without it (train.py
  checkpoints) w_avg is estimated as the mean of 4096 mapped z (seed 0), as rosinality's generate.py does.
- Modulated conv weight ``[1, out, in, k, k]`` -> ``[out, in, k, k]``. The upsampling conv (transposed conv,
  stride 2, then a [1,3,3,1] blur with pad (1, 1) and gain 4) is the same operation as NVlabs' conv2d_resample
  with ``up=2`` without flipping; ``modulation`` -> ``affine`` (bias_init 1 in both).
- ``noise.weight [1]`` -> ``noise_strength []``; fixed noise buffers ``noises.noise_{i} [1, 1, r, r]`` ->
  ``noise_const [r, r]`` of the i-th synthesis layer, so rosinality's ``randomize_noise=False`` is
  sgtrain's ``noise_mode='const'``. ``activate.bias`` (FusedLeakyReLU: bias, lrelu 0.2, gain sqrt 2) ->
  ``bias`` of the layer.
- ToRGB bias ``[1, 3, 1, 1]`` -> ``[3]``; its skip upsampling (upfirdn2d, [1,3,3,1] * 4, pad (2, 1)) is NVlabs'
  ``upsample2d``. ``conv_clamp=None``, ``num_fp16_res=0`` (rosinality clamps nothing and runs fp32).
- Discriminator: ``convs.0`` FromRGB, ``convs.{j}`` ResBlocks (``conv1``, ``conv2`` with blur, ``skip``) ->
  ``b{res}.fromrgb/conv0/conv1/skip``; ``(out + skip) / sqrt 2`` equals NVlabs' gains sqrt(0.5) on both paths;
  ``final_conv``/``final_linear.0``/``final_linear.1`` -> ``b4.conv``/``b4.fc``/``b4.out``; minibatch stddev
  group 4, 1 channel.
- Channels: rosinality's table ``{4..32: 512, 64: 256*m, 128: 128*m, ...}`` equals NVlabs'
  ``min(channel_base // res, channel_max)`` with ``channel_base = 16384 * m``, ``channel_max = 512``; the
  values are inferred from the tensors, not from ``m``.

What cannot map: a ``blur_kernel`` other than [1, 3, 3, 1] (rosinality passes it to the convs but not to the
ToRGB upsampling; NVlabs uses one ``resample_filter``), and SWAGAN checkpoints (``swagan.py``, a wavelet
architecture). Both raise :class:`~sgtrain.io.errors.UnsupportedNetworkError`.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import torch

from sgtrain.io.errors import UnsupportedNetworkError

__all__ = ["is_rosinality_checkpoint", "is_sgtrain01_checkpoint", "load_checkpoint", "load_sgtrain01_checkpoint",
           "rosinality_discriminator", "rosinality_generator"]

#: Mapped z averaged for w_avg when a rosinality checkpoint has no ``latent_avg``.
W_AVG_SAMPLES = 4096

_LR_MLP = 0.01  # rosinality Generator(lr_mlp=0.01), the value its train.py uses


def is_rosinality_checkpoint(obj: Any) -> bool:
    """True for a dict with a rosinality ``g_ema`` state_dict (``style.1.weight``, ``input.input``)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("g_ema"), dict):
        return False
    keys = obj["g_ema"].keys()
    return "input.input" in keys or any(str(k).startswith("style.") for k in keys)


def _blur_kernel(up: bool) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[:, None] * k[None, :]
    k = k / k.sum()
    return k * 4 if up else k


def _check_kernel(sd: dict, key: str, up: bool) -> None:
    if key in sd and not torch.allclose(sd[key].float(), _blur_kernel(up), atol=1e-6):
        raise UnsupportedNetworkError(
            f"rosinality checkpoint uses a blur kernel other than [1, 3, 3, 1] ({key}); sgtrain's StyleGAN2 uses one "
            "resample_filter for convs and ToRGB upsampling while rosinality's ToRGB always uses [1, 3, 3, 1], so "
            "this network cannot be rebuilt exactly"
        )


def _channel_config(channels: dict[int, int], what: str) -> tuple[int, int]:
    """Find (channel_base, channel_max) with ``min(channel_base // res, channel_max) == channels[res]``."""
    cmax = max(channels.values())
    below = sorted(r for r, c in channels.items() if c < cmax)
    # rosinality's own values first (channel_multiplier 2 or 1), then the value the widths imply.
    for base in (32768, 16384, channels[below[-1]] * below[-1] if below else cmax * max(channels)):
        if all(min(base // r, cmax) == c for r, c in channels.items()):
            return base, cmax
    raise UnsupportedNetworkError(
        f"rosinality {what} has channel widths {dict(sorted(channels.items()))} per resolution, which no "
        "(channel_base, channel_max) of NVlabs' StyleGAN2 reproduces"
    )


def _indices(sd: dict, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def rosinality_generator(sd: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Map a rosinality ``Generator`` state_dict to sgtrain/NVlabs ``Generator`` init_kwargs and state_dict.

    Args:
        sd: rosinality ``g_ema`` or ``g`` state_dict (float tensors).

    Returns:
        ``(init_kwargs, state_dict)``; ``state_dict`` has every key of NVlabs' Generator except
        ``mapping.w_avg`` (rosinality keeps it outside the module as ``latent_avg``) and the
        ``resample_filter`` buffers (constants rebuilt by the constructor).

    Raises:
        UnsupportedNetworkError: SWAGAN, unknown layout, a non-[1,3,3,1] blur kernel or a channel table that
            NVlabs' channel_base/channel_max cannot express.
    """
    if any(k.startswith(("dwt", "iwt")) or ".iwt." in k for k in sd):
        raise UnsupportedNetworkError("rosinality SWAGAN (swagan.py) checkpoints are not supported: sgtrain has no "
                                      "wavelet generator")
    required = ("input.input", "conv1.conv.weight", "to_rgb1.conv.weight", "style.1.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        raise UnsupportedNetworkError(f"not a rosinality stylegan2-pytorch Generator state_dict: missing {missing}")
    mlp = _indices(sd, r"style\.(\d+)\.weight")
    if mlp != list(range(1, len(mlp) + 1)):
        raise UnsupportedNetworkError(f"rosinality mapping layers style.{mlp} are not numbered 1..n")
    n_rgb = len(_indices(sd, r"to_rgbs\.(\d+)\.bias"))
    log_size = n_rgb + 2
    size = 2**log_size
    style_dim = sd["style.1.weight"].shape[1]
    channels = {4: sd["input.input"].shape[1]}
    for k in range(n_rgb):
        channels[2 ** (k + 3)] = sd[f"convs.{2 * k}.conv.weight"].shape[1]
        _check_kernel(sd, f"convs.{2 * k}.conv.blur.kernel", up=True)
        _check_kernel(sd, f"to_rgbs.{k}.upsample.kernel", up=True)
    base, cmax = _channel_config(channels, "Generator")

    out: dict[str, torch.Tensor] = {}
    for i in mlp:
        out[f"mapping.fc{i - 1}.weight"] = sd[f"style.{i}.weight"]
        out[f"mapping.fc{i - 1}.bias"] = sd[f"style.{i}.bias"]
    out["synthesis.b4.const"] = sd["input.input"][0]

    def layer(src: str, dst: str, noise_idx: int) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        noise = sd.get(f"noises.noise_{noise_idx}")
        if noise is not None:
            out[f"{dst}.noise_const"] = noise.reshape(noise.shape[-2:])

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

    layer("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    for k in range(n_rgb):
        res = 2 ** (k + 3)
        layer(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1)
        layer(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2)
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")

    init_kwargs = dict(
        z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=size, img_channels=3,
        mapping_kwargs=dict(num_layers=len(mlp), lr_multiplier=_LR_MLP),
        channel_base=base, channel_max=cmax, num_fp16_res=0, conv_clamp=None, architecture="skip",
    )
    return init_kwargs, out


def rosinality_discriminator(sd: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Map a rosinality ``Discriminator`` state_dict to sgtrain/NVlabs ``Discriminator`` init_kwargs and state_dict.

    Args:
        sd: rosinality ``d`` state_dict.

    Returns:
        ``(init_kwargs, state_dict)`` for ``Discriminator(architecture='resnet', mbstd_group_size=4,
        mbstd_num_channels=1, conv_clamp=None, num_fp16_res=0)``, without ``resample_filter`` buffers.

    Raises:
        UnsupportedNetworkError: unknown layout, non-[1,3,3,1] blur kernel, inexpressible channel table.
    """
    required = ("convs.0.0.weight", "final_conv.0.weight", "final_linear.0.weight", "final_linear.1.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        raise UnsupportedNetworkError(f"not a rosinality stylegan2-pytorch Discriminator state_dict: missing {missing}")
    blocks = _indices(sd, r"convs\.(\d+)\.conv1\.0\.weight")
    if blocks != list(range(1, len(blocks) + 1)):
        raise UnsupportedNetworkError(f"rosinality Discriminator ResBlocks convs.{blocks} are not numbered 1..n")
    size = 2 ** (len(blocks) + 2)
    img_channels = sd["convs.0.0.weight"].shape[1]
    channels = {size: sd["convs.0.0.weight"].shape[0]}
    out: dict[str, torch.Tensor] = {
        f"b{size}.fromrgb.weight": sd["convs.0.0.weight"],
        f"b{size}.fromrgb.bias": sd["convs.0.1.bias"],
    }
    for j in blocks:
        res = size // 2 ** (j - 1)
        _check_kernel(sd, f"convs.{j}.conv2.0.kernel", up=False)
        _check_kernel(sd, f"convs.{j}.skip.0.kernel", up=False)
        channels[res // 2] = sd[f"convs.{j}.conv2.1.weight"].shape[0]
        out[f"b{res}.conv0.weight"] = sd[f"convs.{j}.conv1.0.weight"]
        out[f"b{res}.conv0.bias"] = sd[f"convs.{j}.conv1.1.bias"]
        out[f"b{res}.conv1.weight"] = sd[f"convs.{j}.conv2.1.weight"]
        out[f"b{res}.conv1.bias"] = sd[f"convs.{j}.conv2.2.bias"]
        out[f"b{res}.skip.weight"] = sd[f"convs.{j}.skip.1.weight"]
    if sd["final_conv.0.weight"].shape[0] != channels[4]:
        raise UnsupportedNetworkError("rosinality Discriminator final_conv width differs from its 4x4 block width")
    out["b4.conv.weight"] = sd["final_conv.0.weight"]
    out["b4.conv.bias"] = sd["final_conv.1.bias"]
    out["b4.fc.weight"] = sd["final_linear.0.weight"]
    out["b4.fc.bias"] = sd["final_linear.0.bias"]
    out["b4.out.weight"] = sd["final_linear.1.weight"]
    out["b4.out.bias"] = sd["final_linear.1.bias"]
    base, cmax = _channel_config(channels, "Discriminator")
    init_kwargs = dict(
        c_dim=0, img_resolution=size, img_channels=img_channels, architecture="resnet",
        channel_base=base, channel_max=cmax, num_fp16_res=0, conv_clamp=None,
        epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=1),
    )
    assert math.log2(size).is_integer()
    return init_kwargs, out


def _estimate_w_avg(G: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn([W_AVG_SAMPLES, G.z_dim], generator=gen)
    with torch.no_grad():
        ws = G.mapping(z, torch.zeros([W_AVG_SAMPLES, G.c_dim]))
        G.mapping.w_avg.copy_(ws[:, 0].mean(0))


def load_checkpoint(obj: dict[str, Any], p: Path) -> dict[str, Any]:
    """:func:`sgtrain.io.load_network`'s result for an unpickled rosinality checkpoint (``g_ema``, ``g``, ``d``,
    ``latent_avg``, ``args``, ``ada_aug_p``) read from ``p``.

    Raises:
        UnsupportedNetworkError: no ``g_ema``, or tensors that do not fit sgtrain's StyleGAN2.
    """
    from sgtrain.io.nvlabs import load_state_dict_checked
    from sgtrain.io.portable import build_module

    out: dict[str, Any] = {}
    info: dict[str, Any] = {"source": "rosinality", "file": str(p)}
    latent_avg = obj.get("latent_avg")
    for key, name in (("g_ema", "G_ema"), ("g", "G")):
        if not isinstance(obj.get(key), dict):
            continue
        kwargs, sd = rosinality_generator(obj[key])
        G = build_module("sgtrain.models.stylegan2.networks.Generator", kwargs, f"{p} {key}")
        fill = ("resample_filter",)
        if isinstance(latent_avg, torch.Tensor):
            sd["mapping.w_avg"] = latent_avg.reshape(-1)
        else:
            fill += ("mapping.w_avg",)
        if not any(k.endswith("noise_const") for k in sd):
            fill += ("noise_const",)
            info["noise_const"] = "the checkpoint has no fixed noise buffers: noise_mode='const' uses fresh noise"
        load_state_dict_checked(G, sd, f"{p} {key} (rosinality Generator)", fill_from_module=fill)
        if not isinstance(latent_avg, torch.Tensor):
            _estimate_w_avg(G)
            info["w_avg"] = f"estimated as the mean of {W_AVG_SAMPLES} mapped z (seed 0): the file has no latent_avg"
        out[name] = G.eval()
    if isinstance(obj.get("d"), dict):
        kwargs, sd = rosinality_discriminator(obj["d"])
        D = build_module("sgtrain.models.stylegan2.networks.Discriminator", kwargs, f"{p} d")
        load_state_dict_checked(D, sd, f"{p} d (rosinality Discriminator)", fill_from_module=("resample_filter",))
        out["D"] = D.eval()
    if obj.get("ada_aug_p") is not None:
        try:
            out["augment_p"] = float(obj["ada_aug_p"])
        except (TypeError, ValueError):
            pass
    args = obj.get("args")
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if isinstance(args, dict):
        info["args"] = {k: v for k, v in args.items() if _is_json_scalar(v)}
    out["training_info"] = info
    if "G_ema" not in out:
        raise UnsupportedNetworkError(f"{p}: rosinality checkpoint without g_ema")
    return out


def _is_json_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def is_sgtrain01_checkpoint(obj: Any) -> bool:
    """A Lightning checkpoint of sgtrain <= 0.1 (StyleGAN2 only): the networks' keywords in ``hyper_parameters``
    (``G_kwargs``, ``D_kwargs``), no ``sgtrain.networks`` entry."""
    if not (isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict)):
        return False
    extra = obj.get("sgtrain") if isinstance(obj.get("sgtrain"), dict) else {}
    hp = obj.get("hyper_parameters") or {}
    return not isinstance(extra.get("networks"), dict) and isinstance(hp, dict) and isinstance(hp.get("G_kwargs"), dict)


def load_sgtrain01_checkpoint(obj: dict[str, Any], p: Path) -> dict[str, Any]:
    """:func:`sgtrain.io.load_network`'s result for a checkpoint of sgtrain <= 0.1 (:func:`is_sgtrain01_checkpoint`)."""
    from sgtrain.io.loader import convert_lightning

    hp = obj["hyper_parameters"]
    G = {"class": "sgtrain.models.stylegan2.networks.Generator", "init_kwargs": hp["G_kwargs"]}
    networks = {"G_ema": G, "G": G}
    if isinstance(hp.get("D_kwargs"), dict):
        networks["D"] = {"class": "sgtrain.models.stylegan2.networks.Discriminator", "init_kwargs": hp["D_kwargs"]}
    extra = dict(obj.get("sgtrain") or {}, networks=networks)
    return convert_lightning({**obj, "sgtrain": extra}, p)
