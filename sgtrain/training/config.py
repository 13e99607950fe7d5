"""Composing and validating the config of ``sgtrain-train``: the checks run before anything heavy is built.

The config is taken in one pass, each step in its own module: the schema (:mod:`sgtrain.training.schema`), the
resolvers (:mod:`sgtrain.training.resolvers`), the key checks (:mod:`sgtrain.training.keys`) and, here, composition
and :func:`validate_config`, which checks what the schema cannot: a missing ``dataset.path``, a model resolution
different from the shards' ``dataset.json``, batch sizes that do not divide, the family's own checks (its
descriptor's ``check_config`` and ``refused_keys``). It reads only ``dataset.json`` and runs in well under a second,
before any network, datamodule or logger exists. The names of the other modules are re-exported here.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sgtrain.core.batches import check_batches
from sgtrain.errors import ConfigError

from .keys import (  # noqa: F401  (re-exported)
    _GROUPS,
    _HYDRA_KEYS,
    _MODEL_KEYS,
    _TYPED_GROUPS,
    MOVED_KEYS,
    _check_target_nodes,
    _dotted_keys,
    _target_params,
    check_keys,
    check_typed_keys,
    unknown_key_error,
)
from .resolvers import _card_of, _data, _dataset_name, _eval, _required, register_configs  # noqa: F401
from .schema import (  # noqa: F401
    AugmentConfig,
    DatasetConfig,
    LoggerConfig,
    RunConfig,
    TrainConfig,
    TrainerConfig,
    TrainSchema,
)

CONFIG_DIR = next(iter(importlib.import_module("sgtrain.conf").__path__))  # the repo's conf/ (setup.py)


DATASET_PATH_REQUIRED = ("dataset.path is required: pass dataset.path=DIR, a directory written by `sgtrain-data pack "
                         "SRC DIR --resolution R` (or a URL pattern of .tar shards)")


def _group_choice_error(err: Exception) -> str | None:
    """One line for Hydra's "Could not find 'model/stylegan5'" (a group option that does not exist), or None."""
    missing, options = getattr(err, "missing_cfg_file", None), getattr(err, "options", None)
    if not missing or options is None or "/" not in str(missing):
        return None
    group, name = str(missing).rsplit("/", 1)
    near = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    where = "conf/" + group + "/*.yaml, or one of your own on hydra.searchpath"
    return (f"{group}={name}: no such option; the options are {', '.join(options)} ({where})"
            + (f"; did you mean {group}={near[0]}?" if near else ""))


