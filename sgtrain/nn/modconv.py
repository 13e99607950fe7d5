"""Modulated convolution with weight demodulation (StyleGAN2, Karras et al. 2020, section 2.2, eqs. 1-3)."""

from __future__ import annotations

import math

import torch

from sgtrain.nn.misc import assert_shape
from sgtrain.ops.conv2d_resample import conv2d_resample

__all__ = ["modulated_conv2d"]


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Convolve each sample with its own style-modulated (and demodulated) copy of ``weight``.

    w'_ijk = s_i * w_ijk (eq. 1); with demodulation, w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + 1e-8) (eq. 3).

    Args:
        x: [N, I, H, W] activations (float32, or float16 on CUDA).
        weight: [O, I, kh, kw] raw weight (equalized-lr gain already folded into ``styles``).
        styles: [N, I] per-sample input-channel scales.
        noise: Added to the output after demodulation: broadcastable to [N, O, H', W'] ([N, 1, H', W'] or
            [H', W']), None = no noise.
        up: Integer upsampling factor (before the convolution).
        down: Integer downsampling factor (after the convolution).
        padding: Padding of the upsampled image.
        resample_filter: float32 FIR filter from ``setup_filter`` for the resampling.
        demodulate: Apply weight demodulation (eq. 3)?
        flip_weight: True = correlation (F.conv2d), False = convolution.
        fused_modconv: True = one grouped convolution with per-sample weights (fast for inference and small N);
            False = scale the activations before and after a shared convolution (same result up to rounding;
            NVlabs uses it during training).

    Returns:
        [N, O, H', W'] in x's dtype.

    Raises:
        ValueError: shapes that do not agree.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(weight, [out_channels, in_channels, kh, kw], "modulated_conv2d weight")
    assert_shape(x, [batch_size, in_channels, None, None], "modulated_conv2d x")
    assert_shape(styles, [batch_size, in_channels], "modulated_conv2d styles")

    # In float16, scale weight and styles to max-abs 1 first so the products cannot overflow; demodulation
    # removes the scale again.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
        if demodulate:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
            w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    elif demodulate:
        # sum_ik (s_i w_oik)^2 = sum_i s_i^2 (sum_k w_oik^2): a [N, I] x [I, O] product instead of an
        # [N, O, I, kh, kw] temporary (same value up to float rounding).
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # One grouped convolution: the batch becomes the group dimension.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=batch_size,
        flip_weight=flip_weight,
        gradfix=False,  # w depends on styles: its gradient is the path to ws, never to be skipped (R1, path length)
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
