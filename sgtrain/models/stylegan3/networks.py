"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"), configs T and R.

The architecture NVlabs implements in ``stylegan3/training/networks_stylegan3.py``: the same constructor keywords,
state_dict keys, tensor shapes and buffers (``mapping.w_avg``, ``synthesis.input.{transform,freqs,phases}``,
``synthesis.L*.{magnitude_ema,up_filter,down_filter}``), so that NVlabs' weights load by key and give the same
images. The code is sgtrain's own.

- Config T (translation equivariance): the defaults (``conv_kernel=3``, separable Kaiser filters).
- Config R (rotation equivariance too): ``conv_kernel=1``, ``use_radial_filters=True`` and, as NVlabs' train.py
  sets it, twice the channel_base and channel_max.

The discriminator is StyleGAN2's (NVlabs' stylegan3 trains ``networks_stylegan2.Discriminator``), exposed here as
:data:`Discriminator`.

Shapes: z [N, z_dim], c [N, c_dim] (one-hot for classes; [N, 0] when c_dim is 0), ws [N, num_ws, w_dim] with
num_ws = num_layers + 2 (one w for the Fourier-feature input, one per layer, one for ToRGB), images
[N, img_channels, img_resolution, img_resolution] float32, nominally in [-1, 1].

The input transform: ``G.synthesis.input.transform`` [3, 3] is the *inverse* of the user's translation/rotation of
the output image (identity = none). :func:`make_transform` builds the forward matrix from a translation and an
angle as NVlabs' gen_images.py does, :func:`input_transform` its inverse, ready to copy into the buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sgtrain.models.stylegan2 import networks as stylegan2
from sgtrain.models.stylegan2.networks import _to_json_kwargs
from sgtrain.nn.layers import FullyConnectedLayer
from sgtrain.nn.misc import assert_shape, make_transform
from sgtrain.ops.filtered_lrelu import filtered_lrelu

__all__ = [
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisNetwork",
    "design_lowpass_filter",
    "input_transform",
    "make_transform",
    "modulated_conv2d",
]

#: The StyleGAN2 discriminator, which NVlabs' StyleGAN3 trains (``training.networks_stylegan2.Discriminator``).
Discriminator = stylegan2.Discriminator

_NOISE_MODES = ("random", "const", "none")


# ----------------------------------------------------------------------------------------------------------------
# Helpers: input transforms and filter design.


def input_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> torch.Tensor:
    """The matrix to copy into ``G.synthesis.input.transform``: inverse of :func:`make_transform` (gen_images.py).

    Returns:
        float32 [3, 3] tensor on the CPU. Use ``G.synthesis.input.transform.copy_(input_transform((tx, ty), deg))``;
        ``copy_`` moves it to the buffer's device.
    """
    return torch.from_numpy(np.linalg.inv(make_transform(translate, angle))).to(torch.float32)


