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

import ast
import dataclasses
import difflib
import functools
import importlib
import inspect
import json
import operator
import os
import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A training configuration that cannot run; the message names the key and the fix."""


@dataclass
class DatasetConfig:
    """Packed shards made by ``sgtrain-data pack``."""

    path: str = MISSING  # Shard directory (holding dataset.json) or a URL/brace pattern of .tar shards.
    name: str | None = None  # Short name for the run directory; None = the last component of path.
    xflip: bool = False  # Randomly mirror real images left-right (NVlabs --mirror).
    cond: bool | None = None  # Condition on labels; None = when the shards carry labels (c_dim > 0).
    num_workers: int | None = None  # DataLoader worker processes per rank; None = min(3, CPU cores - 1) (NVlabs: 3).
    pin_memory: bool | None = None  # Page-locked batches for faster host-to-GPU copies; None = when training on CUDA.
    shuffle: int = 1000  # Shuffle-buffer size in samples (0 = stream order).


@dataclass
class TrainConfig:
    """Optimisation schedule; lengths are in kimg (thousands of real images shown to D, summed over ranks)."""

    kimg: float = 25000  # Total training length in kimg.
    batch: int = 32  # Global batch size (all ranks together); with a progressive schedule, the base minibatch.
    batch_gpu: int | None = None  # Images per forward/backward on one device; None or larger = batch / world size.
    G_lr: float = 0.002  # Generator learning rate (with a progressive schedule, the base rate).
    D_lr: float = 0.002  # Discriminator learning rate (with a progressive schedule, the base rate).
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])  # Adam betas (before lazy-reg adjustment).
    eps: float = 1e-8  # Adam epsilon.
    ema_kimg: float = "${sgtrain.eval:'${train.batch} * 10 / 32'}"  # type: ignore[assignment]  # G_ema half-life
    # in kimg; default NVlabs' batch * 10 / 32 (10 kimg at batch 32).
    ema_rampup: float | None = None  # EMA ramp-up coefficient; None = no ramp-up.
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
    threads: int | None = None  # torch.set_num_threads per process; None = torch's default.
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


@functools.lru_cache(maxsize=16)
def _card_of(path: str) -> dict[str, Any]:
    from sgtrain.data.stream import resolve_shards

    try:
        _, card = resolve_shards(path)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise ConfigError(f"dataset.path={path!r}: {err}; pack images first with `sgtrain-data pack SRC OUT` and "
                          "pass dataset.path=OUT") from err
    if card is None:
        raise ConfigError(f"dataset.path={path!r} has no dataset.json next to its shards, so the networks cannot be "
                          "sized from it: put the dataset.json written by `sgtrain-data pack` beside the shards")
    return card.to_dict()


def _data(key: str, *, _root_: DictConfig) -> int:
    """``sgtrain.data`` resolver: ``resolution`` (model.resolution, else the data's), ``channels`` and ``c_dim`` (0
    with dataset.cond=false) of the training data, for the family configs' network keywords."""
    if key == "resolution" and _root_.model.get("resolution") is not None:
        return int(_root_.model.resolution)
    if OmegaConf.is_missing(_root_.dataset, "path"):
        raise ConfigError(f"${{sgtrain.data:{key}}} needs the data: pass dataset.path=DIR (a directory written by "
                          "`sgtrain-data pack SRC DIR`)")
    card = _card_of(str(_root_.dataset.path))
    if key == "resolution":
        return int(card["resolution"])
    if key == "channels":
        return int(card["channels"])
    if key == "c_dim":
        return 0 if _root_.dataset.cond is False else int(card.get("c_dim", 0) or 0)
    raise ConfigError(f"${{sgtrain.data:{key}}}: unknown key {key!r}; use resolution, channels or c_dim")


