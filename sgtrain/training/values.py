"""Value checks of a composed ``sgtrain-train`` config: the ranges the typed schema cannot express.

Hydra's structured config checks types (``train.kimg=abc`` fails at compose time); :func:`check_values` checks
ranges: finite floats, non-negative lengths and counts, positive learning rates, Adam betas in [0, 1), at least one
device, no negative worker count, a readable ``train.resume_from``. It runs inside
:func:`sgtrain.training.config.validate_config`, i.e. before ``config.yaml``/``overrides.yaml`` or anything else is
written, and raises a one-line :class:`~sgtrain.training.config.ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _devices_ok(v: Any) -> bool:
    if isinstance(v, str):
        s = v.strip()
        if s == "auto" or "," in s:
            return True
        return s.lstrip("-").isdigit() and (int(s) >= 1 or int(s) == -1)
    if isinstance(v, (list, tuple)):
        return len(v) >= 1
    return _num(v) and (int(v) >= 1 or int(v) == -1)


#: (dotted key, test on the resolved value, what is wrong / the fix). ``None`` values (where the schema allows null)
#: pass every rule except the ones marked by name below; missing keys (another model's loss) are skipped.
VALUE_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("train.G_lr", lambda v: v > 0, "must be a positive learning rate (NVlabs: 0.002 or 0.0025)"),
    ("train.D_lr", lambda v: v > 0, "must be a positive learning rate (NVlabs: 0.002 or 0.0025)"),
    ("train.betas", lambda v: len(v) == 2 and all(_num(b) and 0 <= b < 1 for b in v),
     "must be two Adam betas in [0, 1), e.g. train.betas=[0,0.99]"),
    ("train.eps", lambda v: v > 0, "must be a positive Adam epsilon (default 1e-8)"),
    ("train.ema_kimg", lambda v: v >= 0, "must be >= 0 kimg (0 = G_ema follows G; NVlabs: batch * 10 / 32)"),
    ("train.ema_rampup", lambda v: v >= 0, "must be >= 0 or null (no ramp-up)"),
    ("train.keep_ckpts", lambda v: v >= 0, "must be a count >= 0 of kept checkpoints (last.ckpt is always kept)"),
    ("train.G_reg_interval", lambda v: v >= 1, "must be >= 1 iterations, or null (regularize in Gmain)"),
    ("train.D_reg_interval", lambda v: v >= 1, "must be >= 1 iterations, or null (regularize in Dmain)"),
    ("train.swd_images", lambda v: v >= 0, "must be a count >= 0 of images"),
    ("train.resume_kimg", lambda v: v >= 0, "must be >= 0 kimg"),
    ("train.freeze_mapping", lambda v: v >= 0, "must be a count >= 0 of mapping layers"),
    ("train.G_batch_gpu", lambda v: v >= 1, "must be >= 1 images per pass, or null (train.batch_gpu)"),
    ("train.D_batch_gpu", lambda v: v >= 1, "must be >= 1 images per pass, or null (train.batch_gpu)"),
    ("train.decay_kimg", lambda v: v > 0, "must be a positive length in kimg, or null (no cosine decay)"),
    ("train.lr_final", lambda v: v > 0, "must be a positive learning rate, or null (no decay of lr)"),
    ("train.beta2_final", lambda v: 0 <= v < 1, "must be an Adam beta2 in [0, 1), or null (no decay of beta2)"),
    ("train.ema_kimg_final", lambda v: v >= 0, "must be >= 0 kimg, or null (no decay of the EMA half-life)"),
    ("augment.p_final", lambda v: 0 <= v <= 1, "must be a probability in [0, 1], or null (no decay of p)"),
    ("loss.gamma", lambda v: v >= 0, "must be a weight >= 0 of R1 + R2"),
    ("loss.gamma_final", lambda v: v >= 0, "must be a weight >= 0 of R1 + R2, or null (constant gamma)"),
    ("loss.r1_gamma", lambda v: v >= 0, "must be a weight >= 0 (0 = no R1 regularization)"),
    ("loss.pl_weight", lambda v: v >= 0, "must be a weight >= 0 (0 = no path-length regularization)"),
    ("loss.pl_batch_shrink", lambda v: v >= 1, "must be >= 1"),
    ("augment.ada_kimg", lambda v: v > 0, "must be positive kimg (NVlabs: 500)"),
    ("augment.ada_interval", lambda v: v >= 1, "must be >= 1 iterations (NVlabs: 4)"),
    ("trainer.devices", _devices_ok, "must be >= 1 devices per node, -1 (all) or 'auto'"),
    ("trainer.num_nodes", lambda v: v >= 1, "must be >= 1 nodes"),
    ("dataset.num_workers", lambda v: v >= 0, "must be >= 0 worker processes, or null (min(3, cores - 1))"),
    ("dataset.shuffle", lambda v: v >= 0, "must be a shuffle-buffer size >= 0 samples (0 = stream order)"),
]

#: Subtrees whose float leaves must all be finite (nan/inf silently turn a term off or poison the run).
FINITE_ROOTS = ("train", "loss", "augment", "schedule", "dataset")


def _floats(node: Any, prefix: str) -> list[tuple[str, float]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _floats(v, f"{prefix}.{k}")]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _floats(v, f"{prefix}[{i}]")]
    return [(prefix, node)] if isinstance(node, float) else []


def check_values(cfg: DictConfig) -> None:
    """Check the ranges of ``cfg``'s values; raise on the first bad one.

    Args:
        cfg: a composed, resolvable ``sgtrain-train`` config.
    Raises:
        ConfigError: one line naming the key, the value and the fix: a nan/inf float anywhere under train, loss,
            augment, schedule or dataset; a value outside its range in :data:`VALUE_RULES`; a ``train.resume_from``
            that does not exist or cannot be read (URLs are left to the loader).
    """
    from sgtrain.errors import ConfigError

    for root in FINITE_ROOTS:
        node = OmegaConf.select(cfg, root, default=None)
        if not OmegaConf.is_config(node):
            continue
        for key, v in _floats(OmegaConf.to_container(node, resolve=True), root):
            if not math.isfinite(v):
                raise ConfigError(f"{key}={v} must be a finite number: pass {key}=VALUE")
    for key, ok, why in VALUE_RULES:
        v = OmegaConf.select(cfg, key, default=None)
        if v is None:
            continue
        if OmegaConf.is_config(v):
            v = OmegaConf.to_container(v, resolve=True)
        good = False
        try:
            good = bool(ok(v))
        except TypeError:
            pass
        if not good:
            raise ConfigError(f"{key}={v}: {why}")
    src = OmegaConf.select(cfg, "train.resume_from", default=None)
    if src and "://" not in str(src):
        path = os.path.expanduser(str(src))
        if not os.path.exists(path):
            raise ConfigError(f"train.resume_from={src}: no such file or directory; pass a network file (NVlabs pkl, "
                              "portable .safetensors) or a run directory")
        if not os.access(path, os.R_OK) or (os.path.isdir(path) and not os.access(path, os.X_OK)):
            raise ConfigError(f"train.resume_from={src}: not readable (permission denied); fix its permissions or "
                              "copy it somewhere readable")
