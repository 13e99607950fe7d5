"""The structured-config schema of ``sgtrain-train``: one dataclass per typed group.

Registered in Hydra's ConfigStore as ``train_schema`` (:func:`sgtrain.training.resolvers.register_configs`);
``sgtrain/conf/train.yaml`` lists it first in its defaults, so every preset and override is merged onto typed,
closed (struct) nodes: an unknown key (``train.gama=1``) fails at compose time naming the key, a wrongly typed value
(``train.kimg=abc``) naming the key and the type. A new training knob is one field here: it reaches the training
module through :class:`TrainConfig` (:func:`sgtrain.training.run.build_training`).

Hyper-parameter names and defaults follow NVlabs' StyleGAN2-ADA / StyleGAN3 ``train.py`` (Karras et al. 2020,
"Training Generative Adversarial Networks with Limited Data", appendix; Karras et al. 2020, "Analyzing and Improving
the Image Quality of StyleGAN", section 2-4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class DatasetConfig:
    """Packed shards made by ``sgtrain-data pack``."""

    path: str = MISSING  # Shard directory (holding dataset.json) or a URL/brace pattern of .tar shards.
    name: str | None = None  # Short name for the run directory; None = the last component of path.
    xflip: bool = False  # Randomly mirror real images left-right (NVlabs --mirror).
    cond: bool | None = None  # Condition on labels; None = when the shards carry labels (c_dim > 0).
    num_workers: int | None = None  # DataLoader worker processes per rank; None = min(3, free cores - 1) (NVlabs: 3).
    pin_memory: bool | None = None  # Page-locked batches for faster host-to-GPU copies; None = when training on CUDA.
    shuffle: int = 1000  # Shuffle-buffer size in samples (0 = stream order).


@dataclass
class TrainConfig:
    """Optimisation schedule; lengths are in kimg (thousands of real images shown to D, summed over ranks)."""

    kimg: float = 25000  # Total training length in kimg.
    batch: int = 32  # Global batch size (all ranks together); with a progressive schedule, the base minibatch.
    batch_gpu: int | None = None  # Images per forward/backward on one device; None or larger = batch / world size.
    G_batch_gpu: int | None = None  # ... for G's phases only (R3GAN --g-batch-gpu); None = batch_gpu.
    D_batch_gpu: int | None = None  # ... for D's phases only (R3GAN --d-batch-gpu); None = batch_gpu.
    G_lr: float = 0.002  # Generator learning rate (with a progressive schedule, the base rate).
    D_lr: float = 0.002  # Discriminator learning rate (with a progressive schedule, the base rate).
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])  # Adam betas (before lazy-reg adjustment).
    eps: float = 1e-8  # Adam epsilon.
    ema_kimg: float = "${sgtrain.eval:'${train.batch} * 10 / 32'}"  # type: ignore[assignment]  # G_ema half-life
    # in kimg; default NVlabs' batch * 10 / 32 (10 kimg at batch 32).
    ema_rampup: float | None = None  # EMA ramp-up coefficient; None = no ramp-up.
    decay_kimg: float | None = None  # Cosine decay (R3GAN) of lr, beta2, EMA half-life and augment p from their
    # values above to the *_final values below over this many kimg (R3GAN: 20000); None = constant values.
    lr_final: float | None = None  # G_lr and D_lr at decay_kimg (R3GAN: 5e-5); None = no decay of lr.
    beta2_final: float | None = None  # Adam beta2 at decay_kimg (R3GAN: 0.99, from betas[1] = 0.9).
    ema_kimg_final: float | None = None  # G_ema half-life at decay_kimg (R3GAN: 500, from ema_kimg = 0).
    G_reg_interval: int | None = 4  # G's regularization phase (Greg) every N iterations; None = in Gmain (Gboth).
    D_reg_interval: int | None = 16  # D's regularization phase (Dreg) every N iterations; None = in Dmain (Dboth).
    tick_kimg: float = 4.0  # Progress tick: a metrics.jsonl line every N kimg.
    ckpt_kimg: float = 200.0  # Full training checkpoint (checkpoints/last.ckpt) every N kimg (NVlabs: 50 ticks).
    ckpt_minutes: float | None = 30.0  # ... and at the first tick N minutes after the last one; None = by kimg only.
    snap_kimg: float = 200.0  # Sample grid, network snapshot and kept checkpoint every N kimg.
    keep_ckpts: int = 5  # Number of kimg-stamped checkpoints kept (newest); last.ckpt is always kept.
    grid: list[int] = field(default_factory=lambda: [8, 8])  # Sample grid [width, height] in images.
    metrics: list[str] = field(default_factory=list)  # G_ema metrics at every snapshot (NVlabs: fid50k_full, ...).
    metrics_detector: Any = None  # Feature-network file for train.metrics, or {inception: PATH, vgg16: PATH}; None =
    # search ~/.cache/sgtrain/metrics/detectors and NVlabs' download cache.
    metrics_cache_dir: str | None = None  # Real-statistics cache; None = ~/.cache/sgtrain/metrics.
    metrics_alpha: str | None = None  # RGBA data (--channels 4) for train.metrics whose feature network takes RGB
    # (FID, KID, PR, IS, PPL): None = refused when the config is checked; white = composited on white.
    swd: bool = True  # Compute SWD against the data at kimg 0 and at the end.
    swd_images: int = 512  # Real and generated images used for SWD.
    seed: int = 0  # Global seed (network init, per-rank RNG streams, sample grid latents).
    resume_from: str | None = None  # Transfer learning: start from any network file load_network opens (NVlabs
    # pkl, TF pkl, portable file, run dir) instead of random init; NVlabs' semantics (no EMA ramp-up, ADA reacting
    # faster: ada_kimg 100, no D blur ramp).
    resume_kimg: float = 0.0  # With resume_from: the kimg the run starts counting from (schedule, ticks, kimg).
    freeze_mapping: int = 0  # Fine-tuning: keep the first N mapping layers of G fixed (Freeze-D: model.freeze_layers).


@dataclass
class RunConfig:
    """The run directory: rerunning with the same dir resumes from dir/checkpoints/last.ckpt."""

    dir: str = "runs/${run.name}"  # Run directory (created; relative to the current directory).
    name: str = "${model.name}-${sgtrain.dataset_name:}"  # Default run name (dataset.name or the path's last part).
    print_config: bool = True  # Print the resolved config at start.


@dataclass
class TrainerConfig:
    """Lightning Trainer settings."""

    accelerator: str = "auto"  # 'cpu', 'gpu', 'auto'.
    devices: Any = 1  # Devices per node (int) or 'auto'.
    num_nodes: int = 1  # Number of nodes.
    strategy: str = "auto"  # 'auto' (GAN DDP when more than one process), 'ddp', 'single'.
    precision: str = "32-true"  # Lightning precision: only 32-true; FP16 inside the nets is model.num_fp16_res.
    tf32: bool = False  # TF32 matmuls/convolutions on Ampere+ GPUs; off as in NVlabs (R1/PL numbers drift with it).
    threads: int | None = None  # torch.set_num_threads per process; None = free cores minus its loader workers.
    deterministic: bool = False  # torch.use_deterministic_algorithms.
    progress_bar: bool = True  # Show the kimg progress bar.
    benchmark: bool = True  # cudnn.benchmark on CUDA.
    # Extra Lightning callbacks, each a Hydra node with a _target_, appended after sgtrain's own, e.g.
    # 'trainer.callbacks=[{_target_:lightning.pytorch.callbacks.LearningRateMonitor}]'.
    callbacks: list[Any] = field(default_factory=list)


@dataclass
class LoggerConfig:
    """Experiment logger: 'wandb' (offline by default), 'csv' or 'none'. metrics.jsonl is always written."""

    name: str = "wandb"
    project: str = "sgtrain"
    mode: str = "offline"  # wandb mode: 'offline' (default, never contacts a server), 'online', 'disabled'.
    entity: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class AugmentConfig:
    """Adaptive discriminator augmentation (Karras et al. 2020, ADA): ``augment=ada|fixed|none`` (NVlabs --aug).

    Every image D sees (reals, fakes, R1's reals) goes through the pipeline ``augpipe`` with probability ``p``; in
    ``ada`` mode p starts at ``p`` and is adjusted every ``ada_interval`` iterations toward r_t = ada_target.
    """

    mode: str = "none"  # 'ada' (adaptive p), 'fixed' (constant p) or 'none' (no augmentation)
    augpipe: str = "bgc"  # named pipeline: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc
    p: float = 0.0  # initial (ada) or constant (fixed) augmentation probability, in [0, 1]
    p_final: float | None = None  # fixed mode: p at train.decay_kimg (cosine from p, R3GAN); None = constant p
    ada_target: float = 0.6  # ADA target of r_t = E[sign(D(reals))]
    ada_interval: int = 4  # iterations between adjustments of p
    ada_kimg: float = 500  # kimg over which p may change by one
    kwargs: dict[str, Any] = field(default_factory=dict)  # AugmentPipe keywords overriding the pipeline's


@dataclass
class TrainSchema:
    """Root of the ``sgtrain-train`` config (see docs/training.md for every key).

    ``model``, ``loss`` and ``schedule`` belong to the family (``conf/model/<family>.yaml``): ``model.G`` and
    ``model.D`` (and ``loss``, ``schedule``) are Hydra ``_target_`` nodes whose keys are the constructor keywords of
    the classes they name; :func:`check_keys` refuses keys those classes do not take. The other groups are typed
    by the dataclasses here.
    """

    model: Any = field(default_factory=dict)  # name, resolution, G, D (+ the family's shared knobs)
    loss: Any = field(default_factory=dict)  # the family's GANLoss (_target_ + keywords)
    schedule: Any = None  # progressive growing (_target_: ProgressiveSchedule + keywords); null = none
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
