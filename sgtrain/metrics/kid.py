"""Kernel Inception Distance (KID).

Binkowski et al. 2018, "Demystifying MMD GANs", section 4 and appendix: the unbiased estimate of the squared
maximum mean discrepancy with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3`` on Inception features,
averaged over random subsets. NVlabs' ``metrics/kernel_inception_distance.py`` (stylegan3): 100 subsets of
``m = min(n_real, n_gen, 1000)`` images drawn without replacement, generated first, then real, per subset.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.image.kid import poly_mmd

from sgtrain.errors import InputError

__all__ = ["compute_kid", "kid_from_features"]

FEATURES = dict(return_features=True)


def kid_from_features(real: np.ndarray, gen: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                      seed: int = 0, device: torch.device | str = "cpu") -> float:
    """KID from feature arrays: the mean over subsets of the unbiased polynomial-kernel MMD^2.

    Subsets come from ``numpy.random.RandomState(seed)`` in NVlabs' order (for each subset: generated indices, then
    real indices, ``choice(n, m, replace=False)``), so with NVlabs' global numpy RNG seeded by the same value the
    subsets are the same. The MMD of a subset is torchmetrics' ``poly_mmd`` (degree 3, gamma 1/D, coef 1) in float64.

    Args:
        real: float [N_r, D] features of real images.
        gen: float [N_g, D] features of generated images.
        num_subsets: number of subsets (NVlabs 100).
        max_subset_size: subset size cap (NVlabs 1000).
        seed: seed of the subset draws.
        device: where the kernels are computed.

    Returns:
        KID (a Python float; can be slightly negative for matching distributions).

    Raises:
        ValueError: fewer than 2 images on a side, or feature sizes differ.
    """
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise InputError(f"KID needs [N, D] features of one size, got {real.shape} and {gen.shape}")
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise InputError(f"KID needs at least 2 images on each side, got {real.shape[0]} real and {gen.shape[0]} "
                         f"generated")
    rng = np.random.RandomState(seed)
    real_t = torch.from_numpy(np.asarray(real, dtype=np.float64)).to(device)
    gen_t = torch.from_numpy(np.asarray(gen, dtype=np.float64)).to(device)
    total = torch.zeros([], dtype=torch.float64, device=real_t.device)
    for _ in range(num_subsets):
        x = gen_t[torch.from_numpy(rng.choice(gen.shape[0], m, replace=False)).to(real_t.device)]
        y = real_t[torch.from_numpy(rng.choice(real.shape[0], m, replace=False)).to(real_t.device)]
        total += poly_mmd(y, x)
    return float(total) / num_subsets


def compute_kid(opts: Any, max_real: int | None, num_gen: int, num_subsets: int, max_subset_size: int) -> float:
    """KID of ``opts``' generator (or fake set) against its real data (NVlabs' ``compute_kid``)."""
    real = opts.real_stats("inception", FEATURES, max_items=max_real, capture_all=True)
    gen = opts.fake_stats("inception", FEATURES, num=num_gen, capture_all=True)
    return kid_from_features(real.all_features(), gen.all_features(), num_subsets, max_subset_size, seed=opts.seed,
                             device=opts.device)
