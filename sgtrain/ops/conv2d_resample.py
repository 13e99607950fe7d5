"""2-D convolution with FIR up/downsampling, computed the cheapest way for each case.

Equivalent to ``upfirdn2d(up) -> conv2d -> upfirdn2d(down)`` with padding applied once at the start, as in
NVlabs' ``torch_utils/ops/conv2d_resample.py`` (same signature and padding convention), but upsampling uses a
strided transposed convolution and downsampling a strided convolution, so no multiply-adds are spent on inserted
zeros or discarded pixels (StyleGAN2, Karras et al. 2020, appendix B). The convolutions go through
``sgtrain.ops.conv2d_gradfix`` (the values of ``F.conv2d``, a backward that obeys ``no_weight_gradients()``):
exact gradients of every order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sgtrain.ops import conv2d_gradfix as _gradfix
from sgtrain.ops import upfirdn2d as _fir

__all__ = ["conv2d_resample"]


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: tuple[int, int] | int = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
    gradfix: bool = True,
) -> torch.Tensor:
    # F.conv2d correlates; flip the kernel for a true convolution.
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        op = _gradfix.conv_transpose2d if gradfix else F.conv_transpose2d
        return op(x, w, stride=stride, padding=padding, groups=groups)
    op = _gradfix.conv2d if gradfix else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | tuple[int, ...] | list[int] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    gradfix: bool = True,
) -> torch.Tensor:
    """Convolve ``x`` with ``w``, upsampling by ``up`` before and/or downsampling by ``down`` after.

    Args:
        x: [N, C_in, H, W].
        w: [C_out, C_in // groups, kh, kw], same dtype as x.
        f: float32 low-pass filter from ``upfirdn2d.setup_filter`` for the resampling, None = identity.
        up: Integer upsampling factor >= 1.
        down: Integer downsampling factor >= 1.
        padding: Padding of the upsampled image: int, (x, y) or (x0, x1, y0, y1).
        groups: Grouped convolution: C_in and C_out split into this many groups.
        flip_weight: True = correlation (``torch.nn.functional.conv2d``), False = convolution.
        flip_filter: True = correlate with f, False = convolve.
        gradfix: True = convolve with ``sgtrain.ops.conv2d_gradfix``, whose backward skips the weight gradient
            inside ``no_weight_gradients()`` (R1, path length); False = ``torch.nn.functional``'s convolution. Pass
            False when ``w`` depends on a tensor whose gradient that backward must deliver (the per-sample weights
            of a fused modulated convolution depend on ws), since the skipped weight gradient is then the way back.

    Returns:
        [N, C_out, H', W'] where, e.g. for a 3x3 kernel with padding 1, H' = H * up // down.

    Raises:
        ValueError: malformed shapes or factors.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"conv2d_resample: x must be [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError("conv2d_resample: w must be a 4-D [C_out, C_in // groups, kh, kw] tensor of x's dtype")
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32):
        raise ValueError("conv2d_resample: f must be a float32 filter from setup_filter(), or None")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"conv2d_resample: up and down must be ints >= 1, got up={up!r}, down={down!r}")
    if not (isinstance(groups, int) and groups >= 1):
        raise ValueError(f"conv2d_resample: groups must be an int >= 1, got {groups!r}")
    out_channels, in_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = _fir._get_filter_size(f)
    px0, px1, py0, py1 = _fir._parse_padding(padding)

    # Padding that centres the filter on the resampled grid.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, downsampling: filter and decimate first, then the (cheaper) convolution.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = _fir.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight, gradfix=gradfix)

    # 1x1 kernel, upsampling: convolve at low resolution, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight, gradfix=gradfix)
        return _fir.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    # Downsampling: filter, then strided convolution.
    if down > 1 and up == 1:
        x = _fir.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight, gradfix=gradfix)

    # Upsampling: strided transposed convolution, then filter (and optionally downsample).
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(
            x, w, stride=up, padding=(pyt, pxt), groups=groups, transpose=True, flip_weight=not flip_weight,
            gradfix=gradfix,
        )
        x = _fir.upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter
        )
        if down > 1:
            x = _fir.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric non-negative padding: one conv2d call.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight, gradfix=gradfix)

    # General case.
    x = _fir.upfirdn2d(
        x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter
    )
    x = _conv(x, w, groups=groups, flip_weight=flip_weight, gradfix=gradfix)
    if down > 1:
        x = _fir.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
