"""R3GAN's networks: a plain modern ConvNet with grouped-convolution inverted-bottleneck residual blocks.

Source: Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline"
(NeurIPS 2024), section 3 (config E: no mapping network, no style modulation, no normalization, no noise, no
minibatch stddev), Fix-up style MSR initialization (section 3.3, "variance scaling" of the residual branches by
the total number of blocks), interpolative (bilinear FIR) up/downsampling. Written to match the authors' code
(github brownvc/R3GAN, ``R3GAN/Networks.py`` and ``training/networks.py``): the same constructor keywords and the
same state_dict keys (``Model.MainLayers.<stage>.Layers.<layer>...``), so their weights load as they are.

G takes z (and c) only: there is no W space, so truncation, style mixing and W projection do not apply.
Images are NCHW float32 in [-1, 1] (G's output is not clamped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sgtrain.ops import bias_act as _bias_act
from sgtrain.ops import upfirdn2d as _upfirdn2d

__all__ = ["Discriminator", "Generator", "R3GANDiscriminator", "R3GANGenerator"]

#: Gain of leaky ReLU (slope 0.2) that keeps unit variance (He et al. 2015): sqrt(2 / (1 + 0.2^2)).
LRELU_GAIN = math.sqrt(2 / (1 + 0.2**2))


def msr_init(layer: nn.Conv2d | nn.Linear, activation_gain: float = 1.0) -> nn.Module:
    """MSR (He) initialization: weights N(0, (activation_gain / sqrt(fan_in))^2), bias 0. Returns ``layer``.

    ``activation_gain = 0`` zero-initialises the layer (the last layer of every residual branch, Fix-up style).
    """
    fan_in = layer.weight.shape[1] * layer.weight[0][0].numel()
    with torch.no_grad():
        layer.weight.normal_(0, activation_gain / math.sqrt(fan_in))
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def lowpass_kernel(weights: Sequence[float]) -> torch.Tensor:
    """The separable 2-D interpolation filter of ``weights`` convolved with [1, 1], normalised to sum 1.

    ``[1, 2, 1]`` gives the 4x4 outer product of ``[1, 3, 3, 1] / 8``: float32 [K + 1, K + 1].
    """
    k = np.convolve(np.asarray(weights, dtype=np.float64), [1, 1]).reshape(1, -1)
    k2 = torch.tensor(k.T @ k, dtype=torch.float32)
    return k2 / k2.sum()


class BiasedActivation(nn.Module):
    """Per-channel bias then leaky ReLU (slope 0.2, gain 1) through :func:`sgtrain.ops.bias_act.bias_act`.

    Args:
        InputUnits: channels (dimension 1 of the input). The bias starts at 0.
    """

    Gain = LRELU_GAIN

    def __init__(self, InputUnits: int) -> None:
        super().__init__()
        self.Bias = nn.Parameter(torch.zeros(InputUnits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, ...] -> same shape and dtype."""
        return _bias_act.bias_act(x, self.Bias.to(x.dtype), act="lrelu", gain=1)


