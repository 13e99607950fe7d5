"""Names of sweep job directories: Hydra's ``override_dirname`` made safe and short (light: no torch import).

``sgtrain-train`` registers the resolver at import time, before Hydra composes anything, and must stay fast to
import (a bad config fails within seconds), so this lives apart from :mod:`sgtrain.training.cluster`.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+@-]+")


def job_dirname(override_dirname: str, max_len: int = 120) -> str:
    """A safe, stable directory name for a sweep job from Hydra's ``hydra.job.override_dirname``.

    Hydra's ``override_dirname`` is every override of the job joined by commas: a path value
    (``dataset.path=/data/x``) makes nested directories, and a dozen overrides exceed the 255-byte limit of a file
    name (``OSError: [Errno 36] File name too long``). Here characters outside ``[A-Za-z0-9._=,+@-]`` become ``_``
    and a name longer than ``max_len`` is cut and ends in ``-`` plus the first 10 hex digits of the SHA-1 of the full
    text, so that different jobs keep different names and the same job (a rerun sweep, a requeued job) finds its
    directory again. The job's full overrides are in ``<dir>/.hydra/overrides.yaml``.

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


def register_resolvers() -> None:
    """Register the OmegaConf resolver ``sgtrain_job_dirname`` (:func:`job_dirname`); idempotent.

    For ``hydra.sweep.subdir: ${sgtrain_job_dirname:${hydra.job.override_dirname}}``. Call at import time of the
    Hydra app (the submitit launcher's job process imports it too, before Hydra resolves the job's output directory).
    """
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("sgtrain_job_dirname"):
        OmegaConf.register_new_resolver("sgtrain_job_dirname", lambda s: job_dirname(str(s)))
