"""StyleGAN generator and discriminator (Karras et al. 2019, "A Style-Based Generator Architecture for GANs").

The networks of NVlabs' TensorFlow release (``stylegan/training/networks_stylegan.py``: ``G_style`` = ``G_mapping``
+ ``G_synthesis``, and ``D_basic``), rewritten for PyTorch: the same constructor keywords and defaults, the same
arithmetic (equalized learning rate with the gain inside the weight, noise before bias and activation, instance
norm then AdaIN-style modulation, [1, 2, 1] blur on resampling, fused up/down convolutions from 128x128 on,
progressive growing through ``lod``), so that NVlabs' pickles converted by :mod:`sgtrain.models.stylegan.tf` give
NVlabs' images. The code is sgtrain's own.

Progressive growing: the synthesis network and the discriminator each hold a float32 scalar buffer ``lod`` (level of
detail, as the TF variables of the same name). ``lod = 0`` is the full resolution; ``lod = k`` renders (reads)
images at ``resolution / 2**k``, nearest-upscaled to (box-downscaled from) the full resolution; a fractional ``lod``
blends the two neighbouring levels linearly, exactly as NVlabs' networks do (section 2 of Karras et al. 2018,
"Progressive Growing of GANs"). Only the layers that the current lod needs are computed.

Shapes: z [N, latent_size], c [N, label_size] (float, one-hot for classes; [N, 0] without labels), w [N, dlatent_size],
ws [N, num_ws, dlatent_size] with num_ws = 2 * log2(resolution) - 2 (1 with ``use_styles=False``), images
[N, num_channels, resolution, resolution] float32, nominally in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sgtrain.models.stylegan2.networks import _to_json_kwargs
from sgtrain.nn.layers import normalize_2nd_moment
from sgtrain.nn.mbstd import MinibatchStdLayer
from sgtrain.nn.misc import assert_shape
from sgtrain.ops.bias_act import bias_act
from sgtrain.ops.upfirdn2d import setup_filter, upfirdn2d

__all__ = [
    "upscale2d",
    "downscale2d",
    "blur2d",
    "upscale2d_conv2d",
    "conv2d_downscale2d",
    "DenseLayer",
    "ConvLayer",
    "MappingNetwork",
    "SynthesisLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "Discriminator",
]

_NONLINEARITIES = ("relu", "lrelu")
_NOISE_MODES = ("random", "const", "none")


def _check_common(who: str, resolution: int, dtype: str, fused_scale: bool | str, structure: str,
                  **nonlinearities: str) -> None:
    if resolution < 4 or resolution & (resolution - 1) != 0:
        raise ValueError(f"{who}: resolution must be a power of two >= 4, got {resolution}")
    if dtype != "float32":
        raise ValueError(f"{who}: dtype must be 'float32' (sgtrain runs StyleGAN in float32), got {dtype!r}")
    if fused_scale not in (True, False, "auto"):
        raise ValueError(f"{who}: fused_scale must be True, False or 'auto', got {fused_scale!r}")
    if structure not in ("auto", "linear", "recursive", "fixed"):
        raise ValueError(f"{who}: structure must be 'auto', 'linear', 'recursive' or 'fixed', got {structure!r}")
    for name, value in nonlinearities.items():
        if value not in _NONLINEARITIES:
            raise ValueError(f"{who}: {name} must be one of {_NONLINEARITIES}, got {value!r}")


def _nf(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
    """Feature maps at a stage (NVlabs' ``nf``): stage s serves resolution 2**(s+1) (G) / is D's output width."""
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def _he_gains(fan_in: int, gain: float, use_wscale: bool, lrmul: float) -> tuple[float, float]:
    """(initial std, runtime weight coefficient) of NVlabs' ``get_weight``: He's std gain / sqrt(fan_in)."""
    he_std = gain / math.sqrt(fan_in)
    if use_wscale:
        return 1.0 / lrmul, he_std * lrmul
    return he_std / lrmul, lrmul


def _lod_value(lod: torch.Tensor, max_lod: int, who: str) -> float:
    value = float(lod)
    if not 0 <= value <= max_lod:
        raise ValueError(f"{who}: lod={value} is outside [0, {max_lod}] (0 = full resolution, {max_lod} = 4x4); "
                         "set the lod buffer to a level of detail this network has")
    return value


def upscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upscaling by an integer factor: [N, C, H, W] -> [N, C, H * factor, W * factor]."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1).expand(n, c, h, factor, w, factor)
    return x.reshape(n, c, h * factor, w * factor)


def downscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box-filter downscaling (mean of factor x factor blocks): [N, C, H, W] -> [N, C, H / factor, W / factor]."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def _same_padding(taps: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) of a stride-1 filter with ``taps`` taps."""
    return (taps - 1) // 2, taps - 1 - (taps - 1) // 2


def blur2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Low-pass filter every channel with ``f`` (a setup_filter() filter) and TensorFlow's 'SAME' zero padding.

    NVlabs' ``blur2d`` (a depthwise correlation); even-length filters pad one more pixel after than before.
    """
    fw = int(f.shape[-1])
    fh = int(f.shape[0])
    px0, px1 = _same_padding(fw)
    py0, py1 = _same_padding(fh)
    return upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=True)


def _pad_sum(w: torch.Tensor) -> torch.Tensor:
    """[O, I, k, k] -> [O, I, k+1, k+1]: the kernel that fuses nearest 2x resampling into the convolution."""
    w = F.pad(w, [1, 1, 1, 1])
    return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]


def upscale2d_conv2d(x: torch.Tensor, w: torch.Tensor, fused: bool) -> torch.Tensor:
    """Nearest 2x upscaling then a 'SAME' convolution with w [O, I, k, k] (k odd); ``fused`` = one transposed conv.

    Both give [N, O, 2H, 2W] (NVlabs' ``upscale2d_conv2d``). The fused op is the transpose of a correlation, so it
    equals the separate ops with the kernel flipped: the same weights give different images with ``fused_scale``
    True and False, and a trained network keeps the choice it was trained with.
    """
    if not fused:
        return F.conv2d(upscale2d(x), w, padding=w.shape[-1] // 2)
    w = _pad_sum(w)
    return F.conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=(w.shape[-1] - 2) // 2)


def conv2d_downscale2d(x: torch.Tensor, w: torch.Tensor, fused: bool) -> torch.Tensor:
    """A 'SAME' convolution with w [O, I, k, k] (k odd) then 2x box downscaling; ``fused`` = one strided conv.

    Both give [N, O, H/2, W/2] and equal results up to rounding (NVlabs' ``conv2d_downscale2d``); unlike the
    upscaling pair, no kernel flip separates them.
    """
    if not fused:
        return downscale2d(F.conv2d(x, w, padding=w.shape[-1] // 2))
    w = _pad_sum(w) * 0.25
    return F.conv2d(x, w, stride=2, padding=(w.shape[-1] - 2) // 2)


def _resolve_fused(fused_scale: bool | str, resolution: int) -> bool:
    """NVlabs' 'auto': fuse the resampling into the convolution when the larger side is >= 128."""
    return resolution >= 128 if fused_scale == "auto" else bool(fused_scale)


# ----------------------------------------------------------------------------------------------------------------
# Layers.


class DenseLayer(torch.nn.Module):
    """Fully connected layer with NVlabs' TF equalized learning rate: ``act(x @ (weight * coef).T + bias * lrmul)``.

    Parameters: ``weight`` [out_features, in_features] (TF's [in, out] transposed), ``bias`` [out_features] (absent
    with ``bias=False``). With ``use_wscale`` the weight starts at N(0, 1/lrmul^2) and is scaled at run time by
    coef = gain / sqrt(in_features) * lrmul; without, it starts at He's std / lrmul and coef = lrmul.
    Inputs with more than two dimensions are flattened (NCHW order).
    """

    def __init__(
        self,
        in_features: int,  # Number of input features.
        out_features: int,  # Number of output features.
        gain: float = math.sqrt(2),  # He initialisation gain (sqrt(2) before ReLU-like activations, 1 otherwise).
        use_wscale: bool = True,  # Equalized learning rate (runtime He scaling)?
        lrmul: float = 1.0,  # Learning-rate multiplier of the weight and the bias.
        bias: bool = True,  # Add a learned bias?
        activation: str = "linear",  # 'linear', 'relu' or 'lrelu' (slope 0.2), with output gain 1.
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        init_std, self.weight_gain = _he_gains(in_features, gain, use_wscale, lrmul)
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * init_std)
        self.bias = torch.nn.Parameter(torch.zeros([out_features])) if bias else None
        self.bias_gain = lrmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_features] (or [N, ...] flattening to it) -> [N, out_features] float32."""
        x = x.flatten(1)
        x = x.matmul((self.weight * self.weight_gain).t())
        b = self.bias * self.bias_gain if self.bias is not None else None
        if b is None and self.activation == "linear":
            return x
        return bias_act(x, b, act=self.activation, gain=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class ConvLayer(torch.nn.Module):
    """2-D convolution with NVlabs' TF equalized learning rate, optional 2x down/upsampling, bias and activation.

    Parameters: ``weight`` [out_channels, in_channels, k, k] (TF's [k, k, in, out] transposed), ``bias``
    [out_channels] (absent with ``bias=False``). Downsampling blurs the input first (NVlabs: ``blur`` then
    ``conv2d_downscale2d``); upsampling blurs the output (``upscale2d_conv2d`` then ``blur``). Non-persistent
    buffer ``blur_filter`` when resampling with a blur (rebuilt from the constructor, not in the state_dict).
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        kernel_size: int,  # Kernel width and height (odd).
        gain: float = math.sqrt(2),  # He initialisation gain.
        use_wscale: bool = True,  # Equalized learning rate (runtime He scaling)?
        bias: bool = True,  # Add a learned bias?
        activation: str = "linear",  # 'linear', 'relu' or 'lrelu', output gain 1.
        resample: str | None = None,  # None, 'up' (nearest 2x before) or 'down' (box 2x after the convolution).
        fused: bool = False,  # Fuse the resampling into a (transposed) strided convolution?
        blur_filter: Sequence[float] | None = None,  # Low-pass filter taps around resampling, None = no blur.
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvLayer: kernel_size must be odd (TensorFlow 'SAME' padding), got {kernel_size}")
        if resample not in (None, "up", "down"):
            raise ValueError(f"ConvLayer: resample must be None, 'up' or 'down', got {resample!r}")
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.resample = resample
        self.fused = fused
        init_std, self.weight_gain = _he_gains(in_channels * kernel_size**2, gain, use_wscale, 1.0)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]) * init_std)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.blur = resample is not None and blur_filter is not None and len(blur_filter) > 0
        if self.blur:
            self.register_buffer("blur_filter", setup_filter(np.asarray(blur_filter, dtype=np.float32)),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_channels, H, W] -> [N, out_channels, H', W'] with H' = 2H ('up'), H/2 ('down') or H."""
        w = self.weight * self.weight_gain
        if self.resample == "up":
            x = upscale2d_conv2d(x, w, self.fused)
            if self.blur:
                x = blur2d(x, self.blur_filter)
        elif self.resample == "down":
            if self.blur:
                x = blur2d(x, self.blur_filter)
            x = conv2d_downscale2d(x, w, self.fused)
        else:
            x = F.conv2d(x, w, padding=w.shape[-1] // 2)
        if self.bias is None and self.activation == "linear":
            return x
        return bias_act(x, self.bias, act=self.activation, gain=1)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
                f"resample={self.resample}, fused={self.fused}, blur={self.blur}")