class Convolution(nn.Module):
    """Bias-free 'same' convolution, weights MSR-initialized with ``ActivationGain``, cast to the input's dtype."""

    def __init__(self, InputChannels: int, OutputChannels: int, KernelSize: int, Groups: int = 1,
                 ActivationGain: float = 1.0) -> None:
        super().__init__()
        self.Layer = msr_init(nn.Conv2d(InputChannels, OutputChannels, kernel_size=KernelSize, stride=1,
                                        padding=(KernelSize - 1) // 2, groups=Groups, bias=False), ActivationGain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, InputChannels, H, W] -> [N, OutputChannels, H, W]."""
        return nn.functional.conv2d(x, self.Layer.weight.to(x.dtype), padding=self.Layer.padding,
                                    groups=self.Layer.groups)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv KxK(act(conv1x1 expand(x))))): the inverted bottleneck of section 3.

    The two inner layers' gains are scaled by ``VarianceScalingParameter ** (-1 / (2 * 3 - 2))`` (the total number
    of blocks, so the residual sum keeps its variance); the last layer starts at zero.
    """

    def __init__(self, InputChannels: int, Cardinality: int, ExpansionFactor: int, KernelSize: int,
                 VarianceScalingParameter: float) -> None:
        super().__init__()
        n_linear = 3
        expanded = InputChannels * ExpansionFactor
        gain = BiasedActivation.Gain * VarianceScalingParameter ** (-1 / (2 * n_linear - 2))
        self.LinearLayer1 = Convolution(InputChannels, expanded, KernelSize=1, ActivationGain=gain)
        self.LinearLayer2 = Convolution(expanded, expanded, KernelSize=KernelSize, Groups=Cardinality,
                                        ActivationGain=gain)
        self.LinearLayer3 = Convolution(expanded, InputChannels, KernelSize=1, ActivationGain=0)
        self.NonLinearity1 = BiasedActivation(expanded)
        self.NonLinearity2 = BiasedActivation(expanded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.LinearLayer1(x)
        y = self.LinearLayer2(self.NonLinearity1(y))
        y = self.LinearLayer3(self.NonLinearity2(y))
        return x + y


class InterpolativeUpsampler(nn.Module):
    """2x upsampling with the :func:`lowpass_kernel` of ``Filter`` (buffer ``Kernel``), through upfirdn2d."""

    def __init__(self, Filter: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("Kernel", lowpass_kernel(Filter))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upfirdn2d.upsample2d(x, self.Kernel)


class InterpolativeDownsampler(nn.Module):
    """2x downsampling with the :func:`lowpass_kernel` of ``Filter`` (buffer ``Kernel``), through upfirdn2d."""

    def __init__(self, Filter: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("Kernel", lowpass_kernel(Filter))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upfirdn2d.downsample2d(x, self.Kernel)


class UpsampleLayer(nn.Module):
    """Optional 1x1 channel change, then 2x interpolative upsampling."""

    def __init__(self, InputChannels: int, OutputChannels: int, ResamplingFilter: Sequence[float]) -> None:
        super().__init__()
        self.Resampler = InterpolativeUpsampler(ResamplingFilter)
        if InputChannels != OutputChannels:
            self.LinearLayer = Convolution(InputChannels, OutputChannels, KernelSize=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.LinearLayer(x) if hasattr(self, "LinearLayer") else x
        return self.Resampler(x)


class DownsampleLayer(nn.Module):
    """2x interpolative downsampling, then an optional 1x1 channel change."""

    def __init__(self, InputChannels: int, OutputChannels: int, ResamplingFilter: Sequence[float]) -> None:
        super().__init__()
        self.Resampler = InterpolativeDownsampler(ResamplingFilter)
        if InputChannels != OutputChannels:
            self.LinearLayer = Convolution(InputChannels, OutputChannels, KernelSize=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Resampler(x)
        return self.LinearLayer(x) if hasattr(self, "LinearLayer") else x


class GenerativeBasis(nn.Module):
    """z [N, InputDimension] -> a learned 4x4 basis [OutputChannels, 4, 4] scaled per channel by a linear map of z."""

    def __init__(self, InputDimension: int, OutputChannels: int) -> None:
        super().__init__()
        self.Basis = nn.Parameter(torch.empty(OutputChannels, 4, 4).normal_(0, 1))
        self.LinearLayer = msr_init(nn.Linear(InputDimension, OutputChannels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Basis.view(1, -1, 4, 4) * self.LinearLayer(x).view(x.shape[0], -1, 1, 1)


class DiscriminativeBasis(nn.Module):
    """[N, C, 4, 4] -> depthwise 4x4 convolution to [N, C] -> linear to [N, OutputDimension]."""

    def __init__(self, InputChannels: int, OutputDimension: int) -> None:
        super().__init__()
        self.Basis = msr_init(nn.Conv2d(InputChannels, InputChannels, kernel_size=4, stride=1, padding=0,
                                        groups=InputChannels, bias=False))
        self.LinearLayer = msr_init(nn.Linear(InputChannels, OutputDimension, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LinearLayer(self.Basis(x).view(x.shape[0], -1))


class GeneratorStage(nn.Module):
    """Transition (4x4 basis for the first stage, else upsampling) then ``NumberOfBlocks`` residual blocks, run in
    ``DataType`` (bfloat16 for the authors' FP16Stages)."""

    def __init__(self, InputChannels: int, OutputChannels: int, Cardinality: int, NumberOfBlocks: int,
                 ExpansionFactor: int, KernelSize: int, VarianceScalingParameter: float,
                 ResamplingFilter: Sequence[float] | None = None, DataType: torch.dtype = torch.float32) -> None:
        super().__init__()
        first = (GenerativeBasis(InputChannels, OutputChannels) if ResamplingFilter is None
                 else UpsampleLayer(InputChannels, OutputChannels, ResamplingFilter))
        self.Layers = nn.ModuleList([first] + [
            ResidualBlock(OutputChannels, Cardinality, ExpansionFactor, KernelSize, VarianceScalingParameter)
            for _ in range(NumberOfBlocks)])
        self.DataType = DataType

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.DataType)
        for layer in self.Layers:
            x = layer(x)
        return x


