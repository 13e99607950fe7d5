"""Upsample, FIR-filter and downsample a batch of 2-D images (``upfirdn2d``) and its convenience wrappers.

The resampling op of StyleGAN2 (Karras et al. 2020, section 2 and appendix B: "we use bilinear filtering in all
up/downsampling layers", realised as the separable FIR filter [1, 3, 3, 1]); the signature and the padding
conventions are NVlabs' ``torch_utils/ops/upfirdn2d.py``, so that networks give identical images. For each channel:

1. upsample by inserting ``up - 1`` zeros after each pixel;
2. pad with zeros (negative padding crops);
3. convolve with the FIR filter ``f`` (``flip_filter=True``: correlate), keeping only fully covered outputs;
4. keep every ``down``-th pixel.

The reference path is plain PyTorch (a depthwise convolution, strided when downsampling), so autograd gives exact
gradients of every order. A fused CUDA path is used instead when ``sgtrain.ops._backend.use_fused`` says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d"]

IntOrPair = int | Sequence[int]
Padding = int | Sequence[int]


def _parse_scaling(scaling: IntOrPair, name: str = "scaling") -> tuple[int, int]:
    if isinstance(scaling, (int, np.integer)):
        scaling = (int(scaling), int(scaling))
    if not isinstance(scaling, (list, tuple)) or len(scaling) != 2:
        raise ValueError(f"upfirdn2d: {name} must be an int or an (x, y) pair of ints, got {scaling!r}")
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1 or sx != scaling[0] or sy != scaling[1]:
        raise ValueError(f"upfirdn2d: {name} factors must be integers >= 1, got {scaling!r}")
    return sx, sy


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, (int, np.integer)):
        padding = (int(padding), int(padding))
    if not isinstance(padding, (list, tuple)) or len(padding) not in (2, 4):
        raise ValueError(f"upfirdn2d: padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")
    if not all(isinstance(p, (int, np.integer)) for p in padding):
        raise ValueError(f"upfirdn2d: padding entries must be ints, got {padding!r}")
    if len(padding) == 2:
        px, py = padding
        padding = (px, px, py, py)
    px0, px1, py0, py1 = (int(p) for p in padding)
    return px0, px1, py0, py1


def _get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(filter width, filter height) of a prepared filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError("upfirdn2d: f must be a 1-D (separable) or 2-D tensor from setup_filter(), or None")
    fw = int(f.shape[-1])
    fh = int(f.shape[0])
    return fw, fh


def setup_filter(
    f: torch.Tensor | np.ndarray | Sequence[float] | float | None,
    device: torch.device | str = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Prepare a 2-D FIR filter for ``upfirdn2d``.

    Args:
        f: Filter taps: [fh, fw] (non-separable), [taps] (separable), a scalar (impulse), or None (identity).
        device: Device of the result.
        normalize: Scale so that the taps sum to 1 (a constant image keeps its value).
        flip_filter: Flip the filter along every axis.
        gain: Overall signal gain: the taps are multiplied by gain ** (ndim / 2), so a separable filter applied
            along both axes has total gain ``gain``.
        separable: Return the 1-D separable form; None = separable when f is 1-D with at least 8 taps
            (NVlabs' rule; [1, 3, 3, 1] therefore becomes its 4x4 outer product).

    Returns:
        float32 tensor [fh, fw] or [taps] on ``device``.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32, device="cpu")  # on the CPU, also inside a meta-device build
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: expected a scalar, 1-D or 2-D non-empty filter, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("setup_filter: a 2-D filter cannot be made separable")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Pad, upsample, FIR-filter and downsample a batch of 2-D images.

    Args:
        x: [N, C, H, W], float16/32/64.
        f: float32 filter from ``setup_filter``: [fh, fw], [taps] (separable) or None (identity).
        up: Upsampling factor, int or (x, y).
        down: Downsampling factor, int or (x, y).
        padding: Padding of the upsampled image: int, (x, y) or (x0, x1, y0, y1); negative values crop.
        flip_filter: False = convolution, True = correlation.
        gain: Overall signal gain.
        impl: 'auto', 'ref', or 'cuda'/'fused' (see ``bias_act``).

    Returns:
        [N, C, (H * up_y + py0 + py1 - fh) // down_y + 1, (W * up_x + px0 + px1 - fw) // down_x + 1], x's dtype.

    Raises:
        ValueError: malformed arguments, or an upsampled and padded image smaller than the filter.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be a 4-D [N, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32:
        raise ValueError("upfirdn2d: f must be a float32 1-D or 2-D tensor from setup_filter(), or None")
    if f.requires_grad:
        raise ValueError("upfirdn2d: gradients with respect to the filter are not supported; detach f")
    upx, upy = _parse_scaling(up, "up")
    downx, downy = _parse_scaling(down, "down")
    padding4 = _parse_padding(padding)
    px0, px1, py0, py1 = padding4
    fw, fh = _get_filter_size(f)
    if x.shape[3] * upx + px0 + px1 < fw or x.shape[2] * upy + py0 + py1 < fh:
        raise ValueError(
            f"upfirdn2d: the upsampled and padded image ({x.shape[2] * upy + py0 + py1}x{x.shape[3] * upx + px0 + px1})"
            f" is smaller than the filter ({fh}x{fw}); increase padding or the input size"
        )
    if impl == "auto":
        from sgtrain.ops import _backend

        fused = _backend.use_fused("upfirdn2d", x)
    elif impl in ("cuda", "fused"):
        fused = True
    elif impl == "ref":
        fused = False
    else:
        raise ValueError(f"upfirdn2d: impl must be 'auto', 'ref', 'cuda' or 'fused', got {impl!r}")
    if fused:
        from sgtrain.ops.fused import upfirdn2d_fused

        return upfirdn2d_fused(x, f, (upx, upy), (downx, downy), padding4, bool(flip_filter), float(gain))
    return _upfirdn2d_ref(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, float(gain))


def _upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    upx: int,
    upy: int,
    downx: int,
    downy: int,
    px0: int,
    px1: int,
    py0: int,
    py1: int,
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    n, c, h, w = x.shape
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)
    # F.pad crops where the padding is negative.
    if px0 or px1 or py0 or py1:
        x = F.pad(x, [px0, px1, py0, py1])

    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        weight = f[None, None].expand(c, 1, *f.shape)
        return F.conv2d(x, weight, stride=(downy, downx), groups=c)
    weight = f[None, None].expand(c, 1, f.shape[0])
    x = F.conv2d(x, weight.unsqueeze(2), stride=(1, downx), groups=c)
    x = F.conv2d(x, weight.unsqueeze(3), stride=(downy, 1), groups=c)
    return x


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """FIR-filter a batch of images, padded so that the output has the input's size (plus ``padding``).

    Args and returns as ``upfirdn2d``; output [N, C, H + py0 + py1, W + px0 + px1].
    """
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntOrPair = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample a batch of images by ``up`` with FIR filter ``f``, keeping the signal level (gain * up_x * up_y).

    Args and returns as ``upfirdn2d``; output [N, C, H * up_y + py0 + py1, W * up_x + px0 + px1].
    """
    upx, upy = _parse_scaling(up, "up")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: IntOrPair = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Downsample a batch of images by ``down`` with FIR filter ``f``.

    Args and returns as ``upfirdn2d``; output [N, C, (H + py0 + py1) // down_y, (W + px0 + px1) // down_x].
    """
    downx, downy = _parse_scaling(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        px0 + (fw - downx + 1) // 2,
        px1 + (fw - downx) // 2,
        py0 + (fh - downy + 1) // 2,
        py1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
