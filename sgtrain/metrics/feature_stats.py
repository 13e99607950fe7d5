"""Feature statistics of real and generated images, split across ranks, gathered, and cached for real data.

Behaviour of NVlabs' ``metrics/metric_utils.py`` (stylegan3): features are float32; the mean and covariance are
accumulated in float64 as ``sum(x)`` and ``sum(x^T x)`` and the covariance is the biased one
(``sum(x^T x) / n - mean mean^T``); all features are kept in dataset order when a metric needs them (KID, PR, IS).
Images with one channel are repeated to three before the network (NVlabs); RGBA images are refused unless the
caller opts in to compositing them on white (``alpha="white"``: :func:`to_rgb`, :func:`check_alpha`).

Distribution: each rank computes the features of its share of the images (real: its images of the dataset order,
see :mod:`sgtrain.metrics.image_sources`; generated: fixed-size batches ``b`` with ``b % world_size == rank``), the
sums are all-reduced and the kept features are gathered with their indices and put back in order, so every rank
ends with the same statistics, whatever the number of processes. Generated batch ``b`` draws z, labels and
synthesis noise from seeds derived from ``(seed, b)``, so the images themselves do not depend on the number of
processes either (NVlabs seeds each rank instead, which changes the sample with the GPU count).

Real statistics are cached in ``cache_dir`` (default ``$SGTRAIN_CACHE_DIR/metrics`` or ``~/.cache/sgtrain/metrics``)
as ``<dataset>-<detector>-<key>.npz``, where the key hashes the dataset content fingerprint, the detector file's
SHA-256, the detector call, the number of images and the format version; files are written atomically (temporary
file + ``os.replace``) by rank 0 and read with ``numpy.load(allow_pickle=False)``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from sgtrain.core.batches import in_batches
from sgtrain.data.stream import mix_seed
from sgtrain.errors import InputError
from sgtrain.metrics.detector_files import default_cache_dir
from sgtrain.metrics.detectors import FeatureDetector
from sgtrain.metrics.image_sources import ImageSource

__all__ = [
    "CACHE_VERSION",
    "FeatureStats",
    "compute_dataset_stats",
    "compute_generator_stats",
    "default_cache_dir",
    "dist_rank_world",
    "generated_batches",
    "images_to_uint8",
    "progress_printer",
    "stats_cache_path",
]

CACHE_VERSION = 1


def dist_rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised ``torch.distributed`` group, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _comm_device(device: torch.device) -> torch.device:
    """Where collectives run: the CUDA device under NCCL, else CPU."""
    if torch.distributed.get_backend() == "nccl":
        return device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_reduce_sum(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = t.to(_comm_device(device))
    torch.distributed.all_reduce(x)
    return x.to(t.device)


def _broadcast_flag(flag: bool, device: torch.device) -> bool:
    _, world = dist_rank_world()
    if world == 1:
        return flag
    x = torch.tensor([1.0 if flag else 0.0], dtype=torch.float32, device=_comm_device(device))
    torch.distributed.broadcast(x, src=0)
    return bool(x.item() != 0)


def _gather_rows(x: torch.Tensor, device: torch.device, chunk: int = 8192) -> torch.Tensor:
    """Concatenate, on every rank, the rows [n_r, ...] of all ranks (rank order), in chunks to bound memory."""
    from torchmetrics.utilities.distributed import gather_all_tensors

    _, world = dist_rank_world()
    if world == 1:
        return x
    comm = _comm_device(device)
    rounds = torch.tensor([(x.shape[0] + chunk - 1) // chunk], device=comm)
    torch.distributed.all_reduce(rounds, op=torch.distributed.ReduceOp.MAX)
    parts: list[list[torch.Tensor]] = [[] for _ in range(world)]
    for r in range(int(rounds.item())):
        piece = x[r * chunk:(r + 1) * chunk].to(comm)
        for src, got in enumerate(gather_all_tensors(piece)):
            parts[src].append(got.to(x.device))
    return torch.cat([p for ps in parts for p in ps], dim=0)


class FeatureStats:
    """Features of one image set: float64 sums for mean/covariance and, optionally, every feature vector.

    Args:
        capture_all: keep every feature vector (KID, PR, IS).
        capture_mean_cov: accumulate ``sum(x)`` and ``sum(x^T x)`` in float64 (FID).

    After :meth:`finalize` (which reduces over ranks), :meth:`mean_cov` and :meth:`all_features` give the
    results; they equal NVlabs' ``FeatureStats.get_mean_cov`` / ``get_all``.
    """

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False) -> None:
        self.capture_all = bool(capture_all)
        self.capture_mean_cov = bool(capture_mean_cov)
        self.num_items = 0
        self.num_features: int | None = None
        self.raw_mean: torch.Tensor | None = None
        self.raw_cov: torch.Tensor | None = None
        self._features: list[torch.Tensor] = []
        self._indices: list[torch.Tensor] = []
        self.features: torch.Tensor | None = None  # float32 [N, D] in index order after finalize()
        self.finalized = False

    def append(self, features: torch.Tensor, indices: torch.Tensor) -> None:
        """Add float [n, D] features of the images with dataset/sample indices int64 [n]."""
        x = features.detach().float().reshape(features.shape[0], -1)
        if self.num_features is None:
            self.num_features = int(x.shape[1])
            if self.capture_mean_cov:  # kept on the features' device until finalize()
                self.raw_mean = torch.zeros([self.num_features], dtype=torch.float64, device=x.device)
                self.raw_cov = torch.zeros([self.num_features] * 2, dtype=torch.float64, device=x.device)
        elif x.shape[1] != self.num_features:
            raise InputError(f"feature size changed from {self.num_features} to {x.shape[1]}")
        self.num_items += int(x.shape[0])
        if self.capture_mean_cov:
            x64 = x.to(self.raw_mean.device, torch.float64)
            self.raw_mean += x64.sum(dim=0)
            self.raw_cov += x64.T @ x64
        if self.capture_all:
            self._features.append(x.cpu())
            self._indices.append(indices.detach().to(torch.int64).cpu().reshape(-1))

    def finalize(self, device: torch.device | str = "cpu") -> FeatureStats:
        """Reduce over ranks (sums all-reduced, features gathered and sorted by index); idempotent."""
        if self.finalized:
            return self
        device = torch.device(device)
        _, world = dist_rank_world()
        if world > 1:
            dims = torch.tensor([self.num_features or 0], dtype=torch.int64)
            dims = _all_reduce_max(dims, device)
            if self.num_features is None and int(dims.item()) > 0:
                self.num_features = int(dims.item())
                if self.capture_mean_cov:
                    self.raw_mean = torch.zeros([self.num_features], dtype=torch.float64)
                    self.raw_cov = torch.zeros([self.num_features, self.num_features], dtype=torch.float64)
            self.num_items = int(_all_reduce_sum(torch.tensor([self.num_items], dtype=torch.int64), device).item())
            if self.capture_mean_cov and self.raw_mean is not None:
                self.raw_mean = _all_reduce_sum(self.raw_mean, device)
                self.raw_cov = _all_reduce_sum(self.raw_cov, device)
        if self.raw_mean is not None:
            self.raw_mean, self.raw_cov = self.raw_mean.cpu(), self.raw_cov.cpu()
        if self.capture_all:
            d = self.num_features or 0
            feats = torch.cat(self._features) if self._features else torch.zeros([0, d])
            idx = torch.cat(self._indices) if self._indices else torch.zeros([0], dtype=torch.int64)
            if world > 1:
                feats = _gather_rows(feats, device)
                idx = _gather_rows(idx, device)
            order = torch.argsort(idx, stable=True)
            self.features = feats[order].contiguous()
            self._features, self._indices = [], []
        self.finalized = True
        return self

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean float64 [D], cov float64 [D, D])``, the biased covariance (NVlabs).

        Raises:
            ValueError: nothing accumulated, or mean/cov not captured.
        """
        if self.raw_mean is None or self.num_items == 0:
            if self.features is not None and self.features.shape[0] > 0:
                x = self.features.double()
                mean = x.mean(dim=0)
                cov = x.T @ x / x.shape[0] - torch.outer(mean, mean)
                return mean.numpy(), cov.numpy()
            raise InputError("no features were accumulated for mean/covariance")
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items - torch.outer(mean, mean)
        return mean.numpy(), cov.numpy()

    def all_features(self) -> np.ndarray:
        """float32 [N, D], in dataset/sample order.

        Raises:
            ValueError: features were not kept (``capture_all=False``) or :meth:`finalize` was not called.
        """
        if self.features is None:
            raise InputError("features were not kept: build FeatureStats(capture_all=True) and call finalize()")
        return self.features.numpy()

    # ------------------------------------------------------------------ cache files
    def save(self, path: str, meta: dict[str, Any]) -> None:
        """Write an ``.npz`` atomically (temporary file in the same directory, then ``os.replace``)."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "num_items": np.asarray(self.num_items, dtype=np.int64),
            "meta": np.asarray(json.dumps(meta)),
        }
        if self.raw_mean is not None:
            arrays["raw_mean"] = self.raw_mean.numpy()
            arrays["raw_cov"] = self.raw_cov.numpy()
        if self.features is not None:
            arrays["features"] = self.features.numpy()
        from sgtrain.io.atomic import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(path, write)  # the umask's permissions (a cache shared by jobs)

    @classmethod
    def load(cls, path: str) -> FeatureStats:
        """Read a file written by :meth:`save` (no pickles are read)."""
        with np.load(path, allow_pickle=False) as z:
            stats = cls(capture_all="features" in z.files, capture_mean_cov="raw_mean" in z.files)
            stats.num_items = int(z["num_items"])
            if "raw_mean" in z.files:
                stats.raw_mean = torch.from_numpy(z["raw_mean"].astype(np.float64))
                stats.raw_cov = torch.from_numpy(z["raw_cov"].astype(np.float64))
                stats.num_features = int(stats.raw_mean.shape[0])
            if "features" in z.files:
                stats.features = torch.from_numpy(z["features"].astype(np.float32))
                stats.num_features = int(stats.features.shape[1])
        stats.finalized = True
        return stats


def _all_reduce_max(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = t.to(_comm_device(device))
    torch.distributed.all_reduce(x, op=torch.distributed.ReduceOp.MAX)
    return x.to(t.device)


def stats_cache_path(source: ImageSource, detector: FeatureDetector, detector_kwargs: dict[str, Any],
                     num_items: int, cache_dir: str | os.PathLike | None = None) -> tuple[str, dict[str, Any]]:
    """``(path, meta)`` of the cache file of a dataset's features; ``meta`` is what the key hashes."""
    meta = {
        "version": CACHE_VERSION,
        "dataset": source.fingerprint(),
        "dataset_name": source.name,
        "detector_sha256": detector.sha256,
        "detector_kwargs": {k: detector_kwargs[k] for k in sorted(detector_kwargs)},
        "num_items": int(num_items),
        "channels_to_rgb": True,
    }
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:32]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{source.name}-{detector.name}")
    root = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    return os.path.join(root, f"{safe}-{key}.npz"), meta


