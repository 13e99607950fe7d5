"""Small checks shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["assert_shape"]


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[int | None], name: str = "tensor") -> None:
    """Check that ``tensor`` has ``len(ref_shape)`` dimensions and the given sizes (None = any size).

    Called where tensors cross module boundaries so that a wrong configuration fails at the first call with the
    offending shape instead of deep inside a convolution.

    Raises:
        ValueError: naming ``name``, the actual shape and the expected one (None printed as '*').
    """
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        return  # int(size) would freeze the traced batch size into the graph (sgtrain-export: dynamic batch)
    expected = "[" + ", ".join("*" if s is None else str(int(s)) for s in ref_shape) + "]"
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor of shape {expected}, got {type(tensor).__name__}")
    if tensor.ndim != len(ref_shape):
        raise ValueError(f"{name}: expected shape {expected}, got {list(tensor.shape)} (wrong number of dimensions)")
    for size, ref in zip(tensor.shape, ref_shape):
        if ref is not None and int(size) != int(ref):
            raise ValueError(f"{name}: expected shape {expected}, got {list(tensor.shape)}")
