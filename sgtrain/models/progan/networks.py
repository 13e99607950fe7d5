"""ProGAN generator and discriminator (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation").

The networks of the paper (appendix A.1, table 2) as NVlabs implements them in TensorFlow, ``G_paper`` / ``D_paper``
of ``NVlabs/stylegan`` ``training/networks_progan.py`` and of ``tkarras/progressive_growing_of_gans``
``networks.py``: the same constructor keywords and defaults, the same arithmetic (equalized learning rate as a
runtime weight scale, section 4.1; pixelwise feature normalization, section 4.2; minibatch standard deviation,
section 3; fused up/down-sampling convolutions; nearest/box resampling; the ``lod`` fade-in, section 2), so that
their TensorFlow weights (:mod:`sgtrain.models.progan.tf`) give their images and scores. The code is sgtrain's own.

The two reference files build the same generator (one fused-conv weight is stored transposed; the converter handles
it). Their discriminators differ when ``label_size > 0``: stylegan's ignores the labels and outputs one score;
progressive_growing_of_gans' (the official ``karras2018iclr-*.pkl``) has an auxiliary classifier (AC-GAN, Odena et
al. 2017): its last dense layer has ``1 + label_size`` outputs. :class:`Discriminator` covers both with
``aux_labels``. The generator takes labels by concatenating c to z.

Level of detail: both networks hold a float32 scalar buffer ``lod`` (TF's non-trainable ``lod`` variable).
``lod = 0`` is the full resolution; ``lod = k`` (integer) works at ``resolution / 2**k`` (G's output nearest-upscaled
to the full size, D's input box-downscaled); a fractional ``lod`` cross-fades linearly between the two neighbouring
levels (paper section 2, figure 2). Only the blocks the current ``lod`` needs are run (NVlabs' 'recursive'
structure; the same numbers as their 'linear' one). Set it with ``net.lod.fill_(value)``.

Shapes: z [N, z_dim] float32, c [N, c_dim] float32 (one-hot for classes, [N, 0] without labels), images
[N, img_channels, img_resolution, img_resolution] float32, nominally in [-1, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sgtrain.nn.layers import normalize_2nd_moment
from sgtrain.nn.mbstd import MinibatchStdLayer
from sgtrain.nn.misc import assert_shape

__all__ = [
    "Discriminator",
    "DiscriminatorBlock",
    "EqualizedConv2d",
    "EqualizedDense",
    "Generator",
    "GeneratorBlock",
    "downscale2d",
    "upscale2d",
]


# ----------------------------------------------------------------------------------------------------------------------
# Building blocks.


def upscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling: x [N, C, H, W] -> [N, C, H * factor, W * factor] (each pixel repeated)."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, factor, w, factor).reshape(n, c, h * factor, w * factor)


def downscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box-filter downsampling (average of factor x factor pixels): [N, C, H, W] -> [N, C, H / factor, W / factor]."""
    if factor == 1:
        return x
    return F.avg_pool2d(x, kernel_size=factor, stride=factor)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``a + (b - a) * t`` (NVlabs' formula, unclipped: the caller only uses it for t in (0, 1))."""
    return a + (b - a) * t


def he_std(gain: float, fan_in: int) -> float:
    """He's standard deviation ``gain / sqrt(fan_in)``, rounded to float32 as NVlabs' ``wscale`` constant."""
    return float(np.float32(gain / np.sqrt(fan_in)))


class EqualizedDense(torch.nn.Module):
    """Fully connected layer plus bias, ``x @ (weight * weight_gain).T + bias`` (no activation).

    Equalized learning rate (paper section 4.1): with ``use_wscale`` the weight is stored N(0, 1) and multiplied by
    He's constant ``gain / sqrt(in_features)`` at run time; without, it is initialised N(0, that std) and used as is.
    Parameters: ``weight`` [out_features, in_features]; ``bias`` [out_features], or [C] when ``reshape = (C, H, W)``
    (the generator's first layer: the output is reshaped to [N, C, H, W] before the per-channel bias, as NVlabs').
    """

    def __init__(
        self,
        in_features: int,  # Number of input features (the input is flattened to [N, in_features]).
        out_features: int,  # Number of output features.
        gain: float = math.sqrt(2),  # Gain of He's init: sqrt(2) before (leaky) ReLU, 1 for linear outputs.
        use_wscale: bool = True,  # Equalized learning rate: scale the weight at run time instead of at init.
        reshape: tuple[int, int, int] | None = None,  # Reshape the output to [N, C, H, W], bias per channel C.
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.reshape = tuple(reshape) if reshape is not None else None
        std = he_std(gain, in_features)
        self.weight_gain = std if use_wscale else 1.0
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (1.0 if use_wscale else std))
        self.bias = torch.nn.Parameter(torch.zeros([self.reshape[0] if self.reshape else out_features]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, ...] (flattened to in_features) -> [N, out_features], or [N, C, H, W] with ``reshape``."""
        x = x.flatten(1)
        w = self.weight.to(x.dtype) * self.weight_gain
        x = x.matmul(w.t())
        if self.reshape is not None:
            return x.reshape(-1, *self.reshape) + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, reshape={self.reshape}"


class EqualizedConv2d(torch.nn.Module):
    """'Same'-padded 2-D convolution plus bias (no activation), optionally fused with 2x up- or downsampling.

    ``resample='up'``: nearest 2x upsampling then the k x k conv, computed as one stride-2 transposed convolution
    with the (k+1) x (k+1) kernel that sums the 4 shifted copies of the weight (NVlabs ``upscale2d_conv2d``).
    ``resample='down'``: the k x k conv then 2x2 box downsampling, as one stride-2 convolution with the mean of the
    4 shifted copies (NVlabs ``conv2d_downscale2d``). Equalized learning rate as in :class:`EqualizedDense`, fan-in
    ``in_channels * k * k``. Parameters: ``weight`` [out_channels, in_channels, k, k], ``bias`` [out_channels].
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        kernel_size: int,  # Width and height of the kernel, odd.
        gain: float = math.sqrt(2),  # Gain of He's init: sqrt(2) before (leaky) ReLU, 1 for linear outputs.
        use_wscale: bool = True,  # Equalized learning rate: scale the weight at run time instead of at init.
        resample: str | None = None,  # None = same size; 'up' = fused 2x upsampling; 'down' = fused 2x downsampling.
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"EqualizedConv2d: kernel_size must be odd and >= 1, got {kernel_size}")
        if resample not in (None, "up", "down"):
            raise ValueError(f"EqualizedConv2d: resample must be None, 'up' or 'down', got {resample!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.resample = resample
        std = he_std(gain, in_channels * kernel_size**2)
        self.weight_gain = std if use_wscale else 1.0
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]) * (1.0 if use_wscale else std)
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_channels, H, W] -> [N, out_channels, H', W'] with H' = 2H ('up'), H/2 ('down') or H."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.resample is None:
            return F.conv2d(x, w, b, padding=self.kernel_size // 2)
        w = F.pad(w, [1, 1, 1, 1])
        w = w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]
        # The (k+1) x (k+1) kernel is even-sized; TensorFlow's 'SAME' padding for it at stride 2 is (k-1)/2 per side.
        if self.resample == "up":
            return F.conv_transpose2d(x, w.transpose(0, 1), b, stride=2, padding=(self.kernel_size - 1) // 2)
        return F.conv2d(x, w * 0.25, b, stride=2, padding=(self.kernel_size - 1) // 2)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.kernel_size}, "
                f"resample={self.resample}")


def _check_resolution(resolution: int, who: str) -> int:
    if resolution < 4 or resolution & (resolution - 1) != 0:
        raise ValueError(f"{who}: resolution must be a power of two >= 4, got {resolution}")
    return int(np.log2(resolution))


def _nf(fmap_base: int, fmap_decay: float, fmap_max: int):
    """NVlabs' feature-map count of stage s (stage 0 = the 4x4 dense side): min(fmap_base / 2^(s decay), max)."""
    return lambda stage: min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def _top_level(lod: float, resolution_log2: int) -> int:
    """log2 of the highest resolution that ``lod`` needs (NVlabs' 'recursive' structure descends while lod < level)."""
    res = 2
    while res < resolution_log2 and lod < resolution_log2 - res:
        res += 1
    return res


# ----------------------------------------------------------------------------------------------------------------------
# Generator.


class GeneratorBlock(torch.nn.Module):
    """One resolution of the generator (TF scope ``'{R}x{R}'``): 4x4 = dense + conv; higher = up-conv + conv."""

    def __init__(self, res_log2: int, in_features: int, out_channels: int, fused_scale: bool, use_wscale: bool,
                 act: str, pixelnorm: float | None, normalize_latents: float | None) -> None:
        super().__init__()
        self.res_log2 = res_log2
        self.act = act
        self.pixelnorm = pixelnorm  # epsilon, or None = off
        self.normalize_latents = normalize_latents  # epsilon, or None = off
        self.fused_scale = fused_scale
        if res_log2 == 2:
            # NVlabs overrides the gain to sqrt(2)/4 to match the original Theano implementation.
            self.dense = EqualizedDense(in_features, out_channels * 16, gain=math.sqrt(2) / 4, use_wscale=use_wscale,
                                    reshape=(out_channels, 4, 4))
            self.conv = EqualizedConv2d(out_channels, out_channels, 3, use_wscale=use_wscale)
        else:
            if fused_scale:
                self.conv0_up = EqualizedConv2d(in_features, out_channels, 3, use_wscale=use_wscale, resample="up")
            else:
                self.conv0 = EqualizedConv2d(in_features, out_channels, 3, use_wscale=use_wscale)
            self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, use_wscale=use_wscale)

    def _post(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(x, 0.2) if self.act == "lrelu" else F.relu(x)
        return normalize_2nd_moment(x, dim=1, eps=self.pixelnorm) if self.pixelnorm is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """4x4: x [N, z_dim + c_dim] -> [N, C, 4, 4]; else [N, C_in, R/2, R/2] -> [N, C, R, R]."""
        if self.res_log2 == 2:
            if self.normalize_latents is not None:
                x = normalize_2nd_moment(x, dim=1, eps=self.normalize_latents)
            x = self._post(self.dense(x))
            return self._post(self.conv(x))
        if self.fused_scale:
            x = self._post(self.conv0_up(x))
        else:
            x = self._post(self.conv0(upscale2d(x)))
        return self._post(self.conv1(x))

    def extra_repr(self) -> str:
        return f"resolution={2 ** self.res_log2}, act={self.act}"


class Generator(torch.nn.Module):
    """ProGAN generator, NVlabs' TF ``G_paper``: blocks ``b4`` ... ``b{resolution}``, ``torgb_lod{k}`` per level.

    Input: the concatenation [z, c] (pixel-normalised with ``normalize_latents``). Each block doubles the
    resolution; ``torgb_lod{k}`` (1x1 conv, linear) turns the features of level k (resolution / 2**k) into an image.
    At fractional ``lod`` the image of the finer level is blended with the nearest-upscaled image of the coarser one
    (paper section 2); the result is nearest-upscaled to the full resolution.

    Attributes: z_dim (= latent_size), c_dim (= label_size), img_resolution, img_channels, resolution_log2,
    max_lod (= resolution_log2 - 2), init_kwargs (the constructor's keywords: ``Generator(**G.init_kwargs)``
    rebuilds it). Buffer: ``lod`` (float32 scalar, 0 = full resolution).
    """

    lod: torch.Tensor

    def __init__(
        self,
        num_channels: int = 1,  # Number of output color channels.
        resolution: int = 32,  # Output resolution, a power of two >= 4.
        label_size: int = 0,  # Dimensionality of the labels (c), 0 = unconditional.
        fmap_base: int = 8192,  # Overall multiplier for the number of feature maps.
        fmap_decay: float = 1.0,  # log2 feature map reduction when doubling the resolution.
        fmap_max: int = 512,  # Maximum number of feature maps in any layer.
        latent_size: int | None = None,  # Dimensionality of z, None = min(fmap_base, fmap_max).
        normalize_latents: bool = True,  # Pixel-normalise [z, c] before the first layer?
        use_wscale: bool = True,  # Equalized learning rate (runtime He scaling of the weights)?
        use_pixelnorm: bool = True,  # Pixelwise feature vector normalisation after each conv?
        pixelnorm_epsilon: float = 1e-8,  # Epsilon of the pixel norm (and of normalize_latents).
        use_leakyrelu: bool = True,  # True = leaky ReLU (slope 0.2), False = ReLU.
        fused_scale: bool = True,  # True = fused upscale + conv (transposed conv), False = separate upscale2d.
    ) -> None:
        super().__init__()
        self.resolution_log2 = _check_resolution(resolution, "Generator")
        nf = _nf(fmap_base, fmap_decay, fmap_max)
        if latent_size is None:
            latent_size = nf(0)
        self.init_kwargs: dict[str, Any] = dict(
            num_channels=int(num_channels), resolution=int(resolution), label_size=int(label_size),
            fmap_base=int(fmap_base), fmap_decay=float(fmap_decay), fmap_max=int(fmap_max),
            latent_size=int(latent_size), normalize_latents=bool(normalize_latents), use_wscale=bool(use_wscale),
            use_pixelnorm=bool(use_pixelnorm), pixelnorm_epsilon=float(pixelnorm_epsilon),
            use_leakyrelu=bool(use_leakyrelu), fused_scale=bool(fused_scale),
        )
        self.z_dim = int(latent_size)
        self.c_dim = int(label_size)
        self.img_resolution = int(resolution)
        self.img_channels = int(num_channels)
        self.max_lod = self.resolution_log2 - 2
        self.register_buffer("lod", torch.zeros([], dtype=torch.float32))
        act = "lrelu" if use_leakyrelu else "relu"
        pn = float(pixelnorm_epsilon) if use_pixelnorm else None
        for res in range(2, self.resolution_log2 + 1):
            block = GeneratorBlock(
                res, self.z_dim + self.c_dim if res == 2 else nf(res - 2), nf(res - 1), fused_scale=fused_scale,
                use_wscale=use_wscale, act=act, pixelnorm=pn,
                normalize_latents=float(pixelnorm_epsilon) if normalize_latents else None,
            )
            setattr(self, f"b{2 ** res}", block)
            torgb = EqualizedConv2d(nf(res - 1), num_channels, 1, gain=1, use_wscale=use_wscale)
            setattr(self, f"torgb_lod{self.resolution_log2 - res}", torgb)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        update_emas: bool = False,
        force_fp32: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> images [N, img_channels, img_resolution, img_resolution] float32.

        The image is made at the level of detail of the ``lod`` buffer and nearest-upscaled to the full resolution.

        Args:
            z: latents, float32 [N, z_dim].
            c: labels, float32 [N, c_dim]; None or [N, 0] when c_dim is 0.
            truncation_psi: must be 1: ProGAN has no W space to truncate in.
            truncation_cutoff: ignored (only meaningful with truncation).
            noise_mode: ignored (ProGAN has no noise inputs); accepted for the common generator interface.
            update_emas: ignored (ProGAN keeps no running averages).
            force_fp32: ignored (computes in the dtype of z: float32 for float32 inputs).

        Raises:
            ValueError: ``truncation_psi != 1``, or z / c of the wrong shape.
        """
        del truncation_cutoff, noise_mode, update_emas, force_fp32
        if truncation_psi != 1:
            raise ValueError(
                f"ProGAN Generator: truncation_psi={truncation_psi} is not supported: ProGAN has no intermediate "
                "latent space W (nor its average) to truncate towards; use truncation_psi=1"
            )
        assert_shape(z, [None, self.z_dim], "z")
        if c is None:
            c = z.new_zeros([z.shape[0], 0])
        assert_shape(c, [z.shape[0], self.c_dim], "c")
        x = torch.cat([z, c.to(z.dtype)], dim=1)

        lod = float(self.lod)
        top = _top_level(lod, self.resolution_log2)
        prev = x
        for res in range(2, top + 1):
            prev = x
            with torch.autograd.profiler.record_function(f"b{2 ** res}"):
                x = getattr(self, f"b{2 ** res}")(x)
        top_lod = self.resolution_log2 - top
        img = getattr(self, f"torgb_lod{top_lod}")(x)
        if top > 2 and lod > top_lod:
            coarse = upscale2d(getattr(self, f"torgb_lod{top_lod + 1}")(prev))
            img = lerp(img, coarse, self.lod - top_lod)
        return upscale2d(img, 2**top_lod)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}")


# ----------------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator (TF scope ``'{R}x{R}'``): conv + down-conv; 4x4 = mbstd, conv, 2 dense."""

    def __init__(self, res_log2: int, in_channels: int, out_channels: int, fused_scale: bool, use_wscale: bool,
                 mbstd_group_size: int, dense_out: int = 1) -> None:
        super().__init__()
        self.res_log2 = res_log2
        self.fused_scale = fused_scale
        if res_log2 >= 3:
            self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, use_wscale=use_wscale)
            if fused_scale:
                self.conv1_down = EqualizedConv2d(in_channels, out_channels, 3, use_wscale=use_wscale, resample="down")
            else:
                self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, use_wscale=use_wscale)
        else:
            self.mbstd = MinibatchStdLayer(mbstd_group_size, 1) if mbstd_group_size > 1 else None
            self.conv = EqualizedConv2d(in_channels + (1 if self.mbstd is not None else 0), in_channels, 3,
                                    use_wscale=use_wscale)
            self.dense0 = EqualizedDense(in_channels * 16, out_channels, use_wscale=use_wscale)
            self.dense1 = EqualizedDense(out_channels, dense_out, gain=1, use_wscale=use_wscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C_in, R, R] -> [N, C_out, R/2, R/2]; 4x4: [N, C, 4, 4] -> [N, dense_out]."""
        if self.res_log2 >= 3:
            x = F.leaky_relu(self.conv0(x), 0.2)
            if self.fused_scale:
                return F.leaky_relu(self.conv1_down(x), 0.2)
            return downscale2d(F.leaky_relu(self.conv1(x), 0.2))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = F.leaky_relu(self.conv(x), 0.2)
        x = F.leaky_relu(self.dense0(x), 0.2)
        return self.dense1(x)

    def extra_repr(self) -> str:
        return f"resolution={2 ** self.res_log2}"


class Discriminator(torch.nn.Module):
    """ProGAN discriminator, NVlabs' TF ``D_paper``: ``fromrgb_lod{k}`` per level, blocks ``b{resolution}`` ... ``b4``.

    The image, box-downscaled to the level of ``lod``, enters through ``fromrgb_lod{k}`` (1x1 conv, leaky ReLU);
    each block halves the resolution; ``b4`` appends the minibatch stddev and ends in two dense layers. At
    fractional ``lod`` the output of the finer level's first block is blended with the coarser level's ``fromrgb``
    of the downscaled image (paper section 2).

    Labels: ``aux_labels=False`` (stylegan ``networks_progan.py``) gives one score and leaves c unused;
    ``aux_labels=True`` (progressive_growing_of_gans ``networks.py``, the official files) makes the last dense layer
    output ``1 + label_size`` values: the score and AC-GAN label logits, returned with ``return_labels=True``.

    Attributes: c_dim (= label_size), img_resolution, img_channels, resolution_log2, max_lod, aux_labels,
    init_kwargs. Buffer: ``lod`` (float32 scalar).
    """

    lod: torch.Tensor

    def __init__(
        self,
        num_channels: int = 1,  # Number of input color channels.
        resolution: int = 32,  # Input resolution, a power of two >= 4.
        label_size: int = 0,  # Dimensionality of the labels (c), 0 = unconditional.
        fmap_base: int = 8192,  # Overall multiplier for the number of feature maps.
        fmap_decay: float = 1.0,  # log2 feature map reduction when doubling the resolution.
        fmap_max: int = 512,  # Maximum number of feature maps in any layer.
        use_wscale: bool = True,  # Equalized learning rate (runtime He scaling of the weights)?
        mbstd_group_size: int = 4,  # Group size of the minibatch stddev layer, 0 or 1 = no such layer.
        fused_scale: bool = True,  # True = fused conv + downscale (stride-2 conv), False = separate downscale2d.
        aux_labels: bool = False,  # Also output label_size AC-GAN label logits (progressive_growing_of_gans'
        # D_paper, the official karras2018iclr files)? False = one score, labels unused (stylegan's D_paper).
    ) -> None:
        super().__init__()
        self.resolution_log2 = _check_resolution(resolution, "Discriminator")
        nf = _nf(fmap_base, fmap_decay, fmap_max)
        self.init_kwargs: dict[str, Any] = dict(
            num_channels=int(num_channels), resolution=int(resolution), label_size=int(label_size),
            fmap_base=int(fmap_base), fmap_decay=float(fmap_decay), fmap_max=int(fmap_max),
            use_wscale=bool(use_wscale), mbstd_group_size=int(mbstd_group_size), fused_scale=bool(fused_scale),
            aux_labels=bool(aux_labels),
        )
        self.c_dim = int(label_size)
        self.img_resolution = int(resolution)
        self.img_channels = int(num_channels)
        self.aux_labels = bool(aux_labels)
        self.max_lod = self.resolution_log2 - 2
        self.register_buffer("lod", torch.zeros([], dtype=torch.float32))
        for res in range(self.resolution_log2, 1, -1):
            fromrgb = EqualizedConv2d(num_channels, nf(res - 1), 1, use_wscale=use_wscale)
            setattr(self, f"fromrgb_lod{self.resolution_log2 - res}", fromrgb)
            block = DiscriminatorBlock(res, nf(res - 1), nf(res - 2), fused_scale=fused_scale, use_wscale=use_wscale,
                                       mbstd_group_size=int(mbstd_group_size),
                                       dense_out=1 + (self.c_dim if self.aux_labels else 0))
            setattr(self, f"b{2 ** res}", block)

    def _fromrgb(self, img: torch.Tensor, level: int) -> torch.Tensor:
        return F.leaky_relu(getattr(self, f"fromrgb_lod{level}")(downscale2d(img, 2**level)), 0.2)

    def forward(
        self,
        img: torch.Tensor,
        c: torch.Tensor | None = None,
        return_labels: bool = False,
        update_emas: bool = False,
        force_fp32: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """img [N, img_channels, img_resolution, img_resolution] float32 in [-1, 1] -> scores [N, 1].

        Args:
            img: images at the full resolution (at lod > 0 they are box-downscaled here, as NVlabs' D does).
            c: labels [N, c_dim] or None; only checked for shape: neither reference D reads its label input.
            return_labels: also return the AC-GAN label logits [N, label_size] (needs ``aux_labels=True``).
            update_emas: ignored (no running averages).
            force_fp32: ignored (computes in the dtype of img).

        Returns:
            scores [N, 1] (WGAN critic values, unbounded), or (scores, label logits [N, label_size]).

        Raises:
            ValueError: wrong shapes, or ``return_labels`` without the auxiliary label output.
        """
        del update_emas, force_fp32
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        if c is not None:
            assert_shape(c, [img.shape[0], self.c_dim], "c")
        if return_labels and not self.aux_labels:
            raise ValueError(
                "ProGAN Discriminator: return_labels=True needs the auxiliary label output; this D was built with "
                "aux_labels=False (stylegan's D_paper, which outputs one score and ignores labels)"
            )
        lod = float(self.lod)
        top = _top_level(lod, self.resolution_log2)
        top_lod = self.resolution_log2 - top
        x = self._fromrgb(img, top_lod)
        with torch.autograd.profiler.record_function(f"b{2 ** top}"):
            x = getattr(self, f"b{2 ** top}")(x)
        if top > 2 and lod > top_lod:
            x = lerp(x, self._fromrgb(img, top_lod + 1), self.lod - top_lod)
        for res in range(top - 1, 1, -1):
            with torch.autograd.profiler.record_function(f"b{2 ** res}"):
                x = getattr(self, f"b{2 ** res}")(x)
        scores = x[:, :1]
        if return_labels:
            return scores, x[:, 1:]
        return scores

    def extra_repr(self) -> str:
        return (f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}, "
                f"aux_labels={self.aux_labels}")
