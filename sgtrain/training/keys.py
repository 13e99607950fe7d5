"""Key checks of a composed ``sgtrain-train`` config: unknown or misspelt keys named with the nearest valid one,
constructor keywords checked against the classes the ``_target_`` nodes name, and the command-line pre-check that
runs before Hydra composes (so a typo fails in a second, with one line)."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sgtrain.errors import ConfigError

from .schema import AugmentConfig, DatasetConfig, LoggerConfig, RunConfig, TrainConfig, TrainerConfig, TrainSchema

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
_TYPED_GROUPS = {"dataset": DatasetConfig, "train": TrainConfig, "run": RunConfig, "trainer": TrainerConfig,
                 "logger": LoggerConfig, "augment": AugmentConfig}
_MODEL_KEYS = ("name", "resolution", "G", "D")


#: Keys of earlier sgtrain versions and where they live now (with each family's own, ``Family.moved_keys``).
MOVED_KEYS = {
    "model.G_kwargs": "model.G.<keyword>",
    "model.D_kwargs": "model.D.<keyword>",
    "model.G_architecture": "model.G.architecture",
    "model.D_architecture": "model.D.architecture",
    "model.arch": "model=<family> (the files of conf/model/)",
    "seed": "train.seed",
}


def unknown_key_error(key: str, candidates: list[str], why: str, added: bool = True,
                      families: bool = True) -> ConfigError:
    """A ConfigError for an unknown ``key`` that names the nearest of ``candidates`` when one is close (or where a
    key of an earlier version moved, :data:`MOVED_KEYS`); ``added``: the key got into the config with ``+``/``++``
    (the message says why that is refused too); ``families``: also look up the families' moved keys (imports every
    family package, and with it torch; False for the pre-check before the heavy imports)."""
    table = dict(MOVED_KEYS)
    if families:
        from sgtrain.models.family import registered

        table.update({k: v for f in registered().values() for k, v in f.moved_keys.items()})
    moved = next((new for old, new in table.items() if key == old or key.startswith(old + ".")), None)
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


def check_typed_keys(cfg: DictConfig, light: bool = False) -> None:
    """The part of :func:`check_keys` that needs only the schema: the top-level groups and the keys of the typed
    groups (dataset, train, run, trainer, logger, augment).

    Args:
        light: for the pre-check before torch is imported: an unknown key is reported only when it is a plain typo
            (a candidate at least 80 % alike); others are left to the full check, whose message may say where a key
            of an earlier version moved (the families' tables, which import the families).
    Raises:
        ConfigError: the first unknown key, with a suggestion when one is close.
    """

    def refuse(key: str, candidates: list[str], why: str) -> None:
        if light and not difflib.get_close_matches(key, candidates, n=1, cutoff=0.8):
            return
        raise unknown_key_error(key, candidates, why, families=not light)

    roots = [f.name for f in dataclasses.fields(TrainSchema)]
    for key in cfg:
        if key not in roots and key != "hydra":
            refuse(str(key), roots, "not a config group of sgtrain-train")
    for group, schema in _TYPED_GROUPS.items():
        fields = [f.name for f in dataclasses.fields(schema)]
        for key in cfg[group] if group in cfg else ():
            if key not in fields:
                refuse(f"{group}.{key}", [f"{group}.{f}" for f in fields],
                       f"{group} has no such setting (docs/training.md lists them)")


def check_keys(cfg: DictConfig) -> None:
    """Refuse keys nothing reads, whatever added them (a typo, ``+key=``, ``++key=``), naming the nearest valid key.

    Checked: the typed groups (dataset, train, run, trainer, logger) against their dataclasses; every ``_target_``
    node (model.G, model.D, loss, schedule, ...) against the keyword arguments of the class it names; the family's
    top-level ``model.*`` knobs, which must be used by an interpolation (``${model.<key>}``) somewhere; and the
    top-level groups themselves.

    Raises:
        ConfigError: the first unknown key, with a suggestion when one is close.
    """
    check_typed_keys(cfg)
    for group in ("model", "loss", "schedule"):
        if cfg.get(group) is not None:
            _check_target_nodes(cfg[group], group)
    if cfg.get("schedule") is not None and "_target_" not in cfg.schedule:
        from sgtrain.models.family import registered

        progressive = ", ".join(f.name for f in registered().values() if f.progressive)
        raise ConfigError(f"schedule: {sorted(cfg.schedule)} given, but model={cfg.model.get('name')} trains without "
                          f"a progressive schedule (schedule: null); progressive families: {progressive}")
    text = OmegaConf.to_yaml(cfg, resolve=False)
    net_keys = [f"model.{n}.{k}" for n in ("G", "D") if isinstance(cfg.model.get(n), DictConfig) for k in cfg.model[n]]
    for key in cfg.model:
        if key in _MODEL_KEYS or isinstance(cfg.model[key], DictConfig):
            continue
        if not re.search(r"\$\{model\." + re.escape(str(key)) + r"\}", text):
            raise unknown_key_error(f"model.{key}", [f"model.{k}" for k in cfg.model if k != key] + net_keys,
                           "this family's networks do not use it (nothing refers to ${model." + str(key) + "})")
