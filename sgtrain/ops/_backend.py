"""Choice between the reference and the fused implementation of an op, made at every call.

``bias_act``, ``upfirdn2d`` and ``filtered_lrelu`` (``impl='auto'``) ask :func:`use_fused`; when it says True they
call ``sgtrain.ops.fused.bias_act_fused`` / ``upfirdn2d_fused`` / ``filtered_lrelu_fused`` with normalised
arguments:

- ``bias_act_fused(x, b, dim, act, alpha, gain, clamp)``: ``b`` a 1-D tensor or None, ``dim`` a non-negative int,
  ``act`` a key of ``sgtrain.ops.bias_act.activation_funcs``, ``alpha`` and ``gain`` floats (defaults resolved),
  ``clamp`` a non-negative float or None (None = no clamping).
- ``upfirdn2d_fused(x, f, up, down, padding, flip_filter, gain)``: ``f`` a float32 filter tensor of ndim 1 or 2 on
  ``x.device`` (never None), ``up`` = (upx, upy) and ``down`` = (downx, downy) int tuples, ``padding`` =
  (padx0, padx1, pady0, pady1) int tuple, ``flip_filter`` bool, ``gain`` float.
- ``filtered_lrelu_fused(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)``: ``fu``/``fd`` float32
  filters of ndim 1 or 2 or None, ``b`` a 1-D tensor of x's dtype or None, ``up``/``down`` ints, ``padding`` a
  (px0, px1, py0, py1) int tuple, ``gain``/``slope`` floats, ``clamp`` a float >= 0 or None, ``flip_filter`` bool.
  ``filtered_lrelu`` keeps filters too large for the kernel's shared memory (dozens of taps per axis, see
  ``sgtrain.ops.filtered_lrelu.fused_kernel_fits``) on the reference path.

Policy (``SGTRAIN_OPS``, see ``sgtrain.ops.build``): the fused path runs only for CUDA tensors of a floating dtype
the kernels handle, never while ``torch.compile`` traces (the pybind kernels are opaque to it; inductor fuses the
reference ops itself), and only when the extension builds. ``ref`` never builds; ``auto`` falls back with one
warning; ``fused`` turns a failed build into an error.
"""

from __future__ import annotations

import torch

__all__ = ["FUSED_OPS", "SUPPORTED_DTYPES", "use_fused"]

FUSED_OPS = frozenset({"bias_act", "upfirdn2d", "filtered_lrelu"})
SUPPORTED_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    fn = getattr(compiler, "is_compiling", None)
    return bool(fn()) if fn is not None else False


def _on_cuda(x: torch.Tensor) -> bool:
    return isinstance(x, torch.Tensor) and x.device.type == "cuda"


def use_fused(op: str, x: torch.Tensor) -> bool:
    """Whether ``op`` ('bias_act', 'upfirdn2d' or 'filtered_lrelu') should run fused for input ``x``.

    True only when ``SGTRAIN_OPS`` is not 'ref', ``x`` is a CUDA tensor of float16/bfloat16/float32/float64, no
    ``torch.compile`` trace is running, and the extension is built (the first such call builds it; later calls
    cost a dictionary lookup).

    Raises:
        ValueError: ``SGTRAIN_OPS`` has an unknown value.
        RuntimeError: ``SGTRAIN_OPS=fused`` and the extension cannot be built (the message says why).
    """
    from sgtrain.ops import build

    mode = build.ops_mode()
    if mode == "ref" or op not in FUSED_OPS:
        return False
    if not _on_cuda(x) or x.dtype not in SUPPORTED_DTYPES:
        return False
    if _is_compiling():
        return False
    if build.get_extension(x.device) is not None:
        return True
    if mode == "fused":
        raise RuntimeError(
            f"SGTRAIN_OPS=fused but the fused CUDA ops cannot be built: {build.failure_reason()}. "
            f"Fix the build (see `sgtrain-ops build`) or set SGTRAIN_OPS=auto to fall back to the reference ops."
        )
    return False
