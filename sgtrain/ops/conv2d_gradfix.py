"""2-D convolutions whose backward can skip the weight gradients, with gradients of every order.

R1 (Mescheder et al. 2018, eq. 9) and path length regularization (Karras et al. 2020, StyleGAN2 section 3.2) take
the gradient of a network output with respect to its *input* (images, or ws) with ``create_graph=True`` and then
backpropagate through that gradient. The weight gradients that the inner backward computes on the way are never
used: only the graph of the input gradient reaches the loss. NVlabs wraps those inner backwards in
``conv2d_gradfix.no_weight_gradients()`` (stylegan3 ``torch_utils/ops/conv2d_gradfix.py``, used by
``training/loss.py`` and ``pl_no_weight_grad``) so that their custom convolution skips that work; this module is the
same switch for sgtrain, written anew on PyTorch's public ``aten.convolution_backward``.

:func:`conv2d` and :func:`conv_transpose2d` take ``torch.nn.functional``'s arguments and give its values: the
forward is the same call, so outputs are bitwise equal. When autograd records (grad mode on and an input that
requires grad) they run as three autograd Functions that differentiate each other:

- ``y = C(x, w) + b`` (the convolution),
- ``gx = Cx'(g, w)``, the gradient w.r.t. ``x`` (``convolution_backward`` with only the input gradient),
- ``gw = Cw'(g, x)``, the gradient w.r.t. ``w`` (``convolution_backward`` with only the weight gradient).

All three are bilinear, so the derivative of each is one of the others (``d<G, Cx'(g, w)>/dg = C(G, w)``,
``.../dw = Cw'(g, G)``; ``d<W, Cw'(g, x)>/dg = C(x, W)``, ``.../dx = Cx'(g, W)``): gradients of any order exist.
A backward that builds no graph computes what it needs in one ``convolution_backward`` call, as PyTorch's own
node does; first-order gradients are bitwise equal to PyTorch's on CPU, and higher orders agree with PyTorch's own
double backward to float rounding. Inside :func:`no_weight_gradients`, the backward of ``C`` returns
no weight gradient; nothing else changes.

Whether it saves time depends on the backend: PyTorch's own convolution node already skips the weight gradient when
``torch.autograd.grad`` asks only for the input, so on CPU the gain is small or negative (scripts/bench_gradfix.py
and docs/performance.md have the figures); NVlabs measured its gain on GPUs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["conv2d", "conv_transpose2d", "no_weight_gradients", "weight_gradients_disabled"]

_weight_gradients_disabled = False  # read by the backward of C, which may run on an autograd worker thread


@contextlib.contextmanager
def no_weight_gradients(disable: bool = True) -> Iterator[None]:
    """Within this context, the backward of :func:`conv2d` / :func:`conv_transpose2d` skips weight gradients.

    Use around ``torch.autograd.grad(..., inputs=[x], create_graph=True)`` calls whose weight gradients are never
    used (R1, path length); the weights then get no gradient from that backward. The flag is process-wide (autograd
    runs CUDA backwards on its own threads) and read when the backward runs, not when the forward ran.

    Args:
        disable: True = skip weight gradients inside the context; False = leave the current setting as it is
            (NVlabs' signature, so a config flag can be passed straight through).
    """
    global _weight_gradients_disabled
    old = _weight_gradients_disabled
    if disable:
        _weight_gradients_disabled = True
    try:
        yield
    finally:
        _weight_gradients_disabled = old


def weight_gradients_disabled() -> bool:
    """Whether a :func:`no_weight_gradients` context is active."""
    return _weight_gradients_disabled


class _Spec(NamedTuple):
    """Everything of one convolution but its tensors (hashable; passed to the autograd Functions)."""

    transposed: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    output_padding: tuple[int, int]
    groups: int


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    t = tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v), int(v))
    if len(t) != 2:
        raise ValueError(f"conv2d_gradfix: {name} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def _records_graph(*tensors: torch.Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and getattr(compiler, "is_compiling", lambda: False)():
        return False  # let torch.compile trace the plain op
    return any(t is not None and t.requires_grad for t in tensors)


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, s: _Spec) -> torch.Tensor:
    if s.transposed:
        return F.conv_transpose2d(x, w, b, s.stride, s.padding, s.output_padding, s.groups, s.dilation)
    return F.conv2d(x, w, b, s.stride, s.padding, s.dilation, s.groups)


def _placeholder(like: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    # convolution_backward reads only the shape of the operand whose gradient it does not compute (torch.nn.grad
    # passes the same kind of placeholder).
    return like.new_empty(1).expand(shape)


def _grad_input(g: torch.Tensor, w: torch.Tensor, x_like: torch.Tensor, s: _Spec) -> torch.Tensor:
    return torch.ops.aten.convolution_backward(
        g, x_like, w, None, s.stride, s.padding, s.dilation, s.transposed, s.output_padding, s.groups,
        [True, False, False],
    )[0]  # fmt: skip


def _grad_weight(g: torch.Tensor, x: torch.Tensor, w_like: torch.Tensor, s: _Spec) -> torch.Tensor:
    return torch.ops.aten.convolution_backward(
        g, x, w_like, None, s.stride, s.padding, s.dilation, s.transposed, s.output_padding, s.groups,
        [False, True, False],
    )[1]  # fmt: skip


def _grad_bias(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, s: _Spec) -> torch.Tensor:
    # The same reduction as PyTorch's own convolution backward (a plain g.sum differs in the last bits).
    out_channels = w.shape[1] * s.groups if s.transposed else w.shape[0]
    return torch.ops.aten.convolution_backward(
        g, x, w, [out_channels], s.stride, s.padding, s.dilation, s.transposed, s.output_padding, s.groups,
        [False, False, True],
    )[2]  # fmt: skip


class _Conv(torch.autograd.Function):
    """y = C(x, w) + b."""

    @staticmethod
    def forward(ctx, x, w, b, spec):  # type: ignore[override]
        ctx.spec = spec
        ctx.x_shape, ctx.w_shape = x.shape, w.shape
        # Both are kept even when one gets no gradient (as PyTorch's own convolution node keeps them):
        # convolution_backward picks its kernel (mkldnn, slow path, cuDNN algorithm) from the real operands, and a
        # placeholder there would change speed and rounding.
        ctx.save_for_backward(x, w)
        return _conv(x, w, b, spec)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, w = ctx.saved_tensors
        spec = ctx.spec
        gx = gw = gb = None
        if not torch.is_grad_enabled():
            # A backward that builds no graph (create_graph=False): the gradients needed, in one call, as PyTorch's
            # own convolution node computes them.
            mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1] and not _weight_gradients_disabled,
                    ctx.needs_input_grad[2]]  # fmt: skip
            if any(mask):
                out_channels = ctx.w_shape[1] * spec.groups if spec.transposed else ctx.w_shape[0]
                gx, gw, gb = torch.ops.aten.convolution_backward(
                    g, x, w, [out_channels] if mask[2] else None, spec.stride, spec.padding, spec.dilation,
                    spec.transposed, spec.output_padding, spec.groups, mask,
                )
            # (the CPU kernel fills every output once the bias gradient is asked for: keep only what the mask says)
            gx, gw, gb = (t if m else None for t, m in zip((gx, gw, gb), mask))
            return gx, gw, gb, None
        if ctx.needs_input_grad[0]:
            gx = _ConvGradInput.apply(g, w, spec, ctx.x_shape, x)
        if ctx.needs_input_grad[1] and not _weight_gradients_disabled:
            gw = _ConvGradWeight.apply(g, x, spec, ctx.w_shape, w)
        if ctx.needs_input_grad[2]:
            gb = _grad_bias(g, x, w, spec)
        return gx, gw, gb, None


class _ConvGradInput(torch.autograd.Function):
    """gx = Cx'(g, w): the gradient of <g, C(x, w)> w.r.t. x."""

    @staticmethod
    def forward(ctx, g, w, spec, x_shape, x=None):  # type: ignore[override]
        ctx.spec = spec
        ctx.save_for_backward(g, w)
        # The real x, where there is one, makes convolution_backward pick the kernel the plain backward would.
        return _grad_input(g, w, x if x is not None else _placeholder(g, x_shape), spec)

    @staticmethod
    def backward(ctx, ggx):  # type: ignore[override]
        g, w = ctx.saved_tensors
        d_g = d_w = None
        if ctx.needs_input_grad[0]:
            d_g = _Conv.apply(ggx, w, None, ctx.spec)
        if ctx.needs_input_grad[1]:
            d_w = _ConvGradWeight.apply(g, ggx, ctx.spec, w.shape, w)
        return d_g, d_w, None, None, None


class _ConvGradWeight(torch.autograd.Function):
    """gw = Cw'(g, x): the gradient of <g, C(x, w)> w.r.t. w."""

    @staticmethod
    def forward(ctx, g, x, spec, w_shape, w=None):  # type: ignore[override]
        ctx.spec = spec
        ctx.save_for_backward(g, x)
        return _grad_weight(g, x, w if w is not None else _placeholder(g, w_shape), spec)

    @staticmethod
    def backward(ctx, ggw):  # type: ignore[override]
        g, x = ctx.saved_tensors
        d_g = d_x = None
        if ctx.needs_input_grad[0]:
            d_g = _Conv.apply(x, ggw, None, ctx.spec)
        if ctx.needs_input_grad[1]:
            d_x = _ConvGradInput.apply(g, ggw, ctx.spec, x.shape, x)
        return d_g, d_x, None, None, None


def _autocast(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    # The operands cast as autocast casts F.conv2d's, outside the Function so that the casts are in the graph (the
    # Functions' backward then sees one dtype, and double backward reaches the float32 parameters).
    device = tensors[0].device.type
    if not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors)


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``torch.nn.functional.conv2d`` whose backward obeys :func:`no_weight_gradients`.

    Args:
        input: [N, C_in, H, W].
        weight: [C_out, C_in // groups, kh, kw], input's dtype and device.
        bias: [C_out] or None.
        stride, padding, dilation: int or (y, x) pair; padding >= 0 (zeros), as in ``F.conv2d``.
        groups: number of channel groups.

    Returns:
        [N, C_out, H', W'], bitwise equal to ``F.conv2d`` with the same arguments.

    Raises:
        ValueError: stride, padding or dilation that is not an int or a pair. Shape errors come from ``F.conv2d``.
    """
    spec = _Spec(False, _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation"), (0, 0),
                 int(groups))  # fmt: skip
    if not _records_graph(input, weight, bias):
        return _conv(input, weight, bias, spec)
    return _Conv.apply(*_autocast(input, weight, bias), spec)


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """``torch.nn.functional.conv_transpose2d`` whose backward obeys :func:`no_weight_gradients`.

    Args:
        input: [N, C_in, H, W].
        weight: [C_in, C_out // groups, kh, kw], input's dtype and device.
        bias: [C_out] or None.
        stride, padding, output_padding, dilation: int or (y, x) pair, as in ``F.conv_transpose2d``.
        groups: number of channel groups.

    Returns:
        [N, C_out, H', W'], bitwise equal to ``F.conv_transpose2d`` with the same arguments.

    Raises:
        ValueError: an argument that is not an int or a pair. Shape errors come from ``F.conv_transpose2d``.
    """
    spec = _Spec(True, _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation"),
                 _pair(output_padding, "output_padding"), int(groups))  # fmt: skip
    if not _records_graph(input, weight, bias):
        return _conv(input, weight, bias, spec)
    return _Conv.apply(*_autocast(input, weight, bias), spec)
