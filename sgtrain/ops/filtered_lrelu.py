"""Filtered leaky ReLU: bias, FIR upsampling, leaky ReLU with gain and clamp, FIR downsampling, in one call.

The nonlinearity of every StyleGAN3 synthesis layer (Karras et al. 2021, "Alias-Free Generative Adversarial
Networks", section 3.2 and appendix D: the activation runs at a temporarily higher sampling rate, between an
upsampling and a downsampling low-pass filter, so that the new high frequencies it creates are removed before they
alias). The signature, the defaults and the padding conventions are NVlabs' ``torch_utils/ops/filtered_lrelu.py``;
the code is sgtrain's own. For each channel of each image:

1. add the channel's bias ``b``;
2. upsample by inserting ``up - 1`` zeros after each pixel;
3. pad with zeros (negative padding crops), ``padding`` given in the upsampled frame;
4. convolve with ``fu`` (keeping only fully covered outputs), times ``up ** 2`` to keep the signal level;
5. multiply by ``gain``, apply the leaky ReLU of negative slope ``slope``, clamp to [-clamp, clamp];
6. convolve with ``fd`` (fully covered outputs only) and keep every ``down``-th pixel.

The reference path runs these steps with sgtrain's reference ``bias_act`` and ``upfirdn2d`` (plain PyTorch, so
autograd gives exact first- and second-order gradients). The fused CUDA kernel (``sgtrain.ops.fused``) does all
six steps in one pass over shared-memory tiles and keeps one byte per upsampled pixel (the sign and clamp state)
for the backward pass instead of the upsampled tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from sgtrain.ops.bias_act import bias_act
from sgtrain.ops.upfirdn2d import _get_filter_size, _parse_padding, upfirdn2d

__all__ = ["filtered_lrelu", "filtered_lrelu_output_size", "fused_kernel_fits"]

FUSED_SMEM_LIMIT = 48 * 1024  # bytes of shared memory per tile of the fused kernel (csrc/ops_host.h)


def _check_filter(f: torch.Tensor | None, name: str) -> None:
    if f is None:
        return
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32 or f.numel() == 0:
        raise ValueError(
            f"filtered_lrelu: {name} must be a float32 [taps] (separable) or [fh, fw] tensor, or None (identity); "
            f"got {getattr(f, 'dtype', type(f).__name__)} {tuple(getattr(f, 'shape', ()))}"
        )
    if f.requires_grad:
        raise ValueError(f"filtered_lrelu: gradients with respect to {name} are not supported; detach it")


def filtered_lrelu_output_size(
    in_size: tuple[int, int],
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    up: int,
    down: int,
    padding: int | Sequence[int],
) -> tuple[int, int]:
    """(out_h, out_w) of ``filtered_lrelu`` for an input of (in_h, in_w); may be <= 0 for an invalid setting."""
    in_h, in_w = in_size
    px0, px1, py0, py1 = _parse_padding(padding)
    fu_w, fu_h = _get_filter_size(fu)
    fd_w, fd_h = _get_filter_size(fd)
    out_w = (in_w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return out_h, out_w


def fused_kernel_fits(dtype: torch.dtype, fu: torch.Tensor | None, fd: torch.Tensor | None, up: int) -> bool:
    """Whether the fused kernel can run these filters: a tile of one output pixel fits its shared memory.

    The same sizes as ``flrelu_layout`` in ``csrc/filtered_lrelu.h``; true for every StyleGAN3 layer (filters of
    up to 24 taps), false only for filters of several dozen taps per axis, which then run on the reference path.
    """
    fu_w, fu_h = _get_filter_size(fu)
    fd_w, fd_h = _get_filter_size(fd)
    tw, th = fd_w, fd_h
    iw = -(-(tw + fu_w - 1) // up) + 1
    ih = -(-(th + fu_h - 1) // up) + 1
    before_tmp = ih * iw + (ih * tw if fu is not None and fu.ndim == 1 else 0)
    elems = before_tmp + th * tw
    down_pass = th if fd is not None and fd.ndim == 1 else 0
    if down_pass > before_tmp:
        elems += down_pass
    return elems * (8 if dtype == torch.float64 else 4) <= FUSED_SMEM_LIMIT


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """Bias, upsample, FIR filter, leaky ReLU (gain, clamp), FIR filter, downsample (StyleGAN3, appendix D).

    Args:
        x: [N, C, H, W] float16/bfloat16/float32/float64.
        fu: Upsampling filter, float32: [fh, fw] (non-separable), [taps] (separable: the same taps along x and y),
            or None (identity).
        fd: Downsampling filter, same forms as ``fu``.
        b: Bias [C] of x's dtype, or None.
        up: Integer upsampling factor >= 1.
        down: Integer downsampling factor >= 1.
        padding: Padding of the upsampled image: int, (x, y) or (x0, x1, y0, y1); negative values crop.
        gain: Scale applied before the leaky ReLU (> 0; sqrt(2) keeps unit variance, He et al. 2015).
        slope: Negative slope of the leaky ReLU (>= 0; 1 makes it linear).
        clamp: Clamp the activation to [-clamp, clamp] (>= 0), None = no clamping.
        flip_filter: False = convolution, True = correlation.
        impl: 'auto' (the fused kernel where ``sgtrain.ops._backend.use_fused`` allows and the filters fit its
            shared memory, see :func:`fused_kernel_fits`; else the reference), 'ref', or 'cuda'/'fused' (force the
            fused kernel).

    Returns:
        [N, C, out_h, out_w] of x's dtype with
        out_w = (W * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down (and out_h alike).
        Differentiable to second order in x and b (first order exactly; the second derivative of the leaky ReLU
        and of the clamp is zero almost everywhere, which both paths give).

    Raises:
        ValueError: malformed arguments (shapes, dtypes, non-positive gain, negative slope or clamp, an empty
            output) or an unknown ``impl``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"filtered_lrelu: x must be a 4-D [N, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
    _check_filter(fu, "fu")
    _check_filter(fd, "fd")
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or b.shape[0] != x.shape[1]:
            raise ValueError(f"filtered_lrelu: b must be a 1-D tensor of {x.shape[1]} elements (x.shape[1])")
        if b.dtype != x.dtype:
            raise ValueError(f"filtered_lrelu: b must have x's dtype {x.dtype}, got {b.dtype}")
    if not isinstance(up, (int, np.integer)) or not isinstance(down, (int, np.integer)) or up < 1 or down < 1:
        raise ValueError(f"filtered_lrelu: up and down must be integers >= 1, got up={up!r}, down={down!r}")
    up, down = int(up), int(down)
    padding4 = _parse_padding(padding)
    gain, slope = float(gain), float(slope)
    if not gain > 0:
        raise ValueError(f"filtered_lrelu: gain must be > 0, got {gain}")
    if not slope >= 0:
        raise ValueError(f"filtered_lrelu: slope must be >= 0, got {slope}")
    if clamp is not None:
        clamp = float(clamp)
        if not clamp >= 0:
            raise ValueError(f"filtered_lrelu: clamp must be >= 0 or None (no clamping), got {clamp}")
    out_h, out_w = filtered_lrelu_output_size((x.shape[2], x.shape[3]), fu, fd, up, down, padding4)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"filtered_lrelu: the output of a {x.shape[2]}x{x.shape[3]} input with up={up}, down={down}, "
            f"padding={padding4} and these filters would be empty ({out_h}x{out_w}); increase padding or the input"
        )

    if impl == "auto":
        from sgtrain.ops import _backend

        fused = fused_kernel_fits(x.dtype, fu, fd, up) and _backend.use_fused("filtered_lrelu", x)
    elif impl in ("cuda", "fused"):
        fused = True
    elif impl == "ref":
        fused = False
    else:
        raise ValueError(f"filtered_lrelu: impl must be 'auto', 'ref', 'cuda' or 'fused', got {impl!r}")
    if fused:
        from sgtrain.ops.fused import filtered_lrelu_fused

        return filtered_lrelu_fused(x, fu, fd, b, up, down, padding4, gain, slope, clamp, bool(flip_filter))
    return _filtered_lrelu_ref(x, fu, fd, b, up, down, padding4, gain, slope, clamp, bool(flip_filter))


def _filtered_lrelu_ref(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor | None,
    up: int,
    down: int,
    padding: tuple[int, int, int, int],
    gain: float,
    slope: float,
    clamp: float | None,
    flip_filter: bool,
) -> torch.Tensor:
    if b is not None:
        x = bias_act(x, b, impl="ref")
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2, flip_filter=flip_filter, impl="ref")
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, impl="ref")
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter, impl="ref")