class DiscriminatorStage(nn.Module):
    """``NumberOfBlocks`` residual blocks then a transition (downsampling, or the 4x4 basis for the last stage)."""

    def __init__(self, InputChannels: int, OutputChannels: int, Cardinality: int, NumberOfBlocks: int,
                 ExpansionFactor: int, KernelSize: int, VarianceScalingParameter: float,
                 ResamplingFilter: Sequence[float] | None = None, DataType: torch.dtype = torch.float32) -> None:
        super().__init__()
        last = (DiscriminativeBasis(InputChannels, OutputChannels) if ResamplingFilter is None
                else DownsampleLayer(InputChannels, OutputChannels, ResamplingFilter))
        self.Layers = nn.ModuleList([
            ResidualBlock(InputChannels, Cardinality, ExpansionFactor, KernelSize, VarianceScalingParameter)
            for _ in range(NumberOfBlocks)] + [last])
        self.DataType = DataType

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.DataType)
        for layer in self.Layers:
            x = layer(x)
        return x


def _check_stages(name: str, WidthPerStage: Sequence[int], CardinalityPerStage: Sequence[int],
                  BlocksPerStage: Sequence[int]) -> None:
    n = len(WidthPerStage)
    if n < 1 or len(CardinalityPerStage) != n or len(BlocksPerStage) != n:
        raise ValueError(f"R3GAN {name}: WidthPerStage, CardinalityPerStage and BlocksPerStage must have the same "
                         f"length >= 1 (got {n}, {len(CardinalityPerStage)}, {len(BlocksPerStage)})")
    if sum(BlocksPerStage) < 1:
        raise ValueError(f"R3GAN {name}: BlocksPerStage must sum to >= 1 (the variance-scaling parameter)")


class R3GANGenerator(nn.Module):
    """The authors' ``R3GAN.Networks.Generator``: z (+ embedded c) -> 4x4 basis -> stages doubling the resolution
    -> 1x1 aggregation to 3 channels. Output [N, 3, 4 * 2^(stages - 1), same]."""

    def __init__(self, NoiseDimension: int, WidthPerStage: Sequence[int], CardinalityPerStage: Sequence[int],
                 BlocksPerStage: Sequence[int], ExpansionFactor: int, ConditionDimension: int | None = None,
                 ConditionEmbeddingDimension: int = 0, KernelSize: int = 3,
                 ResamplingFilter: Sequence[float] = (1, 2, 1), img_channels: int = 3) -> None:
        super().__init__()
        _check_stages("Generator", WidthPerStage, CardinalityPerStage, BlocksPerStage)
        vsp = sum(BlocksPerStage)
        stages = [GeneratorStage(NoiseDimension + ConditionEmbeddingDimension, WidthPerStage[0],
                                 CardinalityPerStage[0], BlocksPerStage[0], ExpansionFactor, KernelSize, vsp)]
        stages += [GeneratorStage(WidthPerStage[i], WidthPerStage[i + 1], CardinalityPerStage[i + 1],
                                  BlocksPerStage[i + 1], ExpansionFactor, KernelSize, vsp, ResamplingFilter)
                   for i in range(len(WidthPerStage) - 1)]
        self.MainLayers = nn.ModuleList(stages)
        self.AggregationLayer = Convolution(WidthPerStage[-1], img_channels, KernelSize=1)
        if ConditionDimension is not None:
            self.EmbeddingLayer = msr_init(nn.Linear(ConditionDimension, ConditionEmbeddingDimension, bias=False))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([x, self.EmbeddingLayer(y)], dim=1) if hasattr(self, "EmbeddingLayer") else x
        for layer in self.MainLayers:
            x = layer(x)
        return self.AggregationLayer(x)