#: What an RGBA image may become before an RGB feature network: ``white`` = composited on white. None (the default)
#: refuses RGBA images (:func:`check_alpha`).
ALPHA_MODES = ("white",)


def check_alpha(channels: int, alpha: str | None, what: str = "the images") -> None:
    """Refuse RGBA images for an RGB feature network unless the caller chose how to drop the alpha channel.

    The feature networks of FID, KID, precision/recall, IS and PPL take RGB. An L image is repeated to three
    channels (NVlabs' conversion); an RGBA one has no conversion that is right for every data set, so it is refused
    unless ``alpha="white"`` composites it on white (as ``sgtrain-data pack --channels 3`` does).

    Args:
        channels: channel count of the images (1, 3 or 4).
        alpha: None (refuse RGBA) or ``"white"``.
        what: the images, as the message names them (``"the data 'emoji' (dataset.json)"``).

    Raises:
        InputError: RGBA without ``alpha``, or an unknown ``alpha`` (one line naming the opt-in).
    """
    if alpha is not None and alpha not in ALPHA_MODES:
        raise InputError(f"alpha={alpha!r}: the only way to drop an alpha channel here is 'white' (--alpha white)")
    if int(channels) == 4 and alpha is None:
        raise InputError(f"{what} are RGBA (4 channels) but this metric's feature network takes RGB: pass --alpha "
                         "white to composite them on white (alpha='white' in the API, train.metrics_alpha=white in "
                         "training), or use swd, which compares all 4 channels")