def _kaiser_beta(atten: float) -> float:
    """Kaiser window shape for a stop-band attenuation in dB (Kaiser's empirical formula, as scipy.signal)."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _kaiser_atten(numtaps: int, width: float) -> float:
    """Attenuation (dB) of a Kaiser FIR filter of ``numtaps`` and transition ``width`` (fraction of Nyquist)."""
    return 2.285 * (numtaps - 1) * np.pi * width + 7.95


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """Kaiser-windowed low-pass FIR filter of StyleGAN3 (appendix C/D), without scipy.

    Separable: the windowed-sinc design of ``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`` (Kaiser
    window whose beta follows from ``width``, normalised to unit DC gain). Radial: a jinc filter
    ``J1(2 pi cutoff r) / (pi r)`` times the outer product of the same Kaiser window, normalised to sum 1.

    Args:
        numtaps: Number of taps (>= 1); 1 = identity (returns None).
        cutoff: Cutoff frequency f_c (same units as fs).
        width: Transition band width (2 f_h).
        fs: Sampling rate.
        radial: Radially symmetric 2-D filter instead of a separable 1-D one.

    Returns:
        float32 [numtaps] (separable) or [numtaps, numtaps] (radial), or None for numtaps 1.
    """
    if numtaps < 1:
        raise ValueError(f"design_lowpass_filter: numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    nyq = fs / 2
    beta = _kaiser_beta(_kaiser_atten(numtaps, width / nyq))
    window = np.kaiser(numtaps, beta)
    if not radial:
        c = cutoff / nyq
        m = np.arange(numtaps) - 0.5 * (numtaps - 1)
        h = c * np.sinc(c * m) * window
        return torch.as_tensor(h / np.sum(h), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    arg = torch.from_numpy(2 * cutoff * np.pi * r)
    j1 = torch.special.bessel_j1(arg).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(r > 0, j1 / (np.pi * r), cutoff)  # the limit at r = 0 (odd numtaps only)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / np.sum(f), dtype=torch.float32)


# ----------------------------------------------------------------------------------------------------------------
# Layers.


def modulated_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    s: torch.Tensor,
    demodulate: bool = True,
    padding: int | Sequence[int] = 0,
    input_gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN3's modulated convolution: pre-normalised weight and styles, demodulation, input gain.

    With demodulation, the weight is first scaled to unit RMS per output channel and the styles to unit RMS over
    the batch (numerical range for float16; the demodulation makes the result independent of both scales). Then
    w'_nois = w_ois * s_ni (StyleGAN2 eq. 1), w''_nois = w'_nois / sqrt(sum_is w'^2 + 1e-8) (eq. 3) and, with
    ``input_gain``, w''' = w'' * input_gain_ni (StyleGAN3's 1 / sqrt(magnitude_ema) input normalisation).
    Runs as one grouped convolution (correlation, no weight flip).

    Args:
        x: [N, I, H, W] float32 (or float16 on CUDA).
        w: [O, I, kh, kw] weight.
        s: [N, I] styles.
        demodulate: Apply the demodulation (False for ToRGB).
        padding: Convolution padding (int or [ph, pw]).
        input_gain: Scale of the input channels: [], [I] or [N, I]; None = 1.

    Returns:
        [N, O, H + 2 ph - kh + 1, W + 2 pw - kw + 1] in x's dtype.
    """
    batch_size = int(x.shape[0])
    out_channels, in_channels, kh, kw = w.shape
    assert_shape(x, [batch_size, in_channels, None, None], "modulated_conv2d x")
    assert_shape(s, [batch_size, in_channels], "modulated_conv2d styles")
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s.unsqueeze(1).unsqueeze(3).unsqueeze(4)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.unsqueeze(2).unsqueeze(3).unsqueeze(4)
    if input_gain is not None:
        input_gain = input_gain.expand(batch_size, in_channels)
        w = w * input_gain.unsqueeze(1).unsqueeze(3).unsqueeze(4)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = torch.nn.functional.conv2d(x, w.to(x.dtype), padding=padding, groups=batch_size)
    return x.reshape(batch_size, -1, *x.shape[2:])


class MappingNetwork(stylegan2.MappingNetwork):
    """StyleGAN3's mapping network (z, c) -> ws: StyleGAN2's with 2 layers by default, hidden width w_dim, label
    embedding of size w_dim, and the w_avg buffer always present (truncation needs it).

    Keys: ``embed.{weight,bias}`` (c_dim > 0), ``fc{i}.{weight,bias}``, buffer ``w_avg`` [w_dim].
    """

    def __init__(
        self,
        z_dim: int,  # Input latent (z) dimensionality.
        c_dim: int,  # Conditioning label (c) dimensionality, 0 = no labels.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        num_ws: int,  # Number of ws to output (broadcast).
        num_layers: int = 2,  # Number of mapping layers.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the mapping layers.
        w_avg_beta: float = 0.998,  # Decay of the w_avg moving average (tracked during training).
    ) -> None:
        if num_ws is None or w_avg_beta is None:
            raise ValueError("MappingNetwork (StyleGAN3): num_ws and w_avg_beta must be numbers, not None")
        super().__init__(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_ws=num_ws,
            num_layers=num_layers,
            lr_multiplier=lr_multiplier,
            w_avg_beta=w_avg_beta,
        )