class R3GANDiscriminator(nn.Module):
    """The authors' ``R3GAN.Networks.Discriminator``: 1x1 extraction -> stages halving the resolution -> 4x4 basis
    -> a logit (projection onto the embedded c with labels). Output [N]."""

    def __init__(self, WidthPerStage: Sequence[int], CardinalityPerStage: Sequence[int], BlocksPerStage: Sequence[int],
                 ExpansionFactor: int, ConditionDimension: int | None = None, ConditionEmbeddingDimension: int = 0,
                 KernelSize: int = 3, ResamplingFilter: Sequence[float] = (1, 2, 1), img_channels: int = 3) -> None:
        super().__init__()
        _check_stages("Discriminator", WidthPerStage, CardinalityPerStage, BlocksPerStage)
        vsp = sum(BlocksPerStage)
        stages = [DiscriminatorStage(WidthPerStage[i], WidthPerStage[i + 1], CardinalityPerStage[i],
                                     BlocksPerStage[i], ExpansionFactor, KernelSize, vsp, ResamplingFilter)
                  for i in range(len(WidthPerStage) - 1)]
        stages += [DiscriminatorStage(WidthPerStage[-1], 1 if ConditionDimension is None else
                                      ConditionEmbeddingDimension, CardinalityPerStage[-1], BlocksPerStage[-1],
                                      ExpansionFactor, KernelSize, vsp)]
        self.ExtractionLayer = Convolution(img_channels, WidthPerStage[0], KernelSize=1)
        self.MainLayers = nn.ModuleList(stages)
        if ConditionDimension is not None:
            self.EmbeddingLayer = msr_init(nn.Linear(ConditionDimension, ConditionEmbeddingDimension, bias=False),
                                           activation_gain=1 / math.sqrt(ConditionEmbeddingDimension))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.ExtractionLayer(x.to(self.MainLayers[0].DataType))
        for layer in self.MainLayers:
            x = layer(x)
        x = (x * self.EmbeddingLayer(y)).sum(dim=1, keepdim=True) if hasattr(self, "EmbeddingLayer") else x
        return x.view(x.shape[0])


def _wrapper_config(kw: dict[str, Any], name: str, img_channels: int) -> tuple[dict[str, Any], int]:
    """The inner network's keywords from the wrapper's (``c_dim`` -> ``ConditionDimension``), as their
    training/networks.py."""
    c_dim = int(kw.pop("c_dim"))
    img_resolution = int(kw.pop("img_resolution"))
    kw.pop("FP16Stages", None)
    if c_dim < 0:
        raise ValueError(f"R3GAN {name}: c_dim={c_dim} must be >= 0")
    if c_dim > 0:
        kw["ConditionDimension"] = c_dim
        if int(kw.get("ConditionEmbeddingDimension", 0)) <= 0:
            raise ValueError(f"R3GAN {name}: c_dim={c_dim} needs ConditionEmbeddingDimension > 0")
    else:  # no labels, no embedding (a config may name the dimension it would use with labels)
        kw["ConditionEmbeddingDimension"] = 0
    expected = 4 * 2 ** (len(kw["WidthPerStage"]) - 1)
    if img_resolution != expected:
        raise ValueError(f"R3GAN {name}: img_resolution={img_resolution} does not match {len(kw['WidthPerStage'])} "
                         f"stages ({expected}x{expected}); give one WidthPerStage entry per resolution from 4x4")
    kw["img_channels"] = img_channels
    return kw, c_dim


