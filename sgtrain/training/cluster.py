"""Cluster support: SLURM detection, checkpoint-and-requeue on signals, clean sweeps, exact-resume RNG helpers.

The rest of the cluster story lives with the run itself (sgtrain.training.run, .ddp, .callbacks): the run directory
(``run.dir``, no timestamp; sweep jobs in ``<run.dir>/<their overrides>``), skipping finished runs
(``checkpoints/last.json`` ``done``), the wandb id kept in the run directory, and the DDP launcher that starts a sweep
job's children with that job's overrides only. This module adds (decisions written up in docs/cluster.md):

* **SLURM detection** (:func:`slurm_info`): the job id that ``scontrol requeue`` needs (array jobs included), the
  task's rank and the restart count. :func:`cluster_plugins` gives Lightning a ``SLURMEnvironment`` with
  ``auto_requeue=False``: Lightning's own requeue handler saves an ``hpc_ckpt_N.ckpt`` from inside the signal
  handler, in the middle of a training step, into ``default_root_dir``; such a checkpoint cannot resume exactly and
  is not where sgtrain looks. :class:`RequeueOnSignal` replaces it.
* **Requeue** (:class:`RequeueOnSignal`): a signal only sets a flag. Every few iterations (every iteration in a
  single process) the ranks agree on the flag (one all-reduce of one integer); once set, the run saves
  ``checkpoints/last.ckpt`` (atomically, through the trainer's checkpoint IO), rank 0 runs
  ``scontrol requeue <job>`` for the requeue signals (SIGUSR1 from ``sbatch --signal=USR1@90``, SIGUSR2 from
  submitit) and the trainer stops. SIGTERM (preemption, ``scancel``, the
  end of the time limit) saves and stops without requeueing: a preempting SLURM requeues the job itself, and
  ``scancel`` means stop. SIGINT (Ctrl-C) does as SIGTERM; a second Ctrl-C aborts at once without saving.
* **Local sweeps with DDP** (:func:`ddp_job_scope`): between the jobs of ``sgtrain-train -m ... trainer=ddp`` it
  destroys the process group and removes the environment variables Lightning's launcher left in the parent
  (without it the second job finds the first job's process group still initialised and fails with "Connection
  closed by peer"; a ``LOCAL_RANK`` left behind would make it believe its processes were started externally).
* **Sweep job directories** (:func:`job_dirname`, resolver ``sgtrain_job_dirname``): Hydra's ``override_dirname``
  made safe and short (paths and dozens of overrides otherwise give nested directories or "File name too long").
* **RNG state for exact resume** (:func:`capture_rng_state`, :func:`restore_rng_state`, :func:`gather_rng_states`):
  the global torch (CPU and CUDA), numpy and python RNG states as tensors, lists and numbers only, so that a
  checkpoint holding them still loads with ``torch.load(weights_only=True)`` (torch's default since 2.6; numpy arrays
  in a checkpoint make it fail).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .sweep import job_dirname, register_resolvers  # noqa: F401 - part of this module's API

log = logging.getLogger(__name__)

#: Environment variables Lightning's subprocess launcher sets in the parent process.
_LIGHTNING_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


# --------------------------------------------------------------------------------------------------------------------
# SLURM environment


@dataclass(frozen=True)
class SlurmInfo:
    """What a process learns from the SLURM environment variables of its job step.

    Attributes:
        job_id: ``SLURM_JOB_ID``; unchanged when the job is requeued.
        array_job_id: ``SLURM_ARRAY_JOB_ID`` or None outside job arrays.
        array_task_id: ``SLURM_ARRAY_TASK_ID`` or None outside job arrays.
        restart_count: ``SLURM_RESTART_COUNT``, 0 on the first start, +1 for every requeue.
        procid: global rank of this task (``SLURM_PROCID``), 0 when not started by srun.
        ntasks: number of tasks of the job (``SLURM_NTASKS``), 1 when unknown.
        localid: rank of this task on its node (``SLURM_LOCALID``).
        nodeid: index of this node in the allocation (``SLURM_NODEID``).
        nnodes: number of nodes (``SLURM_JOB_NUM_NODES`` / ``SLURM_NNODES``).
        job_name: ``SLURM_JOB_NAME``.
    """

    job_id: str
    array_job_id: str | None
    array_task_id: str | None
    restart_count: int
    procid: int
    ntasks: int
    localid: int
    nodeid: int
    nnodes: int
    job_name: str

    @property
    def requeue_id(self) -> str:
        """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else the job id."""
        if self.array_job_id and self.array_task_id:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.job_id

    @property
    def stable_name(self) -> str:
        """A name for this job that survives requeues: ``<array job>_<task>`` or the job id (for run dirs)."""
        return self.requeue_id


def slurm_info(env: Mapping[str, str] | None = None) -> SlurmInfo | None:
    """Read the SLURM job environment, or None when this process is not inside a SLURM job.

    Args:
        env: the environment to read (default ``os.environ``).
    """
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        return None

    def _int(key: str, default: int, *alts: str) -> int:
        for k in (key, *alts):
            v = env.get(k)
            if v:
                m = re.match(r"\d+", v)
                if m:
                    return int(m.group(0))
        return default

    return SlurmInfo(
        job_id=job_id,
        array_job_id=env.get("SLURM_ARRAY_JOB_ID") or None,
        array_task_id=env.get("SLURM_ARRAY_TASK_ID") or None,
        restart_count=_int("SLURM_RESTART_COUNT", 0),
        procid=_int("SLURM_PROCID", 0),
        ntasks=_int("SLURM_NTASKS", 1, "SLURM_NPROCS"),
        localid=_int("SLURM_LOCALID", 0),
        nodeid=_int("SLURM_NODEID", 0),
        nnodes=_int("SLURM_JOB_NUM_NODES", 1, "SLURM_NNODES"),
        job_name=env.get("SLURM_JOB_NAME", ""),
    )


def env_global_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank as the launchers tell it, before any process group exists.

    ``RANK`` (torchrun, Lightning's children get ``LOCAL_RANK``/``NODE_RANK``), else ``SLURM_PROCID`` inside a
    multi-task SLURM step (srun starts the ranks: neither ``RANK`` nor ``LOCAL_RANK`` is set there), else
    ``LOCAL_RANK`` (+ ``NODE_RANK`` x ``WORLD_SIZE``/nodes is not knowable here: a non-zero NODE_RANK gives 1), else 0.
    Use it for "only rank 0 writes" decisions made before ``Trainer.fit``.
    """
    env = os.environ if env is None else env
    if env.get("RANK", "").isdigit():
        return int(env["RANK"])
    info = slurm_info(env)
    if info is not None and info.ntasks > 1 and "SLURM_PROCID" in env:
        return info.procid
    local = int(env["LOCAL_RANK"]) if env.get("LOCAL_RANK", "").isdigit() else 0
    node = int(env["NODE_RANK"]) if env.get("NODE_RANK", "").isdigit() else 0
    return local if node == 0 else max(1, local)