def to_rgb(images: torch.Tensor, alpha: str | None = None) -> torch.Tensor:
    """uint8 images [N, C, H, W] with C = 1, 3 or 4 as RGB uint8 [N, 3, H, W] for the RGB feature networks.

    L is repeated to three channels (NVlabs); RGBA, with ``alpha="white"`` only, is composited on white,
    ``rgb * a + 255 * (1 - a)`` with ``a = alpha / 255``, rounded (what ``sgtrain-data pack --channels 3`` does to
    transparent images).

    Raises:
        InputError: RGBA without ``alpha="white"`` (:func:`check_alpha`), or another channel count.
    """
    c = images.shape[1]
    if c == 3:
        return images
    if c == 1:
        return images.repeat([1, 3, 1, 1])
    if c == 4:
        check_alpha(4, alpha)
        x = images.to(torch.float32)
        a = x[:, 3:] / 255
        return (x[:, :3] * a + 255 * (1 - a)).round().clamp(0, 255).to(images.dtype)
    raise InputError(f"the feature networks take 1, 3 or 4 channel images, got {c}; pack the data with "
                     "`sgtrain-data pack --channels 3`")


Progress = Callable[[str, int, int], None]


def progress_printer(tag: str) -> Progress:
    """A ``progress(what, done, total)`` that prints to stderr at most every 10 s and at the end."""
    state = {"t0": time.time(), "last": 0.0}

    def report(what: str, done: int, total: int) -> None:
        now = time.time()
        if done < total and now - state["last"] < 10:
            return
        state["last"] = now
        print(f"{tag} {what}: {done}/{total} images, {now - state['t0']:.1f} s", file=sys.stderr, flush=True)

    return report


