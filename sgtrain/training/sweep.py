"""Where the jobs of a sweep (``sgtrain-train -m``) train: directory names and resolvers (light: no torch import).

conf/hydra/default.yaml sets ``hydra.sweep.dir`` and ``hydra.sweep.subdir`` through the resolvers registered here:

- Each job trains in ``<run.dir>/<what varies>``: the overrides of the keys the sweep varies (``loss.r1_gamma=1``,
  ``model=stylegan2_small,loss.r1_gamma=2``), not every override of the command line (paths included). The swept
  keys are read in the sweep's main process, from its command-line overrides (``a=1,2``, ``range()``, ``choice()``,
  ``glob()``) and ``hydra.sweeper.params``; Hydra copies that process's resolver cache into every job's config
  (``ConfigLoader.load_sweep_config``, also under the submitit launcher), which is how a job learns them.
- ``run.dir`` may use Hydra's own job values, as Hydra users habitually write (``run.dir=runs/x/${hydra:job.num}``):
  each job then trains exactly in its resolved ``run.dir`` (``runs/x/0``, ``runs/x/1``, ...), and the sweep's main
  process, which has no job values, uses the part of ``run.dir`` before the first interpolation (``runs/x``).

``sgtrain-train`` registers the resolvers at import time, before Hydra composes anything, and must stay fast to
import (a bad config fails within seconds), so this lives apart from :mod:`sgtrain.training.cluster`.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+@-]+")


def job_dirname(override_dirname: str, max_len: int = 120) -> str:
    """A safe, stable directory name for a sweep job from Hydra's ``hydra.job.override_dirname``.

    Hydra's ``override_dirname`` is every override of the job joined by commas: a path value
    (``dataset.path=/data/x``) makes nested directories, and a dozen overrides exceed the 255-byte limit of a file
    name (``OSError: [Errno 36] File name too long``). Here characters outside ``[A-Za-z0-9._=,+@-]`` become ``_``
    and a name longer than ``max_len`` is cut and ends in ``-`` plus the first 10 hex digits of the SHA-1 of the full
    text, so that different jobs keep different names and the same job (a rerun sweep, a requeued job) finds its
    directory again. The job's full overrides are in ``<dir>/overrides.yaml``.

    Args:
        override_dirname: the value of ``hydra.job.override_dirname``.
        max_len: the longest name returned (<= 255).
    Returns:
        the name; ``"default"`` for an empty one.
    """
    text = str(override_dirname or "")
    name = _UNSAFE.sub("_", text).strip("._") or "default"
    if len(name) > max_len:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        name = name[: max_len - 11].rstrip("._,") + "-" + digest
    return name


def _override_key(override: Any) -> str:
    key = override.key_or_group
    return f"{override.package}@{key}" if getattr(override, "package", None) else key


def swept_keys(overrides: list[str] | None, sweeper_params: dict[str, Any] | None = None) -> list[str]:
    """The keys a sweep varies: overrides with sweep syntax, and the keys of ``hydra.sweeper.params``.

    Args:
        overrides: the sweep's command-line overrides (``hydra.overrides.task`` of its main process), e.g.
            ``["dataset.path=/data/x", "loss.r1_gamma=0.5,1", "model=a,b"]``.
        sweeper_params: ``hydra.sweeper.params`` (key -> sweep text), or None.
    Returns:
        The swept keys, sorted (``["loss.r1_gamma", "model"]``); empty for a single job's overrides.
    Raises:
        hydra.errors.OverrideParseException: an override Hydra itself would refuse.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    keys = {_override_key(o) for o in parser.parse_overrides(list(overrides or [])) if o.is_sweep_override()}
    for key, value in (sweeper_params or {}).items():
        parsed = parser.parse_overrides([f"{key}={value}"])[0]
        if parsed.is_sweep_override():
            keys.add(_override_key(parsed))
    return sorted(keys)


