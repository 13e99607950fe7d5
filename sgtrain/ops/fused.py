"""Fused CUDA paths of ``bias_act``, ``upfirdn2d`` and ``filtered_lrelu`` as autograd Functions with first- and
second-order gradients.

``sgtrain.ops.bias_act.bias_act``, ``sgtrain.ops.upfirdn2d.upfirdn2d`` and ``sgtrain.ops.filtered_lrelu.filtered_lrelu``
call these after normalising their arguments, when ``sgtrain.ops._backend.use_fused`` says the fused kernels are
available for the tensor. The gradient structure follows NVlabs' design (``torch_utils/ops/bias_act.py``,
``upfirdn2d.py``, ``filtered_lrelu.py``; Karras et al. 2020, StyleGAN2, appendix B), written anew:

- bias_act: the forward kernel (grad=0) saves the input and/or the output; its backward is a second autograd
  Function whose forward is the grad=1 kernel and whose backward uses the grad=2 kernel (second derivative of the
  activation), so R1 and path-length regularisation (double backward) run fused. Third order is not supported.
- upfirdn2d: the gradient of upfirdn2d is upfirdn2d with up and down swapped, the filter flipped and the padding
  mirrored, so it is built from the same Function and differentiable to any order. Separable (1-D) filters run
  as a horizontal pass then a vertical pass.
- filtered_lrelu (StyleGAN3, Karras et al. 2021, appendix D): the forward kernel keeps one sign byte per upsampled
  pixel (negative side of the leaky ReLU, clamped). The gradient is the same kernel transposed (up and down
  swapped, fu and fd swapped, filters flipped, mirrored padding, gain * up^2 / down^2) reading those bytes instead
  of applying the activation; that operation is linear in its input, so its own gradient is the same kernel again
  and every order of derivative works. The derivatives through the signs are zero, as the reference's are (the
  second derivative of a leaky ReLU and of a clamp is zero almost everywhere).

The kernels come from :func:`sgtrain.ops.build.get_extension` (CUDA), or from the module set with
:func:`extension_override` (tests use the host emulation of the kernels to check this file on CPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import torch

__all__ = ["FUSED_ACTIVATIONS", "bias_act_fused", "extension_override", "filtered_lrelu_fused", "upfirdn2d_fused"]


@dataclass(frozen=True)
class _ActInfo:
    idx: int  # index in the kernel's switch (csrc/bias_act.h)
    saves_x: bool  # the derivative needs the forward input (swish)
    saves_y: bool  # the derivative is written in terms of the forward output
    has_2nd_grad: bool  # the second derivative is not identically zero


FUSED_ACTIVATIONS: dict[str, _ActInfo] = {
    "linear": _ActInfo(1, False, False, False),
    "relu": _ActInfo(2, False, True, False),
    "lrelu": _ActInfo(3, False, True, False),
    "tanh": _ActInfo(4, False, True, True),
    "sigmoid": _ActInfo(5, False, True, True),
    "elu": _ActInfo(6, False, True, True),
    "selu": _ActInfo(7, False, True, True),
    "softplus": _ActInfo(8, False, True, True),
    "swish": _ActInfo(9, True, False, True),
}

_override: ModuleType | None = None


@contextmanager
def extension_override(module: ModuleType | None) -> Iterator[None]:
    """Within the block, run the fused Functions on ``module`` (same ``bias_act``/``upfirdn2d``/``filtered_lrelu``
    entry points as the CUDA extension; e.g. ``sgtrain.ops.build.load_emulation()``) instead of the CUDA build."""
    global _override
    old, _override = _override, module
    try:
        yield
    finally:
        _override = old


def _ext(x: torch.Tensor) -> ModuleType:
    if _override is not None:
        return _override
    from sgtrain.ops import build

    module = build.get_extension(x.device)
    if module is None:
        raise RuntimeError(
            f"the fused ops are unavailable ({build.failure_reason()}); call the op with impl='ref' or 'auto'"
        )
    return module


def _empty(x: torch.Tensor) -> torch.Tensor:
    return torch.empty([0], dtype=x.dtype, device=x.device)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.ndim == 4 and x.stride(1) == 1 and x.shape[1] > 1 else torch.contiguous_format


# --------------------------------------------------------------------------------------------------------------
# bias_act


@dataclass(frozen=True)
class _BiasActCfg:
    dim: int
    act: str
    info: _ActInfo
    alpha: float
    gain: float
    clamp: float  # -1 = no clamping

    def is_identity_grad(self) -> bool:
        return self.act == "linear" and self.gain == 1 and self.clamp < 0


def _reduce_bias(dx: torch.Tensor, dim: int) -> torch.Tensor:
    return dx.sum([i for i in range(dx.ndim) if i != dim])


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, b: torch.Tensor | None, cfg: _BiasActCfg) -> torch.Tensor:  # type: ignore[override]
        ctx.cfg = cfg
        ctx.memory_format = _memory_format(x)
        b_ = b if b is not None else _empty(x)
        y = _ext(x).bias_act(
            x, b_, _empty(x), _empty(x), _empty(x), 0, cfg.dim, cfg.info.idx, cfg.alpha, cfg.gain, cfg.clamp
        )
        keep_x = cfg.info.saves_x or cfg.info.has_2nd_grad
        # The clamp mask of the gradient needs the output, also for 'linear' (NVlabs' kernel skips the mask for
        # linear + clamp, which lets gradients through clamped values; the reference, torch.clamp, blocks them).
        keep_y = cfg.info.saves_y or cfg.clamp >= 0
        ctx.save_for_backward(x if keep_x else _empty(x), b_ if keep_x else _empty(x), y if keep_y else _empty(x))
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        cfg: _BiasActCfg = ctx.cfg
        x, b, y = ctx.saved_tensors
        dy = dy.contiguous(memory_format=ctx.memory_format)
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = dy if cfg.is_identity_grad() else _BiasActGrad.apply(dy, x, b, y, cfg)
        if ctx.needs_input_grad[1]:
            db = _reduce_bias(dx, cfg.dim)
        return dx, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * d act(x + b) * gain / dx (masked where the forward clamped); differentiable once more."""

    @staticmethod
    def forward(ctx, dy, x, b, y, cfg: _BiasActCfg):  # type: ignore[override]
        ctx.cfg = cfg
        ctx.memory_format = _memory_format(dy)
        dx = _ext(dy).bias_act(dy, b, x, y, _empty(dy), 1, cfg.dim, cfg.info.idx, cfg.alpha, cfg.gain, cfg.clamp)
        ctx.save_for_backward(dy if cfg.info.has_2nd_grad else _empty(dy), x, b, y)
        return dx

    @staticmethod
    def backward(ctx, d_dx):  # type: ignore[override]
        cfg: _BiasActCfg = ctx.cfg
        dy, x, b, y = ctx.saved_tensors
        d_dx = d_dx.contiguous(memory_format=ctx.memory_format)
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActGrad.apply(d_dx, x, b, y, cfg)
        if cfg.info.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _ext(d_dx).bias_act(d_dx, b, x, y, dy, 2, cfg.dim, cfg.info.idx, cfg.alpha, cfg.gain, cfg.clamp)
        if cfg.info.has_2nd_grad and ctx.needs_input_grad[2]:
            d_b = _reduce_bias(d_x, cfg.dim)
        return d_dy, d_x, d_b, None, None


