"""Bias, activation, gain and clamp in one call.

``y = clamp(act(x + b, alpha) * gain, -clamp, +clamp)``, the activation step of every StyleGAN2 layer
(Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", appendix B; NVlabs'
``torch_utils/ops/bias_act.py`` defines the same signature and defaults). The reference path below is plain
PyTorch, so autograd gives exact first- and second-order gradients (R1 and path length regularization need the
latter). A fused CUDA path is used instead when ``sgtrain.ops._backend.use_fused`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ActivationSpec", "activation_funcs", "bias_act"]


@dataclass(frozen=True)
class ActivationSpec:
    """One activation function and its defaults.

    Attributes:
        func: ``func(x, alpha) -> y``, elementwise.
        def_alpha: Default shape parameter (negative slope for lrelu; unused otherwise).
        def_gain: Default output gain: sqrt(2) for the ReLU family and swish (He et al. 2015 variance
            preservation), 1 otherwise.
        cuda_idx: Index of the activation in the fused kernel's switch.
    """

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    cuda_idx: int


activation_funcs: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(lambda x, a: x, 0.0, 1.0, 1),
    "relu": ActivationSpec(lambda x, a: F.relu(x), 0.0, math.sqrt(2), 2),
    "lrelu": ActivationSpec(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), 3),
    "tanh": ActivationSpec(lambda x, a: torch.tanh(x), 0.0, 1.0, 4),
    "sigmoid": ActivationSpec(lambda x, a: torch.sigmoid(x), 0.0, 1.0, 5),
    "elu": ActivationSpec(lambda x, a: F.elu(x), 0.0, 1.0, 6),
    "selu": ActivationSpec(lambda x, a: F.selu(x), 0.0, 1.0, 7),
    "softplus": ActivationSpec(lambda x, a: F.softplus(x), 0.0, 1.0, 8),
    "swish": ActivationSpec(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 9),
}


def _normalise_args(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    act: str,
    alpha: float | None,
    gain: float | None,
    clamp: float | None,
) -> tuple[int, ActivationSpec, float, float, float | None]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"bias_act: x must be a torch.Tensor, got {type(x).__name__}")
    if act not in activation_funcs:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose one of {sorted(activation_funcs)}")
    spec = activation_funcs[act]
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None (no clamping), got {clamp}")
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1:
            raise ValueError(f"bias_act: b must be a 1-D tensor, got {getattr(b, 'shape', type(b))}")
        if not 0 <= dim < x.ndim:
            raise ValueError(f"bias_act: dim={dim} is out of range for x with {x.ndim} dimensions")
        if b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b has {b.shape[0]} elements but x.shape[{dim}] is {x.shape[dim]}")
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp) if clamp is not None else None
    return dim, spec, alpha, gain, clamp


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Add bias ``b`` along ``dim``, apply ``act``, scale by ``gain``, clamp to [-clamp, clamp].

    Args:
        x: Input of any shape and float dtype.
        b: Bias of shape [x.shape[dim]] and x's dtype, or None for no bias.
        dim: Dimension of ``x`` that ``b`` runs along (ignored without ``b``).
        act: One of ``activation_funcs``: linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish.
        alpha: Activation shape parameter (lrelu negative slope), None = the activation's default (0.2 for lrelu).
        gain: Output scale, None = the activation's default (sqrt(2) for relu/lrelu/swish, else 1).
        clamp: Clamp the output to [-clamp, +clamp] after the gain, None = no clamping.
        impl: 'auto' (fused where ``sgtrain.ops._backend.use_fused`` allows, else reference), 'ref', or
            'cuda'/'fused' (force the fused kernel).

    Returns:
        Tensor of x's shape and dtype. Differentiable twice (reference path: by autograd).

    Raises:
        ValueError: unknown activation or impl, negative clamp, bias of the wrong shape.
    """
    dim, spec, alpha, gain, clamp = _normalise_args(x, b, dim, act, alpha, gain, clamp)
    if impl == "auto":
        from sgtrain.ops import _backend

        fused = _backend.use_fused("bias_act", x)
    elif impl in ("cuda", "fused"):
        fused = True
    elif impl == "ref":
        fused = False
    else:
        raise ValueError(f"bias_act: impl must be 'auto', 'ref', 'cuda' or 'fused', got {impl!r}")
    if fused:
        from sgtrain.ops.fused import bias_act_fused

        return bias_act_fused(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


def _bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    spec: ActivationSpec,
    alpha: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
