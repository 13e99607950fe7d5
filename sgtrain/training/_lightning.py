"""Every private Lightning API sgtrain relies on, in one place.

sgtrain needs a few of Lightning's internals: the subprocess launcher (to start DDP children with the current Hydra
job's overrides, :mod:`sgtrain.training.ddp`), the DDP strategy's launcher and model-setup hooks (to run without the
DistributedDataParallel wrapper), and the TQDM bar object of the progress-bar callback (to print status lines above
it), and WandbLogger's ``wandb.init`` arguments (to drop one that makes wandb warn at every run). They are imported or
read only here; :func:`check_private_api` states each one, and
``tests/test_lightning_api.py`` calls it, so that a Lightning release that renames or removes one fails loudly in the
test suite instead of silently at a user's first DDP run. pyproject.toml pins Lightning to the tested range.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

__all__ = ["SubprocessScriptLauncher", "check_private_api", "drop_wandb_anonymous", "train_progress_bar"]

#: Lightning's launcher that starts ranks 1..n-1 as subprocesses (private: ``_SubprocessScriptLauncher``).
SubprocessScriptLauncher = _SubprocessScriptLauncher


def train_progress_bar(bar: Any) -> Any:
    """The tqdm object of a TQDMProgressBar callback's training bar, or None (``bar._train_progress_bar``)."""
    return getattr(bar, "_train_progress_bar", None)


def drop_wandb_anonymous(logger: Any) -> None:
    """Remove the ``anonymous`` argument WandbLogger always passes to ``wandb.init`` (``logger._wandb_init``):
    recent wandb prints "The anonymous setting has no effect" at every run for it, even when it is None."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)


def check_private_api() -> list[str]:
    """The private names sgtrain uses that this Lightning version lacks (empty when all are there).

    Checked: ``_SubprocessScriptLauncher`` with ``_call_children_scripts`` / ``_check_can_spawn_children`` and the
    attributes it reads; ``DDPStrategy._configure_launcher`` / ``_setup_model`` / ``configure_ddp`` and the fields
    ``_start_method`` / ``_launcher`` they use; ``TQDMProgressBar._train_progress_bar``.
    """
    missing = []
    for name in ("_call_children_scripts", "_check_can_spawn_children"):
        if not callable(getattr(_SubprocessScriptLauncher, name, None)):
            missing.append(f"_SubprocessScriptLauncher.{name}")
    init = inspect.signature(_SubprocessScriptLauncher.__init__).parameters
    for name in ("cluster_environment", "num_processes", "num_nodes"):
        if name not in init:
            missing.append(f"_SubprocessScriptLauncher({name}=...)")
    for name in ("_configure_launcher", "_setup_model", "configure_ddp"):
        if not callable(getattr(DDPStrategy, name, None)):
            missing.append(f"DDPStrategy.{name}")
    strategy = DDPStrategy()
    for name in ("_start_method", "_launcher"):
        if not hasattr(strategy, name):
            missing.append(f"DDPStrategy().{name}")
    if not hasattr(TQDMProgressBar(), "_train_progress_bar"):
        missing.append("TQDMProgressBar()._train_progress_bar")
    from lightning.pytorch.loggers import WandbLogger

    if "_wandb_init" not in inspect.getsource(WandbLogger.__init__):
        missing.append("WandbLogger._wandb_init")
    return missing


LIGHTNING_VERSION = lightning.__version__