def compute_dataset_stats(source: ImageSource, detector: FeatureDetector, detector_kwargs: dict[str, Any],
                          max_items: int | None = None, capture_all: bool = False, capture_mean_cov: bool = False,
                          batch_size: int = 64, workers: int = 0, cache: bool = True,
                          cache_dir: str | os.PathLike | None = None,
                          progress: Progress | None = None, alpha: str | None = None) -> FeatureStats:
    """Features of the first ``max_items`` images of a real set (all when None), cached (NVlabs'
    ``compute_feature_stats_for_dataset``).

    A cache entry holds either mean/covariance sums or every feature (from which the mean and covariance follow);
    an entry without features does not serve a ``capture_all`` request (it is recomputed and replaced).

    Args:
        source: the image set (:func:`sgtrain.metrics.image_sources.open_image_source`).
        detector: the feature network.
        detector_kwargs: its call (``dict(return_features=True)``).
        max_items: NVlabs' ``max_real``; None = every image.
        capture_all, capture_mean_cov: what to keep (see :class:`FeatureStats`).
        batch_size: images per network call.
        workers: decoding threads.
        cache: read and write the cache.
        cache_dir: cache directory (default :func:`default_cache_dir`).
        progress: ``progress(what, done, total)`` on rank 0.
        alpha: what RGBA images become before the RGB network: None = refused, ``"white"`` = composited on white.

    Returns:
        Finalized :class:`FeatureStats` (the same on every rank).

    Raises:
        InputError: an RGBA source without ``alpha`` (:func:`check_alpha`), before anything is read or cached.
    """
    check_alpha(source.channels, alpha, f"the images of '{source.name}'")
    rank, world = dist_rank_world()
    device = detector.device
    num = source.num_items(max_items)
    path = meta = None
    if cache:
        path, meta = stats_cache_path(source, detector, detector_kwargs, num, cache_dir)
        hit = False
        if rank == 0 and os.path.isfile(path):
            try:
                with np.load(path, allow_pickle=False) as z:
                    has_all = "features" in z.files
                    hit = has_all or (not capture_all and "raw_mean" in z.files)
            except (OSError, ValueError):
                hit = False
        if _broadcast_flag(hit, device):
            return FeatureStats.load(path)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov or not capture_all)
    done = 0
    for idx, images in source.iter_batches(rank, world, max_items=num, batch_size=batch_size, workers=workers):
        feats = detector(to_rgb(images, alpha), **detector_kwargs)
        stats.append(feats, idx)
        done += images.shape[0] * world
        if progress is not None and rank == 0:
            progress("dataset features", min(done, num), num)
    stats.finalize(device)
    if stats.num_items != num:
        raise InputError(f"{source.name}: read {stats.num_items} of {num} images (damaged samples were skipped); "
                         f"repair or repack the data")
    if path is not None and rank == 0:
        stats.save(path, meta)
    return stats


