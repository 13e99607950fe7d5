"""Inception Score (IS).

Salimans et al. 2016, "Improved Techniques for Training GANs", section 4: ``exp(E_x KL(p(y|x) || p(y)))`` over
Inception class probabilities, reported as mean and standard deviation over 10 splits. NVlabs'
``metrics/inception_score.py`` (stylegan3) takes the probabilities without the output layer's bias
(``no_output_bias=True``, as the original TensorFlow code) of ``num_gen`` generated images, split in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sgtrain.errors import InputError

__all__ = ["compute_is", "inception_score_from_probs"]

PROBS = dict(no_output_bias=True)


def inception_score_from_probs(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """IS mean and standard deviation over ``num_splits`` consecutive splits of the rows of ``probs``.

    Split ``i`` holds rows ``[i * N // S, (i + 1) * N // S)``; its score is ``exp(mean_x sum_y p log(p / p_split))``
    with ``p_split`` the split's mean distribution. Computed in float64.

    Args:
        probs: float [N, K] class probabilities (rows sum to 1), N >= num_splits.
        num_splits: number of splits (NVlabs 10).

    Returns:
        ``(mean, std)`` of the split scores (population std, as NumPy's default).

    Raises:
        ValueError: fewer rows than splits.
    """
    p = np.asarray(probs, dtype=np.float64)
    n = p.shape[0]
    if p.ndim != 2 or n < num_splits:
        raise InputError(f"IS needs [N, K] probabilities with N >= {num_splits} splits, got {p.shape}")
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits:(i + 1) * n // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts: Any, num_gen: int, num_splits: int) -> tuple[float, float]:
    """IS of ``opts``' generator (or fake image set) (NVlabs' ``compute_is``)."""
    gen = opts.fake_stats("inception", PROBS, num=num_gen, capture_all=True)
    return inception_score_from_probs(gen.all_features(), num_splits)
