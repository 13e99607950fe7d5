"""The one seam between a GAN family and the framework: the :class:`Family` descriptor and its registry.

A family is one folder (``sgtrain/models/<family>/`` or any importable package of the user's): ``networks.py``
(Generator and Discriminator under the authors' constructor keywords and state_dict keys, with ``init_kwargs``),
``loss.py`` (a :class:`sgtrain.core.loss.GANLoss` subclass: the per-phase math only), the readers of the files it
owns, and ``FAMILY = Family(...)`` in the package's ``__init__.py``. Its ``conf/model/<name>.yaml`` is its
registration: the ``_target_`` of ``model.G`` names the package, the package names its descriptor. The training app,
io's dispatch, the latent tools and the metrics ask the descriptor (:func:`family_of`) and name no family.

Families are found without a list in code: the built-in ones from the yaml files of sgtrain's ``conf/model/``
(:func:`registered`); a family of the user's package when its module is imported (Hydra imports it when the yaml is
composed and instantiated; a script imports it itself), or for the tools, when its top-level package is named in
the ``SGTRAIN_FAMILIES`` environment variable (comma-separated package names: the user's word that the package may
be imported to rebuild a network named in a file; a file alone never makes sgtrain import a module).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Family", "family_of", "family_of_class_path", "refuse_non_square", "registered", "trusted_class",
           "trusted_packages"]

_REGISTRY: dict[str, Family] = {}


def refuse_non_square(cfg: Any, display_name: str, why: str = "its networks are square") -> None:
    """A family's ``check_config`` part for families that build square networks only: refuse W x H data.

    Reads the dataset card of ``cfg.dataset.path`` (nothing to check when it cannot be read: the data checks report
    that themselves).

    Raises:
        sgtrain.errors.ConfigError: the data is not square, naming the fix.
    """
    from omegaconf import OmegaConf

    from sgtrain.errors import ConfigError

    path = OmegaConf.select(cfg, "dataset.path", default=None)
    if path is None or OmegaConf.is_missing(cfg.dataset, "path"):
        return
    from sgtrain.data.card import size_of
    from sgtrain.data.stream import resolve_shards

    try:
        _, card = resolve_shards(str(path))
    except (OSError, ValueError):
        return
    if card is None:
        return
    w, h = size_of(card)
    if w != h:
        raise ConfigError(f"model={OmegaConf.select(cfg, 'model.name', default='?')}: {display_name} cannot train the "
                          f"{w}x{h} data in {path} ({why}): use model=stylegan2 (or stylegan2_small), which builds "
                          f"W x H networks, or repack square (sgtrain-data pack ... --resolution {max(w, h)}, or "
                          f"--resolution {w}x{h} --crop center-crop-wide to pad onto {w}x{w} as NVlabs does)")


@dataclasses.dataclass(frozen=True)
class Family:
    """What the generic layers may ask of a family. One instance, ``FAMILY``, in the family package's ``__init__``.

    Args:
        name: the family's key (``'stylegan2'``), as in ``conf/model/<name>*.yaml``'s ``model.name``.
        display_name: the paper's name for messages and the explorer (``'StyleGAN2'``).
        package: the family package (``__name__`` of the package that defines ``FAMILY``).
        w_space: G has ``mapping(z, c, truncation_psi, truncation_cutoff) -> ws [N, num_ws, w_dim]``, ``synthesis(ws)``,
            ``w_dim``, ``num_ws`` and the buffer ``mapping.w_avg`` (the W-space latent tools need them). False = z only.
        progressive: the networks grow (float32 ``lod`` buffers; a :class:`sgtrain.core.schedule.ProgressiveSchedule`).
        input_transform: G's synthesis input can be translated / rotated (``synthesis.input.transform``,
            StyleGAN3): equivariance metrics, the explorer's translate / rotate controls.
        mapping_layer: format of the names of G's mapping layers, ``i`` from 0 (``'mapping.fc{i}.'``): what
            ``train.freeze_mapping`` freezes; None = G has no mapping layers.
        refused_keys: config keys that mean nothing to this family, refused at compose time naming the key
            (``('loss.pl_weight',)``).
        check_config: ``fn(cfg, per_pass_batches) -> None`` raising :class:`sgtrain.errors.ConfigError` for
            settings this family cannot train with (called once, at validation, with the composed config and the
            per-pass batch of every minibatch the run trains with); None = no extra checks.
        transfer_settings: ``fn(cfg) -> list[str]`` applying the family's own settings for a run that starts from a
            trained network (``train.resume_from``) to ``cfg`` in place and returning what changed; None = none.
        nvlabs_classes: NVlabs-style PyTorch pickle classes this family rebuilds: ``{(class name, required submodule
            class names): 'module:function'}``, the function ``(record, name) -> nn.Module``.
        tf_builds: TensorFlow pickle build functions this family converts (``{'G_main': 'module:function'}``, the
            function ``(record, name) -> nn.Module``).
        pickle_classes: ``nn.Module`` class paths of other programs' plain pickles that this family's
            ``checkpoint_readers`` read; the allow-list unpickler turns them into data records (never imported).
        checkpoint_readers: readers of other programs' checkpoints it owns: ``(probe, load)`` import paths, ``probe(obj)
            -> bool`` on the unpickled object, ``load(obj, path) -> dict`` of networks.
        moved_keys: config keys of earlier sgtrain versions and where this family has them now (for the message
            of an unknown key).

    Raises:
        ValueError: a name that is not a lower-case identifier, or a second family under the same name.
    """

    name: str
    display_name: str
    package: str
    w_space: bool = False
    progressive: bool = False
    input_transform: bool = False
    mapping_layer: str | None = None
    refused_keys: tuple[str, ...] = ()
    check_config: Callable[[Any, list[int]], None] | None = None
    transfer_settings: Callable[[Any], list[str]] | None = None
    nvlabs_classes: Mapping[tuple[str, frozenset[str]], str] = dataclasses.field(default_factory=dict)
    tf_builds: Mapping[str, str] = dataclasses.field(default_factory=dict)
    pickle_classes: frozenset[str] = frozenset()
    checkpoint_readers: tuple[tuple[str, str], ...] = ()
    moved_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise ValueError(f"Family name {self.name!r}: use a lower-case identifier (e.g. 'mygan')")
        old = _REGISTRY.get(self.name)
        if old is not None and old.package != self.package:
            raise ValueError(f"two families are named {self.name!r}: {old.package} and {self.package}; rename one")
        _REGISTRY[self.name] = self

    def mapping_layers(self, G: Any, n: int) -> set[str]:
        """Names of G's parameters in its first ``n`` mapping layers (``train.freeze_mapping``); empty without any."""
        if not self.mapping_layer or n <= 0:
            return set()
        prefixes = tuple(self.mapping_layer.format(i=i) for i in range(int(n)))
        return {name for name, _ in G.named_parameters() if name.startswith(prefixes)}