def images_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator output float [-1, 1] -> uint8 ``(img * 127.5 + 128).clamp(0, 255)`` (NVlabs' conversion)."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def generated_batches(G: torch.nn.Module, num: int, batch_size: int = 64, batch_gen: int | None = None,
                      seed: int = 0, labels: Callable[[int, torch.Generator], torch.Tensor] | None = None,
                      G_kwargs: dict[str, Any] | None = None, device: torch.device | str = "cpu",
                      rank: int = 0, world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's generated images: ``(sample indices int64 [n], img uint8 [n, C, H, W])`` per batch.

    Batch ``b`` holds samples ``[b * batch_size, (b + 1) * batch_size)`` and belongs to rank ``b % world_size``.
    Its z (standard normal, [n, z_dim]) and labels come from a CPU ``torch.Generator`` seeded by ``(seed, b)``; the
    synthesis noise from the global RNG, forked and seeded by ``(seed, b)``; so sample ``i`` is the same image for
    any number of processes. ``G(z, c, **G_kwargs)`` runs ``batch_gen`` images at a time (NVlabs: 4).

    Args:
        G: generator with ``z_dim``, ``c_dim``; output float [-1, 1].
        num: number of samples (over all ranks).
        batch_size: samples per batch (the unit of the split).
        batch_gen: samples per G call (default ``min(batch_size, 4)``).
        seed: seed of the whole sample.
        labels: ``labels(n, generator) -> float32 [n, c_dim]`` (NVlabs: labels of random dataset images);
            required when ``G.c_dim > 0``.
        G_kwargs: extra G arguments (``truncation_psi``, ``noise_mode``); NVlabs' metrics use none.
        device: where G runs.
        rank, world_size: this process and the number of processes.

    Raises:
        ValueError: a conditional G without ``labels``.
    """
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim > 0 and labels is None:
        raise InputError(f"G is conditional (c_dim {c_dim}): the metrics need real data to draw labels from "
                         f"(pass data=...)")
    device = torch.device(device)
    batch_gen = batch_gen or min(batch_size, 4)
    G_kwargs = dict(G_kwargs or {})
    fork = [device] if device.type == "cuda" else []
    num_batches = (num + batch_size - 1) // batch_size
    for b in range(rank, num_batches, world_size):
        n = min(batch_size, num - b * batch_size)
        gen = torch.Generator().manual_seed(mix_seed(seed, b, 0x2))
        z = torch.randn([n, G.z_dim], generator=gen)
        c = labels(n, gen) if c_dim > 0 else torch.zeros([n, 0])
        with torch.random.fork_rng(devices=fork), torch.no_grad():
            torch.manual_seed(mix_seed(seed, b, 0x3))
            images = in_batches(lambda zz, cc: images_to_uint8(G(zz, cc, **G_kwargs)), z, c, batch_size=batch_gen,
                                device=device)
        idx = torch.arange(b * batch_size, b * batch_size + n, dtype=torch.int64)
        yield idx, images


def compute_generator_stats(G: torch.nn.Module, detector: FeatureDetector, detector_kwargs: dict[str, Any],
                            num_gen: int, capture_all: bool = False, capture_mean_cov: bool = False,
                            batch_size: int = 64, batch_gen: int | None = None, seed: int = 0,
                            labels: Callable[[int, torch.Generator], torch.Tensor] | None = None,
                            G_kwargs: dict[str, Any] | None = None,
                            progress: Progress | None = None, alpha: str | None = None) -> FeatureStats:
    """Features of ``num_gen`` generated images (NVlabs' ``compute_feature_stats_for_generator``).

    G is deep-copied, put in eval mode without gradients and moved to the detector's device. See
    :func:`generated_batches` for the sampling. Returns finalized :class:`FeatureStats` (the same on every rank).
    ``alpha``: as :func:`compute_dataset_stats` (an RGBA G is refused without it, before anything is generated).
    """
    check_alpha(int(getattr(G, "img_channels", 3)), alpha, "the generator's images")
    rank, world = dist_rank_world()
    device = detector.device
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov)
    done = 0
    for idx, images in generated_batches(G, num_gen, batch_size, batch_gen, seed, labels, G_kwargs, device,
                                         rank, world):
        stats.append(detector(to_rgb(images, alpha), **detector_kwargs), idx)
        done += images.shape[0] * world
        if progress is not None and rank == 0:
            progress("generator features", min(done, num_gen), num_gen)
    return stats.finalize(device)
