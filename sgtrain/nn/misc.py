"""Small checks shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["assert_shape", "make_transform"]


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


def make_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """Forward 2-D transform of the output image as NVlabs' gen_images.py builds it: rotate, then translate.

    Args:
        translate: (tx, ty) in image widths/heights (the synthesis input's coordinate frame: the output image
            spans one unit; tx = 0.25 moves the content by a quarter of the width).
        angle: Rotation in degrees, with gen_images.py's sign convention (its ``--rotate``).

    Returns:
        float64 [3, 3] ``[[cos, sin, tx], [-sin, cos, ty], [0, 0, 1]]``. The generator takes its inverse (see
        :func:`sgtrain.models.stylegan3.input_transform`).
    """
    m = np.eye(3)
    s = np.sin(angle / 360.0 * np.pi * 2)
    c = np.cos(angle / 360.0 * np.pi * 2)
    m[0][0] = c
    m[0][1] = s
    m[0][2] = translate[0]
    m[1][0] = -s
    m[1][1] = c
    m[1][2] = translate[1]
    return m