def sweep_job_dirname(overrides: list[str], swept: list[str] | str, override_dirname: str = "") -> str:
    """Directory name of one sweep job: its overrides of the swept keys, made safe by :func:`job_dirname`.

    Args:
        overrides: the job's overrides (``hydra.overrides.task`` of the job: one value per key).
        swept: the sweep's varying keys (:func:`swept_keys`; a comma-separated string is accepted).
        override_dirname: Hydra's ``override_dirname`` of the job, used when no key is swept (a one-job ``-m``).
    Returns:
        e.g. ``"loss.r1_gamma=1"``; jobs of one sweep get different names because each differs from the others in
        a swept key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = set(swept.split(",") if isinstance(swept, str) else swept) - {""}
    if not keys:
        return job_dirname(override_dirname)
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    # key=value as the job's override spells the value; a leading +/~ stays out (key and value tell jobs apart)
    kept = sorted(o.input_line.lstrip("+~") for o in parsed if _override_key(o) in keys)
    return job_dirname(",".join(kept))


def _raw_run_dir(root: Any) -> str | None:
    from omegaconf import OmegaConf

    run = OmegaConf.to_container(root.run, resolve=False) if "run" in root else None
    raw = run.get("dir") if isinstance(run, dict) else None
    return raw if isinstance(raw, str) else None


def _uses_hydra_job_values(raw: str | None) -> bool:
    return raw is not None and "${hydra:" in raw.replace(" ", "")


def _static_prefix(raw: str) -> str:
    """``runs/x/${hydra:job.num}`` -> ``runs/x``: the directory part of run.dir before its first interpolation."""
    head = raw.split("${", 1)[0]
    if head.endswith(("/", os.sep)):
        return head.rstrip("/" + os.sep) or "/"
    return os.path.dirname(head) or "."


def _sweep_dir(_swept: Any, *, _root_: Any) -> str:
    # _swept is only here so that the sweep's main process, which resolves hydra.sweep.dir before it makes the jobs'
    # configs, fills the resolver cache of sgtrain_swept_keys that Hydra then copies into every job's config.
    raw = _raw_run_dir(_root_)
    if _uses_hydra_job_values(raw):
        return _static_prefix(raw)
    return str(_root_.run.dir)


def _sweep_subdir(swept: Any, *, _root_: Any) -> str:
    raw = _raw_run_dir(_root_)
    if _uses_hydra_job_values(raw):
        # os.path.join(hydra.sweep.dir, <absolute path>) is that path: the job trains in its own resolved run.dir
        return os.path.abspath(str(_root_.run.dir))
    from omegaconf import OmegaConf

    hydra = _root_.hydra
    overrides = OmegaConf.to_container(hydra.overrides.task, resolve=False)
    keys = list(swept) if not isinstance(swept, str) else swept
    return sweep_job_dirname(overrides, keys, str(hydra.job.override_dirname))


def _swept_keys_resolver(overrides: Any, params: Any) -> str:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    # resolve=False: an override may hold an interpolation of its own (run.dir=runs/x/${hydra:job.num})
    ov = OmegaConf.to_container(overrides, resolve=False) if isinstance(overrides, ListConfig) else overrides
    pa = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else params
    return ",".join(swept_keys(list(ov or []), pa or None))


def register_resolvers() -> None:
    """Register sgtrain's sweep resolvers (idempotent); call at import time of the Hydra app.

    - ``sgtrain_job_dirname``: :func:`job_dirname` of a string.
    - ``sgtrain_swept_keys``: :func:`swept_keys` of ``hydra.overrides.task`` and ``hydra.sweeper.params``, as a
      comma-separated string; cached, so that jobs see the value of the sweep's main process.
    - ``sgtrain_sweep_dir`` / ``sgtrain_sweep_subdir``: ``hydra.sweep.dir`` and ``hydra.sweep.subdir`` (see the
      module docstring).

    The submitit launcher's job process imports the app too, before Hydra resolves the job's output directory.
    """
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("sgtrain_job_dirname"):
        OmegaConf.register_new_resolver("sgtrain_job_dirname", lambda s: job_dirname(str(s)))
    if not OmegaConf.has_resolver("sgtrain_swept_keys"):
        OmegaConf.register_new_resolver("sgtrain_swept_keys", _swept_keys_resolver, use_cache=True)
    if not OmegaConf.has_resolver("sgtrain_sweep_dir"):
        OmegaConf.register_new_resolver("sgtrain_sweep_dir", _sweep_dir)
    if not OmegaConf.has_resolver("sgtrain_sweep_subdir"):
        OmegaConf.register_new_resolver("sgtrain_sweep_subdir", _sweep_subdir)
