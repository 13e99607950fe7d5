"""Frechet Inception Distance (FID).

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", section
"Frechet Inception Distance": the squared Frechet distance between Gaussians fitted to Inception pool features of
real and generated images, ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))``. NVlabs' ``metrics/
frechet_inception_distance.py`` (stylegan3) fits the Gaussians with the biased covariance over all real images
(``_full``) or the first ``max_real``, and ``num_gen`` generated images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sgtrain.errors import InputError

__all__ = ["compute_fid", "frechet_distance"]

FEATURES = dict(return_features=True)  # Inception pool features (2048), before the softmax layer


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``tr((S1 S2)^(1/2))`` is computed as ``sum(sqrt(eig(A S2 A)))`` with ``A = S1^(1/2)`` from symmetric
    eigendecompositions in float64: the eigenvalues of ``A S2 A`` equal those of ``S1 S2`` and are real and
    non-negative, so the result is the same as NVlabs' ``scipy.linalg.sqrtm(S1 @ S2)`` trace where that is well
    conditioned, and stays real when the covariances are rank-deficient (fewer images than features).

    Args:
        mu1, mu2: means, float [D].
        sigma1, sigma2: covariances, float [D, D], symmetric positive semi-definite.

    Returns:
        The distance, a Python float >= 0 up to rounding (in squared feature units).

    Raises:
        ValueError: shapes disagree.
    """
    m1, m2 = torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(mu2, dtype=torch.float64)
    s1, s2 = torch.as_tensor(sigma1, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64)
    d = m1.shape[0]
    if m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(f"frechet_distance: shapes {tuple(m1.shape)}, {tuple(s1.shape)}, {tuple(m2.shape)}, "
                         f"{tuple(s2.shape)} do not describe two Gaussians of one dimension")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    evals, evecs = torch.linalg.eigh(s1)
    root = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
    inner = root @ s2 @ root
    tr_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    fid = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean
    return float(fid)


def compute_fid(opts: Any, max_real: int | None, num_gen: int) -> float:
    """FID of ``opts``' generator (or fake image set) against its real data (NVlabs' ``compute_fid``).

    Args:
        opts: :class:`sgtrain.metrics.metric_main.MetricOptions`.
        max_real: real images used (the first ones in dataset order); None = all (``_full``).
        num_gen: generated images.
    """
    real = opts.real_stats("inception", FEATURES, max_items=max_real, capture_mean_cov=True)
    gen = opts.fake_stats("inception", FEATURES, num=num_gen, capture_mean_cov=True)
    mu_real, sigma_real = real.mean_cov()
    mu_gen, sigma_gen = gen.mean_cov()
    return frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)