# ----------------------------------------------------------------------------------------------------------------
# Generator.


class MappingNetwork(torch.nn.Module):
    """Mapping network f: (z, c) -> w, with dlatent_avg tracking and the truncation trick (StyleGAN sec. 2, 3).

    NVlabs' ``G_mapping`` plus the dlatent_avg/truncation part of ``G_style``. Labels are embedded by a plain matrix
    and concatenated to z before the normalisation (NVlabs' ``LabelConcat``). Parameters: ``embed`` [latent_size,
    label_size] (only with labels), ``fc0`` ... ``fc{mapping_layers-1}``; buffer ``w_avg`` [dlatent_size] (NVlabs'
    ``dlatent_avg``, always present).
    """

    def __init__(
        self,
        latent_size: int = 512,  # Latent (z) dimensionality.
        label_size: int = 0,  # Label (c) dimensionality, 0 = no labels.
        dlatent_size: int = 512,  # Disentangled latent (w) dimensionality.
        dlatent_broadcast: int | None = None,  # Number of ws to output ([N, num, w]), None = [N, w].
        mapping_layers: int = 8,  # Number of fully connected layers, 0 = w is the normalised [z, embedded c].
        mapping_fmaps: int = 512,  # Width of the hidden layers.
        mapping_lrmul: float = 0.01,  # Learning-rate multiplier of the layers (StyleGAN appendix C).
        mapping_nonlinearity: str = "lrelu",  # Activation: 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate?
        normalize_latents: bool = True,  # Pixel-normalise [z, embedded c] before the layers?
        dlatent_avg_beta: float | None = 0.995,  # Decay of the w_avg moving average, None = never update it.
    ) -> None:
        super().__init__()
        in_features = latent_size * (2 if label_size > 0 else 1)
        if latent_size < 1 or mapping_layers < 0:
            raise ValueError(f"MappingNetwork: latent_size must be >= 1 and mapping_layers >= 0, got {latent_size}, "
                             f"{mapping_layers}")
        if mapping_layers == 0 and in_features != dlatent_size:
            raise ValueError(f"MappingNetwork: without mapping layers w is the normalised input itself, so "
                             f"dlatent_size must be {in_features}, got {dlatent_size}")
        self.z_dim = latent_size
        self.c_dim = label_size
        self.w_dim = dlatent_size
        self.num_ws = dlatent_broadcast
        self.num_layers = mapping_layers
        self.normalize_latents = normalize_latents
        self.dlatent_avg_beta = dlatent_avg_beta
        if label_size > 0:
            self.embed = torch.nn.Parameter(torch.randn([latent_size, label_size]))
        features = [in_features] + [mapping_fmaps] * (mapping_layers - 1) + [dlatent_size]
        for idx in range(mapping_layers):
            setattr(self, f"fc{idx}", DenseLayer(features[idx], features[idx + 1], use_wscale=use_wscale,
                                                 lrmul=mapping_lrmul, activation=mapping_nonlinearity))
        self.register_buffer("w_avg", torch.zeros([dlatent_size]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Map z (and c) to ws.

        Args:
            z: [N, latent_size].
            c: [N, label_size] (ignored without labels; may be None then).
            truncation_psi: w <- w_avg + psi * (w - w_avg); 1 = no truncation, 0 = every w is w_avg.
            truncation_cutoff: truncate only ws[:, :cutoff] (the coarse layers), None = all layers. (NVlabs'
                ``Gs.run`` reads None as "no truncation"; here it means all layers, like every sgtrain family.)
            update_emas: move w_avg toward the batch mean of w: w_avg <- mean + (w_avg - mean) * dlatent_avg_beta
                (NVlabs does this in every training-mode run of G_style; no effect when dlatent_avg_beta is None).

        Returns:
            ws [N, num_ws, dlatent_size] float32 ([N, dlatent_size] without broadcast).

        Raises:
            ValueError: wrong z/c shapes.
        """
        assert_shape(z, [None, self.z_dim], "z")
        x = z.to(torch.float32)
        if self.c_dim > 0:
            assert_shape(c, [z.shape[0], self.c_dim], "c")
            x = torch.cat([x, c.to(torch.float32).matmul(self.embed.t())], dim=1)
        if self.normalize_latents:
            x = normalize_2nd_moment(x)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.dlatent_avg_beta is not None:
            batch_avg = x.detach().mean(dim=0)
            self.w_avg.copy_(batch_avg + (self.w_avg - batch_avg) * self.dlatent_avg_beta)

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
            if truncation_psi != 1:
                cut = self.num_ws if truncation_cutoff is None else max(0, min(int(truncation_cutoff), self.num_ws))
                head = self.w_avg + (x[:, :cut] - self.w_avg) * truncation_psi
                x = torch.cat([head, x[:, cut:]], dim=1)
        elif truncation_psi != 1:
            x = self.w_avg + (x - self.w_avg) * truncation_psi
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisLayer(torch.nn.Module):
    """One synthesis layer: input op, then NVlabs' layer epilogue (StyleGAN fig. 1b).

    Input op by ``kind``: ``'const'`` (learned constant ``const`` [C, 4, 4]), ``'dense'`` (``weight`` [C * 16,
    w_dim]: a dense layer from the layer's w, reshaped to 4x4), ``'conv'`` (3x3, ``weight`` [C, I, 3, 3], TF's
    [3, 3, I, C] transposed) or ``'conv_up'`` (nearest 2x + 3x3 conv, fused or not, then blur; non-persistent
    buffer ``blur_filter``). Equalized learning rate as in ConvLayer / DenseLayer. Epilogue: per-pixel noise times a
    learned per-channel strength (``noise_const`` buffer [res, res], ``noise_strength`` [C]), ``bias`` [C],
    activation, pixel norm, instance norm, style modulation ``x * (y_s + 1) + y_b`` with ``(y_s, y_b) = affine(w)``
    (submodule ``affine``: w_dim -> 2C, as enabled).
    """

    def __init__(
        self,
        kind: str,  # 'const', 'dense', 'conv' or 'conv_up'.
        in_channels: int,  # Input channels (conv kinds) or w_dim ('dense'); unused for 'const'.
        out_channels: int,  # Output channels.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        resolution: int,  # Output resolution of the layer.
        use_styles: bool = True,  # Style modulation from w?
        use_noise: bool = True,  # Add noise scaled by a learned per-channel strength?
        nonlinearity: str = "lrelu",  # 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate?
        use_pixel_norm: bool = False,  # Pixelwise feature vector normalisation after the activation?
        use_instance_norm: bool = True,  # Instance normalisation after the activation?
        fused_scale: bool = False,  # ('conv_up') fuse the upscaling into a transposed convolution?
        blur_filter: Sequence[float] | None = (1, 2, 1),  # ('conv_up') low-pass filter after upscaling, None = none.
    ) -> None:
        if kind not in ("const", "dense", "conv", "conv_up"):
            raise ValueError(f"SynthesisLayer: kind must be 'const', 'dense', 'conv' or 'conv_up', got {kind!r}")
        super().__init__()
        self.kind = kind
        self.out_channels = out_channels
        self.resolution = resolution
        self.use_styles = use_styles
        self.use_noise = use_noise
        self.activation = nonlinearity
        self.use_pixel_norm = use_pixel_norm
        self.use_instance_norm = use_instance_norm
        self.fused = fused_scale
        self.blur = kind == "conv_up" and blur_filter is not None and len(blur_filter) > 0
        if kind == "const":
            self.const = torch.nn.Parameter(torch.ones([out_channels, 4, 4]))
        elif kind == "dense":
            # NVlabs' gain/4 on this layer matches the official Progressive GAN implementation.
            init_std, self.weight_gain = _he_gains(in_channels, math.sqrt(2) / 4, use_wscale, 1.0)
            self.weight = torch.nn.Parameter(torch.randn([out_channels * 16, in_channels]) * init_std)
        else:
            init_std, self.weight_gain = _he_gains(in_channels * 9, math.sqrt(2), use_wscale, 1.0)
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]) * init_std)
        if self.blur:
            self.register_buffer("blur_filter", setup_filter(np.asarray(blur_filter, dtype=np.float32)),
                                 persistent=False)
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([out_channels]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        if use_styles:
            self.affine = DenseLayer(w_dim, out_channels * 2, gain=1, use_wscale=use_wscale)

    def forward(self, x: torch.Tensor | None, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """x [N, I, res/2 or res, ...] (None for 'const'/'dense'), w [N, w_dim] -> [N, C, res, res] float32.

        noise_mode: 'random' (fresh N(0, 1) noise per sample), 'const' (the ``noise_const`` buffer; may be replaced
        by an [N, 1, res, res] tensor), 'none'.
        """
        if self.kind == "const":
            x = self.const.unsqueeze(0).repeat([w.shape[0], 1, 1, 1])
        elif self.kind == "dense":
            x = w.matmul((self.weight * self.weight_gain).t()).reshape(-1, self.out_channels, 4, 4)
        elif self.kind == "conv":
            x = F.conv2d(x, self.weight * self.weight_gain, padding=1)
        else:
            x = upscale2d_conv2d(x, self.weight * self.weight_gain, self.fused)
            if self.blur:
                x = blur2d(x, self.blur_filter)
        assert_shape(x, [w.shape[0], self.out_channels, self.resolution, self.resolution], "SynthesisLayer output")

        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            else:
                noise = self.noise_const
            x = x + noise * self.noise_strength.reshape(1, -1, 1, 1)
        x = bias_act(x, self.bias, act=self.activation, gain=1)
        if self.use_pixel_norm:
            x = normalize_2nd_moment(x, dim=1)
        if self.use_instance_norm:
            x = x - x.mean(dim=[2, 3], keepdim=True)
            x = x * (x.square().mean(dim=[2, 3], keepdim=True) + 1e-8).rsqrt()
        if self.use_styles:
            style = self.affine(w).reshape(-1, 2, self.out_channels, 1, 1)
            x = x * (style[:, 0] + 1) + style[:, 1]
        return x

    def extra_repr(self) -> str:
        return f"kind={self.kind}, out_channels={self.out_channels}, resolution={self.resolution}"


class SynthesisBlock(torch.nn.Module):
    """The two layers of one resolution and its ToRGB (NVlabs' ``'{r}x{r}'`` scope and ``ToRGB_lod{k}``).

    4x4: ``input`` ('const' or 'dense', layer 0) and ``conv`` (layer 1). Higher: ``conv_up`` (layer 2k-4 for
    resolution 2**k) and ``conv`` (layer 2k-3). ``torgb``: 1x1 ConvLayer to image channels, linear, gain 1.
    """

    def __init__(
        self,
        resolution: int,  # Resolution of this block.
        in_channels: int,  # Input channels (0 for the 4x4 block).
        out_channels: int,  # Channels of both layers.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        img_channels: int,  # Image channels of the ToRGB layer.
        const_input_layer: bool = True,  # 4x4: learned constant (True) or a dense layer from w (False)?
        fused_scale: bool = False,  # Fused upscaling convolution?
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass filter after upscaling.
        use_wscale: bool = True,  # Equalized learning rate?
        **layer_kwargs: Any,  # SynthesisLayer epilogue options (use_styles, use_noise, nonlinearity, norms).
    ) -> None:
        super().__init__()
        self.resolution = resolution
        common = dict(w_dim=w_dim, resolution=resolution, use_wscale=use_wscale, **layer_kwargs)
        if resolution == 4:
            kind = "const" if const_input_layer else "dense"
            self.input = SynthesisLayer(kind, w_dim, out_channels, **common)
            self.conv = SynthesisLayer("conv", out_channels, out_channels, **common)
        else:
            self.conv_up = SynthesisLayer("conv_up", in_channels, out_channels, fused_scale=fused_scale,
                                          blur_filter=blur_filter, **common)
            self.conv = SynthesisLayer("conv", out_channels, out_channels, **common)
        self.torgb = ConvLayer(out_channels, img_channels, 1, gain=1, use_wscale=use_wscale)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """x [N, I, res/2, res/2] (None at 4x4), ws [N, 2, w_dim] (the two layers' ws) -> [N, C, res, res]."""
        first = self.input if self.resolution == 4 else self.conv_up
        x = first(x, ws[:, 0], noise_mode=noise_mode)
        return self.conv(x, ws[:, 1], noise_mode=noise_mode)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"


class SynthesisNetwork(torch.nn.Module):
    """Synthesis network g: ws -> image (NVlabs' ``G_synthesis``); blocks ``b4``, ``b8``, ..., ``b{resolution}``.

    Layer i (i = 0 ... num_layers - 1, two per resolution) reads ws[:, i] (ws[:, 0] everywhere with
    ``use_styles=False``); the style affines are registered in that order. Buffer ``lod`` (float32 scalar, see the
    module docstring); channels at resolution 2**k: ``min(int(fmap_base / 2**((k - 1) * fmap_decay)), fmap_max)``.
    """

    def __init__(
        self,
        dlatent_size: int = 512,  # Disentangled latent (w) dimensionality.
        num_channels: int = 3,  # Number of output image channels.
        resolution: int = 1024,  # Output resolution, a power of two >= 4.
        fmap_base: int = 8192,  # Overall multiplier for the number of feature maps.
        fmap_decay: float = 1.0,  # log2 feature map reduction when doubling the resolution.
        fmap_max: int = 512,  # Maximum number of feature maps in any layer.
        use_styles: bool = True,  # Style inputs (False = every layer unmodulated, num_ws = 1)?
        const_input_layer: bool = True,  # First layer a learned constant (False = dense layer from ws[:, 0])?
        use_noise: bool = True,  # Noise inputs?
        randomize_noise: bool = True,  # Default noise_mode: True = 'random', False = 'const' (the noise buffers).
        nonlinearity: str = "lrelu",  # Activation: 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate?
        use_pixel_norm: bool = False,  # Pixelwise feature vector normalisation?
        use_instance_norm: bool = True,  # Instance normalisation?
        dtype: str = "float32",  # Activation dtype; only 'float32'.
        fused_scale: bool | str = "auto",  # Fused upscaling convolutions: True, False, 'auto' (from 128x128 on).
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass filter after upscaling, None = no blur.
        structure: str = "auto",  # 'fixed' = ignore lod (always full resolution); 'auto', 'linear', 'recursive'
        # = progressive growing (identical results).
    ) -> None:
        _check_common("SynthesisNetwork", resolution, dtype, fused_scale, structure, nonlinearity=nonlinearity)
        super().__init__()
        self.w_dim = dlatent_size
        self.img_resolution = resolution
        self.img_channels = num_channels
        self.resolution_log2 = int(np.log2(resolution))
        self.num_layers = self.resolution_log2 * 2 - 2
        self.num_ws = self.num_layers if use_styles else 1
        self.use_styles = use_styles
        self.randomize_noise = randomize_noise
        self.structure = structure
        self.register_buffer("lod", torch.zeros([]))
        layer_kwargs = dict(use_styles=use_styles, use_noise=use_noise, nonlinearity=nonlinearity,
                            use_pixel_norm=use_pixel_norm, use_instance_norm=use_instance_norm)
        self.block_resolutions = [2**k for k in range(2, self.resolution_log2 + 1)]
        for res in self.block_resolutions:
            k = int(np.log2(res))
            block = SynthesisBlock(
                res,
                _nf(k - 2, fmap_base, fmap_decay, fmap_max) if res > 4 else 0,
                _nf(k - 1, fmap_base, fmap_decay, fmap_max),
                w_dim=dlatent_size,
                img_channels=num_channels,
                const_input_layer=const_input_layer,
                fused_scale=_resolve_fused(fused_scale, res),
                blur_filter=blur_filter,
                use_wscale=use_wscale,
                **layer_kwargs,
            )
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str | None = None, update_emas: bool = False) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, num_channels, resolution, resolution] float32, at the current lod.

        Args:
            ws: per-layer intermediate latents.
            noise_mode: 'random', 'const' or 'none'; None = 'random' if randomize_noise else 'const'.
            update_emas: unused (the interface of every sgtrain synthesis network).

        Raises:
            ValueError: wrong ws shape, unknown noise_mode, lod outside [0, log2(resolution) - 2].
        """
        del update_emas
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        if noise_mode is None:
            noise_mode = "random" if self.randomize_noise else "const"
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f"SynthesisNetwork: noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        ws = ws.to(torch.float32)
        if not self.use_styles:
            ws = ws.expand(-1, self.num_layers, -1)
        R = self.resolution_log2
        lod = 0.0 if self.structure == "fixed" else _lod_value(self.lod, R - 2, "SynthesisNetwork")

        # Highest resolution this lod renders, and the weight of the next lower one (NVlabs' grow()).
        res_hi = min(max(R - math.floor(lod), 3), R) if R > 2 else 2
        t = lod - (R - res_hi)
        x = prev = None
        for k in range(2, res_hi + 1):
            with torch.autograd.profiler.record_function(f"b{2**k}"):
                prev = x
                x = getattr(self, f"b{2**k}")(x, ws[:, 2 * k - 4:2 * k - 2], noise_mode=noise_mode)
        img = getattr(self, f"b{2**res_hi}").torgb(x)
        if t > 0:
            low = upscale2d(getattr(self, f"b{2 ** (res_hi - 1)}").torgb(prev))
            img = img + (low - img) * t
        return upscale2d(img, 2 ** (R - res_hi))

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, structure={self.structure}")


class Generator(torch.nn.Module):
    """StyleGAN generator (NVlabs' ``G_style``): ``mapping`` (MappingNetwork) then ``synthesis`` (SynthesisNetwork).

    The constructor takes NVlabs' TF keywords and defaults (``G_style``, ``G_mapping`` and ``G_synthesis`` share one
    keyword list, as in their code). Attributes: z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels (the
    names every sgtrain family exposes), mapping, synthesis, truncation_psi / truncation_cutoff (the network's
    default truncation, as NVlabs' ``Gs.run()`` applies it; sgtrain's calls default to psi = 1), style_mixing_prob
    (the training default), init_kwargs (JSON-serialisable: ``Generator(**G.init_kwargs)`` rebuilds it).
    The level of detail is ``synthesis.lod``; the moving average of w is ``mapping.w_avg``.
    """

    def __init__(
        self,
        latent_size: int = 512,  # Latent (z) dimensionality.
        label_size: int = 0,  # Label (c) dimensionality, 0 = unconditional.
        dlatent_size: int = 512,  # Disentangled latent (w) dimensionality.
        num_channels: int = 3,  # Number of output image channels.
        resolution: int = 1024,  # Output resolution, a power of two >= 4.
        truncation_psi: float | None = 0.7,  # Default psi of NVlabs' Gs.run(), None = no truncation (not used by
        # sgtrain's calls, which take psi explicitly and default to 1).
        truncation_cutoff: int | None = 8,  # Default cutoff of NVlabs' Gs.run(), None = no truncation there.
        truncation_psi_val: float | None = None,  # NVlabs' psi for validation (metrics), None = no truncation.
        truncation_cutoff_val: int | None = None,  # NVlabs' cutoff for validation, None = no truncation.
        dlatent_avg_beta: float | None = 0.995,  # Decay of the w_avg moving average, None = never update it.
        style_mixing_prob: float | None = 0.9,  # Style mixing probability in training, None = off (read by the
        # training loss; the network itself does not mix).
        mapping_layers: int = 8,  # Number of mapping layers, 0 = none (NVlabs' "traditional" baselines).
        mapping_fmaps: int = 512,  # Width of the hidden mapping layers.
        mapping_lrmul: float = 0.01,  # Learning-rate multiplier of the mapping layers.
        mapping_nonlinearity: str = "lrelu",  # Mapping activation: 'relu' or 'lrelu'.
        normalize_latents: bool = True,  # Pixel-normalise z (with the embedded label) before mapping?
        fmap_base: int = 8192,  # Overall multiplier for the number of feature maps.
        fmap_decay: float = 1.0,  # log2 feature map reduction when doubling the resolution.
        fmap_max: int = 512,  # Maximum number of feature maps in any layer.
        use_styles: bool = True,  # Style inputs?
        const_input_layer: bool = True,  # First layer a learned constant?
        use_noise: bool = True,  # Noise inputs?
        randomize_noise: bool = True,  # Default noise_mode: True = 'random', False = 'const'.
        nonlinearity: str = "lrelu",  # Synthesis activation: 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate (mapping and synthesis)?
        use_pixel_norm: bool = False,  # Pixelwise feature vector normalisation in synthesis?
        use_instance_norm: bool = True,  # Instance normalisation in synthesis?
        dtype: str = "float32",  # Activation dtype; only 'float32'.
        fused_scale: bool | str = "auto",  # Fused upscaling convolutions: True, False, 'auto' (from 128x128 on).
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass filter after upscaling, None = no blur.
        structure: str = "auto",  # 'fixed' = ignore lod; 'auto', 'linear', 'recursive' = progressive growing.
    ) -> None:
        super().__init__()
        kwargs = dict(locals())  # the constructor's keywords (nothing else is defined yet), for init_kwargs
        kwargs.pop("self")
        kwargs.pop("__class__", None)
        self.init_kwargs = _to_json_kwargs("Generator", kwargs)
        self.z_dim = latent_size
        self.c_dim = label_size
        self.w_dim = dlatent_size
        self.img_resolution = resolution
        self.img_channels = num_channels
        self.truncation_psi = truncation_psi
        self.truncation_cutoff = truncation_cutoff
        self.truncation_psi_val = truncation_psi_val
        self.truncation_cutoff_val = truncation_cutoff_val
        self.style_mixing_prob = style_mixing_prob
        _check_common("Generator", resolution, dtype, fused_scale, structure, nonlinearity=nonlinearity,
                      mapping_nonlinearity=mapping_nonlinearity)
        self.synthesis = SynthesisNetwork(
            dlatent_size=dlatent_size, num_channels=num_channels, resolution=resolution, fmap_base=fmap_base,
            fmap_decay=fmap_decay, fmap_max=fmap_max, use_styles=use_styles, const_input_layer=const_input_layer,
            use_noise=use_noise, randomize_noise=randomize_noise, nonlinearity=nonlinearity, use_wscale=use_wscale,
            use_pixel_norm=use_pixel_norm, use_instance_norm=use_instance_norm, dtype=dtype, fused_scale=fused_scale,
            blur_filter=blur_filter, structure=structure,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            latent_size=latent_size, label_size=label_size, dlatent_size=dlatent_size, dlatent_broadcast=self.num_ws,
            mapping_layers=mapping_layers, mapping_fmaps=mapping_fmaps, mapping_lrmul=mapping_lrmul,
            mapping_nonlinearity=mapping_nonlinearity, use_wscale=use_wscale, normalize_latents=normalize_latents,
            dlatent_avg_beta=dlatent_avg_beta,
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        noise_mode: str | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [N, latent_size], c [N, label_size] -> images [N, num_channels, resolution, resolution] float32.

        truncation_psi, truncation_cutoff, update_emas: see MappingNetwork.forward; noise_mode: see
        SynthesisNetwork.forward (None = 'random' if randomize_noise else 'const').
        """
        with torch.autograd.profiler.record_function("mapping"):
            ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                              update_emas=update_emas)
        with torch.autograd.profiler.record_function("synthesis"):
            return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas)


