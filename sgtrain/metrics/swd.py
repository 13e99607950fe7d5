"""Sliced Wasserstein distance (SWD) between image sets on Laplacian-pyramid patches.

Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and Variation" (ProGAN),
section 5 and appendix D; behaviour of NVlabs' ``progressive_growing_of_gans/metrics/sliced_wasserstein.py``:

1. Each image (uint8, values 0..255 as float32) is decomposed into a Laplacian pyramid whose levels go from the full
   resolution down to 16x16 (the last level is the 16x16 Gaussian low-pass). The pyramid uses the 5-tap binomial
   filter [1, 4, 6, 4, 1] / 16 with mirrored borders (OpenCV's pyrDown / pyrUp).
2. From every level of every image, 128 7x7 neighbourhoods at random positions (centres at least 3 pixels from the
   border) give descriptors of ``C * 7 * 7`` values.
3. Per level and per set, each colour channel of the descriptors is normalised to mean 0 and standard deviation 1.
4. Per level, the SWD between the real and generated descriptor sets is the mean, over random unit directions, of
   the mean absolute difference of the sorted projections; NVlabs uses 4 repeats of 128 directions (512 in all).
5. Reported as ``SWDx1e3_<res>`` per level (times 1000) and their mean ``SWDx1e3_avg``.

No pretrained network is involved. Results are deterministic for a given ``seed``, whatever the batching: all random
positions and directions come from ``torch.Generator`` objects seeded from it, never from the global RNG. Unlike
NVlabs, both sets take their neighbourhood positions from the same seed (common random numbers): identical sets give
exactly 0, and the expected value for independent sets is the same as NVlabs'.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sgtrain.errors import InputError

__all__ = [
    "SWDDescriptors",
    "gaussian_pyramid_down",
    "gaussian_pyramid_up",
    "generated_images_uint8",
    "iter_shard_reals",
    "laplacian_pyramid",
    "sliced_wasserstein",
    "sliced_wasserstein_distance",
    "swd_generator",
    "swd_generator_vs_shards",
    "swd_resolutions",
]

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RES = 16

_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def _binomial_kernel(channels: int, device: torch.device, dtype: torch.dtype, gain: float = 1.0) -> torch.Tensor:
    """5x5 binomial kernel (outer product of [1, 4, 6, 4, 1] / 16) for a depthwise conv: [channels, 1, 5, 5]."""
    f = torch.tensor(_BINOMIAL_5, device=device, dtype=dtype)
    k = torch.outer(f, f) / 256.0 * gain
    return k.expand(channels, 1, 5, 5).contiguous()


def gaussian_pyramid_down(images: torch.Tensor) -> torch.Tensor:
    """One Gaussian pyramid step down: 5-tap binomial blur with mirrored borders, then keep even rows/columns.

    Matches OpenCV ``pyrDown`` (border ``BORDER_REFLECT_101``) and NVlabs' ``pyr_down``.

    Args:
        images: float [N, C, H, W] with H, W even and >= 4.

    Returns:
        float [N, C, H/2, W/2].
    """
    channels = images.shape[1]
    x = F.pad(images, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, _binomial_kernel(channels, images.device, images.dtype), groups=channels)
    return x[:, :, ::2, ::2]


def gaussian_pyramid_up(images: torch.Tensor) -> torch.Tensor:
    """One Gaussian pyramid step up: insert zeros, then 5-tap binomial blur (gain 4) with mirrored borders.

    Matches OpenCV ``pyrUp`` and NVlabs' ``pyr_up``.

    Args:
        images: float [N, C, H, W] with H, W >= 2.

    Returns:
        float [N, C, 2H, 2W].
    """
    n, c, h, w = images.shape
    x = images.new_zeros([n, c, h * 2, w * 2])
    x[:, :, ::2, ::2] = images
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(x, _binomial_kernel(c, images.device, images.dtype, gain=4.0), groups=c)


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid: level i is ``G_i - up(G_{i+1})``; the last level is the Gaussian ``G_{num_levels-1}``.

    Args:
        images: float [N, C, H, W] (values on any scale; SWD uses 0..255), H and W divisible by 2**(num_levels-1).
        num_levels: number of levels >= 1.

    Returns:
        ``num_levels`` float tensors [N, C, H / 2**i, W / 2**i].
    """
    pyramid = [images.float()]
    for _ in range(1, num_levels):
        pyramid.append(gaussian_pyramid_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - gaussian_pyramid_up(pyramid[-1])
    return pyramid


def swd_resolutions(resolution: int, min_res: int = MIN_RES) -> list[int]:
    """Pyramid resolutions ``[resolution, resolution/2, ..., >= min_res]`` (NVlabs: down to 16).

    Raises:
        ValueError: resolution < min_res, or min_res too small for 7x7 neighbourhoods (< 8).
    """
    if min_res < 8:
        raise InputError(f"SWD: min_res must be >= 8 for 7x7 neighbourhoods, got {min_res}")
    if resolution < min_res:
        raise InputError(f"SWD needs images of at least {min_res}x{min_res} pixels, got {resolution}; "
                         f"lower min_res (>= 8) for smaller images")
    res, out = resolution, []
    while res >= min_res:
        out.append(res)
        if res % 2:
            break
        res //= 2
    return out


class _PositionStream:
    """Neighbourhood centres for one pyramid level, drawn in fixed blocks so that the positions of image i depend
    only on (seed, level, i), not on how the images were batched."""

    _BLOCK = 8192

    def __init__(self, seed: int, level: int, low: int, high_y: int, high_x: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed) * 1000003 + level)
        self.low, self.high_y, self.high_x = low, high_y, high_x
        self.buffer = torch.empty([0, 2], dtype=torch.int64)

    def take(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        while self.buffer.shape[0] < m:
            ys = torch.randint(self.low, self.high_y, (self._BLOCK,), generator=self.generator)
            xs = torch.randint(self.low, self.high_x, (self._BLOCK,), generator=self.generator)
            self.buffer = torch.cat([self.buffer, torch.stack([ys, xs], dim=1)])
        out, self.buffer = self.buffer[:m], self.buffer[m:]
        return out[:, 0], out[:, 1]


def _extract_descriptors(level: torch.Tensor, nhood_size: int, nhoods_per_image: int,
                         positions: _PositionStream) -> torch.Tensor:
    """Random ``nhood_size`` x ``nhood_size`` patches: [N * nhoods_per_image, C, k, k] float32."""
    n, c, h, w = level.shape
    r = nhood_size // 2
    m = n * nhoods_per_image
    img = torch.arange(n).repeat_interleave(nhoods_per_image)
    ys, xs = positions.take(m)
    # A strided view of every k x k window, [N, H-2r, W-2r, C, k, k] (no copy), indexed by (image, top, left).
    level = level.contiguous()
    s = level.stride()
    k = nhood_size
    windows = level.as_strided((n, h - 2 * r, w - 2 * r, c, k, k), (s[0], s[2], s[3], s[1], s[2], s[3]))
    dev = level.device
    return windows[img.to(dev), (ys - r).to(dev), (xs - r).to(dev)]


def _normalize_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation over all neighbourhoods and pixels (population std), flattened to [M, C*k*k]."""
    desc = desc.float()
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    desc = (desc - mean) / std.clamp_min(1e-8)
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein_distance(a: torch.Tensor, b: torch.Tensor, dir_repeats: int = DIR_REPEATS,
                                dirs_per_repeat: int = DIRS_PER_REPEAT,
                                generator: torch.Generator | None = None) -> float:
    """Sliced Wasserstein-1 distance between two equal-size point sets (Rabin et al. 2011; ProGAN appendix D).

    For each of ``dir_repeats`` batches of ``dirs_per_repeat`` random unit directions (Gaussian, normalised), both
    sets are projected, sorted, and the mean absolute difference of the sorted projections is taken; the result
    is the mean over repeats.

    Args:
        a: float [M, D] descriptors.
        b: float [M, D], the same shape.
        dir_repeats: number of direction batches.
        dirs_per_repeat: directions per batch.
        generator: CPU ``torch.Generator`` for the directions; None uses a fresh one seeded 0.

    Returns:
        The distance (a Python float, >= 0, in descriptor units).

    Raises:
        ValueError: shapes differ or are not 2-D.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise InputError(f"sliced_wasserstein_distance needs two [M, D] sets of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}; use the same number of images for both sets")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    results = []
    for _ in range(dir_repeats):
        dirs = torch.randn([a.shape[1], dirs_per_repeat], generator=generator, dtype=torch.float64)
        dirs = (dirs / dirs.square().sum(dim=0, keepdim=True).sqrt()).float().to(a.device)
        # [directions, M]: each row is contiguous, which sorts much faster than along dim 0.
        proj_a = _sort_rows(dirs.T @ a.float().T)
        proj_b = _sort_rows(dirs.T @ b.float().T)
        results.append((proj_a - proj_b).abs().mean().item())
    return float(np.mean(results))


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Sort each row; on CPU through NumPy, whose SIMD sort is about 10x faster than torch.sort there."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.contiguous().numpy(), axis=1))
    return torch.sort(x, dim=1).values


def _as_batches(images: torch.Tensor | np.ndarray | Iterable[Any], batch_size: int) -> Iterator[torch.Tensor]:
    """Yield uint8 [n, C, H, W] tensors from a tensor/array or an iterable of batches ((img, c) tuples allowed)."""
    if isinstance(images, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(images)
        for i in range(0, t.shape[0], batch_size):
            yield t[i:i + batch_size]
        return
    for batch in images:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        elif isinstance(batch, dict):
            batch = batch["img"] if "img" in batch else batch["image"]
        yield torch.as_tensor(batch)


class SWDDescriptors:
    """Laplacian-pyramid patch descriptors of one image set, collected batch by batch.

    Feed uint8 batches with :meth:`add`, then :meth:`finalize` gives one normalised [M, C*7*7] float32 set per
    pyramid level. Keep the result of a real-image set to compare several generators against it without
    recomputing it.

    Args:
        resolution: image height = width in pixels, or ``(height, width)`` for W x H images (the pyramid then goes
            down while the shorter side stays >= min_res; levels are named by the longer side).
        nhood_size: neighbourhood size (NVlabs 7).
        nhoods_per_image: neighbourhoods per image per level (NVlabs 128).
        min_res: smallest pyramid level (NVlabs 16).
        seed: seed of the CPU generators that draw neighbourhood positions (independent of the batching).
        device: where the pyramid and descriptors are computed and kept (default: CPU).
    """

    def __init__(self, resolution: int | tuple[int, int], nhood_size: int = NHOOD_SIZE,
                 nhoods_per_image: int = NHOODS_PER_IMAGE, min_res: int = MIN_RES, seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        h, w = (int(resolution[0]), int(resolution[1])) if isinstance(resolution, (tuple, list)) else (
            int(resolution), int(resolution))
        levels = len(swd_resolutions(min(h, w), min_res))
        self.size = (h, w)
        self.resolution = max(h, w)
        self.resolutions = [self.resolution >> i for i in range(levels)]
        self.nhood_size = nhood_size
        self.nhoods_per_image = nhoods_per_image
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        r = nhood_size // 2
        self._positions = [_PositionStream(seed, i, r, (h >> i) - r, (w >> i) - r) for i in range(levels)]
        self.num_images = 0
        self._parts: list[list[torch.Tensor]] = [[] for _ in self.resolutions]

    def add(self, images_uint8: torch.Tensor | np.ndarray) -> None:
        """Add a batch: uint8 [n, C, H, W] (values 0..255), (H, W) = size.

        Raises:
            ValueError: wrong dtype or shape.
        """
        x = torch.as_tensor(images_uint8)
        if x.dtype != torch.uint8:
            raise InputError(f"SWD expects uint8 images in [0, 255], got {x.dtype}; convert float images in [-1, 1] "
                             f"with generated_images_uint8 or (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)")
        if x.ndim != 4 or tuple(x.shape[2:]) != self.size:
            raise InputError(f"SWD expects images [N, C, {self.size[0]}, {self.size[1]}], got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        levels = laplacian_pyramid(x, len(self.resolutions))
        for parts, level, positions in zip(self._parts, levels, self._positions):
            parts.append(_extract_descriptors(level, self.nhood_size, self.nhoods_per_image, positions))
        self.num_images += x.shape[0]

    def finalize(self) -> list[torch.Tensor]:
        """Normalised descriptors, one float32 [num_images * nhoods_per_image, C*k*k] per level (finest first).

        Raises:
            ValueError: no images were added.
        """
        if self.num_images == 0:
            raise InputError("SWD: no images were added; the image source is empty")
        return [_normalize_descriptors(torch.cat(parts, dim=0)) for parts in self._parts]


def _collect(images: Any, resolution: int | tuple[int, int] | None, batch_size: int, num: int | None, seed: int,
             device: torch.device | str | None, **kwargs: Any) -> SWDDescriptors:
    acc: SWDDescriptors | None = None
    for batch in _as_batches(images, batch_size):
        if num is not None and acc is not None and acc.num_images >= num:
            break
        if num is not None and acc is not None:
            batch = batch[: num - acc.num_images]
        if acc is None:
            acc = SWDDescriptors(resolution or tuple(batch.shape[-2:]), seed=seed, device=device, **kwargs)
        acc.add(batch)
    if acc is None:
        raise InputError("SWD: the image source is empty")
    return acc


def _report(resolutions: list[int], dists: list[float]) -> dict[str, float]:
    out = {f"SWDx1e3_{res}": d * 1e3 for res, d in zip(resolutions, dists)}
    out["SWDx1e3_avg"] = float(np.mean([d * 1e3 for d in dists]))
    return out


def sliced_wasserstein(reals_uint8: Any, fakes_uint8: Any, nhood_size: int = NHOOD_SIZE,
                       nhoods_per_image: int = NHOODS_PER_IMAGE, dir_repeats: int = DIR_REPEATS,
                       dirs_per_repeat: int = DIRS_PER_REPEAT, min_res: int = MIN_RES, seed: int = 0,
                       batch_size: int = 64, device: torch.device | str | None = None,
                       reals_descriptors: list[torch.Tensor] | None = None) -> dict[str, float]:
    """SWD between two image sets, per pyramid level (x 1e3) and averaged (ProGAN section 5, appendix D).

    Args:
        reals_uint8: real images, uint8 [N, C, H, W] (tensor or array) or an iterable of such batches (tuples
            ``(img, c)`` and dicts with 'img' are accepted); ignored when ``reals_descriptors`` is given.
        fakes_uint8: generated images in the same form, the same number N and shape.
        nhood_size: neighbourhood size (7).
        nhoods_per_image: neighbourhoods per image per level (128).
        dir_repeats: repeats of random directions (4).
        dirs_per_repeat: directions per repeat (128; 512 directions in all).
        min_res: smallest pyramid level (16).
        seed: neighbourhood positions of both sets are drawn from ``seed`` (the same positions for image i of
            either set, so identical sets give exactly 0 and similar sets are compared with less sampling noise;
            for independent sets the expected value is unchanged), directions from ``seed + 1``.
        batch_size: images per pyramid batch when a tensor is given.
        device: where pyramids and projections run (default CPU).
        reals_descriptors: precomputed ``SWDDescriptors(...).finalize()`` of the reals.

    Returns:
        ``{'SWDx1e3_<res>': float, ..., 'SWDx1e3_avg': float}`` (finest level first), each >= 0.

    Raises:
        ValueError: empty sets, different sizes or resolutions, non-uint8 input.
    """
    kw = dict(nhood_size=nhood_size, nhoods_per_image=nhoods_per_image, min_res=min_res)
    fakes = _collect(fakes_uint8, None, batch_size, None, seed, device, **kw)
    if reals_descriptors is None:
        reals = _collect(reals_uint8, fakes.size, batch_size, None, seed, device, **kw)
        if reals.num_images != fakes.num_images:
            raise InputError(f"SWD needs as many reals as fakes; got {reals.num_images} reals and "
                             f"{fakes.num_images} fakes")
        reals_descriptors = reals.finalize()
    desc_fake = fakes.finalize()
    if len(reals_descriptors) != len(desc_fake):
        raise InputError(f"SWD: reals have {len(reals_descriptors)} pyramid levels, fakes {len(desc_fake)}; "
                         f"use images of the same resolution")
    generator = torch.Generator().manual_seed(int(seed) + 1)
    dists = [sliced_wasserstein_distance(r, f, dir_repeats, dirs_per_repeat, generator)
             for r, f in zip(reals_descriptors, desc_fake)]
    return _report(fakes.resolutions, dists)


def generated_images_uint8(G: torch.nn.Module, num: int, batch_size: int = 32, seed: int = 0,
                           labels: torch.Tensor | None = None, truncation_psi: float = 1.0,
                           noise_mode: str = "random",
                           device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Yield ``num`` generated images as uint8 [n, C, H, W] batches: ``(G(z, c) * 127.5 + 128).clamp(0, 255)``.

    z ~ N(0, I) from a CPU generator seeded ``seed``; the synthesis noise (noise_mode 'random') comes from the global
    RNG inside a ``torch.random.fork_rng`` seeded from ``seed``, so the images are reproducible and the caller's RNG
    state is untouched. The conversion is NVlabs' (stylegan3 ``metric_utils``).

    Args:
        G: generator, ``G(z, c, truncation_psi=..., noise_mode=...) -> [n, C, H, W]`` float in [-1, 1].
        num: number of images.
        batch_size: images per forward pass.
        seed: random seed.
        labels: float [>= num, c_dim] labels for a conditional G (e.g. drawn from the dataset); None for c_dim 0.
        truncation_psi: truncation (1 = none).
        noise_mode: 'random', 'const' or 'none'.
        device: where G runs (default: the device of G's parameters).

    Raises:
        ValueError: G is conditional and no labels (or too few) are given.
    """
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim > 0 and (labels is None or labels.shape[0] < num):
        raise InputError(f"generated_images_uint8: G is conditional (c_dim {c_dim}); pass labels [>= {num}, {c_dim}] "
                         f"(e.g. drawn from the dataset's labels)")
    if device is None:
        p = next(iter(G.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(int(seed))
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
        torch.manual_seed(int(seed))
        for i in range(0, num, batch_size):
            n = min(batch_size, num - i)
            z = torch.randn([n, G.z_dim], generator=gen).to(device)
            c = labels[i:i + n].to(device) if c_dim > 0 else torch.zeros([n, 0], device=device)
            img = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
            yield (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()


def swd_generator(G: torch.nn.Module, reals: Any, num: int = 2048, batch_size: int = 32, seed: int = 0,
                  truncation_psi: float = 1.0, noise_mode: str = "random", device: torch.device | str | None = None,
                  reals_descriptors: list[torch.Tensor] | None = None, **swd_kwargs: Any) -> dict[str, float]:
    """SWD between ``num`` images of a generator and ``num`` real images.

    Args:
        G: generator (e.g. ``sgtrain.io.load_network(path)['G_ema']``), images float [-1, 1].
        reals: real images: uint8 [N, C, H, W] tensor/array, or an iterable of uint8 batches or ``(img, c)``
            tuples (e.g. a datamodule's loader); the first ``num`` are used. For a conditional G the labels of
            these reals are given to G, so fakes follow the data's label distribution.
        num: number of images per set (ProGAN used 8192 at 1024^2 resolution; 2048 is a quick estimate).
        batch_size: generator batch size.
        seed: seeds z, the synthesis noise, patch positions and projection directions.
        truncation_psi: truncation for G (1 = none, the usual setting for metrics).
        noise_mode: G's noise mode.
        device: where G and the SWD computation run.
        reals_descriptors: precomputed real descriptors (see :class:`SWDDescriptors`); then ``reals`` is only read
            for labels when G is conditional.
        **swd_kwargs: nhood_size, nhoods_per_image, dir_repeats, dirs_per_repeat, min_res (see
            :func:`sliced_wasserstein`).

    Returns:
        ``{'SWDx1e3_<res>': ..., 'SWDx1e3_avg': ...}`` plus ``'num_images'``.

    Raises:
        ValueError: fewer than ``num`` reals, or resolution mismatch between G and the reals.
    """
    desc_kw = {k: swd_kwargs[k] for k in ("nhood_size", "nhoods_per_image", "min_res") if k in swd_kwargs}
    labels: list[torch.Tensor] = []
    need_reals = reals_descriptors is None
    need_labels = int(getattr(G, "c_dim", 0)) > 0
    acc = None
    if need_reals or need_labels:
        count = 0
        for batch in (reals if not isinstance(reals, (torch.Tensor, np.ndarray)) else [reals]):
            img, c = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) and len(batch) > 1 else (batch, None)
            if isinstance(img, (tuple, list)):
                img = img[0]
            img = torch.as_tensor(img)[: num - count]
            if need_reals:
                gh = int(getattr(G, "img_height", G.img_resolution))
                gw = int(getattr(G, "img_width", G.img_resolution))
                if tuple(img.shape[-2:]) != (gh, gw):
                    raise InputError(f"SWD: the reals are {img.shape[-1]}x{img.shape[-2]} but G makes "
                                     f"{gw}x{gh} images; use the data G was trained on")
                if acc is None:
                    acc = SWDDescriptors((gh, gw), seed=seed, device=device, **desc_kw)
                for i in range(0, img.shape[0], 256):
                    acc.add(img[i:i + 256])
            if need_labels:
                if c is None:
                    raise InputError("SWD: G is conditional but the reals carry no labels; give (img, c) batches")
                labels.append(torch.as_tensor(c)[: img.shape[0]].float())
            count += img.shape[0]
            if count >= num:
                break
        if count < num:
            raise InputError(f"SWD: asked for {num} images but the real data gave only {count}; lower --num")
        if need_reals:
            reals_descriptors = acc.finalize()
    fakes = generated_images_uint8(G, num, batch_size=batch_size, seed=seed,
                                   labels=torch.cat(labels) if labels else None, truncation_psi=truncation_psi,
                                   noise_mode=noise_mode, device=device)
    out: dict[str, Any] = sliced_wasserstein(None, fakes, seed=seed, device=device, reals_descriptors=reals_descriptors,
                                             **swd_kwargs)
    out["num_images"] = num
    return out



def iter_shard_reals(path: str, num: int, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                     use_labels: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(img uint8 [n, C, R, R], c float32 [n, c_dim])`` batches of ``num`` shuffled real images from shards.

    Reads through :class:`sgtrain.data.ShardDataModule` (a directory written by ``sgtrain-data pack``, a brace
    pattern or URLs; see its docs) with its shuffle buffer seeded by ``seed``, no x-flip, on a single process, as
    training draws them: an epoch drops its last partial batch, so ``num`` near the image count reads on into the
    next epoch (an image may then come twice).

    Raises:
        FileNotFoundError: no shards or dataset card at ``path``.
        ValueError: the data holds fewer than ``num`` images.
    """
    from sgtrain.data import ShardDataModule

    dm = ShardDataModule(path, batch_size=min(batch_size, num), num_workers=num_workers, xflip=False, seed=seed,
                         persistent_workers=False, use_labels=use_labels)
    if dm.count < num:
        raise InputError(f"SWD: asked for {num} images but {path} holds {dm.count}; lower --num to at most {dm.count}")
    got = 0
    for _ in range(2 + num // max(1, dm.count)):  # an epoch drops its last partial batch: read on into the next
        for img, c in dm.train_dataloader(rank=0, world_size=1):
            img, c = img[: num - got], c[: num - got]
            got += img.shape[0]
            yield img, c
            if got >= num:
                return
    raise InputError(f"SWD: the data loader gave only {got} of {num} images from {path}; lower --num")


def swd_generator_vs_shards(G: torch.nn.Module, path: str, num: int = 2048, batch_size: int = 32, seed: int = 0,
                            device: torch.device | str | None = None, num_workers: int = 0,
                            **kwargs: Any) -> dict[str, float]:
    """SWD between ``num`` images of ``G`` and ``num`` real images read from packed shards at ``path``.

    A thin wrapper of :func:`swd_generator` over :func:`iter_shard_reals`; ``kwargs`` go to :func:`swd_generator`
    (truncation_psi, noise_mode, reals_descriptors, nhood_size, ...). For a conditional G, the fakes use the labels of
    the real images read (the data's label distribution).

    Raises:
        ValueError: too few images, or the shards' resolution differs from G's.
    """
    reals = iter_shard_reals(path, num, seed=seed, num_workers=num_workers, use_labels=int(getattr(G, "c_dim", 0)) > 0)
    return swd_generator(G, reals, num=num, batch_size=batch_size, seed=seed, device=device, **kwargs)
