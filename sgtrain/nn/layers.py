"""Equalized-learning-rate layers (Karras et al. 2018, "Progressive Growing of GANs", section 4.1).

Weights are stored with unit-variance initialisation and scaled at run time by He's constant
1 / sqrt(fan_in), so that Adam's per-parameter step is the same for every layer; ``lr_multiplier`` further scales
the effective learning rate (StyleGAN, Karras et al. 2019, appendix C: 0.01 for the mapping network). Parameter
names, shapes and initialisation follow NVlabs' ``networks_stylegan2.py`` so that their weights load by key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from sgtrain.ops.bias_act import activation_funcs, bias_act
from sgtrain.ops.conv2d_resample import conv2d_resample
from sgtrain.ops.upfirdn2d import setup_filter

__all__ = ["normalize_2nd_moment", "FullyConnectedLayer", "Conv2dLayer"]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit root-mean-square along ``dim`` (StyleGAN's pixel norm of z; Karras et al. 2019).

    Args:
        x: Any float tensor, e.g. z [N, z_dim].
        dim: Dimension to normalise over.
        eps: Added to the mean square before the reciprocal square root.

    Returns:
        Tensor of x's shape: x / sqrt(mean(x^2, dim) + eps).
    """
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(torch.nn.Module):
    """Equalized-lr dense layer ``y = act(x @ (weight * weight_gain).T + bias * bias_gain)``.

    Parameters: ``weight`` [out_features, in_features], initialised N(0, 1) / lr_multiplier; ``bias``
    [out_features], initialised to ``bias_init`` (absent with ``bias=False``). Runtime gains:
    weight_gain = lr_multiplier / sqrt(in_features), bias_gain = lr_multiplier.
    """

    def __init__(
        self,
        in_features: int,  # Number of input features.
        out_features: int,  # Number of output features.
        bias: bool = True,  # Add a learned bias before the activation?
        activation: str = "linear",  # Activation function: 'linear', 'relu', 'lrelu', ... (see ops.bias_act).
        lr_multiplier: float = 1,  # Learning-rate multiplier of this layer's weight and bias.
        bias_init: float = 0,  # Initial value of the bias (1 for the style affines: styles start at 1).
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_features] -> [N, out_features], x's dtype."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Equalized-lr 2-D convolution with optional FIR up/downsampling, bias, activation and clamp.

    Parameters (buffers when ``trainable=False``): ``weight`` [out_channels, in_channels, k, k] ~ N(0, 1),
    ``bias`` [out_channels] = 0; buffer ``resample_filter`` (setup_filter of ``resample_filter``). Runtime weight
    gain 1 / sqrt(in_channels * k * k); the activation's default gain times ``gain``; clamp conv_clamp * gain.
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        kernel_size: int,  # Width and height of the kernel.
        bias: bool = True,  # Add a learned bias before the activation?
        activation: str = "linear",  # Activation function: 'linear', 'relu', 'lrelu', ...
        up: int = 1,  # Integer upsampling factor (before the convolution).
        down: int = 1,  # Integer downsampling factor (after the convolution).
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR low-pass filter taps for resampling.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp, None = no clamping.
        channels_last: bool = False,  # Store the weight in channels_last memory format?
        trainable: bool = True,  # Parameters (True) or frozen buffers (False, Freeze-D)?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """x [N, in_channels, H, W] -> [N, out_channels, H * up // down, W * up // down], x's dtype."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w.to(x.dtype),
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            # NVlabs' convention (it changes the result for given weights): correlate unless upsampling.
            flip_weight=(self.up == 1),
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
            f"up={self.up}, down={self.down}"
        )