def resolve(path: str) -> Any:
    """The object at ``'package.module:attr'`` (or ``'package.module.attr'``)."""
    mod, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


def _family_in_module_path(module: str) -> Family | None:
    """The ``FAMILY`` of the nearest package above ``module`` that defines one (imports that package)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
        fam = getattr(mod, "FAMILY", None)
        if isinstance(fam, Family):
            return fam
    return None


def family_of(obj: Any) -> Family | None:
    """The descriptor of a network (an instance or class of a family's Generator / Discriminator), or None for a
    module of no family (a foreign or hand-made ``nn.Module``)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return _family_in_module_path(cls.__module__)


def trusted_packages() -> set[str]:
    """Top-level packages whose modules a network file may name: ``sgtrain``, the packages of every family imported
    so far in this process, and those named in ``SGTRAIN_FAMILIES``."""
    env = {p.strip() for p in os.environ.get("SGTRAIN_FAMILIES", "").replace(":", ",").split(",") if p.strip()}
    return {"sgtrain", *env, *(f.package.split(".")[0] for f in _REGISTRY.values())}


def trusted_class(path: str) -> bool:
    """Whether a class path read from a file (``'mygan.networks.Generator'``) may be imported: a dotted identifier
    path in a trusted package (:func:`trusted_packages`), and inside sgtrain only under ``sgtrain.models``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+", path):
        return False
    top = path.split(".")[0]
    if top == "sgtrain":
        return path.startswith("sgtrain.models.")
    return top in trusted_packages()


def family_of_class_path(path: str) -> Family | None:
    """The descriptor of the family that owns the class at ``path`` (imports its package: check
    :func:`trusted_class` first)."""
    return _family_in_module_path(path.rpartition(".")[0])


@functools.cache
def _builtin_packages() -> tuple[str, ...]:
    """The family packages named by the ``_target_`` of ``model.G`` in sgtrain's own ``conf/model/*.yaml``."""
    conf = Path(next(iter(importlib.import_module("sgtrain.conf").__path__))) / "model"
    pkgs: list[str] = []
    for f in sorted(conf.glob("*.yaml")):
        m = re.search(r"^  G:\s*\n(?:    .*\n)*?    _target_:\s*([\w.]+)", f.read_text(), re.M)
        if m:
            pkg = m.group(1).rsplit(".", 1)[0]
            pkg = pkg[: -len(".networks")] if pkg.endswith(".networks") else pkg
            if pkg not in pkgs:
                pkgs.append(pkg)
    return tuple(pkgs)


def registered() -> dict[str, Family]:
    """Every family known, sorted by name: sgtrain's own (from its ``conf/model/*.yaml``) and those imported so far."""
    for pkg in _builtin_packages():
        if not any(f.package == pkg for f in _REGISTRY.values()):
            importlib.import_module(pkg)
    return dict(sorted(_REGISTRY.items()))