class Generator(nn.Module):
    """R3GAN generator as the authors' ``training.networks.Generator``: ``G(z [N, z_dim], c [N, c_dim]) -> img
    [N, img_channels, img_resolution, img_resolution]`` (float32 with no FP16Stages; [-1, 1] once trained).

    Args:
        NoiseDimension, WidthPerStage, CardinalityPerStage, BlocksPerStage, ExpansionFactor,
        ConditionEmbeddingDimension, KernelSize, ResamplingFilter: the authors' keywords (:class:`R3GANGenerator`).
        c_dim: label dimension (0 = unconditional).
        img_resolution: output resolution; must be 4 * 2^(len(WidthPerStage) - 1).
        img_channels: output channels (3 in the authors' code).
        FP16Stages: indices of stages run in bfloat16.

    Raises:
        ValueError: stage lists of different lengths, a resolution that does not match them, labels without an
            embedding.
    """

    def __init__(self, *, NoiseDimension: int, WidthPerStage: Sequence[int], CardinalityPerStage: Sequence[int],
                 BlocksPerStage: Sequence[int], ExpansionFactor: int, c_dim: int = 0, img_resolution: int,
                 img_channels: int = 3, FP16Stages: Sequence[int] = (), ConditionEmbeddingDimension: int = 0,
                 KernelSize: int = 3, ResamplingFilter: Sequence[float] = (1, 2, 1)) -> None:
        super().__init__()
        self.init_kwargs = dict(NoiseDimension=NoiseDimension, WidthPerStage=list(WidthPerStage),
                                CardinalityPerStage=list(CardinalityPerStage), BlocksPerStage=list(BlocksPerStage),
                                ExpansionFactor=ExpansionFactor, c_dim=c_dim, img_resolution=img_resolution,
                                img_channels=img_channels, FP16Stages=list(FP16Stages),
                                ConditionEmbeddingDimension=ConditionEmbeddingDimension, KernelSize=KernelSize,
                                ResamplingFilter=list(ResamplingFilter))
        config, self.c_dim = _wrapper_config(dict(self.init_kwargs), "Generator", img_channels)
        config.pop("img_channels")
        self.Model = R3GANGenerator(**config, img_channels=img_channels)
        self.z_dim = int(NoiseDimension)
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        for i in FP16Stages:
            self.Model.MainLayers[i].DataType = torch.bfloat16

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] (ignored when c_dim = 0) -> img [N, C, H, W] float32."""
        return self.Model(z, c if self.c_dim > 0 else None).float()


class Discriminator(nn.Module):
    """R3GAN discriminator as the authors' ``training.networks.Discriminator``: ``D(img [N, C, H, W], c [N, c_dim])
    -> logits [N, 1]`` float32 (the authors' returns [N]; same values).

    Args: as :class:`Generator` without NoiseDimension.

    Raises:
        ValueError: as :class:`Generator`.
    """

    def __init__(self, *, WidthPerStage: Sequence[int], CardinalityPerStage: Sequence[int],
                 BlocksPerStage: Sequence[int], ExpansionFactor: int, c_dim: int = 0, img_resolution: int,
                 img_channels: int = 3, FP16Stages: Sequence[int] = (), ConditionEmbeddingDimension: int = 0,
                 KernelSize: int = 3, ResamplingFilter: Sequence[float] = (1, 2, 1)) -> None:
        super().__init__()
        self.init_kwargs = dict(WidthPerStage=list(WidthPerStage), CardinalityPerStage=list(CardinalityPerStage),
                                BlocksPerStage=list(BlocksPerStage), ExpansionFactor=ExpansionFactor, c_dim=c_dim,
                                img_resolution=img_resolution, img_channels=img_channels,
                                FP16Stages=list(FP16Stages), ConditionEmbeddingDimension=ConditionEmbeddingDimension,
                                KernelSize=KernelSize, ResamplingFilter=list(ResamplingFilter))
        # The authors' D reads WidthPerStage from the input resolution down: its last stage is 4x4.
        config, self.c_dim = _wrapper_config(dict(self.init_kwargs), "Discriminator", img_channels)
        config.pop("img_channels")
        self.Model = R3GANDiscriminator(**config, img_channels=img_channels)
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        for i in FP16Stages:
            self.Model.MainLayers[i].DataType = torch.bfloat16

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        """img [N, C, H, W], c [N, c_dim] -> logits [N, 1] float32."""
        return self.Model(img, c if self.c_dim > 0 else None).float().view(-1, 1)