_EVAL_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _eval(expr: Any) -> float:
    """``sgtrain.eval`` resolver: the value of an arithmetic expression of numbers (``+ - * / // **``, parentheses),
    for NVlabs' batch-dependent defaults, e.g. ``${sgtrain.eval:'${train.batch} * 10 / 32'}``. Nothing else is
    evaluated (no names, calls or attributes)."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _EVAL_OPS:
            return _EVAL_OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _EVAL_OPS:
            return _EVAL_OPS[type(node.op)](value(node.operand))
        raise ConfigError(f"${{sgtrain.eval:{expr}}}: only numbers and + - * / // ** are allowed")

    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError as err:
        raise ConfigError(f"${{sgtrain.eval:{expr}}}: not an arithmetic expression ({err.msg})") from err
    return value(tree.body)


def _required(message: str) -> Any:
    """``sgtrain.required`` resolver: a value a preset cannot default; resolving it fails with ``message`` (a plain
    ``???`` would not do: Hydra keeps the earlier value when a preset merges ``???`` over it)."""
    raise ConfigError(str(message))


def register_configs() -> None:
    """Register the schema in Hydra's ConfigStore and the ``sgtrain.*`` resolvers (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("sgtrain.basename"):
        OmegaConf.register_new_resolver("sgtrain.basename", _basename)
    if not OmegaConf.has_resolver("sgtrain.dataset_name"):
        OmegaConf.register_new_resolver("sgtrain.dataset_name", _dataset_name)
    if not OmegaConf.has_resolver("sgtrain.data"):
        OmegaConf.register_new_resolver("sgtrain.data", _data)
    if not OmegaConf.has_resolver("sgtrain.required"):
        OmegaConf.register_new_resolver("sgtrain.required", _required)
    if not OmegaConf.has_resolver("sgtrain.eval"):
        OmegaConf.register_new_resolver("sgtrain.eval", _eval)
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)


_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
_TYPED_GROUPS = {"dataset": DatasetConfig, "train": TrainConfig, "run": RunConfig, "trainer": TrainerConfig,
                 "logger": LoggerConfig, "augment": AugmentConfig}
_MODEL_KEYS = ("name", "resolution", "G", "D")


#: Keys of earlier sgtrain versions (StyleGAN2 only) and where they live now.
MOVED_KEYS = {
    "train.gamma": "loss.r1_gamma",
    "train.style_mixing_prob": "loss.style_mixing_prob (StyleGAN2/3) or model.G.style_mixing_prob (StyleGAN)",
    "train.pl_weight": "loss.pl_weight",
    "train.pl_batch_shrink": "loss.pl_batch_shrink",
    "train.pl_decay": "loss.pl_decay",
    "train.pl_no_weight_grad": "loss.pl_no_weight_grad",
    "model.G_kwargs": "model.G.<keyword>",
    "model.D_kwargs": "model.D.<keyword>",
    "model.G_architecture": "model.G.architecture",
    "model.D_architecture": "model.D.architecture",
    "model.arch": "model=<family> (progan, stylegan, stylegan2, stylegan3_t, stylegan3_r, dcgan)",
    "seed": "train.seed",
}


