"""Quality metrics by NVlabs' names: FID, KID, precision/recall, IS, PPL, equivariance; the API the training
callback calls.

Names (NVlabs' ``metrics/metric_main.py``, stylegan3 and stylegan2-ada-pytorch), with any image count ``<N>k``:

=====================  =====================================================================================
``fid<N>k_full``       FID, ``N``k generated images against every real image (``fid50k_full``)
``fid<N>k``            FID against the first ``N``k real images (``fid50k``)
``kid<N>k_full``       KID, up to 1,000,000 real images, 100 subsets of up to 1,000 (``kid50k_full``)
``kid<N>k``            KID against the first ``N``k real images
``pr<N>k<K>_full``     precision and recall with k = ``K``, up to 200,000 real images (``pr50k3_full``)
``pr<N>k<K>``          precision and recall against the first ``N``k real images
``is<N>k``             Inception Score, 10 splits (``is50k``)
``ppl2_wend``          PPL in W at path ends, no crop, 50,000 samples (StyleGAN2); also ``ppl_{z,w}{full,end}``
                       (stylegan2-ada-pytorch, with the face crop) and ``ppl2_{z,w}{full,end}``
``eqt50k_int``         EQ-T in dB: integer translations of the input (StyleGAN3, Karras et al. 2021, appendix E.1)
``eqt50k_frac``        EQ-T_frac in dB: sub-pixel translations (appendix E.2)
``eqr50k``             EQ-R in dB: rotations (appendix E.3); the three need a generator with an input transform
                       (StyleGAN3) and no real data (labels of a conditional G: from ``data`` when given, else
                       uniform random classes); 50,000 samples in batches of 4 (:mod:`sgtrain.metrics.equivariance`)
=====================  =====================================================================================

Results use NVlabs' keys: ``{'fid50k_full': x}``, ``{'pr50k3_full_precision': p, 'pr50k3_full_recall': r}``,
``{'is50k_mean': m, 'is50k_std': s}``, ``{'ppl2_wend': x}``, ``{'eqt50k_int': x}``.

:func:`compute_metric` evaluates a generator against real data; :func:`compute_metric_between` compares two image
sets (FID, KID, PR; IS of the second set). Both run on every rank of an initialised ``torch.distributed`` group
(each rank calls them with the same arguments) and return the same result on every rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sgtrain.errors import InputError
from sgtrain.metrics import fid as _fid
from sgtrain.metrics import inception_score as _is
from sgtrain.metrics import kid as _kid
from sgtrain.metrics import ppl as _ppl
from sgtrain.metrics import precision_recall as _pr
from sgtrain.metrics.detectors import FeatureDetector, find_detector_file, load_detector
from sgtrain.metrics.feature_stats import (
    FeatureStats,
    Progress,
    _comm_device,
    compute_dataset_stats,
    compute_generator_stats,
    dist_rank_world,
    progress_printer,
)
from sgtrain.metrics.image_sources import ImageSource, open_image_source
from sgtrain.metrics.metric_names import MetricSpec, is_valid_metric, list_metric_patterns, parse_metric

__all__ = [
    "MetricOptions",
    "MetricSpec",
    "compute_metric",
    "compute_metric_between",
    "is_valid_metric",
    "list_metric_patterns",
    "parse_metric",
]


@dataclass
class MetricOptions:
    """Everything a metric computation reads (NVlabs' ``MetricOptions``), with sgtrain's sources and files.

    Attributes:
        G: generator (None when comparing two image sets).
        G_kwargs: extra generator arguments.
        data: real images (:class:`ImageSource`), or None.
        fake: a second image set that replaces the generator, or None.
        detectors: ``{'inception': path or None, 'vgg16': path or None}``; None = search (see
            :func:`sgtrain.metrics.detectors.find_detector_file`).
        device: where networks run.
        cache: use the real-statistics cache; cache_dir: its directory.
        seed: seed of generated samples, KID subsets and PPL paths.
        batch_size: images per feature-network call (and per generated batch); batch_gen: per G call.
        workers: image decoding threads.
        progress: ``progress(what, done, total)`` on rank 0, or None.
        alpha: what RGBA images become before an RGB feature network: None = refused (the default), ``"white"`` =
            composited on white (:func:`sgtrain.metrics.feature_stats.check_alpha`).
    """

    G: torch.nn.Module | None = None
    G_kwargs: dict[str, Any] = field(default_factory=dict)
    data: ImageSource | None = None
    fake: ImageSource | None = None
    detectors: dict[str, str | None] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cache: bool = True
    cache_dir: str | None = None
    seed: int = 0
    batch_size: int = 64
    batch_gen: int | None = None
    workers: int = 0
    progress: Progress | None = None
    alpha: str | None = None

    def detector_path(self, kind: str) -> str:
        """The file of feature network ``kind``; raises DetectorNotFoundError at once when there is none."""
        return find_detector_file(kind, self.detectors.get(kind), cache_dir=self.cache_dir)

    def detector(self, kind: str, lpips: bool = False) -> FeatureDetector:
        """The opened feature network ``kind`` on ``device`` (a VGG16 state dict is accepted for ``lpips``)."""
        return load_detector(self.detector_path(kind), self.device, allow_vgg_state_dict=lpips)

    def label_sampler(self) -> Callable[[int, torch.Generator], torch.Tensor] | None:
        """``labels(n, generator)`` drawing labels of random real images, or None without real data."""
        return self.data.sample_labels if self.data is not None else None

    def real_stats(self, kind: str, detector_kwargs: dict[str, Any], max_items: int | None,
                   capture_all: bool = False, capture_mean_cov: bool = False) -> FeatureStats:
        """Features of the first ``max_items`` real images (cached)."""
        if self.data is None:
            raise InputError("this metric needs real images: pass data=... (--data or --real)")
        return compute_dataset_stats(self.data, self.detector(kind), detector_kwargs, max_items, capture_all,
                                     capture_mean_cov, self.batch_size, self.workers, self.cache, self.cache_dir,
                                     self.progress, alpha=self.alpha)

    def fake_stats(self, kind: str, detector_kwargs: dict[str, Any], num: int, capture_all: bool = False,
                   capture_mean_cov: bool = False) -> FeatureStats:
        """Features of ``num`` generated images, or of the first ``num`` images of the fake set."""
        if self.fake is not None:
            if self.fake.count < num:
                raise InputError(f"the second image set holds {self.fake.count} images but the metric needs {num}; "
                                 f"pass num_gen={self.fake.count} (--num-gen) or a metric with a smaller count")
            return compute_dataset_stats(self.fake, self.detector(kind), detector_kwargs, num, capture_all,
                                         capture_mean_cov, self.batch_size, self.workers, self.cache, self.cache_dir,
                                         self.progress, alpha=self.alpha)
        if self.G is None:
            raise InputError("no generator and no second image set to evaluate")
        return compute_generator_stats(self.G, self.detector(kind), detector_kwargs, num, capture_all,
                                       capture_mean_cov, self.batch_size, self.batch_gen, self.seed,
                                       self.label_sampler(), self.G_kwargs, self.progress, alpha=self.alpha)


def _equivariance(spec: MetricSpec, opts: MetricOptions, num_gen: int) -> dict[str, float]:
    """EQ-T, EQ-T_frac or EQ-R of ``opts.G`` (:func:`sgtrain.metrics.equivariance.compute_equivariance`).

    One process: ``num_gen`` samples from ``opts.seed``, NVlabs' number after ``torch.manual_seed(seed)`` on the CPU.
    Several: batch ``b`` (of 4) runs on rank ``b % world``, each rank from its own seed (rank 0: ``opts.seed``), and
    the squared-error sums are all-reduced before the PSNR.

    Raises:
        ValueError: G has no input transform (``synthesis.input.transform``: only StyleGAN3 has one), or G_kwargs
            given (the metric renders G's own mapping, without truncation, as NVlabs does).
    """
    from sgtrain.data.stream import mix_seed
    from sgtrain.metrics.equivariance import compute_equivariance

    G = opts.G
    transform = getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None)
    if not isinstance(transform, torch.Tensor):
        raise InputError(f"{spec.name} moves the input of the synthesis network: it needs a generator with an input "
                         f"transform (StyleGAN3's synthesis.input.transform); {type(G).__module__}.{type(G).__name__}"
                         " has none")
    if opts.G_kwargs:
        raise InputError(f"{spec.name} renders G's own mapping without truncation (as NVlabs does); drop "
                         f"{sorted(opts.G_kwargs)} (--psi)")
    batch = spec.params["batch_size"]
    which = {k: True for k in ("eqt_int", "eqt_frac", "eqr") if spec.params.get(k)}
    rank, world = dist_rank_world()
    num_batches = math.ceil(num_gen / batch)
    mine = len(range(rank, num_batches, world)) * batch
    all_reduce = None
    if world > 1:
        def all_reduce(sums: torch.Tensor) -> torch.Tensor:
            sums = sums.to(_comm_device(opts.device))
            torch.distributed.all_reduce(sums)
            return sums
    labels = opts.label_sampler()
    seed = opts.seed if rank == 0 else mix_seed(opts.seed, rank, 0xE9)
    if mine == 0:  # more processes than batches: take part in the sum with nothing
        sums = all_reduce(torch.zeros([2], dtype=torch.float64)).cpu()
        return {spec.name: float(20 * math.log10(2) - 10 * math.log10(sums[0] / sums[1]))}
    return compute_equivariance(G, mine, batch_size=batch, seed=seed, labels=labels, device=opts.device,
                                all_reduce=all_reduce, **which)


def _run(spec: MetricSpec, opts: MetricOptions, num_gen: int) -> dict[str, float]:
    p = spec.params
    if spec.kind == "eq":
        return _equivariance(spec, opts, num_gen)
    if spec.kind == "fid":
        return {spec.name: _fid.compute_fid(opts, spec.max_real, num_gen)}
    if spec.kind == "kid":
        return {spec.name: _kid.compute_kid(opts, spec.max_real, num_gen, p["num_subsets"], p["max_subset_size"])}
    if spec.kind == "pr":
        precision, recall = _pr.compute_pr(opts, spec.max_real, num_gen, p["nhood_size"], p["row_batch_size"],
                                           p["col_batch_size"])
        return {f"{spec.name}_precision": precision, f"{spec.name}_recall": recall}
    if spec.kind == "is":
        mean, std = _is.compute_is(opts, num_gen, p["num_splits"])
        return {f"{spec.name}_mean": mean, f"{spec.name}_std": std}
    return {spec.name: _ppl.compute_ppl(opts, num_gen, p["epsilon"], p["space"], p["sampling"], p["crop"],
                                        p["batch_size"])}


def _detector_paths(detector: Any) -> dict[str, str | None]:
    if detector is None:
        return {}
    if isinstance(detector, dict):
        return dict(detector)
    return {"inception": detector, "vgg16": detector}


def _finish(spec: MetricSpec, opts: MetricOptions, num_gen: int, start: float) -> dict[str, Any]:
    results = _run(spec, opts, num_gen)
    rank, world = dist_rank_world()
    if world > 1:  # rank 0's values everywhere (NVlabs' broadcast)
        values = torch.tensor(list(results.values()), dtype=torch.float64)
        comm = opts.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
        values = values.to(comm)
        torch.distributed.broadcast(values, src=0)
        results = dict(zip(results, values.cpu().tolist()))
    return dict(results=results, metric=spec.name, sec=time.time() - start, num_gpus=world, num_gen=num_gen,
                seed=opts.seed)


def check_rgb_inputs(spec: MetricSpec, alpha: str | None, G: Any = None, sources: tuple = ()) -> None:
    """Refuse RGBA images for a metric whose feature network takes RGB (FID, KID, PR, IS, PPL) unless ``alpha``
    says how to drop the alpha channel; EQ (and SWD, elsewhere) use every channel. Called before anything is read.

    Args:
        spec: the parsed metric. alpha: None or ``"white"``. G: the generator or None. sources: image sources.

    Raises:
        InputError: naming the RGBA images and the opt-in (``--alpha white``).
    """
    from sgtrain.metrics.feature_stats import check_alpha

    if spec.detector is None:
        check_alpha(3, alpha)  # a bad value is still refused
        return
    if G is not None:
        check_alpha(int(getattr(G, "img_channels", 3)), alpha, f"{spec.name}: the generator's images")
    for src in sources:
        if src is not None:
            check_alpha(src.channels, alpha, f"{spec.name}: the images of '{src.name}'")


def _make_opts(spec: MetricSpec, detector: Any, device: Any, cache: bool, cache_dir: Any, seed: int,
               batch_size: int, batch_gen: int | None, workers: int, progress: Any, **kw: Any) -> MetricOptions:
    rank, _ = dist_rank_world()
    if progress is True:
        progress = progress_printer(spec.name) if rank == 0 else None
    elif progress is False:
        progress = None
    opts = MetricOptions(detectors=_detector_paths(detector), device=torch.device(device), cache=cache,
                         cache_dir=None if cache_dir is None else str(cache_dir), seed=int(seed),
                         batch_size=int(batch_size), batch_gen=batch_gen, workers=int(workers), progress=progress,
                         **kw)
    if spec.detector is not None:
        opts.detector_path(spec.detector)  # a missing file fails here, before any data or network is read
    return opts


def compute_metric(name: str, G: torch.nn.Module, data: Any = None, detector: Any = None, num_gen: int | None = None,
                   device: torch.device | str | None = None, seed: int = 0, cache: bool = True,
                   cache_dir: str | None = None, batch_size: int = 64, batch_gen: int | None = None,
                   G_kwargs: dict[str, Any] | None = None, workers: int = 0,
                   progress: bool | Progress | None = None, alpha: str | None = None) -> dict[str, Any]:
    """Evaluate metric ``name`` of a generator against real data (NVlabs' ``calc_metric``).

    Call it on every rank of an initialised ``torch.distributed`` group (with the same arguments) to share the work;
    every rank returns the same result.

    Args:
        name: NVlabs metric name (see the module docstring), e.g. 'fid50k_full', 'kid10k_full', 'pr50k3_full',
            'is50k', 'ppl2_wend', 'eqt50k_int'.
        G: generator, ``G(z, c, **G_kwargs)`` -> float [N, C, H, W] in [-1, 1]; attributes ``z_dim``, ``c_dim``
            (PPL: ``mapping``, ``synthesis``, ``img_resolution``, ``img_channels``). Not modified (a copy runs).
        data: real images: shard directory, image folder, zip, or an :class:`ImageSource`; required by FID, KID,
            PR and by any conditional G (labels are those of random real images) except for the equivariance
            metrics, which draw uniform random classes without it.
        detector: path of the feature-network file, or ``{'inception': path, 'vgg16': path}``; None = search
            ``<cache_dir>/detectors`` and NVlabs' dnnlib cache.
        num_gen: override the number of generated images (PPL: samples) the name implies.
        device: where G and the networks run (default: CUDA when available).
        seed: seed of z, labels, noise, KID subsets and PPL paths.
        cache: reuse and write cached real statistics; cache_dir: their directory
            (default ``~/.cache/sgtrain/metrics``).
        batch_size: images per feature-network call; batch_gen: images per G call (default 4).
        G_kwargs: extra G arguments (e.g. ``truncation_psi``); NVlabs' metrics use none.
        workers: image decoding threads for real data.
        progress: True prints progress to stderr on rank 0; a callable receives ``(what, done, total)``.
        alpha: RGBA images (a ``--channels 4`` dataset or generator) for a metric whose feature network takes RGB
            (FID, KID, PR, IS, PPL): None = refused, ``"white"`` = composited on white. L images are repeated to
            RGB (NVlabs) either way; the equivariance metrics use every channel.

    Returns:
        ``dict(results={key: float}, metric=name, sec=seconds, num_gpus=world size, num_gen=..., seed=...)``.

    Raises:
        ValueError: unknown metric name, missing data, wrong sizes; an equivariance metric of a generator without
            an input transform (not StyleGAN3); RGBA images without ``alpha`` (InputError, before anything is
            read or written).
        DetectorNotFoundError: no feature-network file (raised before anything is read).
        FileNotFoundError: no data at ``data``.
    """
    start = time.time()
    spec = parse_metric(name)
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    opts = _make_opts(spec, detector, device, cache, cache_dir, seed, batch_size, batch_gen, workers, progress,
                      G=G, G_kwargs=dict(G_kwargs or {}), alpha=alpha)
    if data is not None:
        opts.data = open_image_source(data)
    check_rgb_inputs(spec, alpha, G, (opts.data,) if spec.needs_real else ())  # IS, PPL read only its labels
    if spec.needs_real and opts.data is None:
        raise InputError(f"{name} compares with real images: pass data= (a shard directory, image folder or zip)")
    if G is None:
        raise InputError(f"{name} evaluates a generator: pass G (or use compute_metric_between for two image sets)")
    if int(getattr(G, "c_dim", 0)) > 0 and opts.data is None and spec.kind != "eq":
        raise InputError(f"G is conditional (c_dim {G.c_dim}): pass data= so that labels follow the real data")
    return _finish(spec, opts, int(num_gen) if num_gen is not None else spec.num_gen, start)


def compute_metric_between(name: str, real: Any, fake: Any, detector: Any = None, num_gen: int | None = None,
                           device: torch.device | str | None = None, seed: int = 0, cache: bool = True,
                           cache_dir: str | None = None, batch_size: int = 64, workers: int = 0,
                           progress: bool | Progress | None = None, alpha: str | None = None) -> dict[str, Any]:
    """Evaluate metric ``name`` between two image sets: ``real`` as the reference, ``fake`` in place of G.

    As pytorch-fid and torch-fidelity do, every image of ``fake`` is used unless ``num_gen`` is given (then its
    first ``num_gen`` images, failing when it holds fewer); ``real`` gives every image for the ``_full`` metrics and
    the name's count otherwise (``fid50k``: 50,000). IS reads only ``fake``; PPL and the equivariance metrics need a
    generator and are refused. Both sets are cached. Arguments as :func:`compute_metric`.

    Returns:
        As :func:`compute_metric`, ``num_gen`` being the fake images used, with ``num_real``: the real images used
        (0 for IS).
    Raises:
        InputError: PPL or an equivariance metric, a fake set smaller than ``num_gen``, or an RGBA set without
            ``alpha="white"``.
    """
    start = time.time()
    spec = parse_metric(name)
    if spec.kind == "ppl":
        raise InputError(f"{name} walks the latent space of a generator; it cannot compare two image sets")
    if spec.kind == "eq":
        raise InputError(f"{name} moves the input of a generator's synthesis network; it cannot compare two image "
                         "sets")
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    opts = _make_opts(spec, detector, device, cache, cache_dir, seed, batch_size, None, workers, progress,
                      alpha=alpha)
    opts.fake = open_image_source(fake)
    if spec.needs_real:
        opts.data = open_image_source(real)
    check_rgb_inputs(spec, alpha, None, (opts.data, opts.fake))
    out = _finish(spec, opts, opts.fake.num_items(None) if num_gen is None else int(num_gen), start)
    out["num_real"] = opts.data.num_items(spec.max_real) if spec.needs_real else 0
    return out
