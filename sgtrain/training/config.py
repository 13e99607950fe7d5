"""Structured-config schema of ``sgtrain-train`` and the checks run before anything heavy is built.

The dataclasses below are registered in Hydra's ConfigStore as ``train_schema``; ``sgtrain/conf/train.yaml`` lists it
first in its defaults, so every preset and every command-line override is merged onto typed, closed (struct) nodes:
an unknown key (``train.gama=1``) fails at compose time with Hydra's message naming the key, and a wrongly typed
value (``train.kimg=abc``) fails naming the key and the expected type.

:func:`validate_config` then checks what the schema cannot: a missing ``dataset.path``, a model resolution different
from the shards' ``dataset.json``, batch sizes that do not divide. It reads only ``dataset.json`` and runs in well
under a second, before any network, datamodule or logger exists.

Hyper-parameter names and defaults follow NVlabs' StyleGAN2-ADA / StyleGAN3 ``train.py`` (Karras et al. 2020,
"Training Generative Adversarial Networks with Limited Data", appendix; Karras et al. 2020, "Analyzing and Improving
the Image Quality of StyleGAN", section 2-4).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A training configuration that cannot run; the message names the key and the fix."""


@dataclass
class ModelConfig:
    """Network architecture (StyleGAN2 Generator and Discriminator constructor keywords).

    ``resolution`` None takes the resolution from the shards; an integer must match them.
    """

    name: str = "stylegan2"  # Preset name, used in the default run directory name.
    arch: str = "stylegan2"  # Network family (sgtrain.models.<arch>).
    resolution: int | None = None  # Output resolution in pixels; None = the dataset's.
    z_dim: int = 512  # Input latent (Z) dimensionality.
    w_dim: int = 512  # Intermediate latent (W) dimensionality.
    map_layers: int = 8  # Mapping network depth (NVlabs mapping_kwargs.num_layers).
    channel_base: int = 32768  # Overall multiplier for the number of channels (fmaps * 32768).
    channel_max: int = 512  # Maximum number of channels in any layer.
    num_fp16_res: int = 4  # Use FP16 in the N highest-resolution blocks (CUDA only; CPU always runs FP32).
    conv_clamp: float | None = 256  # Clamp conv outputs to +-X; None = no clamping.
    mbstd_group_size: int = 4  # Minibatch-stddev group size of the discriminator epilogue.
    mbstd_num_channels: int = 1  # Minibatch-stddev feature channels.
    G_architecture: str = "skip"  # Synthesis network architecture: 'orig', 'skip', 'resnet'.
    D_architecture: str = "resnet"  # Discriminator architecture: 'orig', 'skip', 'resnet'.
    G_kwargs: dict[str, Any] = field(default_factory=dict)  # Extra Generator keywords (NVlabs names).
    D_kwargs: dict[str, Any] = field(default_factory=dict)  # Extra Discriminator keywords (NVlabs names).


@dataclass
class DatasetConfig:
    """Packed shards made by ``sgtrain-data pack``."""

    path: str = MISSING  # Shard directory (holding dataset.json) or a URL/brace pattern of .tar shards.
    name: str | None = None  # Short name for the run directory; None = the last component of path.
    xflip: bool = False  # Randomly mirror real images left-right (NVlabs --mirror).
    cond: bool | None = None  # Condition on labels; None = when the shards carry labels (c_dim > 0).
    num_workers: int = 1  # DataLoader worker processes per rank.
    shuffle: int = 1000  # Shuffle-buffer size in samples (0 = stream order).


