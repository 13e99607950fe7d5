"""Deterministic per-key weights and inputs for the NVlabs reference fixtures.

The same function fills NVlabs' networks (in the out-of-repo script that records the fixtures) and sgtrain's
networks (in tests/test_stylegan2.py), so the fixtures need no weight files. Each tensor is drawn from a NumPy
generator seeded by a stable hash of ``prefix + key``, with a scale chosen from the key so that every parameter and
buffer matters: non-zero biases, noise strengths, w_avg and noise_const; style biases near 1 as after training.
Only NumPy and torch are used, so both environments produce identical values.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch

__all__ = ["fixture_array", "fill_module", "fixture_inputs"]

# Mapping layers run with lr_multiplier 0.01: their stored weights are 1/0.01 times the effective ones.
_MAPPING_FC = re.compile(r"(^|\.)mapping\.fc\d+\.(weight|bias)$")


def _rng(name: str) -> np.random.RandomState:
    seed = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
    return np.random.RandomState(seed)


def fixture_array(name: str, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """float32 array of ``shape`` for state_dict entry ``name`` (a key with an optional 'G.'/'D.' prefix)."""
    shape = tuple(int(s) for s in shape)
    rng = _rng(name)
    normal = rng.standard_normal(shape)
    if _MAPPING_FC.search(name):
        scale = 1.0 if name.endswith("weight") else 0.1
        value = normal * scale / 0.01
    elif name.endswith("affine.bias"):
        value = 1.0 + 0.2 * normal
    elif name.endswith("noise_strength"):
        value = 0.1 + 0.05 * normal
    elif name.endswith("w_avg"):
        value = 0.5 * normal
    elif name.endswith("bias"):
        value = 0.1 * normal
    else:  # weights, const, noise_const: unit normal as at initialisation
        value = normal
    return np.asarray(value, dtype=np.float32)


def fill_module(module: torch.nn.Module, prefix: str) -> list[str]:
    """Overwrite every parameter and buffer of ``module`` (except FIR ``resample_filter`` buffers, which are
    fixed by the architecture) with ``fixture_array(prefix + key, shape)``. Returns the keys filled.
    """
    filled = []
    with torch.no_grad():
        for key, tensor in module.state_dict().items():
            if key.endswith("resample_filter"):
                continue
            value = torch.from_numpy(fixture_array(prefix + key, tuple(tensor.shape)))
            tensor.copy_(value.to(tensor.dtype))
            filled.append(key)
    return filled


def fixture_inputs(name: str, z_dim: int, c_dim: int, seeds: list[int], img_shape: tuple[int, int, int]):
    """Inputs of one fixture config: z [len(seeds), z_dim] (NumPy RandomState(seed).randn, as NVlabs'
    gen_images.py draws them), c [len(seeds), c_dim] one-hot (class = seed % c_dim), D input images
    [len(seeds), *img_shape] uniform in [-1, 1]. All float32 torch tensors.
    """
    z = np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32)
    c = np.zeros([len(seeds), c_dim], dtype=np.float32)
    if c_dim > 0:
        for i, s in enumerate(seeds):
            c[i, s % c_dim] = 1
    img = _rng(name + ".img").uniform(-1, 1, size=(len(seeds), *img_shape)).astype(np.float32)
    return torch.from_numpy(z), torch.from_numpy(c), torch.from_numpy(img)


def reference_gradients(G: torch.nn.Module, D: torch.nn.Module, z, c, img) -> dict[str, np.ndarray]:
    """First- and second-order gradients through G and D, computed the same way for NVlabs' and sgtrain's nets.

    G: ws = G.mapping(z, c); out = G.synthesis(ws, noise_mode='const'); g = d sum(out * u) / d ws with a fixed
    image-shaped u (as in path length regularization); then backward of sum(g^2) to the parameters.
    D: logits = D(img, c); r = d sum(logits) / d img (as in R1); then backward of sum(r^2) + sum(logits).
    Returns g ('pl_grad_ws'), r ('r1_grad_img') and, per parameter, the L2 norm of its gradient
    ('G_param_grad_norms' / 'D_param_grad_norms', in named_parameters order; 0 for parameters without gradient).
    """
    out = {}
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    ws = G.mapping(z, c)
    image = G.synthesis(ws, noise_mode="const")
    u = torch.from_numpy(_rng("pl_noise").standard_normal(tuple(image.shape)).astype(np.float32))
    (g,) = torch.autograd.grad((image * u).sum(), ws, create_graph=True)
    g.square().sum().backward()
    out["pl_grad_ws"] = g.detach().numpy()
    img = img.detach().clone().requires_grad_(True)
    logits = D(img, c)
    (r,) = torch.autograd.grad(logits.sum(), img, create_graph=True)
    (r.square().sum() + logits.sum()).backward()
    out["r1_grad_img"] = r.detach().numpy()
    for tag, net in (("G", G), ("D", D)):
        norms = [0.0 if p.grad is None else float(p.grad.detach().double().norm()) for _, p in net.named_parameters()]
        out[f"{tag}_param_grad_norms"] = np.asarray(norms, dtype=np.float64)
    return out
