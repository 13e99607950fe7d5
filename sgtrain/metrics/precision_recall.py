"""Improved precision and recall (PR).

Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative Models", section 2: the
manifold of a feature set is the union of balls around each of its points with radius the distance to its k-th
nearest neighbour in the set (k = 3); precision is the fraction of generated images inside the real manifold, recall
the fraction of real images inside the generated manifold. NVlabs' ``metrics/precision_recall.py`` (stylegan3) uses
VGG16 fc features (``return_features=True``) kept in float16, up to 200,000 real images (``pr50k3_full``) and
row/column batches of 10,000.

Here the features are rounded to float16 as NVlabs keeps them, but the distances, radii and comparisons are float32
(NVlabs computes ``cdist`` in float16 on the GPU); the radius is the (k+1)-th smallest distance of a point to its own
set (itself included, as NVlabs' ``kthvalue(k + 1)``). Under ``torch.distributed`` the row batches are shared out
over ranks and the radii and hits are summed back, so every rank gets the same result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sgtrain.errors import InputError
from sgtrain.metrics.feature_stats import dist_rank_world

__all__ = ["compute_pr", "knn_radii", "manifold_coverage", "precision_recall_from_features"]

FEATURES = dict(return_features=True)


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    _, world = dist_rank_world()
    if world == 1:
        return t
    comm = t.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    x = t.to(comm)
    torch.distributed.all_reduce(x)
    return x.to(t.device)


def knn_radii(manifold: torch.Tensor, nhood_size: int = 3, row_batch_size: int = 10000,
              col_batch_size: int = 10000) -> torch.Tensor:
    """Distance of each point to its ``nhood_size``-th nearest neighbour in the set (itself counted as the 0th).

    Args:
        manifold: float [N, D] features (on the device where the distances run).
        nhood_size: k.
        row_batch_size, col_batch_size: block sizes of the distance matrix.

    Returns:
        float32 [N] radii, the same on every rank (rows are shared out over ranks).

    Raises:
        ValueError: N <= nhood_size.
    """
    n = manifold.shape[0]
    if n <= nhood_size:
        raise InputError(f"precision/recall need more than k = {nhood_size} images per set, got {n}")
    rank, world = dist_rank_world()
    radii = torch.zeros([n], dtype=torch.float32, device=manifold.device)
    starts = list(range(0, n, row_batch_size))
    for j in range(rank, len(starts), world):
        rows = manifold[starts[j]:starts[j] + row_batch_size].float()
        best = None
        for c in range(0, n, col_batch_size):
            d = torch.cdist(rows[None], manifold[c:c + col_batch_size].float()[None])[0]
            cand = d if best is None else torch.cat([best, d], dim=1)
            best = cand.topk(min(nhood_size + 1, cand.shape[1]), dim=1, largest=False).values
        radii[starts[j]:starts[j] + rows.shape[0]] = best[:, nhood_size]
    return _sum_over_ranks(radii)


def manifold_coverage(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor,
                      row_batch_size: int = 10000, col_batch_size: int = 10000) -> torch.Tensor:
    """For each probe, whether it lies within ``radii[j]`` of some manifold point j: bool [M] (every rank)."""
    rank, world = dist_rank_world()
    m = probes.shape[0]
    hit = torch.zeros([m], dtype=torch.float32, device=probes.device)
    starts = list(range(0, m, row_batch_size))
    for j in range(rank, len(starts), world):
        rows = probes[starts[j]:starts[j] + row_batch_size].float()
        inside = torch.zeros([rows.shape[0]], dtype=torch.bool, device=probes.device)
        for c in range(0, manifold.shape[0], col_batch_size):
            d = torch.cdist(rows[None], manifold[c:c + col_batch_size].float()[None])[0]
            inside |= (d <= radii[None, c:c + col_batch_size]).any(dim=1)
        hit[starts[j]:starts[j] + rows.shape[0]] = inside.float()
    return _sum_over_ranks(hit) > 0


def precision_recall_from_features(real: np.ndarray | torch.Tensor, gen: np.ndarray | torch.Tensor,
                                   nhood_size: int = 3, row_batch_size: int = 10000, col_batch_size: int = 10000,
                                   device: torch.device | str = "cpu",
                                   feature_dtype: torch.dtype = torch.float16) -> tuple[float, float]:
    """Improved precision and recall of generated features against real ones.

    Args:
        real: float [N_r, D] real features.
        gen: float [N_g, D] generated features.
        nhood_size: k (3).
        row_batch_size, col_batch_size: distance block sizes (NVlabs 10,000).
        device: where distances run.
        feature_dtype: precision the features are rounded to first (NVlabs: float16; float32 keeps them).

    Returns:
        ``(precision, recall)`` in [0, 1].
    """
    r = torch.as_tensor(real).to(feature_dtype).to(device)
    g = torch.as_tensor(gen).to(feature_dtype).to(device)
    out = []
    for manifold, probes in ((r, g), (g, r)):
        radii = knn_radii(manifold, nhood_size, row_batch_size, col_batch_size)
        out.append(float(manifold_coverage(probes, manifold, radii, row_batch_size, col_batch_size).float().mean()))
    return out[0], out[1]


def compute_pr(opts: Any, max_real: int | None, num_gen: int, nhood_size: int, row_batch_size: int,
               col_batch_size: int) -> tuple[float, float]:
    """Precision and recall of ``opts``' generator (or fake set) against its real data (NVlabs' ``compute_pr``)."""
    real = opts.real_stats("vgg16", FEATURES, max_items=max_real, capture_all=True)
    gen = opts.fake_stats("vgg16", FEATURES, num=num_gen, capture_all=True)
    return precision_recall_from_features(real.all_features(), gen.all_features(), nhood_size, row_batch_size,
                                          col_batch_size, device=opts.device)