@dataclass
class TrainConfig:
    """Optimisation schedule; lengths are in kimg (thousands of real images shown to D, summed over ranks)."""

    kimg: float = 25000  # Total training length in kimg.
    batch: int = 32  # Global batch size (all ranks together).
    batch_gpu: int | None = None  # Images per forward/backward on one device; None or larger = batch / world size.
    gamma: float = 10.0  # R1 regularization weight.
    G_lr: float = 0.002  # Generator learning rate.
    D_lr: float = 0.002  # Discriminator learning rate.
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])  # Adam betas (before lazy-reg adjustment).
    eps: float = 1e-8  # Adam epsilon.
    ema_kimg: float = 10.0  # Half-life of the G_ema weight average, in kimg.
    ema_rampup: float | None = None  # EMA ramp-up coefficient; None = no ramp-up.
    G_reg_interval: int | None = 4  # Path-length regularization every N minibatches; None = no lazy reg.
    D_reg_interval: int | None = 16  # R1 regularization every N minibatches; None = no lazy reg.
    style_mixing_prob: float = 0.9  # Style-mixing regularization probability.
    pl_weight: float = 2.0  # Path-length regularization weight; 0 = off.
    pl_batch_shrink: int = 2  # Batch shrink factor for the path-length regularizer.
    pl_decay: float = 0.01  # Decay of the path-length running mean.
    pl_no_weight_grad: bool = True  # Skip conv-weight gradients in the path-length pass (NVlabs speed-up).
    tick_kimg: float = 4.0  # Progress tick: metrics.jsonl line and last.ckpt, every N kimg.
    snap_kimg: float = 200.0  # Sample grid, network snapshot and kept checkpoint every N kimg.
    keep_ckpts: int = 5  # Number of kimg-stamped checkpoints kept (newest); last.ckpt is always kept.
    grid: list[int] = field(default_factory=lambda: [8, 8])  # Sample grid [width, height] in images.
    swd: bool = True  # Compute SWD against the data at kimg 0 and at the end.
    swd_images: int = 512  # Real and generated images used for SWD.
    seed: int = 0  # Global seed (network init, per-rank RNG streams, sample grid latents).
    resume_from: str | None = None  # Start from a network file (sgtrain.io.load_network) instead of random init.


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
    precision: str = "32-true"  # Lightning precision; FP16 inside the nets is model.num_fp16_res.
    threads: int | None = None  # torch.set_num_threads per process; None = torch's default.
    deterministic: bool = False  # torch.use_deterministic_algorithms.
    progress_bar: bool = True  # Show the kimg progress bar.
    benchmark: bool = True  # cudnn.benchmark on CUDA.


@dataclass
class LoggerConfig:
    """Experiment logger: 'wandb' (offline by default), 'csv' or 'none'. metrics.jsonl is always written."""

    name: str = "wandb"
    project: str = "sgtrain"
    mode: str = "offline"  # wandb mode: 'offline' (default, never contacts a server), 'online', 'disabled'.
    entity: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainSchema:
    """Root of the ``sgtrain-train`` config (see docs/training.md for every key)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def _basename(path: Any) -> str:
    """``sgtrain.basename`` resolver: a short name for a dataset path or URL pattern."""
    if path is None:
        return "data"
    s = str(path).rstrip("/")
    if s.endswith(".tar") or "{" in s:
        s = os.path.dirname(s) or s
    return os.path.basename(s) or "data"


def _dataset_name(*, _root_: DictConfig) -> str:
    """``sgtrain.dataset_name`` resolver: dataset.name, else the last component of dataset.path ('nodata')."""
    ds = _root_.dataset
    if ds.name:
        return str(ds.name)
    if OmegaConf.is_missing(ds, "path"):
        return "nodata"
    return _basename(ds.path)


def register_configs() -> None:
    """Register the schema in Hydra's ConfigStore and the ``sgtrain.*`` resolvers (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("sgtrain.basename"):
        OmegaConf.register_new_resolver("sgtrain.basename", _basename)
    if not OmegaConf.has_resolver("sgtrain.dataset_name"):
        OmegaConf.register_new_resolver("sgtrain.dataset_name", _dataset_name)
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)


register_configs()

