"""Data-parallel training of GANs under Lightning: a DDP strategy that does not wrap the module.

Why not Lightning's default DDP: ``DistributedDataParallel`` reduces gradients in backward hooks and expects every
parameter that requires grad to receive one in each forward/backward. A GAN step is four phases (Gmain, Greg, Dmain,
Dreg); each leaves the other network's parameters without gradients, the regularization phases run only every k
iterations, and R1 / path length need double backward. ``find_unused_parameters`` makes every phase pay a graph
traversal and still mis-synchronises phases that skip; ``static_graph`` fails because the graph changes from one
iteration to the next.

What sgtrain does instead (as NVlabs' training loop): the module is not wrapped. Lightning still creates the process
group, sets ranks, moves the module to its device, shards the data and launches the processes; after the module is on
its device all parameters and buffers are broadcast from rank 0; each phase's gradients are flattened, all-reduced
once, divided by the world size and cleaned with nan_to_num (``GANModule._reduce_grads``) before the optimizer step.

The launcher also replaces Lightning's Hydra re-launch: Lightning starts ranks 1..n-1 with the original command line,
which under ``sgtrain-train -m`` (multirun) makes every child run the whole sweep. :class:`GANSubprocessLauncher`
starts the children with the overrides of the current job only, so a sweep job's DDP children train that job.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from ._lightning import SubprocessScriptLauncher


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy every parameter and buffer of ``module`` from rank ``src`` to all ranks (no-op without a group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=src)


def _job_command(local_rank: int) -> tuple[list[str], str | None]:
    """Command line for DDP child ``local_rank``: this Hydra job's own overrides, single-run mode."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "sgtrain.cli.train"]
    for src in hc.runtime.config_sources:
        if src.provider == "command-line" and src.path:
            command += ["--config-dir", src.path.replace("file://", "", 1)]
    if hc.job.config_name and hc.job.config_name != "train":
        command += ["--config-name", hc.job.config_name]
    command += [o for o in hc.overrides.task if not o.startswith(("run.dir=", "hydra.run.dir="))]
    out_dir = os.environ.get("SGTRAIN_RUN_DIR") or hc.runtime.output_dir
    command += [
        f"run.dir='{out_dir}'",
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, os.getcwd()


class GANSubprocessLauncher(SubprocessScriptLauncher):
    """Lightning's subprocess launcher, but children re-run only the current Hydra job (see module docstring)."""

    def _call_children_scripts(self) -> None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return super()._call_children_scripts()
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            env = os.environ.copy()
            env["LOCAL_RANK"] = f"{local_rank}"
            if os.environ.get("PL_GLOBAL_SEED") is None:
                env.pop("PL_GLOBAL_SEED", None)
            command, cwd = _job_command(local_rank)
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))
        return None


class GANDDPStrategy(DDPStrategy):
    """DDPStrategy that never wraps the LightningModule in DistributedDataParallel.

    Parameters and buffers are broadcast from rank 0 once the module is on its device; gradients are averaged by
    the module itself, once per phase (``GANModule._reduce_grads``). Accepts DDPStrategy's arguments
    (``process_group_backend``, ``timeout``, ``start_method``, ...); ``ddp_kwargs`` are ignored since there is no
    DDP wrapper.
    """

    strategy_name = "gan_ddp"

    def _configure_launcher(self) -> None:
        if self._start_method == "popen":
            self._launcher = GANSubprocessLauncher(self.cluster_environment, self.num_processes, self.num_nodes)
        else:
            super()._configure_launcher()

    def configure_ddp(self) -> None:
        # No DistributedDataParallel wrapper: synchronise the initial state instead.
        broadcast_module(self.model)

    def _setup_model(self, model: nn.Module) -> nn.Module:
        return model
