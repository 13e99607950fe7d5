"""NVlabs' metric names, parsed without torch (so that the command line can check a name and a file at once).

See :mod:`sgtrain.metrics.metric_main` for the table of names and what each computes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sgtrain.errors import InputError

__all__ = ["MetricSpec", "is_valid_metric", "list_metric_patterns", "parse_metric"]


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name.

    Attributes:
        name: the name as given (result keys start with it).
        kind: 'fid', 'kid', 'pr', 'is', 'ppl' or 'eq' (the equivariance metrics of StyleGAN3).
        detector: feature network kind ('inception' or 'vgg16'); None = no feature network (equivariance).
        num_gen: generated images (PPL: path samples; equivariance: samples, each rendered twice).
        max_real: real images used; None = all.
        params: the remaining NVlabs arguments (KID subsets, PR k and batch sizes, IS splits, PPL options).
    """

    name: str
    kind: str
    detector: str | None
    num_gen: int
    max_real: int | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_real(self) -> bool:
        """Whether real images enter the value (FID, KID, PR); IS, PPL and equivariance use real data only for
        labels."""
        return self.kind in ("fid", "kid", "pr")


_PATTERNS: list[tuple[str, str]] = [
    (r"fid(\d+)k(_full)?", "fid"),
    (r"kid(\d+)k(_full)?", "kid"),
    (r"pr(\d+)k(\d+)(_full)?", "pr"),
    (r"is(\d+)k", "is"),
    (r"ppl(2?)_([zw])(full|end)", "ppl"),
    (r"eqt50k_(int|frac)|eqr50k", "eq"),
]


def list_metric_patterns() -> list[str]:
    """Human-readable forms of the accepted names."""
    return ["fid<N>k_full", "fid<N>k", "kid<N>k_full", "kid<N>k", "pr<N>k<K>_full", "pr<N>k<K>", "is<N>k",
            "ppl2_wend", "ppl_{z,w}{full,end}", "eqt50k_int", "eqt50k_frac", "eqr50k"]


def parse_metric(name: str) -> MetricSpec:
    """Parse an NVlabs-style metric name into a :class:`MetricSpec`.

    Raises:
        ValueError: an unknown name or a zero count (the message lists the accepted forms).
    """
    for pattern, kind in _PATTERNS:
        m = re.fullmatch(pattern, name)
        if m is None:
            continue
        if kind == "eq":  # NVlabs' metric_main: 50,000 samples in batches of 4, one metric per call
            which = {"eqt50k_int": "eqt_int", "eqt50k_frac": "eqt_frac", "eqr50k": "eqr"}[name]
            return MetricSpec(name, "eq", None, 50000, None, {which: True, "batch_size": 4})
        if kind == "ppl":
            crop = m.group(1) != "2"
            return MetricSpec(name, "ppl", "vgg16", 50000, None,
                              dict(epsilon=1e-4, space=m.group(2), sampling=m.group(3), crop=crop, batch_size=2))
        n = int(m.group(1)) * 1000
        if n <= 0:
            break
        if kind == "fid":
            return MetricSpec(name, "fid", "inception", n, None if m.group(2) else n)
        if kind == "kid":
            return MetricSpec(name, "kid", "inception", n, 1000000 if m.group(2) else n,
                              dict(num_subsets=100, max_subset_size=1000))
        if kind == "pr":
            k = int(m.group(2))
            if k < 1:
                break
            return MetricSpec(name, "pr", "vgg16", n, 200000 if m.group(3) else n,
                              dict(nhood_size=k, row_batch_size=10000, col_batch_size=10000))
        return MetricSpec(name, "is", "inception", n, None, dict(num_splits=10))
    raise InputError(f"unknown metric {name!r}; use one of {', '.join(list_metric_patterns())} (N = thousands of "
                     f"images, e.g. fid50k_full, kid10k_full, pr50k3_full, is50k; equivariance of StyleGAN3: "
                     f"eqt50k_int, eqt50k_frac, eqr50k), or swd")


def is_valid_metric(name: str) -> bool:
    """Whether :func:`parse_metric` accepts ``name``."""
    try:
        parse_metric(name)
    except ValueError:
        return False
    return True
