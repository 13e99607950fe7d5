"""sgtrain.metrics: image-quality metrics.

- SWD (no pretrained network): :func:`sliced_wasserstein` (Laplacian-pyramid patches, ProGAN section 5) and the
  helpers :func:`swd_generator` / :func:`swd_generator_vs_shards`.
- NVlabs' metrics by name (FID, KID, precision/recall, IS, PPL, and StyleGAN3's EQ-T / EQ-T_frac / EQ-R as
  ``eqt50k_int``, ``eqt50k_frac``, ``eqr50k``): :func:`compute_metric` (a generator against real data, the API of
  the training callback), :func:`compute_metric_between` (two image sets), :func:`parse_metric`; feature networks
  from local files: :func:`find_detector_file`, :func:`load_detector`. See docs/metrics.md.
- Equivariance (no feature network, no real data): :func:`compute_equivariance`, :func:`eqt50k_int`,
  :func:`eqt50k_frac`, :func:`eqr50k`.

Names are imported on first use, so that looking up a feature-network file does not wait for torch.
"""

from importlib import import_module

_EXPORTS = {
    "SWDDescriptors": "swd",
    "laplacian_pyramid": "swd",
    "sliced_wasserstein": "swd",
    "sliced_wasserstein_distance": "swd",
    "swd_generator": "swd",
    "swd_generator_vs_shards": "swd",
    "MetricOptions": "metric_main",
    "compute_metric": "metric_main",
    "compute_metric_between": "metric_main",
    "is_valid_metric": "metric_main",
    "parse_metric": "metric_main",
    "FeatureStats": "feature_stats",
    "DetectorNotFoundError": "detector_files",
    "find_detector_file": "detector_files",
    "FeatureDetector": "detectors",
    "load_detector": "detectors",
    "frechet_distance": "fid",
    "kid_from_features": "kid",
    "precision_recall_from_features": "precision_recall",
    "inception_score_from_probs": "inception_score",
    "open_image_source": "image_sources",
    "compute_equivariance": "equivariance",
    "eqt50k_int": "equivariance",
    "eqt50k_frac": "equivariance",
    "eqr50k": "equivariance",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"sgtrain.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'sgtrain.metrics' has no attribute {name!r}")
