"""Perceptual path length (PPL).

Karras et al. 2019, "A Style-Based Generator Architecture for GANs" (StyleGAN), section 4.2: the LPIPS distance
between images at latents ``t`` and ``t + eps`` along random paths, divided by ``eps^2``, averaged after dropping the
values below the 1st and above the 99th percentile. NVlabs' ``metrics/perceptual_path_length.py`` (stylegan3):

- ``ppl2_wend`` (StyleGAN2, Karras et al. 2020, section 2.2): paths in W between the mappings of two random z, taken
  at their end (``t = 0``), no crop, 50,000 samples, ``eps = 1e-4``, batches of 2; ``ppl_{z,w}{full,end}``
  (stylegan2-ada-pytorch): z (spherical interpolation) or W, ``t ~ U(0, 1)`` ('full') or 0 ('end'), with the face
  crop (rows 3/8..7/8, columns 2/8..6/8).
- per batch the synthesis noise buffers are redrawn (shared by both ends of every path), images are made in float32
  with ``noise_mode='const'``, averaged down to 256x256 when larger, scaled to [0, 255], and gray images repeated to
  RGB before the VGG16 LPIPS network (``vgg16(img, resize_images=False, return_lpips=True)``); RGBA images only with
  ``alpha="white"`` (composited on white), else refused.

Batch ``b`` draws t, z, labels and noise from seeds derived from ``(seed, b)`` and belongs to rank
``b % world_size``; the distances are gathered in sample order, so the result does not depend on the process count.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sgtrain.data.stream import mix_seed
from sgtrain.errors import InputError
from sgtrain.metrics.feature_stats import FeatureStats, check_alpha, dist_rank_world

__all__ = ["compute_ppl", "path_lengths", "ppl_from_distances", "slerp"]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of directions: unit vectors between ``a`` and ``b`` ([N, D]) at ``t`` ([N, 1])."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def path_lengths(G: torch.nn.Module, lpips: Callable[[torch.Tensor], torch.Tensor], c: torch.Tensor,
                 generator: torch.Generator, epsilon: float = 1e-4, space: str = "w", sampling: str = "end",
                 crop: bool = False, G_kwargs: dict[str, Any] | None = None,
                 alpha: str | None = None) -> torch.Tensor:
    """Path-length samples ``LPIPS(img(t), img(t + eps)) / eps^2`` for one batch (NVlabs' ``PPLSampler``).

    Args:
        G: a style-based generator (``mapping``, ``synthesis``, ``z_dim``, ``img_resolution``, ``img_channels``,
            ``noise_const`` buffers); its noise buffers are overwritten, so pass a copy.
        lpips: float32 [N, 3, H, W] in [0, 255] -> [N, F] features whose squared distance is LPIPS.
        c: float32 [n, c_dim] labels on G's device ([n, 0] unconditional).
        generator: CPU RNG for t, z and the noise maps.
        epsilon: path step.
        space: 'w' (linear in W) or 'z' (spherical in Z).
        sampling: 'end' (t = 0) or 'full' (t ~ U(0, 1)).
        crop: NVlabs' face crop.
        G_kwargs: extra synthesis arguments.
        alpha: an RGBA G's images: None = refused, ``"white"`` = composited on white before the VGG16.

    Returns:
        float32 [n] distances on G's device.

    Raises:
        ValueError: unknown space or sampling; an RGBA G without ``alpha`` (InputError).
    """
    check_alpha(int(G.img_channels), alpha, "PPL: the generator's images")
    if space not in ("z", "w") or sampling not in ("full", "end"):
        raise InputError(f"PPL space must be 'z' or 'w' and sampling 'full' or 'end', got {space!r}, {sampling!r}")
    device = c.device
    n = c.shape[0]
    t = torch.rand([n], generator=generator).to(device) * (1 if sampling == "full" else 0)
    z0, z1 = torch.randn([n * 2, G.z_dim], generator=generator).to(device).chunk(2)
    if space == "w":
        w0, w1 = G.mapping(z=torch.cat([z0, z1]), c=torch.cat([c, c])).chunk(2)
        wt0 = w0.lerp(w1, t[:, None, None])
        wt1 = w0.lerp(w1, t[:, None, None] + epsilon)
    else:
        zt0 = slerp(z0, z1, t[:, None])
        zt1 = slerp(z0, z1, t[:, None] + epsilon)
        wt0, wt1 = G.mapping(z=torch.cat([zt0, zt1]), c=torch.cat([c, c])).chunk(2)
    for name, buf in G.named_buffers():
        if name.endswith(".noise_const"):
            buf.copy_(torch.randn(buf.shape, generator=generator).to(buf.device, buf.dtype))
    img = G.synthesis(ws=torch.cat([wt0, wt1]), noise_mode="const", force_fp32=True, **(G_kwargs or {}))
    if crop:
        if img.shape[2] != img.shape[3]:
            raise InputError(f"the PPL crop needs square images, got {tuple(img.shape[2:])}")
        k = img.shape[2] // 8
        img = img[:, :, k * 3:k * 7, k * 2:k * 6]
    factor = G.img_resolution // 256
    if factor > 1:
        img = img.reshape([-1, img.shape[1], img.shape[2] // factor, factor, img.shape[3] // factor, factor])
        img = img.mean([3, 5])
    img = (img + 1) * (255 / 2)
    if G.img_channels == 1:
        img = img.repeat([1, 3, 1, 1])
    elif G.img_channels == 4:  # alpha == "white": on white, as the other RGB feature metrics (feature_stats.to_rgb)
        a = (img[:, 3:] / 255).clamp(0, 1)
        img = img[:, :3] * a + 255 * (1 - a)
    f0, f1 = lpips(img).chunk(2)
    return (f0 - f1).square().sum(1) / epsilon**2


def ppl_from_distances(dist: np.ndarray) -> float:
    """Mean of the distances between their 1st (lower) and 99th (higher) percentiles, inclusive (NVlabs)."""
    dist = np.asarray(dist, dtype=np.float64)
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())


def compute_ppl(opts: Any, num_samples: int, epsilon: float, space: str, sampling: str, crop: bool,
                batch_size: int) -> float:
    """PPL of ``opts.G`` (NVlabs' ``compute_ppl``); batch ``b`` of ``batch_size`` paths is seeded by
    ``(opts.seed, b)`` and runs on rank ``b % world_size``.

    Raises:
        ValueError: no generator, or one without ``mapping``/``synthesis``.
    """
    if opts.G is None or not hasattr(opts.G, "mapping") or not hasattr(opts.G, "synthesis"):
        raise InputError("PPL needs a style-based generator (with mapping and synthesis networks)")
    detector = opts.detector("vgg16", lpips=True)
    device = detector.device
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(device)
    labels = opts.label_sampler()
    rank, world = dist_rank_world()
    stats = FeatureStats(capture_all=True)
    num_batches = (num_samples + batch_size - 1) // batch_size
    with torch.no_grad():
        for b in range(rank, num_batches, world):
            n = min(batch_size, num_samples - b * batch_size)
            gen = torch.Generator().manual_seed(mix_seed(opts.seed, b, 0x991))
            c = labels(n, gen) if G.c_dim > 0 else torch.zeros([n, 0])
            dist = path_lengths(G, detector.lpips_features, c.to(device), gen, epsilon, space, sampling, crop,
                                opts.G_kwargs, alpha=getattr(opts, "alpha", None))
            stats.append(dist[:, None], torch.arange(b * batch_size, b * batch_size + n))
            if opts.progress is not None and rank == 0:
                opts.progress("ppl sampling", min((b + 1) * batch_size, num_samples), num_samples)
    stats.finalize(device)
    return ppl_from_distances(stats.all_features()[:, 0])