CONFIG_DIR = next(iter(importlib.import_module("sgtrain.conf").__path__))  # the repo's conf/ (setup.py)


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """Compose the packaged ``sgtrain/conf`` configs outside the CLI (tests, notebooks).

    Args:
        overrides: Hydra overrides, e.g. ``["model=stylegan2_small", "dataset.path=data/emoji"]``.
    Returns:
        The composed DictConfig (struct mode; interpolations not yet resolved).
    Raises:
        hydra.errors.ConfigCompositionException / omegaconf errors naming the offending key.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []), return_hydra_config=False)


def read_card(path: str) -> dict[str, Any] | None:
    """Read ``dataset.json`` for a shard directory (or the directory of a local shard pattern); None if remote.

    Raises:
        ConfigError: a local directory without dataset.json, or a path that does not exist.
    """
    p = str(path)
    if "://" in p and not p.startswith("file://"):
        return None
    p = p[len("file://") :] if p.startswith("file://") else p
    d = p if os.path.isdir(p) else os.path.dirname(p)
    card = os.path.join(d, "dataset.json")
    if os.path.isfile(card):
        with open(card) as f:
            return json.load(f)
    if not os.path.exists(d or "."):
        raise ConfigError(
            f"dataset.path={path!r} does not exist; pack images first with `sgtrain-data pack SRC OUT` "
            f"and pass dataset.path=OUT"
        )
    raise ConfigError(
        f"dataset.path={path!r} has no dataset.json; it must be a directory written by `sgtrain-data pack`"
    )


def world_size_of(cfg: DictConfig) -> int:
    """Number of training processes the trainer settings give (devices x nodes); 'auto' counts CUDA devices."""
    devices = cfg.trainer.devices
    if isinstance(devices, str):
        if devices.strip().lstrip("-").isdigit():
            devices = int(devices)
        elif devices == "auto":
            import torch

            use_gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
            devices = torch.cuda.device_count() if use_gpu else 1
        else:
            devices = len([d for d in devices.split(",") if d.strip()])
    elif isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        devices = len(devices)
    if int(devices) == -1:
        import torch

        devices = max(1, torch.cuda.device_count())
    return max(1, int(devices)) * max(1, int(cfg.trainer.num_nodes))


def validate_config(cfg: DictConfig) -> dict[str, Any] | None:
    """Check a composed config before anything heavy is built.

    Args:
        cfg: the composed ``sgtrain-train`` config.
    Returns:
        The parsed dataset card (dict) when ``dataset.path`` is local, else None.
    Raises:
        ConfigError: naming the key: missing dataset.path, resolution mismatch with the shards, batch sizes that do
            not divide the world size / batch_gpu / mbstd group, unknown logger, non-positive lengths.
    """
    if OmegaConf.is_missing(cfg.dataset, "path"):
        raise ConfigError(
            "dataset.path is required: pass dataset.path=DIR, a directory written by `sgtrain-data pack SRC DIR` "
            "(or a URL pattern of .tar shards)"
        )
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # interpolation errors name the key
        raise ConfigError(f"config does not resolve: {err}") from err

    card = read_card(cfg.dataset.path)
    if card is not None:
        res = card.get("resolution")
        if cfg.model.resolution is not None and res is not None and int(cfg.model.resolution) != int(res):
            raise ConfigError(
                f"model.resolution={cfg.model.resolution} but the shards in {cfg.dataset.path} are {res}x{res}: "
                f"pass model.resolution={res} (or model.resolution=null to follow the data), or repack the images "
                f"with `sgtrain-data pack ... --resolution {cfg.model.resolution}`"
            )
        if cfg.dataset.cond and int(card.get("c_dim", 0)) == 0:
            raise ConfigError(f"dataset.cond=true but the shards in {cfg.dataset.path} carry no labels (c_dim=0)")
        count = int(card.get("count", 0) or 0)
        if count and count < cfg.train.batch:
            raise ConfigError(f"the shards in {cfg.dataset.path} hold {count} images, fewer than train.batch="
                              f"{cfg.train.batch}: lower train.batch or pack more images")
        res = int(res or 0)
        if res and (res < 4 or res & (res - 1)):
            raise ConfigError(f"dataset resolution {res} is not a power of two >= 4")

    t = cfg.train
    if t.kimg <= 0:
        raise ConfigError(f"train.kimg={t.kimg} must be positive")
    if t.tick_kimg <= 0 or t.snap_kimg <= 0:
        raise ConfigError("train.tick_kimg and train.snap_kimg must be positive")
    world = world_size_of(cfg)
    if t.batch % world != 0:
        raise ConfigError(f"train.batch={t.batch} must be a multiple of the number of processes ({world})")
    per_dev = t.batch // world
    bgpu = min(t.batch_gpu or per_dev, per_dev)
    if per_dev % bgpu != 0:
        raise ConfigError(
            f"train.batch_gpu={t.batch_gpu} must divide the per-device batch train.batch/world = {per_dev}"
        )
    mb = cfg.model.mbstd_group_size
    if mb and bgpu % min(mb, bgpu) != 0:
        raise ConfigError(f"train.batch_gpu={bgpu} must be a multiple of model.mbstd_group_size={mb}")
    if t.pl_weight and t.pl_batch_shrink and bgpu // t.pl_batch_shrink < 1:
        raise ConfigError(f"train.batch_gpu={bgpu} is smaller than train.pl_batch_shrink={t.pl_batch_shrink}")
    if cfg.logger.name not in ("wandb", "csv", "none"):
        raise ConfigError(f"logger.name={cfg.logger.name!r}: use logger=wandb, logger=csv or logger=none")
    if cfg.trainer.strategy not in ("auto", "ddp", "single"):
        raise ConfigError(f"trainer.strategy={cfg.trainer.strategy!r}: use 'auto', 'ddp' or 'single'")
    if cfg.trainer.strategy == "single" and world > 1:
        raise ConfigError("trainer.strategy=single needs trainer.devices=1 and trainer.num_nodes=1")
    if len(t.grid) != 2 or min(t.grid) < 1:
        raise ConfigError(f"train.grid={list(t.grid)} must be [width, height] with positive entries")
    return card