def unknown_key_error(key: str, candidates: list[str], why: str, added: bool = True) -> ConfigError:
    """A ConfigError for an unknown ``key`` that names the nearest of ``candidates`` when one is close (or where a
    key of an earlier version moved, :data:`MOVED_KEYS`); ``added``: the key got into the config with ``+``/``++``
    (the message says why that is refused too)."""
    moved = next((new for old, new in MOVED_KEYS.items() if key == old or key.startswith(old + ".")), None)
    if moved:
        return ConfigError(f"unknown key {key}: it moved to {moved}")
    near = difflib.get_close_matches(key, [c for c in candidates if c != key], n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    note = (" (a '+' or '++' in front of a key adds it without checking; sgtrain checks it anyway, so that a typo "
            "cannot silently leave a default in place)") if added else ""
    return ConfigError(f"unknown key {key}: {why}{hint}{note}")


def _target_params(target: str) -> set[str] | None:
    """Keyword names the class or function ``target`` takes; None when it takes any (``**kwargs``)."""
    from hydra.utils import get_method

    try:
        obj = get_method(target)
    except Exception as err:  # an unimportable _target_ names the key
        raise ConfigError(f"_target_ {target!r} cannot be imported: {err}") from err
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _check_target_nodes(node: Any, path: str) -> None:
    if not isinstance(node, DictConfig):
        return
    target = node.get("_target_") if "_target_" in node else None
    if target is not None:
        params = _target_params(str(target))
        if params is not None:
            for key in node:
                if key not in params and key not in _HYDRA_KEYS:
                    raise unknown_key_error(f"{path}.{key}", [f"{path}.{p}" for p in sorted(params)],
                                   f"{target} takes no keyword {key!r}")
    for key in node:
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        _check_target_nodes(node[key], f"{path}.{key}")


_GROUPS = ("model", "dataset", "augment", "trainer", "logger", "experiment")


def _dotted_keys(node: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(node, DictConfig):
        for key in node:
            path = f"{prefix}{key}"
            out.append(path)
            if not (OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key)):
                out += _dotted_keys(node[key], path + ".")
    return out


def precheck_overrides(overrides: list[str]) -> str | None:
    """The error for the first command-line key that does not exist (typed without ``+``), or None.

    Hydra refuses such a key itself, but its message suggests adding it with ``+key=value``, which would then train
    with the misspelt key ignored; this names the nearest existing key instead. Group choices (``model=progan``...)
    are applied first, so family keys are checked against the chosen family; sweep lists take their first value.
    Keys with ``+``, ``++`` or ``~`` and ``hydra.*`` are left to Hydra and :func:`check_keys`.
    """
    pairs = [o.split("=", 1) for o in overrides if "=" in o and not o.startswith("-")]
    choices = [f"{k}={v.split(',')[0]}" for k, v in pairs if k in _GROUPS]
    try:
        cfg = compose(choices)
    except Exception:  # a bad group choice: Hydra's own message lists the options
        return None
    keys = _dotted_keys(cfg)
    for key, _ in pairs:
        if key in _GROUPS or key.startswith(("+", "~", "hydra.", "hydra/")) or "/" in key:
            continue
        node: Any = cfg
        for part in key.split("."):
            names = list(node.keys()) if isinstance(node, DictConfig) else []  # keys() also lists '???' values
            if part not in names and not (part.isdigit() and int(part) in names):
                parent = key.rsplit(".", 1)[0] if "." in key else "the config"
                return str(unknown_key_error(key, keys, f"{parent} has no such key", added=False))
            if part not in names:  # an int key (schedule.minibatch_dict.8): Hydra can only replace the whole dict
                table = key.rsplit(".", 1)[0]
                return (f"{key}: a per-resolution table is set as a dict, e.g. {table}={{{part}: VALUE, ...}} "
                        f"(the entries you pass replace the preset's for those resolutions; use ++{table}={{...}} "
                        "to add resolutions the preset does not list)")
            if OmegaConf.is_interpolation(node, part) or OmegaConf.is_missing(node, part):
                break
            node = node[part]
    return None


def check_keys(cfg: DictConfig) -> None:
    """Refuse keys nothing reads, whatever added them (a typo, ``+key=``, ``++key=``), naming the nearest valid key.

    Checked: the typed groups (dataset, train, run, trainer, logger) against their dataclasses; every ``_target_``
    node (model.G, model.D, loss, schedule, ...) against the keyword arguments of the class it names; the family's
    top-level ``model.*`` knobs, which must be used by an interpolation (``${model.<key>}``) somewhere; and the
    top-level groups themselves.

    Raises:
        ConfigError: the first unknown key, with a suggestion when one is close.
    """
    roots = [f.name for f in dataclasses.fields(TrainSchema)]
    for key in cfg:
        if key not in roots and key != "hydra":
            raise unknown_key_error(str(key), roots, "not a config group of sgtrain-train")
    for group, schema in _TYPED_GROUPS.items():
        fields = [f.name for f in dataclasses.fields(schema)]
        for key in cfg[group]:
            if key not in fields:
                raise unknown_key_error(f"{group}.{key}", [f"{group}.{f}" for f in fields],
                               f"{group} has no such setting (docs/training.md lists them)")
    for group in ("model", "loss", "schedule"):
        if cfg.get(group) is not None:
            _check_target_nodes(cfg[group], group)
    if cfg.get("schedule") is not None and "_target_" not in cfg.schedule:
        raise ConfigError(f"schedule: {sorted(cfg.schedule)} given, but model={cfg.model.get('name')} trains without "
                          "a progressive schedule (schedule: null); progressive families are model=progan and "
                          "model=stylegan")
    text = OmegaConf.to_yaml(cfg, resolve=False)
    net_keys = [f"model.{n}.{k}" for n in ("G", "D") if isinstance(cfg.model.get(n), DictConfig) for k in cfg.model[n]]
    for key in cfg.model:
        if key in _MODEL_KEYS or isinstance(cfg.model[key], DictConfig):
            continue
        if not re.search(r"\$\{model\." + re.escape(str(key)) + r"\}", text):
            raise unknown_key_error(f"model.{key}", [f"model.{k}" for k in cfg.model if k != key] + net_keys,
                           "this family's networks do not use it (nothing refers to ${model." + str(key) + "})")


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


def _find_values(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a nested dict/list."""
    out: list[Any] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += [v] if k == key else _find_values(v, key)
    elif isinstance(node, list):
        for v in node:
            out += _find_values(v, key)
    return out


def build_schedule(cfg: DictConfig) -> Any:
    """The progressive schedule of ``cfg.schedule`` (a ProgressiveSchedule), or None for ``schedule: null``."""
    if cfg.get("schedule") is None:
        return None
    from hydra.utils import instantiate

    return instantiate(cfg.schedule)


def minibatches_of(cfg: DictConfig, world: int, resolution: int) -> list[int]:
    """The global minibatches training will use: ``[train.batch]``, or one per resolution of the schedule."""
    schedule = build_schedule(cfg)
    if schedule is None:
        return [int(cfg.train.batch)]
    return schedule.minibatches(resolution, int(cfg.train.batch), world)


def check_metrics(cfg: DictConfig) -> None:
    """``train.metrics``: known names (NVlabs') and their feature-network files present, before training starts.

    Raises:
        ConfigError: an unknown metric name (nearest name suggested), or a missing feature file (the message names
            the file, where NVlabs publishes it and ``train.metrics_detector``).
    """
    names = list(cfg.train.metrics or [])
    if not names:
        return
    from sgtrain.metrics.detector_files import DetectorNotFoundError, find_detector_file
    from sgtrain.metrics.metric_names import is_valid_metric, list_metric_patterns, parse_metric

    for name in names:
        if not is_valid_metric(str(name)):
            raise ConfigError(f"train.metrics: unknown metric {name!r}; NVlabs' names: fid50k_full, kid50k_full, "
                              f"pr50k3_full, is50k, ppl2_wend (patterns: {', '.join(list_metric_patterns())})")
        kind = parse_metric(str(name)).detector
        if kind is None:  # EQ-T / EQ-R: no feature network
            continue
        det = cfg.train.metrics_detector
        path = det.get(kind) if isinstance(det, DictConfig) else det
        try:
            find_detector_file(kind, path, cfg.train.metrics_cache_dir)
        except DetectorNotFoundError as err:
            raise ConfigError(str(err).replace("--detector PATH (detector= in the API)",
                                               "train.metrics_detector=PATH")) from err


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
    check_keys(cfg)
    card = read_card(cfg.dataset.path)
    from sgtrain.data.card import check_labels_source

    try:
        check_labels_source(cfg.dataset.path, card, use_labels=cfg.dataset.cond is not False)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"dataset.path={cfg.dataset.path}: {err}") from err
    if "/None" in str(OmegaConf.select(cfg, "run.dir", throw_on_resolution_failure=False) or "").replace("\\", "/"):
        raise ConfigError(f"run.dir={cfg.run.dir}: ${{hydra:job.num}} has no value outside a sweep; use it with "
                          "-m (sgtrain-train -m ... run.dir=runs/x/${hydra:job.num}) or give a plain run.dir")
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except ConfigError:
        raise
    except Exception as err:  # interpolation errors name the key
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from err
        raise ConfigError(f"config does not resolve: {err}") from err
    from .values import check_values

    check_values(cfg)  # ranges: finite floats, lr > 0, betas in [0, 1), counts >= 0, readable resume_from

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
    resolution = int(OmegaConf.select(cfg, "model.G.img_resolution", default=None)
                     or OmegaConf.select(cfg, "model.G.resolution", default=None) or 0)
    sizes = minibatches_of(cfg, world, resolution) if resolution else [int(t.batch)]
    what = f"train.batch={t.batch}" if cfg.schedule is None else "train.batch / schedule.minibatch_dict"
    groups = [int(v) for v in _find_values(OmegaConf.to_container(cfg.model, resolve=True), "mbstd_group_size") if v]
    shrink = OmegaConf.select(cfg, "loss.pl_batch_shrink", default=None)
    pl_on = bool(OmegaConf.select(cfg, "loss.pl_weight", default=0))
    for mb in sizes:
        if mb < world or mb % world != 0:
            raise ConfigError(f"{what}: a minibatch of {mb} must be a multiple of the number of processes ({world})")
        per_dev = mb // world
        bgpu = min(t.batch_gpu or per_dev, per_dev)
        if per_dev % bgpu != 0:
            raise ConfigError(f"train.batch_gpu={t.batch_gpu} must divide the per-device batch {per_dev} "
                              f"({what} / {world} processes)")
        for g in groups:
            if bgpu % min(g, bgpu) != 0:
                raise ConfigError(f"the per-pass batch {bgpu} (train.batch_gpu) must be a multiple of the "
                                  f"minibatch-stddev group size {g} (model.mbstd_group_size)")
        if pl_on and shrink and bgpu // int(shrink) < 1:
            raise ConfigError(f"train.batch_gpu={bgpu} is smaller than loss.pl_batch_shrink={shrink}")
    check_metrics(cfg)
    a = cfg.augment
    if a.kwargs:
        from sgtrain.augment import AugmentPipe

        names = set(inspect.signature(AugmentPipe.__init__).parameters) - {"self"}
        for key in a.kwargs:
            if key not in names:
                raise unknown_key_error(f"augment.kwargs.{key}", [f"augment.kwargs.{n}" for n in sorted(names)],
                                        "sgtrain.augment.AugmentPipe takes no such keyword", added=False)
    if a.mode not in ("ada", "fixed", "none"):
        raise ConfigError(f"augment.mode={a.mode!r}: use augment=ada, augment=fixed or augment=none")
    if a.mode != "none":
        from sgtrain.augment import AUGPIPE_SPECS

        if a.augpipe not in AUGPIPE_SPECS:
            raise unknown_key_error(f"augment.augpipe={a.augpipe}", [f"augment.augpipe={k}" for k in AUGPIPE_SPECS],
                                    f"no such pipeline (known: {', '.join(AUGPIPE_SPECS)})")
        if not 0 <= a.p <= 1:
            raise ConfigError(f"augment.p={a.p} must be in [0, 1]")
        if a.mode == "fixed" and a.p == 0:
            raise ConfigError("augment=fixed with augment.p=0 augments nothing: pass augment.p=P (0 < P <= 1), or "
                              "augment=ada for an adaptive p")
    if str(cfg.trainer.precision) not in ("32-true", "32"):
        raise ConfigError(
            f"trainer.precision={cfg.trainer.precision}: sgtrain trains in 32-true only. The networks run FP16 "
            "themselves in their highest resolutions (model.num_fp16_res, with conv_clamp), as NVlabs' do; "
            "Lightning's mixed precision would add autocast and a gradient scaler on top of that. Use "
            "model.num_fp16_res=N for FP16, or trainer.tf32=true for TF32 on Ampere and newer GPUs"
        )
    if t.ckpt_kimg <= 0 or (t.ckpt_minutes is not None and t.ckpt_minutes <= 0):
        raise ConfigError("train.ckpt_kimg must be positive and train.ckpt_minutes positive or null")
    if cfg.logger.name not in ("wandb", "csv", "none"):
        raise ConfigError(f"logger.name={cfg.logger.name!r}: use logger=wandb, logger=csv or logger=none")
    if cfg.trainer.strategy not in ("auto", "ddp", "single"):
        raise ConfigError(f"trainer.strategy={cfg.trainer.strategy!r}: use 'auto', 'ddp' or 'single'")
    if cfg.trainer.strategy == "single" and world > 1:
        raise ConfigError("trainer.strategy=single needs trainer.devices=1 and trainer.num_nodes=1")
    if len(t.grid) != 2 or min(t.grid) < 1:
        raise ConfigError(f"train.grid={list(t.grid)} must be [width, height] with positive entries")
    return card
