"""sgtrain.metrics: image-quality metrics that need no pretrained network.

- :func:`sliced_wasserstein` (SWD on Laplacian-pyramid patches, ProGAN section 5) and the helpers
  :func:`swd_generator` / :func:`swd_generator_vs_shards` for a generator against real data.
"""

from sgtrain.metrics.swd import (
    SWDDescriptors,
    laplacian_pyramid,
    sliced_wasserstein,
    sliced_wasserstein_distance,
    swd_generator,
    swd_generator_vs_shards,
)

__all__ = [
    "SWDDescriptors",
    "laplacian_pyramid",
    "sliced_wasserstein",
    "sliced_wasserstein_distance",
    "swd_generator",
    "swd_generator_vs_shards",
]
