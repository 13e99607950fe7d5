"""A real single-node SLURM on localhost: train through sbatch + srun and through Hydra's submitit launcher, force a
requeue in the middle of each run, and check that the run completes its kimg in one run directory with continuous
metrics.

The test starts its own SLURM (Debian's slurm-wlm and munge; installed with apt-get when missing, which needs root):
a munge daemon if none runs, and slurmctld + slurmd with a slurm.conf, state, spool, logs and pid files in a
temporary directory; it stops the daemons it started by their pid files at the end. No accounting (sacct) is needed.
Each training is 2 SLURM tasks = 2 CPU ranks of sgtrain's DDP (gloo), one tick and one checkpoint per step.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _slurm import (
    ensure_installed,
    free_port,
    kill_pid_files,
    restart_count,
    sh,
    slurm_conf,
    start_munge,
    stop_munge,
    tail_logs,
)
from _tiny_run import TINY, assert_continuous, env_for_tests, make_shards, read_metrics, slow_steps_args

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
KIMG = 0.048  # 12 steps of batch 4
STEP_KIMG = 0.004
_sh = sh


class LocalSlurm:
    """slurmctld + slurmd for this host, configured in ``root``; clients need ``env`` (it sets SLURM_CONF)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.started_munged = False

    def start(self) -> None:
        ensure_installed()
        self.started_munged = start_munge()
        self.conf.write_text(slurm_conf(self.root, self.host, [self.host], free_port(), free_port()))
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=self.env, timeout=60)
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True, env=self.env, timeout=60)
        t0 = time.time()
        while time.time() - t0 < 90:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True).stdout
            if out.strip() in ("idle", "mixed", "allocated"):
                return
            time.sleep(1)
        raise AssertionError("the local SLURM node did not become idle:\n" + self.logs())

    def logs(self) -> str:
        return tail_logs(self.root / "log")

    def stop(self) -> None:
        # cancel what is left (a failed test) while the daemons still run, so that no job step outlives them
        jobs = _sh(["squeue", "-h", "-o", "%A"], env=self.env, check=False).split()
        if jobs:
            _sh(["scancel", *sorted(set(jobs))], env=self.env, check=False)
            t0 = time.time()
            while _sh(["squeue", "-h"], env=self.env, check=False).strip() and time.time() - t0 < 90:
                time.sleep(2)
        kill_pid_files([self.root / f"slurmd-{self.host}.pid", self.root / "slurmctld.pid"])
        if self.started_munged:
            stop_munge()
        time.sleep(1)

    # --- clients
    def squeue(self, job: str) -> str:
        """``<job id> <state>`` lines of the job's array tasks (empty once it has left the queue)."""
        return _sh(["squeue", "-h", "-j", job, "-o", "%i %T"], env=self.env, check=False)

    def show(self, job: str) -> str:
        return _sh(["scontrol", "show", "job", job], env=self.env, check=False)

    def wait_gone(self, job: str, timeout: float) -> None:
        t0 = time.time()
        while self.squeue(job).strip():
            if time.time() - t0 > timeout:
                raise AssertionError(f"job {job} still queued after {timeout} s:\n{self.show(job)}\n{self.logs()}")
            time.sleep(2)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    s = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


def _wait_lines(run_dir: Path, n: int, slurm: LocalSlurm, job: str, timeout: float = 600) -> None:
    t0 = time.time()
    while len(read_metrics(run_dir)) < n:
        if time.time() - t0 > timeout:
            raise AssertionError(f"no {n} metrics lines in {run_dir} after {timeout} s:\n{slurm.show(job)}")
        time.sleep(0.5)


def _restart_count(slurm: LocalSlurm, job: str) -> int:
    return restart_count(slurm.show(job))


def _check_run(run_dir: Path) -> None:
    rows = read_metrics(run_dir)
    assert_continuous(rows, KIMG, STEP_KIMG)
    import json

    meta = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    assert meta["done"] and abs(meta["kimg"] - KIMG) < 1e-9, meta
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt")), "Lightning's own requeue handler ran (mid-step hpc checkpoint)"


def test_sbatch_requeue_on_usr1_resumes_in_same_run_dir(slurm, shards, tmp_path):
    """sbatch scripts/slurm/train.sbatch; SIGUSR1 mid-run (what --signal=USR1@90 sends) -> checkpoint, requeue."""
    run_dir = tmp_path / "run"
    env = dict(env_for_tests(), **slurm.env)
    env.update(SGTRAIN_ACCELERATOR="cpu", SGTRAIN_TRAIN=str(Path(sys.executable).with_name("sgtrain-train")))
    env["RUN_DIR"] = str(run_dir)
    slow = slow_steps_args(env, 1.0)  # the signal must land before the 12 steps end, however fast the machine
    out = _sh(
        ["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-node=0",
         f"--output={tmp_path}/slurm-%j.out", "--chdir", str(tmp_path),
         str(REPO / "scripts" / "slurm" / "train.sbatch"), *TINY, f"dataset.path={shards}", f"train.kimg={KIMG}",
         *slow],
        env=env,
    )  # fmt: skip
    job = out.strip().split(";")[0]
    _wait_lines(run_dir, 3, slurm, job)
    _sh(["scancel", "--signal=USR1", job], env=slurm.env)  # to every task of the step, as --signal=USR1@90 does
    slurm.wait_gone(job, timeout=900)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    assert "received signal SIGUSR1" in log, log[-3000:]
    assert "restart 1" in log, "the job was not requeued:\n" + log[-3000:]
    assert log.count("resuming from") >= 1, log[-3000:]
    _check_run(run_dir)


def test_hydra_submitit_launcher_requeue_resumes(slurm, shards, tmp_path):
    """sgtrain-train -m hydra/launcher=slurm (2 tasks); `scontrol requeue` mid-run -> SIGTERM -> save, stop, rerun."""
    import importlib.util

    assert importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher"), "pip install -e '.[slurm]' first"
    sweep_dir = tmp_path / "sweep"
    cmd = [
        str(Path(sys.executable).with_name("sgtrain-train")), "-m", "hydra/launcher=slurm",
        "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=60",
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        *TINY, f"dataset.path={shards}", f"train.kimg={KIMG}", f"run.dir={sweep_dir}", "loss.r1_gamma=1",
    ]  # fmt: skip
    env = dict(env_for_tests(), **slurm.env)
    cmd += slow_steps_args(env, 1.0)  # the requeue must land before the 12 steps end, however fast the machine
    log = open(tmp_path / "launcher.log", "wb")
    launcher = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        t0 = time.time()
        while not list(sweep_dir.glob("*/metrics.jsonl")):
            assert launcher.poll() is None, (tmp_path / "launcher.log").read_text()[-3000:]
            assert time.time() - t0 < 600, "no run directory appeared:\n" + slurm.logs()
            time.sleep(1)
        run_dir = next(sweep_dir.glob("*/metrics.jsonl")).parent
        job = _sh(["squeue", "-h", "-o", "%A"], env=slurm.env).split()[0]
        _wait_lines(run_dir, 3, slurm, job)
        _sh(["scontrol", "requeue", job], env=slurm.env)
        assert launcher.wait(timeout=900) == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    finally:
        if launcher.poll() is None:
            launcher.kill()
        log.close()
    assert _restart_count(slurm, job) == 1, slurm.show(job)
    assert any("loss.r1_gamma=1" in p.read_text() for p in run_dir.rglob("overrides.yaml")), "not the job's dir"
    assert len([p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 1
    _check_run(run_dir)