def bias_act_fused(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    """Fused ``clamp(act(x + b, alpha) * gain, -clamp, clamp)``; arguments already normalised by ``bias_act``.

    Args:
        x: Float16/bfloat16/float32/float64 tensor of any shape on a CUDA device (or a CPU tensor under
            :func:`extension_override` with the host emulation). Contiguous or channels_last.
        b: 1-D bias of x's dtype with ``x.shape[dim]`` elements, or None.
        dim: Dimension of x that b runs along (>= 0).
        act: Activation name, a key of :data:`FUSED_ACTIVATIONS`.
        alpha: Activation parameter (lrelu slope), resolved.
        gain: Output gain, resolved.
        clamp: Output clamp (>= 0) or None for none.

    Returns:
        Tensor of x's shape, dtype and memory format; first- and second-order differentiable in x and b.

    Raises:
        KeyError: unknown activation. RuntimeError: the fused ops are unavailable or the kernel rejects the
        arguments (message from ``csrc/ops_host.h``).
    """
    info = FUSED_ACTIVATIONS[act]
    cfg = _BiasActCfg(int(dim), act, info, float(alpha), float(gain), -1.0 if clamp is None else float(clamp))
    if b is None and cfg.is_identity_grad():
        return x
    # Layout changes happen here, outside the Function, so that autograd sees them and the saved input stays
    # connected to x for the second-order gradient.
    x = x.contiguous(memory_format=_memory_format(x))
    if b is not None:
        b = b.contiguous()
    return _BiasAct.apply(x, b, cfg)


# --------------------------------------------------------------------------------------------------------------
# upfirdn2d


@dataclass(frozen=True)
class _UpfirdnCfg:
    up: tuple[int, int]
    down: tuple[int, int]
    padding: tuple[int, int, int, int]
    flip: bool
    gain: float

    def transpose(self, in_hw: tuple[int, int], out_hw: tuple[int, int], fw: int, fh: int) -> _UpfirdnCfg:
        """The configuration of the gradient: up and down swapped, flipped filter, mirrored padding.

        With the transposed padding, the gradient's output has the forward input's size exactly.
        """
        (ih, iw), (oh, ow) = in_hw, out_hw
        (ux, uy), (dx, dy) = self.up, self.down
        px0, _, py0, _ = self.padding
        padding = (
            fw - px0 - 1,
            iw * ux - ow * dx + px0 - ux + 1,
            fh - py0 - 1,
            ih * uy - oh * dy + py0 - uy + 1,
        )
        return _UpfirdnCfg(self.down, self.up, padding, not self.flip, self.gain)


def _upfirdn2d_launch(x: torch.Tensor, f: torch.Tensor, cfg: _UpfirdnCfg) -> torch.Tensor:
    ext = _ext(x)
    (ux, uy), (dx, dy) = cfg.up, cfg.down
    px0, px1, py0, py1 = cfg.padding
    if f.ndim == 2:
        return ext.upfirdn2d(x, f, ux, uy, dx, dy, px0, px1, py0, py1, cfg.flip, cfg.gain)
    # Separable: the gain goes into the second pass only.
    y = ext.upfirdn2d(x, f.unsqueeze(0), ux, 1, dx, 1, px0, px1, 0, 0, cfg.flip, 1.0)
    return ext.upfirdn2d(y, f.unsqueeze(1), 1, uy, 1, dy, 0, 0, py0, py1, cfg.flip, cfg.gain)


class _Upfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, f: torch.Tensor, cfg: _UpfirdnCfg) -> torch.Tensor:  # type: ignore[override]
        y = _upfirdn2d_launch(x, f, cfg)
        ctx.save_for_backward(f)
        ctx.cfg = cfg
        ctx.in_hw = (int(x.shape[2]), int(x.shape[3]))
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        (f,) = ctx.saved_tensors
        cfg: _UpfirdnCfg = ctx.cfg
        dx = None
        if ctx.needs_input_grad[0]:
            fw, fh = int(f.shape[-1]), int(f.shape[0])
            tcfg = cfg.transpose(ctx.in_hw, (int(dy.shape[2]), int(dy.shape[3])), fw, fh)
            dx = _Upfirdn2d.apply(dy, f, tcfg)
        return dx, None, None