def precheck_overrides(overrides: list[str]) -> str | None:
    """The error for the first command-line mistake found from the config alone, or None; runs before Hydra's app and
    before torch or Lightning is imported, so that such a mistake fails in about a second with one line.

    Found here: a group option that does not exist (``model=stylegan5``: the options named); a key that does not
    exist typed without ``+`` (Hydra refuses it itself, but its message suggests adding it with ``+key=value``,
    which would then train with the misspelt key ignored; this names the nearest existing key instead); a plain
    typo of a typed group's key added with ``+`` (``+train.kimgg=1``); a ``dataset.path`` that is missing, does not
    exist or holds no packed shards (the ``sgtrain-data pack`` command to run is named). Group choices
    (``model=progan``...) are applied first, so family keys are checked against the chosen family; sweep lists take
    their first value. Everything else is left to Hydra, :func:`check_keys` and :func:`validate_config`.
    """
    args = [o for o in overrides if "=" in o and not o.startswith("-")]
    pairs = [o.split("=", 1) for o in args]
    search = [o for o in args if o.split("=", 1)[0].lstrip("+") == "hydra.searchpath"]
    choices = [f"{k}={v.split(',')[0]}" for k, v in pairs if k in _GROUPS]
    try:
        cfg = compose(search + choices)
    except Exception as err:  # a bad group choice: one line naming the options; anything else is Hydra's to report
        return _group_choice_error(err)
    keys = _dotted_keys(cfg)
    for key, _ in pairs:
        if key in _GROUPS or key.startswith(("+", "~", "hydra.", "hydra/")) or "/" in key:
            continue
        node: Any = cfg
        for part in key.split("."):
            names = list(node.keys()) if isinstance(node, DictConfig) else []  # keys() also lists '???' values
            if part not in names and not (part.isdigit() and int(part) in names):
                parent = key.rsplit(".", 1)[0] if "." in key else "the config"
                plain_typo = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
                return str(unknown_key_error(key, keys, f"{parent} has no such key", added=False,
                                             families=not plain_typo))
            if part not in names:  # an int key (schedule.minibatch_dict.8): Hydra can only replace the whole dict
                table = key.rsplit(".", 1)[0]
                return (f"{key}: a per-resolution table is set as a dict, e.g. {table}={{{part}: VALUE, ...}} "
                        f"(the entries you pass replace the preset's for those resolutions; use ++{table}={{...}} "
                        "to add resolutions the preset does not list)")
            if OmegaConf.is_interpolation(node, part) or OmegaConf.is_missing(node, part):
                break
            node = node[part]
    if any(o.startswith("-") for o in overrides):
        return None  # -m (each job is checked when it starts), --cfg (print only), -cn/-cp (another config)...
    try:
        cfg = compose([o for o in args if not o.split("=", 1)[0].lstrip("+~").startswith(("hydra.", "hydra/"))
                       or o in search])
    except Exception:
        return None  # Hydra reports it
    try:
        check_typed_keys(cfg, light=True)
        if OmegaConf.is_missing(cfg.dataset, "path"):
            return DATASET_PATH_REQUIRED
        read_card(str(cfg.dataset.path))
    except ConfigError as err:
        return str(err)
    except Exception:  # e.g. an interpolation that does not resolve: validate_config names the key
        return None
    return None


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """Compose the packaged ``sgtrain/conf`` configs outside the CLI (tests, notebooks).

    Args:
        overrides: Hydra overrides, e.g. ``["model=stylegan2_small", "dataset.path=data/smileys"]``.
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
        ConfigError: a path that does not exist, a folder or archive of images that is not packed yet, or a local
            directory without dataset.json; the message gives the ``sgtrain-data pack`` command for ``path``.
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
    out = p.rstrip("/\\")
    if os.path.exists(out):
        out = (os.path.splitext(out)[0] if os.path.isfile(out) else out) + "-shards"
    pack = f"`sgtrain-data pack SRC {out} --resolution R` (SRC: your folder, .zip or LMDB of images; R: the side)"
    if os.path.isfile(p) and p.lower().endswith(".zip") or os.path.isdir(p) and _holds_images(p):
        raise ConfigError(f"dataset.path={path!r} holds images that are not packed into shards yet: run `sgtrain-data "
                      f"pack {p} {out} --resolution R` (R: the side in pixels) and pass dataset.path={out}")
    if not os.path.exists(p) and not any(ch in p for ch in "*?[{"):
        raise ConfigError(f"dataset.path={path!r} does not exist: pack your images there with {pack}, or pass the "
                      "directory you packed into")
    if not os.path.exists(d or "."):
        raise ConfigError(f"dataset.path={path!r}: {d} does not exist: pack your images with {pack}")
    raise ConfigError(f"dataset.path={path!r} has no dataset.json, so it was not written by `sgtrain-data pack`: pack "
                  f"your images with {pack}, or pass the directory you packed into")


#: Extensions of the image files ``sgtrain-data pack`` reads (for the hint that a folder is not packed yet).
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _holds_images(folder: str, limit: int = 2000) -> bool:
    """Whether ``folder`` or its first-level subfolders hold an image file (looks at ``limit`` entries at most)."""
    seen = 0
    for root, dirs, files in os.walk(folder):
        if any(f.lower().endswith(_IMAGE_EXTENSIONS) for f in files):
            return True
        seen += len(files) + len(dirs)
        if seen > limit or root != folder:
            dirs[:] = []  # the top level and its direct subfolders only
    return False


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


def check_metrics(cfg: DictConfig, card: dict[str, Any] | None = None) -> None:
    """``train.metrics``: known names (NVlabs') and their feature-network files present, and RGBA data only with
    ``train.metrics_alpha`` for the metrics whose feature network takes RGB, before training starts.

    Args:
        cfg: the composed config. card: the parsed dataset card (None when ``dataset.path`` is remote: an RGBA
            dataset's metric then fails at its first snapshot, saying the same).

    Raises:
        ConfigError: an unknown metric name (nearest name suggested), a missing feature file (the message names
            the file, where NVlabs publishes it and ``train.metrics_detector``), an unknown ``train.metrics_alpha``,
            or a ``--channels 4`` dataset with FID/KID/PR/IS/PPL and no ``train.metrics_alpha=white``.
    """
    names = list(cfg.train.metrics or [])
    alpha = cfg.train.get("metrics_alpha")
    if alpha is not None and alpha != "white":
        raise ConfigError(f"train.metrics_alpha={alpha}: use white (RGBA composited on white before the RGB feature "
                          "networks) or null (RGBA data refused)")
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
        if card is not None and int(card.get("channels", 3)) == 4 and alpha is None:
            raise ConfigError(f"train.metrics: {name}'s feature network takes RGB but the data in {cfg.dataset.path} "
                              "is RGBA (packed with --channels 4): add train.metrics_alpha=white to composite it on "
                              f"white, or remove {name} (SWD, train.swd, compares all 4 channels)")
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
        raise ConfigError(DATASET_PATH_REQUIRED)
    check_keys(cfg)
    card = read_card(cfg.dataset.path)
    from sgtrain.data.stream import check_labels_source

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
                f"model.resolution={cfg.model.resolution} but the shards in {cfg.dataset.path} are "
                f"{card.get('width') or res}x{card.get('height') or res}: "
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
    passes = check_batches(sizes, world, t.batch_gpu, group_sizes=groups, what=what)
    for key in ("G_batch_gpu", "D_batch_gpu"):
        if t.get(key) is not None:
            passes += check_batches(sizes, world, t[key], group_sizes=groups, what=what, batch_gpu_key=f"train.{key}")
    finals = [k for k in ("lr_final", "beta2_final", "ema_kimg_final") if t.get(k) is not None]
    if finals and t.get("decay_kimg") is None:
        raise ConfigError(f"train.{finals[0]} is the value at the end of a cosine decay: give its length, "
                          "train.decay_kimg=KIMG (R3GAN: 20000), or remove it")
    family = config_family(cfg)
    for key in family.refused_keys if family is not None else ():
        if OmegaConf.select(cfg, key, default=None) is not None:
            raise ConfigError(f"{key}: {family.display_name} (model={cfg.model.get('name')}) has no such setting; "
                              f"remove {key} (it belongs to another family)")
    if family is not None and family.check_config is not None:
        family.check_config(cfg, passes)
    check_metrics(cfg, card)
    a = cfg.augment
    if a.kwargs:
        from sgtrain.core.augment import AugmentPipe

        names = set(inspect.signature(AugmentPipe.__init__).parameters) - {"self"}
        for key in a.kwargs:
            if key not in names:
                raise unknown_key_error(f"augment.kwargs.{key}", [f"augment.kwargs.{n}" for n in sorted(names)],
                                        "sgtrain.core.augment.AugmentPipe takes no such keyword", added=False)
    if a.mode not in ("ada", "fixed", "none"):
        raise ConfigError(f"augment.mode={a.mode!r}: use augment=ada, augment=fixed or augment=none")
    if a.mode != "none":
        from sgtrain.core.augment import AUGPIPE_SPECS

        if a.augpipe not in AUGPIPE_SPECS:
            raise unknown_key_error(f"augment.augpipe={a.augpipe}", [f"augment.augpipe={k}" for k in AUGPIPE_SPECS],
                                    f"no such pipeline (known: {', '.join(AUGPIPE_SPECS)})")
        if not 0 <= a.p <= 1:
            raise ConfigError(f"augment.p={a.p} must be in [0, 1]")
        if a.p_final is not None and (a.mode == "ada" or OmegaConf.select(cfg, "train.decay_kimg") is None):
            raise ConfigError(f"augment.p_final={a.p_final} decays a fixed p: it needs augment=fixed and "
                              "train.decay_kimg=KIMG (the decay's length); with augment=ada pass augment.p_final=null")
        if a.mode == "fixed" and a.p == 0 and not a.p_final:
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


def config_family(cfg: DictConfig) -> Any:
    """The :class:`sgtrain.models.family.Family` of the generator ``model.G._target_`` names (imports its package,
    as instantiating it would), or None for a class of no family."""
    from sgtrain.models.family import family_of_class_path

    target = OmegaConf.select(cfg, "model.G._target_", default=None)
    return family_of_class_path(str(target)) if target else None