class SynthesisInput(torch.nn.Module):
    """Fourier-feature input of the synthesis network (StyleGAN3, section 3.1 and appendix F).

    ``channels`` sinusoids with fixed random frequencies in a disc of radius ``bandwidth`` and random phases,
    rotated and translated per sample by (r_c, r_s, t_x, t_y) = ``affine(w)`` (normalised so that (r_c, r_s) is a
    unit vector), then by the user transform, sampled on a ``size`` grid, and mixed by a learned ``weight``.

    Parameters: ``weight`` [channels, channels], ``affine`` (FullyConnectedLayer w_dim -> 4, initial weight 0 and
    bias (1, 0, 0, 0): identity rotation, no translation). Buffers: ``transform`` [3, 3] (user-specified inverse
    transform, identity), ``freqs`` [channels, 2], ``phases`` [channels].
    """

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (w) dimensionality.
        channels: int,  # Number of output channels.
        size: int | Sequence[int],  # Output spatial size: int or [width, height].
        sampling_rate: float,  # Output sampling rate (samples per unit length).
        bandwidth: float,  # Output bandwidth (cutoff f_c of the first layer).
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2]).astype(np.int64)
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)

        # Frequencies uniform in the disc of radius bandwidth: a Gaussian direction with a radius warped so that
        # the density is uniform in area; phases uniform in [-0.5, 0.5).
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w [N, w_dim] -> Fourier features [N, channels, size_h, size_w] float32."""
        assert_shape(w, [None, self.w_dim], "SynthesisInput w")
        n = w.shape[0]
        transforms = self.transform.unsqueeze(0)  # [1, 3, 3]
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0)  # [1, C]

        t = self.affine(w)  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])  # inverse rotation of the image
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])  # inverse translation of the image
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        transforms = m_r @ m_t @ transforms  # rotate the image first, then translate, then the user transform

        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]

        # Frequencies that the user transform pushes beyond the band fade out linearly up to the Nyquist rate.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * float(self.size[0]) / self.sampling_rate
        theta[1, 1] = 0.5 * float(self.size[1]) / self.sampling_rate
        grids = torch.nn.functional.affine_grid(
            theta.unsqueeze(0), [1, 1, int(self.size[1]), int(self.size[0])], align_corners=False
        )

        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)

        weight = self.weight / np.sqrt(self.channels)
        x = x @ weight.t()
        x = x.permute(0, 3, 1, 2)  # [N, C, H, W]
        assert_shape(x, [n, self.channels, int(self.size[1]), int(self.size[0])], "SynthesisInput output")
        return x

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, channels={self.channels}, size={[int(s) for s in self.size]}, "
            f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}"
        )


class SynthesisLayer(torch.nn.Module):
    """One StyleGAN3 layer: modulated conv, then filtered leaky ReLU (bias, upsample, lrelu, downsample).

    The layer turns a signal of ``in_sampling_rate`` (band-limited to ``in_cutoff``) into one of
    ``out_sampling_rate`` (band-limited to ``out_cutoff``); the leaky ReLU runs at ``tmp_sampling_rate`` =
    max(in, out) * lrelu_upsampling (StyleGAN3, section 3.2). The ToRGB layer (``is_torgb``) is a 1x1 modulated
    conv without demodulation, a bias and a clamp, no resampling.

    Parameters: ``weight`` [O, I, k, k], ``bias`` [O], ``affine`` (w_dim -> I, bias_init 1). Buffers:
    ``magnitude_ema`` [] (moving average of the input's mean square; the input is scaled by its rsqrt),
    ``up_filter`` / ``down_filter`` ([taps], [taps, taps] for radial filters, or None = identity).
    """

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (w) dimensionality.
        is_torgb: bool,  # Is this the final ToRGB layer?
        is_critically_sampled: bool,  # Does this layer use critical sampling (no radial filter)?
        use_fp16: bool,  # Run in float16 (CUDA only)?
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        in_size: int | Sequence[int],  # Input spatial size: int or [width, height].
        out_size: int | Sequence[int],  # Output spatial size: int or [width, height].
        in_sampling_rate: float,  # Input sampling rate (s).
        out_sampling_rate: float,  # Output sampling rate (s).
        in_cutoff: float,  # Input cutoff frequency (f_c).
        out_cutoff: float,  # Output cutoff frequency (f_c).
        in_half_width: float,  # Input transition band half-width (f_h).
        out_half_width: float,  # Output transition band half-width (f_h).
        conv_kernel: int = 3,  # Convolution kernel size (1 in config R); ignored for ToRGB (always 1).
        filter_size: int = 6,  # Low-pass filter length relative to the lower sampling rate when resampling.
        lrelu_upsampling: int = 2,  # Sampling rate of the leaky ReLU relative to max(in, out); ignored for ToRGB.
        use_radial_filters: bool = False,  # Radially symmetric downsampling filter (config R)? Not when critical.
        conv_clamp: float | None = 256,  # Clamp the output to [-conv_clamp, conv_clamp], None = no clamping.
        magnitude_ema_beta: float = 0.999,  # Decay of the moving average of the input magnitude.
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = bool(is_torgb)
        self.is_critically_sampled = bool(is_critically_sampled)
        self.use_fp16 = bool(use_fp16)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2]).astype(np.int64)
        self.out_size = np.broadcast_to(np.asarray(out_size), [2]).astype(np.int64)
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        if in_sampling_rate * self.up_factor != self.tmp_sampling_rate:
            raise ValueError(
                f"SynthesisLayer: tmp sampling rate {self.tmp_sampling_rate} is not an integer multiple of the input "
                f"rate {in_sampling_rate}"
            )
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not self.is_torgb else 1
        self.register_buffer(
            "up_filter",
            design_lowpass_filter(self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate),
        )

        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        if out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError(
                f"SynthesisLayer: tmp sampling rate {self.tmp_sampling_rate} is not an integer multiple of the output "
                f"rate {out_sampling_rate}"
            )
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not self.is_torgb else 1
        self.down_radial = bool(use_radial_filters and not self.is_critically_sampled)
        self.register_buffer(
            "down_filter",
            design_lowpass_filter(
                self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial
            ),
        )

        # Padding so that the output has out_size pixels, with the sample positions of the symmetric
        # interpretation (StyleGAN3, appendix C.3).
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    design_lowpass_filter = staticmethod(design_lowpass_filter)

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """x [N, in_channels, in_h, in_w], w [N, w_dim] -> [N, out_channels, out_h, out_w].

        noise_mode: accepted for the generators' common interface and ignored (StyleGAN3 has no noise inputs).
        force_fp32: float32 even where use_fp16 (off CUDA always float32).
        update_emas: move ``magnitude_ema`` toward the batch's mean square of x.
        Returns float16 when the layer runs in float16, else float32.
        """
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f"SynthesisLayer: noise_mode must be one of {_NOISE_MODES}, got {noise_mode!r}")
        assert_shape(x, [None, self.in_channels, int(self.in_size[1]), int(self.in_size[0])], "SynthesisLayer x")
        assert_shape(w, [x.shape[0], self.w_dim], "SynthesisLayer w")

        if update_emas:
            with torch.autograd.profiler.record_function("update_magnitude_ema"):
                magnitude_cur = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * self.conv_kernel**2))

        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == "cuda") else torch.float32
        x = modulated_conv2d(
            x.to(dtype),
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            padding=self.conv_kernel - 1,
            input_gain=input_gain,
        )

        gain = 1 if self.is_torgb else np.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        x = filtered_lrelu(
            x,
            fu=self.up_filter,
            fd=self.down_filter,
            b=self.bias.to(x.dtype),
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=gain,
            slope=slope,
            clamp=self.conv_clamp,
        )
        assert_shape(x, [None, self.out_channels, int(self.out_size[1]), int(self.out_size[0])], "SynthesisLayer out")
        return x

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
            f"use_fp16={self.use_fp16}, in_sampling_rate={self.in_sampling_rate:g}, "
            f"out_sampling_rate={self.out_sampling_rate:g}, in_cutoff={self.in_cutoff:g}, "
            f"out_cutoff={self.out_cutoff:g}, in_size={[int(s) for s in self.in_size]}, "
            f"out_size={[int(s) for s in self.out_size]}, in_channels={self.in_channels}, "
            f"out_channels={self.out_channels}, up={self.up_factor}, down={self.down_factor}"
        )


class SynthesisNetwork(torch.nn.Module):
    """Synthesis network g: ws -> image; ``input`` (Fourier features), then ``L0_<size>_<channels>`` ...
    ``L<num_layers>_<img_resolution>_<img_channels>`` (the last one is ToRGB).

    Cutoffs f_c and minimum stopbands f_t follow a geometric progression from the first layer to the last
    ``num_critical`` (critically sampled) layers; sampling rates are the smallest powers of two above 2 f_t (at most
    img_resolution); layers carry ``margin_size`` extra pixels on each side except the last two (StyleGAN3,
    section 3 and appendix F). Channels: min((channel_base / 2) / f_c, channel_max).
    """

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (w) dimensionality.
        img_resolution: int,  # Output image resolution.
        img_channels: int,  # Number of color channels.
        channel_base: int = 32768,  # Overall multiplier for the number of channels.
        channel_max: int = 512,  # Maximum number of channels in any layer.
        num_layers: int = 14,  # Total number of layers, excluding Fourier features and ToRGB.
        num_critical: int = 2,  # Number of critically sampled layers at the end.
        first_cutoff: float = 2,  # Cutoff frequency of the first layer (f_{c,0}).
        first_stopband: float = 2**2.1,  # Minimum stopband of the first layer (f_{t,0}).
        last_stopband_rel: float = 2**0.3,  # Minimum stopband of the last layer, relative to its cutoff.
        margin_size: int = 10,  # Number of additional pixels outside the image.
        output_scale: float = 0.25,  # Scale factor of the output image.
        num_fp16_res: int = 4,  # Use float16 (CUDA only) in layers whose sampling rate * 2**N > img_resolution.
        **layer_kwargs: Any,  # Arguments for SynthesisLayer (conv_kernel, use_radial_filters, conv_clamp, ...).
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        last_cutoff = img_resolution / 2  # f_{c,N}
        last_stopband = last_cutoff * last_stopband_rel  # f_{t,N}
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents  # f_c[i]
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents  # f_t[i]

        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))  # s[i]
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs  # f_h[i]
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(
            w_dim=w_dim,
            channels=int(channels[0]),
            size=int(sizes[0]),
            sampling_rate=sampling_rates[0],
            bandwidth=cutoffs[0],
        )
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim,
                is_torgb=(idx == num_layers),
                is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2**num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]),
                out_channels=int(channels[idx]),
                in_size=int(sizes[prev]),
                out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]),
                out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev],
                out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev],
                out_half_width=half_widths[idx],
                **layer_kwargs,
            )
            name = f"L{idx}_{int(layer.out_size[0])}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, **layer_kwargs: Any) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, img_channels, img_resolution, img_resolution] float32.

        layer_kwargs: noise_mode (ignored), force_fp32, update_emas (see SynthesisLayer.forward). ws[:, 0] drives
        the input, ws[:, i + 1] layer i.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws_list = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws_list[0])
        for name, w in zip(self.layer_names, ws_list[1:]):
            with torch.autograd.profiler.record_function(name):
                x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale
        assert_shape(x, [None, self.img_channels, self.img_resolution, self.img_resolution], "image")
        return x.to(torch.float32)

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}, num_layers={self.num_layers}, num_critical={self.num_critical}, "
            f"margin_size={self.margin_size}, num_fp16_res={self.num_fp16_res}"
        )


class Generator(torch.nn.Module):
    """StyleGAN3 generator: ``mapping`` (MappingNetwork) then ``synthesis`` (SynthesisNetwork).

    Attributes: z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels, mapping, synthesis, init_kwargs (the
    constructor's keyword arguments as a JSON-serialisable dict: ``Generator(**G.init_kwargs)`` rebuilds it).
    The input transform is ``synthesis.input.transform`` (see :func:`input_transform`).
    """

    def __init__(
        self,
        z_dim: int,  # Input latent (z) dimensionality.
        c_dim: int,  # Conditioning label (c) dimensionality, 0 = unconditional.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        img_resolution: int,  # Output resolution.
        img_channels: int,  # Number of output color channels.
        mapping_kwargs: dict[str, Any] | None = None,  # Arguments for MappingNetwork (num_layers, ...).
        **synthesis_kwargs: Any,  # Arguments for SynthesisNetwork and SynthesisLayer (channel_base, channel_max,
        # num_layers, conv_kernel, use_radial_filters, magnitude_ema_beta, conv_clamp, num_fp16_res, ...).
    ) -> None:
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        self.init_kwargs = _to_json_kwargs(
            "Generator",
            dict(
                z_dim=z_dim,
                c_dim=c_dim,
                w_dim=w_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                mapping_kwargs=mapping_kwargs,
                **synthesis_kwargs,
            ),
        )
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> images [N, img_channels, img_resolution, img_resolution] float32.

        truncation_psi, truncation_cutoff, update_emas: see MappingNetwork.forward (update_emas also moves every
        layer's magnitude_ema). synthesis_kwargs: noise_mode (accepted, ignored), force_fp32.
        """
        with torch.autograd.profiler.record_function("mapping"):
            ws = self.mapping(
                z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
            )
        with torch.autograd.profiler.record_function("synthesis"):
            return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
