"""What StyleGAN3 needs to become an ONNX / TorchScript graph (``Family.export_patches``, used by
:mod:`sgtrain.io.export`): its modulated convolution without the grouped convolution, whose ``groups = batch size``
would fix the batch size in the graph."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["modulated_conv2d_ungrouped"]


def modulated_conv2d_ungrouped(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, demodulate: bool = True,
                               padding: Any = 0, input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN3's modulated convolution without the grouped convolution (same result up to float rounding).

    conv2d(x * s_ni * g_ni, w)_no * d_no with d_no = (sum_i s_ni^2 sum_k w_oik^2 + 1e-8)^-1/2 equals the grouped
    convolution with per-sample weights w_oik s_ni d_no g_ni (Karras et al. 2020, StyleGAN2 sec. 2.2, eq. 1 and 3;
    StyleGAN3 appendix: weight and styles pre-normalised to unit RMS). Shapes as ``modulated_conv2d``: x [N, I, H, W],
    w [O, I, kh, kw], s [N, I], input_gain [], [I] or [N, I].
    """
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
        dcoefs = (s.square() @ w.square().sum([2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    if input_gain is not None:
        s = s * input_gain
    y = torch.nn.functional.conv2d(x * s.to(x.dtype)[:, :, None, None], w.to(x.dtype), padding=padding)
    if demodulate:
        y = y * dcoefs.to(y.dtype)[:, :, None, None]
    return y