def cluster_plugins(env: Mapping[str, str] | None = None) -> list[Any]:
    """Lightning ``plugins=`` entries for the cluster this process runs on.

    Inside a SLURM job whose tasks are the ranks (``srun``, one task per device), returns
    ``[SLURMEnvironment(auto_requeue=False)]`` so that Lightning takes ranks and the master address from SLURM but
    leaves the requeue to :class:`RequeueOnSignal`. Outside SLURM, or in an interactive allocation (where Lightning
    itself refuses SLURM mode), returns ``[]`` and Lightning picks its default environment.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment

    env = os.environ if env is None else env
    if slurm_info(env) is None:
        return []
    if env.get("SLURM_JOB_NAME") in ("bash", "interactive") or "SLURM_NTASKS" not in env:
        return []
    return [SLURMEnvironment(auto_requeue=False)]


def requeue_slurm_job(info: SlurmInfo | None = None, timeout_s: float = 60.0) -> bool:
    """Run ``scontrol requeue`` on the current SLURM job. Returns True on success, False (with a warning) otherwise.

    The job keeps its id; SLURM stops it and puts it back in the queue, and ``SLURM_RESTART_COUNT`` goes up by one.
    The job must be requeueable (``sbatch --requeue``, or the cluster's default ``JobRequeue=1``).
    """
    info = slurm_info() if info is None else info
    if info is None:
        log.warning("requeue asked for, but this process is not in a SLURM job (no SLURM_JOB_ID); not requeued")
        return False
    job = info.requeue_id
    if not re.fullmatch(r"[0-9_]+", job):
        log.warning("unexpected SLURM job id %r; not requeued", job)
        return False
    try:
        res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("scontrol requeue %s failed: %s", job, e)
        return False
    if res.returncode != 0:
        log.warning("scontrol requeue %s failed (exit %d): %s", job, res.returncode, res.stderr.strip())
        return False
    log.info("requeued SLURM job %s", job)
    return True


# --------------------------------------------------------------------------------------------------------------------
# Local sweeps with DDP: clean state between the jobs of one process


@contextlib.contextmanager
def ddp_job_scope() -> Iterator[None]:
    """Run one Hydra job's training so that the next job of a local sweep starts clean.

    On exit: destroys the default ``torch.distributed`` process group if one was created, and restores the
    environment variables Lightning's launcher sets in the parent (``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``,
    ``LOCAL_RANK``, ``WORLD_SIZE``) to their values before the job. Without it the second job of a ``-m`` sweep with
    ``strategy=ddp`` finds the first job's process group still initialised (its peers are gone) and fails with
    "Connection closed by peer"; a ``LOCAL_RANK`` left behind would make it believe its processes were started
    externally.
    """
    saved = {k: os.environ.get(k) for k in _LIGHTNING_DDP_ENV}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            with contextlib.suppress(Exception):
                torch.distributed.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------------------------------------------------
# RNG state: capture/restore and per-step seeding


def capture_rng_state() -> dict[str, Any]:
    """The state of every global random number generator of this process.

    Returns:
        ``{"torch": uint8 tensor, "cuda": [uint8 tensor per device] (only when CUDA is initialised),
        "numpy": [name, int64 tensor [624], pos, has_gauss, cached_gaussian], "python": [version, [625 ints], gauss]}``
        made only of tensors, lists and numbers, so that it loads with ``torch.load(weights_only=True)``.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(np_state[0]), torch.from_numpy(np_state[1].astype(np.int64)), *map(_py_num, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_num(x: Any) -> int | float:
    return x.item() if hasattr(x, "item") else x


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states :func:`capture_rng_state` returned. Missing entries are left alone.

    CUDA states are restored when CUDA is available and the number of devices matches; otherwise skipped with a
    warning (a run resumed on another GPU count cannot be exact anyway).
    """
    if "torch" in state:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "numpy" in state:
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(torch.as_tensor(keys).numpy(), dtype=np.uint32), *rest))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(int(v) for v in internal), gauss))
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda_states])
        else:
            log.warning(
                "checkpoint has CUDA RNG states for %d devices, this process sees %d; CUDA RNG not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, indexed by global rank (``all_gather_object``; a collective: all ranks call it).

    For per-rank state a checkpoint must hold, such as the RNG states or the path-length mean ``pl_mean``, which
    each rank updates from its own samples (NVlabs does not average it across ranks). Without an initialised process
    group returns ``[obj]``.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's :func:`capture_rng_state`, indexed by global rank (a collective: call on all ranks together).

    Without an initialised process group returns ``[capture_rng_state()]``.
    """
    return gather_objects(capture_rng_state())


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed for training step ``step`` of global rank ``rank`` in a run seeded with ``seed``.

    Distinct triples give independent streams (numpy ``SeedSequence`` hashing), so ranks draw different latents and
    consecutive steps do not overlap.
    """
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(rank), int(step)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def seed_all(seed: int) -> None:
    """Seed the global torch (CPU and every CUDA device), numpy and python RNGs from one integer (>= 0)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


try:  # Lightning is a dependency; keep the helpers above importable without it.
    from lightning.pytorch.callbacks import Callback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object  # type: ignore[misc,assignment]


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint-and-requeue on signals

_REQUEUE, _STOP = 2, 1


def save_checkpoint(trainer: Any, path: str | os.PathLike) -> None:
    """``trainer.save_checkpoint(path)``; call on every rank (it synchronises; rank 0 writes).

    Atomic when the trainer's checkpoint IO is (sgtrain's ``AtomicCheckpointIO``: temporary file, fsync, rename).
    """
    if trainer.is_global_zero:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(str(path))


class RequeueOnSignal(_Callback):
    """Checkpoint at a step boundary on SIGUSR1/SIGUSR2/SIGTERM/SIGINT, requeue the SLURM job on SIGUSR1/2, stop.

    The handlers are installed in ``on_train_start`` (after Lightning's own, which they replace for these signals:
    Lightning's SIGTERM handler would broadcast from inside the handler and end the fit with an exception; for
    SIGINT Python's KeyboardInterrupt reaches Lightning, which shuts down without saving and exits 1) and
    restored at ``teardown``. A signal sets a flag only; at the end of an iteration (every ``sync_every`` iterations
    with several processes) all ranks take the maximum of their flags (one all-reduce), so a signal that reached one
    rank stops all of them at the same iteration.
    Then ``save_fn(trainer, ckpt_path)`` runs on every rank, rank 0 calls ``scontrol requeue`` (requeue signals, when
    inside SLURM and ``requeue`` is not False), and ``trainer.should_stop`` is set. ``stopped_by_signal`` tells the
    caller not to mark the run done; :meth:`exit_if_stopped` ends the process with ``128 + signal``.

    Args:
        ckpt_path: where to save (``<run dir>/checkpoints/last.ckpt``).
        save_fn: ``(trainer, path) -> None`` called on every rank; default :func:`save_checkpoint`.
        requeue: requeue on the requeue signals; None = when inside SLURM.
        requeue_signals: signals that mean "time is up, come back later" (sbatch ``--signal=USR1@90``; submitit
            uses USR2).
        stop_signals: signals that mean "stop" (SIGTERM: preemption, scancel, the time limit itself; SIGINT: Ctrl-C,
            where a second one, before the first is served, ends the process at once with 130 and saves nothing).
        sync_every: with several processes, agree on the flag every this many iterations (one all-reduce, a host
            sync); a single process looks at its flag after every iteration at no cost.
    """

    def __init__(
        self,
        ckpt_path: str | os.PathLike,
        save_fn: Callable[[Any, str], None] | None = None,
        requeue: bool | None = None,
        requeue_signals: Sequence[int] = (signal.SIGUSR1, signal.SIGUSR2),
        stop_signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
        sync_every: int = 8,
    ) -> None:
        super().__init__()
        self.sync_every = max(1, int(sync_every))
        self._iterations = 0
        self.ckpt_path = str(ckpt_path)
        self.save_fn = save_fn or save_checkpoint
        self.requeue = requeue
        self.requeue_signals = tuple(requeue_signals)
        self.stop_signals = tuple(stop_signals)
        self.flag = 0
        self.signum: int | None = None
        self.stopped_by_signal = False
        self.requeued = False
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        """``128 + signal number`` after a stop by signal (the shell's convention), else 0."""
        return 128 + int(self.signum) if self.stopped_by_signal and self.signum else 0

    def exit_if_stopped(self) -> None:
        """After ``Trainer.fit``: raise ``SystemExit(exit_code)`` when a signal stopped the run.

        The run is not finished, so it must not look finished: no DONE marker, no "success" result for submitit
        (which writes its result pickle only when the function returns), no next job of a local sweep.
        """
        if self.stopped_by_signal:
            raise SystemExit(self.exit_code)

    # signal plumbing
    def _handler(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:  # a second Ctrl-C: the user will not wait
            with contextlib.suppress(Exception):
                os.write(2, b"sgtrain: second SIGINT; aborting without saving\n")
            os._exit(128 + signal.SIGINT)  # the checkpoint writer is atomic: last.ckpt stays the previous good one
        level = _REQUEUE if signum in self.requeue_signals else _STOP
        self.flag = max(self.flag, level)
        self.signum = self.signum or signum
        # logging from a handler can deadlock on the logging lock; write the note directly
        with contextlib.suppress(Exception):
            again = " (Ctrl-C again to abort without saving)" if signum == signal.SIGINT else ""
            os.write(2, f"sgtrain: received signal {signal.Signals(signum).name}; will checkpoint and stop{again}\n"
                     .encode())

    def _signals(self) -> tuple[int, ...]:
        return (*self.requeue_signals, *self.stop_signals)

    def remember_handlers(self) -> None:
        """Record the current handlers; :meth:`uninstall` puts them back."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.getsignal(s) for s in self._signals()}

    def install(self) -> None:
        """Install the handlers (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if not self._previous:
            self.remember_handlers()
        for s in self._signals():
            signal.signal(s, self._handler)

    def uninstall(self) -> None:
        """Restore the handlers recorded by :meth:`remember_handlers` (at ``setup``, before Lightning's own)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous = {}

    # Lightning hooks: setup runs before Lightning registers its handlers, on_train_start after
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.remember_handlers()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.install()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.uninstall()

    def _agreed_flag(self, trainer: Any) -> int:
        flag = self.flag
        if torch.distributed.is_available() and torch.distributed.is_initialized() and trainer.world_size > 1:
            t = torch.tensor([flag], dtype=torch.int32, device=trainer.strategy.root_device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = int(t.item())
        return flag

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.stopped_by_signal or not getattr(pl_module, "at_iteration_boundary", True):
            return  # only between iterations: a loader batch of an unfinished minibatch would be lost
        self._iterations += 1
        if trainer.world_size > 1 and self._iterations % self.sync_every != 0:
            return
        flag = self._agreed_flag(trainer)
        if flag == 0:
            return
        self.stopped_by_signal = True
        self.save_fn(trainer, self.ckpt_path)
        if trainer.is_global_zero:
            log.warning("signal received: checkpoint saved to %s", self.ckpt_path)
        if self.signum is None:  # the signal reached another rank only
            self.signum = int(signal.SIGUSR1 if flag >= _REQUEUE else signal.SIGTERM)
        want_requeue = flag >= _REQUEUE and (self.requeue if self.requeue is not None else slurm_info() is not None)
        if want_requeue and trainer.is_global_zero:
            self.requeued = requeue_slurm_job()
        trainer.should_stop = True
