"""``train(cfg)``: build everything from a composed config and run (or resume) one training run.

The order matters for the "fail within seconds" promise: the config is validated and the run directory resolved
before torch-heavy objects (datamodule, networks, logger, trainer) are built.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sgtrain.errors import UserError

from .cluster import RequeueOnSignal, cluster_plugins, ddp_job_scope, env_global_rank
from .config import (
    ConfigError,
    build_schedule,
    config_family,
    minibatches_of,
    unknown_key_error,
    validate_config,
    world_size_of,
)
from .threads import available_cores, thread_policy


def resolve_run_dir(cfg: DictConfig) -> str:
    """The run directory: ``run.dir``, or Hydra's per-job output directory in multirun mode. Absolute path."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized():
            hc = HydraConfig.get()
            if hc.mode == RunMode.MULTIRUN:
                return os.path.abspath(hc.runtime.output_dir)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return os.path.abspath(str(cfg.run.dir))


def _is_rank_zero() -> bool:
    # srun starts every rank itself and sets no RANK/LOCAL_RANK: SLURM_PROCID tells them apart
    return env_global_rank() == 0


def _hydra_overrides() -> list[str] | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return list(HydraConfig.get().overrides.task)
    except ImportError:  # pragma: no cover
        pass
    return None


def find_resume_checkpoint(run_dir: str) -> str | None:
    """``checkpoints/last.ckpt`` if it verifies, else the newest good kept ``ckpt-*.ckpt`` (one warning line per
    damaged one skipped), else None.

    Verified by :func:`~sgtrain.training.callbacks.verify_checkpoint`: the ``.sha256`` written at save time, or for
    checkpoints from before checksums a full read of every zip entry (CRC-32).
    """
    from .callbacks import verify_checkpoint

    ckdir = os.path.join(run_dir, "checkpoints")
    candidates = [os.path.join(ckdir, "last.ckpt")]
    if os.path.isdir(ckdir):
        candidates += sorted((os.path.join(ckdir, f) for f in os.listdir(ckdir)
                              if f.startswith("ckpt-") and f.endswith(".ckpt")), reverse=True)
    for path in candidates:
        if os.path.isfile(path):
            why = verify_checkpoint(path)
            if why is None:
                return path
            warnings.warn(f"{path} is damaged ({why}); trying an older one", stacklevel=2)
    return None


def refuse_unresumable(run_dir: str, ckpt_kimg: float | None = None) -> None:
    """Refuse a run directory that holds results but no checkpoint this run can resume from: starting from scratch
    there would overwrite its network snapshots and replace its metrics history.

    Results are: network snapshots, checkpoint files (all damaged) or ``checkpoints/last.json`` (a checkpoint was
    written once), or two or more metrics lines past ``ckpt_kimg`` (the first checkpoint was due at the first of
    them and is written just after that tick's line, so a second line means it was written). A run killed before or
    during its first checkpoint, with nothing else, starts over.

    Raises:
        ConfigError: naming the directory, what it holds, and the ways on (a new run.dir, with
            train.resume_from=SNAPSHOT to continue from the weights of its newest network snapshot).
    """
    from .callbacks import read_jsonl

    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return
    snaps = [n for n in names if n.startswith("network-snapshot-") and not n.endswith(".tmp")]
    ckdir = os.path.join(run_dir, "checkpoints")
    ckpts = [n for n in os.listdir(ckdir) if n.endswith(".ckpt") or n == "last.json"] if os.path.isdir(ckdir) else []
    rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl")) if "metrics.jsonl" in names else []
    past = [r for r in rows if ckpt_kimg is not None and float(r.get("kimg", 0)) > float(ckpt_kimg) + 1e-9]
    if not (snaps or ckpts or len(past) > 1):
        return
    found = ", ".join(filter(None, [f"{len(snaps)} network snapshots" if snaps else "",
                                    f"metrics to kimg {rows[-1].get('kimg')}" if rows else "",
                                    "checkpoints that are damaged or gone" if ckpts or len(past) > 1 else ""]))
    hint = os.path.join(run_dir, snaps[-1]) if snaps else "SNAPSHOT"
    raise ConfigError(f"run.dir={run_dir} holds a run ({found}) but no readable checkpoint to resume, and starting "
                      f"from scratch would overwrite it: pass a new run.dir, with train.resume_from={hint} "
                      "(and train.resume_kimg=KIMG) to continue from its weights")