def upfirdn2d_fused(
    x: torch.Tensor,
    f: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    padding: tuple[int, int, int, int],
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    """Fused upsample (zero insertion) + pad/crop + FIR filter + downsample; arguments normalised by ``upfirdn2d``.

    Args:
        x: [N, C, H, W] float16/bfloat16/float32/float64 on CUDA (or CPU under :func:`extension_override`),
            any strides; the output takes x's memory format (contiguous or channels_last).
        f: float32 filter on x's device: [fh, fw] (2-D) or [taps] (separable: applied along x, then y).
        up: (up_x, up_y) >= 1. down: (down_x, down_y) >= 1.
        padding: (pad_x0, pad_x1, pad_y0, pad_y1) of the upsampled image; negative crops.
        flip_filter: False = convolution, True = correlation.
        gain: Overall gain.

    Returns:
        [N, C, (H * up_y + pad_y0 + pad_y1 - fh) // down_y + 1, (W * up_x + pad_x0 + pad_x1 - fw) // down_x + 1],
        x's dtype; differentiable to any order in x (not in f).

    Raises:
        RuntimeError: the fused ops are unavailable or the kernel rejects the arguments.
    """
    if f.ndim == 1 and f.shape[0] == 1:
        f = f.square().unsqueeze(0)  # a separable 1-tap filter is the 1x1 filter f^2
    f = f.to(device=x.device, dtype=torch.float32)
    cfg = _UpfirdnCfg(
        (int(up[0]), int(up[1])),
        (int(down[0]), int(down[1])),
        tuple(int(p) for p in padding),  # type: ignore[arg-type]
        bool(flip_filter),
        float(gain),
    )
    return _Upfirdn2d.apply(x, f, cfg)


# --------------------------------------------------------------------------------------------------------------
# filtered_lrelu


@dataclass(frozen=True)
class _FlreluCfg:
    up: int
    down: int
    padding: tuple[int, int, int, int]
    gain: float
    slope: float
    clamp: float  # -1 = no clamping
    flip: bool


def _filter_hw(f: torch.Tensor) -> tuple[int, int]:
    return int(f.shape[-1]), int(f.shape[0])  # a separable [taps] filter is taps x taps


class _FilteredLRelu(torch.autograd.Function):
    """y = filtered_lrelu(x, b) (si None: write the sign bytes if a gradient is needed), or, with si, the transposed
    operation of a forward pass that reads them (linear in x; b is None there)."""

    @staticmethod
    def forward(ctx, x, b, fu, fd, si, cfg: _FlreluCfg, sx: int, sy: int):  # type: ignore[override]
        write = si is None and (ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        empty_signs = torch.empty([0], dtype=torch.uint8, device=x.device)
        px0, px1, py0, py1 = cfg.padding
        y, so = _ext(x).filtered_lrelu(
            x,
            fu,
            fd,
            b if b is not None else _empty(x),
            si if si is not None else empty_signs,
            cfg.up,
            cfg.down,
            px0,
            px1,
            py0,
            py1,
            sx,
            sy,
            cfg.gain,
            cfg.slope,
            cfg.clamp,
            cfg.flip,
            write,
        )
        ctx.save_for_backward(fu, fd, si if si is not None else so)
        ctx.cfg = cfg
        ctx.s_ofs = (sx, sy)
        ctx.x_hw = (int(x.shape[2]), int(x.shape[3]))
        ctx.y_hw = (int(y.shape[2]), int(y.shape[3]))
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        fu, fd, signs = ctx.saved_tensors
        cfg: _FlreluCfg = ctx.cfg
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            (xh, xw), (yh, yw) = ctx.x_hw, ctx.y_hw
            (fu_w, fu_h), (fd_w, fd_h) = _filter_hw(fu), _filter_hw(fd)
            px0, _, py0, _ = cfg.padding
            up, down = cfg.up, cfg.down
            padding = (
                (fu_w - 1) + (fd_w - 1) - px0,
                xw * up - yw * down + px0 - (up - 1),
                (fu_h - 1) + (fd_h - 1) - py0,
                xh * up - yh * down + py0 - (up - 1),
            )
            tcfg = _FlreluCfg(down, up, padding, cfg.gain * up**2 / down**2, cfg.slope, -1.0, not cfg.flip)
            sx, sy = ctx.s_ofs
            dx = _FilteredLRelu.apply(dy, None, fd, fu, signs, tcfg, sx - (fu_w - 1) + px0, sy - (fu_h - 1) + py0)
        if ctx.needs_input_grad[1]:
            db = dx.sum([0, 2, 3])
        return dx, db, None, None, None, None, None, None


def filtered_lrelu_fused(
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
    """Fused filtered leaky ReLU; arguments already checked and normalised by ``filtered_lrelu``.

    Args:
        x: [N, C, H, W] float16/bfloat16/float32/float64 on CUDA (or CPU under :func:`extension_override` with the
            host emulation), any strides.
        fu, fd: float32 filters [taps] (separable) or [fh, fw], or None (identity).
        b: [C] bias of x's dtype, or None.
        up, down: Integer factors >= 1. padding: (x0, x1, y0, y1) of the upsampled image.
        gain: > 0. slope: >= 0. clamp: >= 0 or None. flip_filter: correlation instead of convolution.

    Returns:
        [N, C, out_h, out_w] contiguous, x's dtype (computed in float32, float64 for float64 input);
        differentiable to any order in x and b (not in the filters).

    Raises:
        RuntimeError: the fused ops are unavailable or the kernel rejects the arguments (message from
        ``csrc/ops_host.h``).
    """
    ones = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    fu = ones if fu is None else fu.to(device=x.device, dtype=torch.float32).contiguous()
    fd = ones if fd is None else fd.to(device=x.device, dtype=torch.float32).contiguous()
    if b is not None:
        b = b.contiguous()
    cfg = _FlreluCfg(
        int(up),
        int(down),
        tuple(int(p) for p in padding),  # type: ignore[arg-type]
        float(gain),
        float(slope),
        -1.0 if clamp is None else float(clamp),
        bool(flip_filter),
    )
    return _FilteredLRelu.apply(x, b, fu, fd, None, cfg, 0, 0)
