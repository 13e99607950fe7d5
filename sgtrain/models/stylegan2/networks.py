"""StyleGAN2 generator and discriminator (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN").

Configs E-F of the paper as NVlabs implements them in ``stylegan3/training/networks_stylegan2.py`` (and
``stylegan2-ada-pytorch/training/networks.py``): the same constructor keywords, state_dict keys, tensor shapes and
buffers, so that NVlabs' weights load by key and give the same images. The code is sgtrain's own.

Shapes: z [N, z_dim], c [N, c_dim] (float, one-hot for classes; [N, 0] when c_dim is 0), w [N, w_dim],
ws [N, num_ws, w_dim], images [N, img_channels, img_resolution, img_resolution] float32, nominally in [-1, 1].
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sgtrain.nn.layers import Conv2dLayer, FullyConnectedLayer, normalize_2nd_moment
from sgtrain.nn.mbstd import MinibatchStdLayer
from sgtrain.nn.misc import assert_shape
from sgtrain.nn.modconv import modulated_conv2d
from sgtrain.ops.bias_act import activation_funcs, bias_act
from sgtrain.ops.upfirdn2d import downsample2d, setup_filter, upsample2d

__all__ = [
    "MappingNetwork",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "DiscriminatorBlock",
    "MinibatchStdLayer",
    "DiscriminatorEpilogue",
    "Discriminator",
]

_ARCHITECTURES = ("orig", "skip", "resnet")


def _check_architecture(architecture: str, who: str) -> None:
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"{who}: architecture must be one of {_ARCHITECTURES}, got {architecture!r}")


def _to_json_kwargs(cls_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Deep copy of constructor kwargs with tuples as lists; raises TypeError if not JSON-serialisable."""

    def convert(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return copy.deepcopy(v)

    out = convert(kwargs)
    try:
        json.dumps(out)
    except TypeError as e:
        raise TypeError(
            f"{cls_name}: constructor arguments must be JSON-serialisable (numbers, strings, lists, dicts, None) so "
            f"that init_kwargs can rebuild the network; {e}"
        ) from e
    return out


# ----------------------------------------------------------------------------------------------------------------
# Generator.


class MappingNetwork(torch.nn.Module):
    """Mapping network f: (z, c) -> w, with w_avg tracking, truncation and broadcast to num_ws (StyleGAN, sec. 2).

    Submodules: ``embed`` (FullyConnectedLayer c_dim -> embed_features, only when c_dim > 0), ``fc0`` ...
    ``fc{num_layers-1}``. Buffer ``w_avg`` [w_dim] (only when num_ws and w_avg_beta are not None).
    """

    def __init__(
        self,
        z_dim: int,  # Input latent (z) dimensionality, 0 = no latent.
        c_dim: int,  # Conditioning label (c) dimensionality, 0 = no label.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        num_ws: int | None,  # Number of ws to output (broadcast), None = return [N, w_dim] without broadcasting.
        num_layers: int = 8,  # Number of fully connected layers.
        embed_features: int | None = None,  # Label embedding size, None = w_dim.
        layer_features: int | None = None,  # Width of the hidden layers, None = w_dim.
        activation: str = "lrelu",  # Activation function of every layer.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the layers (StyleGAN appendix C).
        w_avg_beta: float | None = 0.998,  # Decay of the w_avg moving average, None = do not track.
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Map z (and c) to w.

        Args:
            z: [N, z_dim] (ignored when z_dim is 0).
            c: [N, c_dim] (ignored when c_dim is 0).
            truncation_psi: w <- w_avg + psi * (w - w_avg); 1 = no truncation, 0 = every w is w_avg.
            truncation_cutoff: Truncate only ws[:, :cutoff] (the coarse layers), None = all.
            update_emas: Move w_avg toward the batch mean of w: w_avg <- lerp(mean w, w_avg, w_avg_beta).

        Returns:
            ws [N, num_ws, w_dim] float32, or [N, w_dim] when num_ws is None.

        Raises:
            ValueError: wrong z/c shapes, or truncation requested on a network that does not track w_avg.
        """
        x = None
        with torch.autograd.profiler.record_function("input"):
            if self.z_dim > 0:
                assert_shape(z, [None, self.z_dim], "z")
                x = normalize_2nd_moment(z.to(torch.float32))
            if self.c_dim > 0:
                assert_shape(c, [None, self.c_dim], "c")
                y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
                x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.autograd.profiler.record_function("update_w_avg"):
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None or self.num_ws is None:
                raise ValueError(
                    "MappingNetwork: truncation needs w_avg; build the network with num_ws and w_avg_beta set"
                )
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution + noise + bias + activation (StyleGAN2 fig. 2d).

    Submodule ``affine`` (w_dim -> in_channels, bias_init 1); parameters ``weight`` [O, I, k, k], ``bias`` [O],
    ``noise_strength`` [] (with use_noise); buffers ``resample_filter``, ``noise_const`` [res, res] (with use_noise).
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        resolution: int,  # Output resolution of this layer.
        kernel_size: int = 3,  # Convolution kernel size.
        up: int = 1,  # Integer upsampling factor.
        use_noise: bool = True,  # Add per-pixel noise scaled by a learned strength?
        activation: str = "lrelu",  # Activation function.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR low-pass filter for upsampling.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp, None = no clamping.
        channels_last: bool = False,  # Store the weight in channels_last memory format?
        init_res: Sequence[int] = (4, 4),  # (height, width) of the 4x4 level: (4, 4) = square (NVlabs).
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.init_res = tuple(int(v) for v in init_res)
        self.size = level_size(self.init_res, resolution)
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn(list(self.size)))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1,
    ) -> torch.Tensor:
        """x [N, I, res/up, res/up], w [N, w_dim] -> [N, O, res, res] in x's dtype.

        noise_mode: 'random' (fresh N(0, 1) noise per sample), 'const' (the stored noise_const), 'none'.
        gain: Extra output gain (sqrt(0.5) in resnet blocks); the clamp scales with it.
        """
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"SynthesisLayer: noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        h, w_ = self.size
        assert_shape(x, [None, self.in_channels, h // self.up, w_ // self.up], "SynthesisLayer input")
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, h, w_], device=x.device)
            noise = noise * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
            f"resolution={self.resolution}, up={self.up}, activation={self.activation}"
        )


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to image channels, no demodulation, linear (StyleGAN2 fig. 7).

    Submodule ``affine`` (bias_init 1); parameters ``weight`` [O, I, k, k], ``bias`` [O]. The style is scaled by
    1 / sqrt(in_channels * k * k).
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of image channels.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        kernel_size: int = 1,  # Convolution kernel size.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp, None = no clamping.
        channels_last: bool = False,  # Store the weight in channels_last memory format?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        """x [N, I, H, W], w [N, w_dim] -> [N, O, H, W] in x's dtype."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const | upsampling conv0), conv1, ToRGB (StyleGAN2 fig. 7).

    Submodules/parameters: ``const`` [C, 4, 4] (first block), ``conv0`` (not in the first block), ``conv1``,
    ``torgb`` (last block, or every block with 'skip'), ``skip`` (resnet, not first); buffer ``resample_filter``.
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block (learned constant input).
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of output image channels.
        is_last: bool,  # Is this the last (highest-resolution) block?
        architecture: str = "skip",  # 'orig', 'skip' (output skips, config E-F) or 'resnet'.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR low-pass filter for upsampling.
        conv_clamp: float | None = 256,  # Clamp conv outputs to +-conv_clamp, None = no clamping.
        use_fp16: bool = False,  # Run this block in float16 (CUDA only)?
        fp16_channels_last: bool = False,  # Use channels_last memory format in float16?
        fused_modconv_default: bool | str = True,  # fused_modconv when the call gives None; 'inference_only' =
        # fused in eval mode, not in training mode.
        init_res: Sequence[int] = (4, 4),  # (height, width) of the 4x4 level: (4, 4) = square (NVlabs).
        **layer_kwargs: Any,  # Arguments for SynthesisLayer (kernel_size, use_noise, activation).
    ) -> None:
        _check_architecture(architecture, "SynthesisBlock")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.size = level_size(init_res, resolution)
        layer_kwargs = dict(layer_kwargs, init_res=tuple(int(v) for v in init_res))
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, *self.size]))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                channels_last=self.channels_last,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim=w_dim,
            resolution=resolution,
            conv_clamp=conv_clamp,
            channels_last=self.channels_last,
            **layer_kwargs,
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
                channels_last=self.channels_last,
            )

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: bool | str | None = None,
        update_emas: bool = False,
        **layer_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the block.

        Args:
            x: [N, in_channels, res/2, res/2] features from the previous block (None for the first).
            img: [N, img_channels, res/2, res/2] float32 running image (skip), or None.
            ws: [N, num_conv + num_torgb, w_dim].
            force_fp32: Run in float32 even if use_fp16 (always the case off CUDA).
            fused_modconv: None = ``fused_modconv_default``.
            update_emas: Unused (interface of NVlabs' blocks).
            layer_kwargs: ``noise_mode`` and other SynthesisLayer.forward arguments.

        Returns:
            (x [N, out_channels, res, res] in the block's dtype, img [N, img_channels, res, res] float32 or None).
        """
        del update_emas
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], f"ws of block b{self.resolution}")
        w_iter = iter(ws.unbind(dim=1))
        if ws.device.type != "cuda":
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            assert_shape(x, [None, self.in_channels, self.size[0] // 2, self.size[1] // 2], "block input")
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            assert_shape(img, [None, self.img_channels, self.size[0] // 2, self.size[1] // 2], "img")
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


def level_size(init_res: Sequence[int], res: int) -> tuple[int, int]:
    """(height, width) of the level of nominal resolution ``res`` when the 4x4 level is ``init_res`` = (h0, w0).

    A rectangular network (forks of NVlabs' code that train W x H data, e.g. LSUN car at 512x384) keeps NVlabs' blocks
    and keys (``b4`` ... ``b{img_resolution}``) and scales every level by ``init_res / 4``: ``init_res=(3, 4)`` with
    img_resolution 512 gives 384 x 512 images. (4, 4) is NVlabs' square network.
    """
    return int(init_res[0]) * res // 4, int(init_res[1]) * res // 4


def check_init_res(init_res: Sequence[int], img_resolution: int, where: str) -> tuple[int, int]:
    """``init_res`` as an (h0, w0) tuple of ints in 1..4 with the larger one 4.

    Raises:
        ValueError: another shape, or one that does not divide down to it from img_resolution.
    """
    h0, w0 = (int(v) for v in init_res)
    if not (1 <= h0 <= 4 and 1 <= w0 <= 4 and max(h0, w0) == 4) or len(tuple(init_res)) != 2:
        raise ValueError(f"{where}: init_res must be [h0, w0] with 1 <= h0, w0 <= 4 and the larger one 4 (the 4x4 "
                         f"level of a W x H network), got {list(init_res)}")
    return h0, w0


class SynthesisNetwork(torch.nn.Module):
    """Synthesis network g: ws -> image; blocks ``b4``, ``b8``, ..., ``b{img_resolution}``.

    Channels at resolution r: min(channel_base // r, channel_max). The num_fp16_res highest resolutions (but none
    below 8) run in float16 on CUDA.
    """

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (w) dimensionality.
        img_resolution: int,  # Output resolution, a power of two >= 4.
        img_channels: int,  # Number of image channels.
        channel_base: int = 32768,  # Overall multiplier for the number of channels.
        channel_max: int = 512,  # Maximum number of channels in any layer.
        num_fp16_res: int = 4,  # Use float16 for the N highest resolutions (CUDA only), 0 = none.
        init_res: Sequence[int] = (4, 4),  # (height, width) of the first block (the const), the larger one 4;
        # images are img_resolution * (h0, w0) / 4: (4, 4) = square (NVlabs), (2, 4) = twice as wide as high.
        **block_kwargs: Any,  # Arguments for SynthesisBlock (architecture, conv_clamp, ...).
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"SynthesisNetwork: img_resolution must be a power of two >= 4, got {img_resolution}")
        init_res = check_init_res(init_res, img_resolution, "SynthesisNetwork")
        super().__init__()
        self.init_res = init_res
        self.img_height, self.img_width = level_size(init_res, img_resolution)
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 0
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                in_channels,
                channels_dict[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                use_fp16=(res >= fp16_resolution),
                init_res=init_res,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs: Any) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, img_channels, img_height, img_width] float32 (img_resolution square
        unless init_res is not (4, 4)).

        block_kwargs: noise_mode ('random' | 'const' | 'none'), force_fp32, fused_modconv, update_emas.
        Block b{r} reads ws[:, i:i + num_conv + num_torgb] where i counts the convs of the previous blocks, so the
        ToRGB layer of a block shares its w with the next block's first conv.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = ws.to(torch.float32)
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            with torch.autograd.profiler.record_function(f"b{res}"):
                x, img = getattr(self, f"b{res}")(x, img, cur_ws, **block_kwargs)
        return img

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}, num_fp16_res={self.num_fp16_res}"
        )


class Generator(torch.nn.Module):
    """StyleGAN2 generator: ``mapping`` (MappingNetwork) then ``synthesis`` (SynthesisNetwork).

    Attributes: z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels, mapping, synthesis, init_kwargs (the
    constructor's keyword arguments as a JSON-serialisable dict: ``Generator(**G.init_kwargs)`` rebuilds it).
    """

    def __init__(
        self,
        z_dim: int,  # Input latent (z) dimensionality.
        c_dim: int,  # Conditioning label (c) dimensionality, 0 = unconditional.
        w_dim: int,  # Intermediate latent (w) dimensionality.
        img_resolution: int,  # Output resolution.
        img_channels: int,  # Number of output image channels.
        mapping_kwargs: dict[str, Any] | None = None,  # Arguments for MappingNetwork (num_layers, ...).
        **synthesis_kwargs: Any,  # Arguments for SynthesisNetwork (channel_base, channel_max, num_fp16_res,
        # conv_clamp, architecture, ...).
    ) -> None:
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        if tuple(synthesis_kwargs.get("init_res", (4, 4))) == (4, 4):
            synthesis_kwargs.pop("init_res", None)  # square: NVlabs' keywords exactly (exports, portable files)
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
        self.img_height, self.img_width = self.synthesis.img_height, self.synthesis.img_width
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

        truncation_psi, truncation_cutoff, update_emas: see MappingNetwork.forward.
        synthesis_kwargs: noise_mode ('random' default | 'const' | 'none'), force_fp32, fused_modconv.
        """
        with torch.autograd.profiler.record_function("mapping"):
            ws = self.mapping(
                z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
            )
        with torch.autograd.profiler.record_function("synthesis"):
            return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: (fromrgb), conv0, downsampling conv1, (resnet skip) (StyleGAN2 fig. 7).

    Submodules: ``fromrgb`` (first block, or every block with 'skip'), ``conv0``, ``conv1``, ``skip`` (resnet);
    buffer ``resample_filter``. Layers with index < freeze_layers hold their weights as buffers (Freeze-D).
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block (reads the image).
        tmp_channels: int,  # Number of intermediate channels.
        out_channels: int,  # Number of output channels.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of image channels.
        first_layer_idx: int,  # Index of this block's first layer in the whole discriminator.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet' (config E-F).
        activation: str = "lrelu",  # Activation function.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR low-pass filter for downsampling.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-conv_clamp, None = no clamping.
        use_fp16: bool = False,  # Run this block in float16 (CUDA only)?
        fp16_channels_last: bool = False,  # Use channels_last memory format in float16?
        freeze_layers: int = 0,  # Freeze-D: number of leading layers (whole D) whose weights are frozen.
        init_res: Sequence[int] = (4, 4),  # (height, width) of the 4x4 level: (4, 4) = square (NVlabs).
    ) -> None:
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"DiscriminatorBlock: in_channels must be 0 or tmp_channels={tmp_channels}")
        _check_architecture(architecture, "DiscriminatorBlock")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.size = level_size(init_res, resolution)
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))

        self.num_layers = 0

        def next_trainable() -> bool:
            trainable = self.first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=next_trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=next_trainable(), **common)
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            kernel_size=3,
            down=2,
            resample_filter=resample_filter,
            trainable=next_trainable(),
            **common,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                down=2,
                resample_filter=resample_filter,
                trainable=next_trainable(),
                channels_last=self.channels_last,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [N, in_channels, res, res] or None (first block); img [N, img_channels, res, res] (first block / skip).

        Returns (x [N, out_channels, res/2, res/2] in the block's dtype, img downsampled (skip) or None).
        """
        if (x if x is not None else img).device.type != "cuda":
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

        if x is not None:
            assert_shape(x, [None, self.in_channels, *self.size], "DiscriminatorBlock input")
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, *self.size], "img")
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class DiscriminatorEpilogue(torch.nn.Module):
    """Final 4x4 block: (fromrgb for skip), minibatch stddev, conv, fc, out, projection conditioning.

    Submodules: ``fromrgb`` (skip), ``mbstd`` (MinibatchStdLayer, absent when mbstd_num_channels is 0), ``conv``,
    ``fc``, ``out`` (in_channels -> 1, or -> cmap_dim when conditional). With a label the logit is
    sum(out * cmap) / sqrt(cmap_dim) (projection discriminator, Miyato & Koyama 2018).
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        cmap_dim: int,  # Dimensionality of the mapped label, 0 = unconditional.
        resolution: int,  # Resolution of this block (4).
        img_channels: int,  # Number of image channels.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet'.
        mbstd_group_size: int | None = 4,  # Minibatch stddev group size, None = whole minibatch.
        mbstd_num_channels: int = 1,  # Number of minibatch stddev channels, 0 = no minibatch stddev layer.
        activation: str = "lrelu",  # Activation function.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-conv_clamp, None = no clamping.
        init_res: Sequence[int] = (4, 4),  # (height, width) of this level: (4, 4) = square (NVlabs).
    ) -> None:
        _check_architecture(architecture, "DiscriminatorEpilogue")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.size = level_size(init_res, resolution)
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            if mbstd_num_channels > 0
            else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * self.size[0] * self.size[1], in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, force_fp32: bool = False
    ) -> torch.Tensor:
        """x [N, in_channels, 4, 4], img (skip) [N, img_channels, 4, 4], cmap [N, cmap_dim] -> logits [N, 1] fp32."""
        del force_fp32
        assert_shape(x, [None, self.in_channels, *self.size], "DiscriminatorEpilogue input")
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, *self.size], "img")
            img = img.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = x + self.fromrgb(img)

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)

        if self.cmap_dim > 0:
            assert_shape(cmap, [None, self.cmap_dim], "cmap")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator: blocks ``b{img_resolution}`` ... ``b8``, ``mapping`` for c (conditional), ``b4``.

    Attribute init_kwargs: the constructor's keyword arguments as a JSON-serialisable dict.
    """

    def __init__(
        self,
        c_dim: int,  # Conditioning label (c) dimensionality, 0 = unconditional.
        img_resolution: int,  # Input resolution, a power of two >= 4.
        img_channels: int,  # Number of image channels.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet' (config E-F).
        channel_base: int = 32768,  # Overall multiplier for the number of channels.
        channel_max: int = 512,  # Maximum number of channels in any layer.
        num_fp16_res: int = 4,  # Use float16 for the N highest resolutions (CUDA only), 0 = none.
        conv_clamp: float | None = 256,  # Clamp conv outputs to +-conv_clamp, None = no clamping.
        cmap_dim: int | None = None,  # Dimensionality of the mapped label, None = channels at 4x4.
        block_kwargs: dict[str, Any] | None = None,  # Arguments for DiscriminatorBlock (freeze_layers, ...).
        mapping_kwargs: dict[str, Any] | None = None,  # Arguments for the label MappingNetwork.
        epilogue_kwargs: dict[str, Any] | None = None,  # Arguments for DiscriminatorEpilogue (mbstd_group_size...).
        init_res: Sequence[int] = (4, 4),  # (height, width) of the 4x4 level, the larger one 4: images are
        # img_resolution * (h0, w0) / 4 (see the Generator); (4, 4) = square (NVlabs).
    ) -> None:
        super().__init__()
        block_kwargs = dict(block_kwargs or {})
        mapping_kwargs = dict(mapping_kwargs or {})
        epilogue_kwargs = dict(epilogue_kwargs or {})
        self.init_kwargs = _to_json_kwargs(
            "Discriminator",
            dict(
                c_dim=c_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                architecture=architecture,
                channel_base=channel_base,
                channel_max=channel_max,
                num_fp16_res=num_fp16_res,
                conv_clamp=conv_clamp,
                cmap_dim=cmap_dim,
                block_kwargs=block_kwargs,
                mapping_kwargs=mapping_kwargs,
                epilogue_kwargs=epilogue_kwargs,
                **({} if tuple(init_res) == (4, 4) else {"init_res": [int(v) for v in init_res]}),
            ),
        )
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"Discriminator: img_resolution must be a power of two >= 4, got {img_resolution}")
        _check_architecture(architecture, "Discriminator")
        init_res = check_init_res(init_res, img_resolution, "Discriminator")
        self.init_res = init_res
        self.img_height, self.img_width = level_size(init_res, img_resolution)
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp, init_res=init_res)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels_dict[res] if res < img_resolution else 0,
                channels_dict[res],
                channels_dict[res // 2],
                resolution=res,
                first_layer_idx=cur_layer_idx,
                use_fp16=(res >= fp16_resolution),
                **block_kwargs,
                **common,
            )
            setattr(self, f"b{res}", block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs
            )
        self.b4 = DiscriminatorEpilogue(channels_dict[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False, **block_kwargs: Any
    ) -> torch.Tensor:
        """img [N, img_channels, img_height, img_width] float in [-1, 1], c [N, c_dim] -> logits [N, 1].

        block_kwargs: force_fp32. update_emas is unused (NVlabs' interface).
        """
        del update_emas
        assert_shape(img, [None, self.img_channels, self.img_height, self.img_width], "img")
        x = None
        for res in self.block_resolutions:
            with torch.autograd.profiler.record_function(f"b{res}"):
                x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = None
        if self.c_dim > 0:
            cmap = self.mapping(None, c)
        with torch.autograd.profiler.record_function("b4"):
            return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