def read_last_meta(run_dir: str) -> dict[str, Any] | None:
    """Contents of ``checkpoints/last.json`` (kimg and done flag of last.ckpt), or None."""
    path = os.path.join(run_dir, "checkpoints", "last.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _wandb_id(run_dir: str) -> str:
    path = os.path.join(run_dir, "wandb_id.txt")
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    run_id = secrets.token_hex(4)
    if _is_rank_zero():
        with open(path, "w") as f:
            f.write(run_id + "\n")
    return run_id


def build_logger(cfg: DictConfig, run_dir: str) -> Any:
    """The experiment logger of ``logger.name``: WandbLogger (offline by default, run id kept in the run dir so a
    resumed run continues the same wandb run), CSVLogger, or None."""
    name = cfg.logger.name
    if name == "none":
        return None
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=run_dir, name="csv")  # csv/version_<n>/metrics.csv, one per (re)start
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    os.environ["WANDB_MODE"] = str(cfg.logger.mode)
    from lightning.pytorch.loggers import WandbLogger

    from ._lightning import drop_wandb_anonymous

    logger = WandbLogger(
        project=cfg.logger.project, entity=cfg.logger.entity, name=os.path.basename(run_dir), save_dir=run_dir,
        id=_wandb_id(run_dir), offline=cfg.logger.mode == "offline", resume="allow", tags=list(cfg.logger.tags),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    drop_wandb_anonymous(logger)
    return logger


def build_networks(cfg: DictConfig) -> tuple[Any, Any]:
    """G and D of the family in ``cfg.model`` (``model.G`` / ``model.D``: Hydra ``_target_`` nodes).

    Raises:
        ConfigError: a keyword the class does not take, or a class that cannot be built, naming the key.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    nets = []
    for key in ("G", "D"):
        try:
            nets.append(instantiate(cfg.model[key], _convert_="all"))
        except InstantiationException as err:
            m = re.search(r"unexpected keyword argument '(\w+)'", str(err))
            if m:  # a keyword the class passes on to an inner module, which does not take it either
                raise unknown_key_error(f"model.{key}.{m.group(1)}", [f"model.{key}.{k}" for k in cfg.model[key]],
                                        f"{cfg.model[key]._target_} takes no keyword {m.group(1)!r}") from err
            raise ConfigError(f"model.{key} ({cfg.model[key].get('_target_')}) cannot be built: {err}") from err
    return nets[0], nets[1]


def transfer_learning_settings(cfg: DictConfig) -> list[str]:
    """NVlabs' settings for a run that starts from a trained network (``train.resume_from``), applied to ``cfg``:
    no EMA ramp-up, ADA adjusting p over 100 kimg instead of 500, then the family's own (its descriptor's
    ``transfer_settings``: StyleGAN2/3 no ramp of D's input blur, a progressive family at full resolution). Returns
    what changed."""
    from omegaconf import open_dict

    changed = []
    with open_dict(cfg):
        if cfg.train.ema_rampup is not None:
            cfg.train.ema_rampup = None
            changed.append("train.ema_rampup=null")
        if cfg.augment.mode == "ada" and cfg.augment.ada_kimg != 100:
            cfg.augment.ada_kimg = 100
            changed.append("augment.ada_kimg=100")
    family = config_family(cfg)
    if family is not None and family.transfer_settings is not None:
        changed += family.transfer_settings(cfg)
    return changed


def init_from_network(module: Any, path: str, cfg: DictConfig, verbose: bool = True) -> None:
    """Copy G, D and G_ema of the network file at ``path`` into the freshly built ``module`` (transfer learning).

    The file may be anything :func:`sgtrain.io.load_network` opens. A file with only a generator initialises G and
    G_ema from it and leaves D random; without G, G starts from G_ema; its augment p (ADA) carries over.

    Raises:
        ConfigError: the file's networks are of another family or another size than the config builds; the message
            names the keys to change.
    """
    from sgtrain.io import load_network

    nets = load_network(path)
    for name in ("G_ema", "G", "D"):
        src = nets.get(name) or (nets.get("G_ema") if name == "G" else None)
        if src is None:
            continue
        dst = getattr(module, name)
        if type(src).__name__ != type(dst).__name__ or type(src).__module__ != type(dst).__module__:
            raise ConfigError(f"train.resume_from={path}: its {name} is a {type(src).__module__}.{type(src).__name__}"
                              f", the config builds a {type(dst).__module__}.{type(dst).__name__}: choose the "
                              f"family of the file with model=<family>")
        res_src, res_dst = getattr(src, "img_resolution", None), getattr(dst, "img_resolution", None)
        if res_src != res_dst:
            raise ConfigError(f"train.resume_from={path}: its {name} is {res_src}x{res_src}, the config builds "
                              f"{res_dst}x{res_dst}: pack the data at {res_src} (sgtrain-data pack --resolution "
                              f"{res_src}) or start from a network of resolution {res_dst}")
        theirs, ours = src.state_dict(), dst.state_dict()
        wrong = [f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}" for k, v in ours.items()
                 if k in theirs and theirs[k].shape != v.shape]
        missing = [k for k in ours if k not in theirs]
        if wrong or missing:
            diff = {k: (src.init_kwargs.get(k), dst.init_kwargs.get(k)) for k in dst.init_kwargs
                    if k in getattr(src, "init_kwargs", {}) and src.init_kwargs.get(k) != dst.init_kwargs.get(k)}
            raise ConfigError(f"train.resume_from={path}: its {name} does not fit the config's: shapes {wrong[:4]}"
                              f"{', missing ' + str(missing[:4]) if missing else ''}; constructor keywords that "
                              f"differ (file, config): {diff} - set model.{'G' if name != 'D' else 'D'}.<key> (or the "
                              f"model knob that feeds it) to the file's value")
        dst.load_state_dict({k: theirs[k] for k in ours})
    if nets.get("augment_p") is not None and module.augment_pipe is not None:
        module.augment_pipe.p.fill_(float(nets["augment_p"]))
    if verbose:
        print(f"sgtrain-train: initialised from {path}"
              + (f" (augment p {float(nets['augment_p']):.3f})" if nets.get("augment_p") is not None else ""))


def check_capabilities(cfg: DictConfig, G: Any) -> None:
    """What the training options ask of the generator that only its family's descriptor can answer.

    Raises:
        ConfigError: ``train.freeze_mapping`` on a generator without mapping layers (ProGAN, DCGAN), or an
            equivariance metric (``eqt*``/``eqr*``) on a generator without an input transform (all but StyleGAN3).
    """
    from sgtrain.models.family import family_of, registered

    family = family_of(G)
    name = family.display_name if family is not None else type(G).__qualname__
    if cfg.train.freeze_mapping and (family is None or not family.mapping_layers(G, cfg.train.freeze_mapping)):
        with_mapping = ", ".join(f.name for f in registered().values() if f.mapping_layer)
        raise ConfigError(f"train.freeze_mapping={cfg.train.freeze_mapping}: {name} has no mapping layers; "
                          f"use it with a style-based family ({with_mapping})")
    eq = [m for m in cfg.train.metrics or [] if str(m).startswith("eq")]
    if eq and (family is None or not family.input_transform):
        with_transform = ", ".join(f.name for f in registered().values() if f.input_transform)
        raise ConfigError(f"train.metrics: {eq} measure equivariance to translating/rotating the synthesis input, "
                          f"which {name} does not have; families with one: {with_transform}")


def loss_factory(cfg: DictConfig) -> Any:
    """``loss(G=, D=, augment_pipe=) -> GANLoss`` from ``cfg.loss`` (a Hydra ``_target_`` node, partially applied)."""
    from hydra.utils import instantiate

    return instantiate(cfg.loss, _partial_=True, _convert_="all")


def loader_batch_size(cfg: DictConfig, world: int, resolution: int) -> int:
    """Images per datamodule batch on each rank: the per-device batch, or with a progressive schedule whose
    minibatch changes the greatest common divisor of every per-device minibatch (GANModule gathers loader batches
    until an iteration's minibatch is complete)."""
    sizes = [mb // world for mb in minibatches_of(cfg, world, resolution)]
    return math.gcd(*sizes)


def build_augment_pipe(cfg: DictConfig) -> Any:
    """The augmentation pipe of ``cfg.augment`` (``augpipe`` at probability ``p``, ``kwargs`` overriding its
    strengths), or None for ``augment.mode=none``. ADA's controller is the module's (``augment.mode=ada``)."""
    a = cfg.augment
    if a.mode == "none":
        return None
    from sgtrain.core.augment import augment_pipe

    return augment_pipe(a.augpipe, p=a.p, **OmegaConf.to_container(a.kwargs, resolve=True))


@dataclass
class TrainingParts:
    """What ``sgtrain-train`` builds from a composed config before the data, the callbacks and the Trainer.

    Attributes:
        G: the family's generator (``model.G``); the same object as ``module.G``.
        D: the family's discriminator (``model.D``); the same object as ``module.D``.
        loss: ``loss(G=, D=, augment_pipe=) -> GANLoss`` (``cfg.loss``, partially applied); ``module.loss`` is one
            built from it.
        schedule: the progressive schedule of ``cfg.schedule``, or None (fixed resolution and minibatch).
        augment_pipe: the augmentation pipe (``augment.mode`` fixed or ada), or None.
        module: the GANModule that trains G and D (optimizers, phases, G_ema, kimg counter, ADA controller).
        world: processes the global batch is split over (``trainer.devices`` x ``trainer.num_nodes``).
        loader_batch: images per datamodule batch on each rank.
        per_device: images per iteration on each rank at the final resolution.
    """

    G: Any
    D: Any
    loss: Any
    schedule: Any
    augment_pipe: Any
    module: Any
    world: int
    loader_batch: int
    per_device: int


#: Schema fields whose GANModule keyword has another name (the field is the user's word, the keyword the module's).
MODULE_RENAMED = {"train.kimg": "total_kimg", "train.snap_kimg": "ddp_check_kimg"}


def module_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """GANModule's keywords from ``cfg.train`` and ``cfg.augment``, taken by name: every schema field that
    GANModule's constructor takes is passed under its own name, so a new training knob is one schema field and the
    keyword of the code that uses it, with nothing copied here (:data:`MODULE_RENAMED` for the two that differ).
    ADA's target is passed only with ``augment.mode=ada`` (otherwise p stays fixed)."""
    import inspect

    from .module import GANModule

    params = set(inspect.signature(GANModule.__init__).parameters)
    groups = {g: OmegaConf.to_container(cfg[g], resolve=True) for g in ("train", "augment")}
    kw = {k: v for g in groups.values() for k, v in g.items() if k in params}
    kw.update({dst: groups[src.split(".")[0]][src.split(".")[1]] for src, dst in MODULE_RENAMED.items()})
    kw["betas"] = tuple(kw["betas"])
    if cfg.augment.mode != "ada":
        kw["ada_target"] = None
    if cfg.augment.mode != "fixed":
        kw["p_final"] = None  # no pipe (augment=none) or ADA's own p
    return kw


def build_training(cfg: DictConfig, world: int | None = None) -> TrainingParts:
    """The one build step of ``sgtrain-train``: networks, loss, schedule, augment pipe and GANModule from ``cfg``.

    :func:`train` calls it, and so do the benchmark scripts, so that they time what training runs. Call
    :func:`~sgtrain.training.config.validate_config` first, and seed first for reproducible weights (train seeds
    ``train.seed`` with ``lightning.seed_everything``); nothing is read from the data or written.

    Args:
        cfg: a composed ``sgtrain-train`` config (``sgtrain.training.config.compose`` or the Hydra app).
        world: processes the batch is split over; None = from ``cfg.trainer`` (:func:`world_size_of`).
    Raises:
        ConfigError: a keyword a network class does not take or a class that cannot be built (the key named), an
            option the built generator cannot serve (:func:`check_capabilities`), batch sizes that do not divide.
    """
    from .module import GANModule

    world = world_size_of(cfg) if world is None else int(world)
    G, D = build_networks(cfg)
    check_capabilities(cfg, G)
    resolution = int(G.img_resolution)
    loader_batch = loader_batch_size(cfg, world, resolution)
    per_device = minibatches_of(cfg, world, resolution)[-1] // world
    pipe = build_augment_pipe(cfg)
    loss, schedule = loss_factory(cfg), build_schedule(cfg)
    module = GANModule(G=G, D=D, loss=loss, schedule=schedule, augment_pipe=pipe, loader_batch=loader_batch,
                       **module_kwargs(cfg))
    return TrainingParts(G=G, D=D, loss=loss, schedule=schedule, augment_pipe=pipe, module=module, world=world,
                         loader_batch=loader_batch, per_device=per_device)


def read_reals(datamodule: Any, n: int, seed: int = 0) -> tuple[Any, Any]:
    """``n`` shuffled training images and labels (uint8 [n, C, H, W], float32 [n, c_dim]), read on this process."""
    import torch

    from sgtrain.data import ShardDataModule

    dm = ShardDataModule(datamodule.path, batch_size=max(1, min(n, 64, datamodule.count)), num_workers=0,
                         shuffle_buffer=max(256, n), seed=seed + 7, card=datamodule.card,
                         use_labels=datamodule.use_labels)
    imgs, labels = [], []
    got = 0
    while got < n:
        for img, c in dm.train_dataloader(rank=0, world_size=1):
            imgs.append(img)
            labels.append(c)
            got += img.shape[0]
            if got >= n:
                break
        if not imgs:
            raise ConfigError(f"no images could be read from {datamodule.path}")
    return torch.cat(imgs)[:n], torch.cat(labels)[:n]


_QUIET = [
    r".*in eval mode at the start of training.*",  # G_ema is in eval mode on purpose
    # The datamodule restores its epoch; within an epoch the stream restarts (documented in docs/training.md).
    r".*resuming from a checkpoint that ended before the epoch ended.*",
    r".*IterableDataset.*has `__len__` defined.*",  # ShardStream's length is exact per rank and worker
    r".*The `srun` command is available.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*does not have many workers.*",
]


def _extra_callbacks(nodes: Any) -> list[Any]:
    """Instantiate ``trainer.callbacks``: a list of Hydra nodes, each with a ``_target_`` naming a Lightning callback.

    Raises:
        ConfigError: an entry without ``_target_``, or one that cannot be imported or built (the entry is named).
    """
    from hydra.utils import instantiate

    out = []
    for i, node in enumerate(nodes or []):
        if not (OmegaConf.is_dict(node) and "_target_" in node):
            raise ConfigError(f"trainer.callbacks[{i}] = {node!r}: each entry needs a _target_, e.g. "
                              "'trainer.callbacks=[{_target_:lightning.pytorch.callbacks.LearningRateMonitor}]'")
        try:
            out.append(instantiate(node))
        except Exception as e:  # hydra wraps import and constructor errors
            raise ConfigError(f"trainer.callbacks[{i}] ({node._target_}) could not be built: {e}") from e
    return out


def _quiet_warnings() -> None:
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    import logging

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda r: not any(s in r.getMessage() for s in ("litlogger", "TPU available", "GPU available")))
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        if lg.handlers:  # Lightning prints with its own handler; Hydra's root handler would print it again
            lg.propagate = False


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train (or resume) the run described by ``cfg``; returns ``{'run_dir', 'kimg', 'swd', ...}``.

    Raises:
        ConfigError: invalid configuration (raised before any heavy object is built).
    """
    t_start = time.time()
    validate_config(cfg)
    extra_callbacks = _extra_callbacks(cfg.trainer.callbacks)
    if cfg.train.resume_from:
        changed = transfer_learning_settings(cfg)
        if changed and _is_rank_zero():
            print("sgtrain-train: starting from train.resume_from, set for fine-tuning (docs/training.md): "
                  + ", ".join(changed))
    run_dir = resolve_run_dir(cfg)
    world = world_size_of(cfg)
    old_cfg = os.path.join(run_dir, "config.yaml")
    ckpt_path = find_resume_checkpoint(run_dir)
    if ckpt_path is None:
        refuse_unresumable(run_dir, cfg.train.ckpt_kimg)  # before anything is written: never start over on top of a run
    if os.path.exists(old_cfg) and ckpt_path is not None:
        old = OmegaConf.load(old_cfg)
        old_name, new_name = OmegaConf.select(old, "model.name"), cfg.model.get("name")
        if old_name and old_name != new_name:
            raise ConfigError(f"run.dir={run_dir} holds a run of model={old_name}, which this command (model="
                              f"{new_name}) cannot resume: pass another run.dir (the default is runs/<model>-<data>)")
    meta = read_last_meta(run_dir)
    if meta and meta.get("done") and float(meta.get("kimg", 0)) >= float(cfg.train.kimg):
        print(f"sgtrain-train: {run_dir} is complete ({meta['kimg']} kimg >= train.kimg={cfg.train.kimg}); "
              f"nothing to do (raise train.kimg to continue)")
        return {"run_dir": run_dir, "kimg": meta["kimg"], "complete": True}

    import lightning as L
    import torch

    from sgtrain.data import ShardDataModule

    from .callbacks import (
        AtomicCheckpointIO,
        KimgProgressBar,
        MetricsJSONL,
        QualityMetrics,
        RunCheckpoint,
        SampleGrid,
        SnapshotExport,
        SWDCallback,
        clean_stale_temporaries,
    )
    from .ddp import GANDDPStrategy

    _quiet_warnings()
    workers = cfg.dataset.num_workers
    if workers is None:
        workers = min(3, max(0, available_cores() - 1))
    # intra-op threads + loader workers fit the cores free to the process (sgtrain.training.threads)
    threads, threads_why = thread_policy(cfg.trainer.threads, workers, world // max(1, int(cfg.trainer.num_nodes)))
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = bool(cfg.trainer.tf32)  # NVlabs: off (exact R1 / path length numbers)
    torch.backends.cudnn.allow_tf32 = bool(cfg.trainer.tf32)
    L.seed_everything(int(cfg.train.seed), workers=True, verbose=False)
    parts = build_training(cfg, world)  # before anything is written: a keyword the networks refuse is a config error
    module = parts.module
    rank0 = _is_rank_zero()
    os.makedirs(run_dir, exist_ok=True)
    os.environ["SGTRAIN_RUN_DIR"] = run_dir  # DDP children are started with run.dir=<this>
    if rank0:
        clean_stale_temporaries(run_dir)
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
        cfg_path = os.path.join(run_dir, "config.yaml")
        if os.path.exists(cfg_path):
            with open(cfg_path) as f:
                old = f.read()
            if old != resolved:
                os.replace(cfg_path, os.path.join(run_dir, f"config-{int(time.time())}.yaml"))
                print(f"sgtrain-train: the config differs from the previous start; the old one is kept as "
                      f"config-<time>.yaml in {run_dir}")
        with open(cfg_path, "w") as f:
            f.write(resolved)
        overrides = _hydra_overrides()
        if overrides is not None:
            with open(os.path.join(run_dir, "overrides.yaml"), "w") as f:
                f.write(OmegaConf.to_yaml(OmegaConf.create(overrides)))
        if cfg.run.print_config:
            print(resolved)
        else:
            print(f"sgtrain-train: the resolved config is in {cfg_path} (run.print_config=true prints it)")

    t = cfg.train
    loader_batch = parts.loader_batch
    on_cuda = cfg.trainer.accelerator in ("gpu", "cuda") or (cfg.trainer.accelerator == "auto"
                                                              and torch.cuda.is_available())
    pin = on_cuda if cfg.dataset.pin_memory is None else bool(cfg.dataset.pin_memory)
    dm = ShardDataModule(
        cfg.dataset.path, batch_size=loader_batch, num_workers=workers, xflip=cfg.dataset.xflip,
        shuffle_buffer=cfg.dataset.shuffle, seed=cfg.train.seed, pin_memory=pin,
        use_labels=cfg.dataset.cond is not False,
    )
    per_device = parts.per_device
    module.label_sampler = dm.sample_labels
    if ckpt_path is None and t.resume_from:
        init_from_network(module, str(t.resume_from), cfg, verbose=rank0)
        module.cur_nimg = module.tick_start_nimg = int(round(float(t.resume_kimg) * 1000))

    n_grid = int(t.grid[0]) * int(t.grid[1])
    n_reals = max(n_grid, int(t.swd_images) if t.swd else 0)
    reals, labels = (read_reals(dm, n_reals, seed=t.seed) if rank0 else (torch.zeros([1, 1, 1, 1]),
                                                                          torch.zeros([1, 0])))
    bgpu = min(t.batch_gpu or per_device, per_device)
    run_info = {"config": OmegaConf.to_container(cfg, resolve=True), "run_dir": run_dir}
    callbacks: list[Any] = []
    if t.metrics:  # before MetricsJSONL: the results go into the tick's line
        det = t.metrics_detector
        callbacks.append(QualityMetrics(
            run_dir, list(t.metrics), str(cfg.dataset.path), t.snap_kimg, seed=t.seed, cache_dir=t.metrics_cache_dir,
            detector=OmegaConf.to_container(det) if OmegaConf.is_config(det) else det, alpha=t.get("metrics_alpha")))
    callbacks += [
        MetricsJSONL(run_dir),
        SampleGrid(run_dir, reals[:n_grid], labels[:n_grid], tuple(t.grid), t.snap_kimg, seed=t.seed, batch=bgpu),
        SnapshotExport(run_dir, t.snap_kimg, info=run_info),
    ]
    swd_cb = None
    if t.swd:
        swd_cb = SWDCallback(run_dir, reals[: int(t.swd_images)], labels[: int(t.swd_images)], batch=bgpu)
        callbacks.append(swd_cb)
    callbacks.append(RunCheckpoint(run_dir, t.snap_kimg, keep=t.keep_ckpts, ckpt_kimg=t.ckpt_kimg,
                                   ckpt_minutes=t.ckpt_minutes))
    # SIGUSR1/SIGUSR2 (sbatch --signal, submitit): checkpoint at the step boundary, scontrol requeue, stop;
    # SIGTERM (preemption, scancel): checkpoint, stop (docs/cluster.md)
    requeue_cb = RequeueOnSignal(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    callbacks.append(requeue_cb)
    if cfg.trainer.progress_bar:
        callbacks.append(KimgProgressBar())
    callbacks += extra_callbacks

    accelerator = cfg.trainer.accelerator
    ckpt_io = AtomicCheckpointIO()
    if world > 1 or cfg.trainer.strategy == "ddp":
        cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
        strategy: Any = GANDDPStrategy(checkpoint_io=ckpt_io, process_group_backend="gloo" if cpu else None)
        plugins = cluster_plugins()  # SLURMEnvironment(auto_requeue=False) inside an srun step, else []
    else:
        strategy = "auto"
        plugins = [ckpt_io, *cluster_plugins()]
    logger = build_logger(cfg, run_dir) if rank0 else None
    trainer = L.Trainer(
        accelerator=accelerator, devices=cfg.trainer.devices, num_nodes=cfg.trainer.num_nodes, strategy=strategy,
        precision=cfg.trainer.precision, max_epochs=-1, max_steps=-1, logger=logger if logger is not None else False,
        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=bool(cfg.trainer.progress_bar),
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=run_dir,
        plugins=plugins, deterministic=bool(cfg.trainer.deterministic) or None,
        benchmark=bool(cfg.trainer.benchmark), use_distributed_sampler=False, log_every_n_steps=1,
    )
    if rank0:
        print(f"sgtrain-train: run directory {run_dir}; "
              + (f"resuming from {ckpt_path}" if ckpt_path else "starting from scratch")
              + f" (set-up {time.time() - t_start:.1f} s); intra-op threads: {torch.get_num_threads()} ({threads_why}; "
              "trainer.threads=N to choose)", flush=True)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    requeue_cb.exit_if_stopped()  # stopped by a signal: not finished; exit 128+signal (no next sweep job, no result)
    out: dict[str, Any] = {"run_dir": run_dir, "kimg": module.kimg, "complete": module.kimg >= t.kimg}
    if swd_cb is not None:
        out["swd"] = dict(swd_cb.results)
    return out


def main_entry(cfg: DictConfig) -> Any:
    """Body of the Hydra app: ``train(cfg)`` with configuration errors printed as one line and exit status 2."""
    try:
        with ddp_job_scope():  # the next job of a local -m sweep starts without this job's process group / env
            out = train(cfg)
    except UserError as err:  # ConfigError and every other error the user can fix; anything else is a bug
        print(f"sgtrain-train: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C during set-up (once training runs, RequeueOnSignal saves and stops)
        print("sgtrain-train: interrupted before training started; nothing to save", file=sys.stderr, flush=True)
        sys.exit(130)
    if _is_rank_zero():
        print_summary(out["run_dir"])
    return out


def print_summary(run_dir: str) -> None:
    """Print where the results are and the SWD figures of ``metric-swd.jsonl`` (first and last)."""
    lines = [f"sgtrain-train: run directory {run_dir}"]
    samples = sorted(f for f in os.listdir(os.path.join(run_dir, "samples")) if f.startswith("fakes")) \
        if os.path.isdir(os.path.join(run_dir, "samples")) else []
    if samples:
        lines.append(f"  samples: {os.path.join(run_dir, 'samples', samples[-1])} (reals.png for the data)")
    try:
        with open(os.path.join(run_dir, "metric-swd.jsonl")) as f:
            swd = [json.loads(line) for line in f if line.strip()]
    except OSError:
        swd = []
    if swd:
        first, last = swd[0], swd[-1]
        lines.append(f"  SWD (x1e3, lower is better): kimg {first['kimg']:g}: {first['swd']:.2f} -> "
                     f"kimg {last['kimg']:g}: {last['swd']:.2f}")
    print("\n".join(lines), flush=True)