# ----------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of D (NVlabs' ``'{r}x{r}'`` scope): ``conv0`` (3x3), ``conv1_down`` (blur, 3x3, 2x box down;
    fused from 128x128 on), plus ``fromrgb`` (``FromRGB_lod{k}``: 1x1 conv reading the image at this level).
    """

    def __init__(
        self,
        resolution: int,  # Resolution of this block's input.
        in_channels: int,  # Channels of conv0 (= fromrgb output).
        out_channels: int,  # Channels of conv1_down.
        img_channels: int,  # Image channels.
        nonlinearity: str = "lrelu",  # 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate?
        fused_scale: bool = False,  # Fused downscaling convolution?
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass filter before downscaling.
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.in_channels = in_channels
        common = dict(use_wscale=use_wscale, activation=nonlinearity)
        self.fromrgb = ConvLayer(img_channels, in_channels, 1, **common)
        self.conv0 = ConvLayer(in_channels, in_channels, 3, **common)
        self.conv1_down = ConvLayer(in_channels, out_channels, 3, resample="down", fused=fused_scale,
                                    blur_filter=blur_filter, **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_channels, res, res] -> [N, out_channels, res/2, res/2]."""
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], f"b{self.resolution} input")
        return self.conv1_down(self.conv0(x))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 part of D: ``fromrgb``, minibatch stddev (``mbstd``, when group size > 1), ``conv`` (3x3), ``dense0``,
    ``dense1`` (to max(label_size, 1) scores, linear). With labels the logit is sum(scores * c) ("Which Training
    Methods for GANs do actually Converge?", Mescheder et al. 2018, as NVlabs' ``LabelSwitch``).
    """

    def __init__(
        self,
        in_channels: int,  # Channels at 4x4 (nf(1)).
        dense_channels: int,  # Width of dense0 (nf(0)).
        img_channels: int,  # Image channels.
        label_size: int = 0,  # Label dimensionality, 0 = unconditional.
        nonlinearity: str = "lrelu",  # 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate?
        mbstd_group_size: int = 4,  # Minibatch stddev group size, <= 1 = no minibatch stddev layer.
        mbstd_num_features: int = 1,  # Number of minibatch stddev channels.
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.label_size = label_size
        common = dict(use_wscale=use_wscale, activation=nonlinearity)
        self.fromrgb = ConvLayer(img_channels, in_channels, 1, **common)
        num_std = mbstd_num_features if mbstd_group_size > 1 else 0
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_features) if num_std else None
        self.conv = ConvLayer(in_channels + num_std, in_channels, 3, **common)
        self.dense0 = DenseLayer(in_channels * 16, dense_channels, **common)
        self.dense1 = DenseLayer(dense_channels, max(label_size, 1), gain=1, use_wscale=use_wscale)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """x [N, in_channels, 4, 4], c [N, label_size] -> logits [N, 1] float32."""
        assert_shape(x, [None, self.in_channels, 4, 4], "b4 input")
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.dense1(self.dense0(self.conv(x)))
        if self.label_size > 0:
            assert_shape(c, [x.shape[0], self.label_size], "c")
            x = (x * c.to(torch.float32)).sum(dim=1, keepdim=True)
        return x


class Discriminator(torch.nn.Module):
    """StyleGAN discriminator (NVlabs' ``D_basic``): blocks ``b{resolution}`` ... ``b8``, epilogue ``b4``.

    Constructor: NVlabs' TF keywords and defaults. Attributes: c_dim, img_resolution, img_channels, init_kwargs.
    Buffer ``lod`` (float32 scalar): D reads the image at ``resolution / 2**floor(lod)`` (box-downscaled) through
    that level's ``fromrgb``, blended with the next lower level by the fractional part, as NVlabs' networks do.
    """

    def __init__(
        self,
        num_channels: int = 1,  # Number of input image channels (NVlabs: set from the dataset).
        resolution: int = 32,  # Input resolution, a power of two >= 4 (NVlabs: set from the dataset).
        label_size: int = 0,  # Label dimensionality, 0 = unconditional (NVlabs: set from the dataset).
        fmap_base: int = 8192,  # Overall multiplier for the number of feature maps.
        fmap_decay: float = 1.0,  # log2 feature map reduction when doubling the resolution.
        fmap_max: int = 512,  # Maximum number of feature maps in any layer.
        nonlinearity: str = "lrelu",  # Activation: 'relu' or 'lrelu'.
        use_wscale: bool = True,  # Equalized learning rate?
        mbstd_group_size: int = 4,  # Minibatch stddev group size, <= 1 = no minibatch stddev layer.
        mbstd_num_features: int = 1,  # Number of minibatch stddev channels.
        dtype: str = "float32",  # Activation dtype; only 'float32'.
        fused_scale: bool | str = "auto",  # Fused downscaling convolutions: True, False, 'auto' (from 128x128 on).
        blur_filter: Sequence[float] | None = (1, 2, 1),  # Low-pass filter before downscaling, None = no blur.
        structure: str = "auto",  # 'fixed' = ignore lod; 'auto', 'linear', 'recursive' = progressive growing.
        freeze_layers: int = 0,  # Freeze-D (fine-tuning; not an NVlabs TF keyword): leading layers kept fixed.
    ) -> None:
        super().__init__()
        kwargs = dict(locals())  # the constructor's keywords (nothing else is defined yet), for init_kwargs
        kwargs.pop("self")
        kwargs.pop("__class__", None)
        if not freeze_layers:  # files keep NVlabs' keyword set unless Freeze-D is on
            kwargs.pop("freeze_layers")
        self.init_kwargs = _to_json_kwargs("Discriminator", kwargs)
        _check_common("Discriminator", resolution, dtype, fused_scale, structure, nonlinearity=nonlinearity)
        self.c_dim = label_size
        self.img_resolution = resolution
        self.img_channels = num_channels
        self.resolution_log2 = int(np.log2(resolution))
        self.structure = structure
        self.register_buffer("lod", torch.zeros([]))
        self.block_resolutions = [2**k for k in range(self.resolution_log2, 2, -1)]
        for res in self.block_resolutions:
            k = int(np.log2(res))
            block = DiscriminatorBlock(
                res, _nf(k - 1, fmap_base, fmap_decay, fmap_max), _nf(k - 2, fmap_base, fmap_decay, fmap_max),
                img_channels=num_channels, nonlinearity=nonlinearity, use_wscale=use_wscale,
                fused_scale=_resolve_fused(fused_scale, res), blur_filter=blur_filter,
            )
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(
            _nf(1, fmap_base, fmap_decay, fmap_max), _nf(0, fmap_base, fmap_decay, fmap_max), num_channels,
            label_size=label_size, nonlinearity=nonlinearity, use_wscale=use_wscale,
            mbstd_group_size=mbstd_group_size, mbstd_num_features=mbstd_num_features,
        )
        self.freeze_layers = int(freeze_layers)
        for layer in self.layers_in_order()[: self.freeze_layers]:
            layer.requires_grad_(False)

    def layers_in_order(self) -> list[torch.nn.Module]:
        """D's layers in the order Freeze-D counts them (Mo et al. 2020, as NVlabs' StyleGAN2 counts them): the top
        block's ``fromrgb``, ``conv0``, ``conv1_down``, then ``conv0`` and ``conv1_down`` of each lower block (whose
        ``fromrgb``, read only while that level fades in, goes with its ``conv0``), then ``b4``'s ``conv``,
        ``dense0``, ``dense1`` (with ``b4.fromrgb``). ``freeze_layers=N`` keeps the first N fixed
        (``requires_grad`` off; they stay parameters, so state_dict keys are NVlabs')."""
        out: list[torch.nn.Module] = []
        for i, res in enumerate(self.block_resolutions):
            b = getattr(self, f"b{res}")
            out += [b.fromrgb, b.conv0, b.conv1_down] if i == 0 else [torch.nn.ModuleList([b.fromrgb, b.conv0]),
                                                                       b.conv1_down]
        return out + [torch.nn.ModuleList([self.b4.fromrgb, self.b4.conv]), self.b4.dense0, self.b4.dense1]

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False) -> torch.Tensor:
        """img [N, num_channels, resolution, resolution] in [-1, 1], c [N, label_size] -> logits [N, 1] float32.

        update_emas is unused (the interface of every sgtrain discriminator).

        Raises:
            ValueError: wrong shapes, lod outside [0, log2(resolution) - 2], a batch the mbstd groups do not divide.
        """
        del update_emas
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        img = img.to(torch.float32)
        R = self.resolution_log2
        lod = 0.0 if self.structure == "fixed" else _lod_value(self.lod, R - 2, "Discriminator")

        # Highest resolution this lod reads, and the weight of the next lower one (NVlabs' grow()).
        res_top = min(max(R - math.floor(lod), 2), R)
        t = lod - (R - res_top)
        block = self.b4 if res_top == 2 else getattr(self, f"b{2**res_top}")
        x = block.fromrgb(downscale2d(img, 2 ** (R - res_top)))
        if res_top > 2:
            with torch.autograd.profiler.record_function(f"b{2**res_top}"):
                x = block(x)
            if t > 0:
                lower = self.b4 if res_top == 3 else getattr(self, f"b{2 ** (res_top - 1)}")
                y = lower.fromrgb(downscale2d(img, 2 ** (R - res_top + 1)))
                x = x + (y - x) * t
            for k in range(res_top - 1, 2, -1):
                with torch.autograd.profiler.record_function(f"b{2**k}"):
                    x = getattr(self, f"b{2**k}")(x)
        with torch.autograd.profiler.record_function("b4"):
            return self.b4(x, c)

    def extra_repr(self) -> str:
        return (f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}, "
                f"structure={self.structure}")
