"""Hydra multirun sweeps: `sgtrain-train -m loss.r1_gamma=0.5,1 ...` runs each job once, in its own run directory;
a rerun of the same sweep skips finished jobs and resumes unfinished ones; with DDP (2 CPU processes per job) the
children train only their own job, and the second job of the sweep does not wait for children that never come.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _tiny_run import TINY, assert_continuous, env_for_tests, make_shards, read_metrics, slow_steps_args, train_cmd

pytestmark = pytest.mark.slow

KIMG = 0.016  # 4 steps of batch 4
STEP_KIMG = 0.004
KILL_KIMG = 0.032  # 8 steps: room to kill job 1 after 2 steps while the steps take 0.1 s each


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


def _sweep_cmd(shards: Path, sweep_dir: Path, extra: list[str], kimg: float = KIMG) -> list[str]:
    return [*train_cmd(), "-m", *TINY, f"dataset.path={shards}", f"run.dir={sweep_dir}", f"train.kimg={kimg}",
            "loss.r1_gamma=0.5,1", *extra]  # fmt: skip


def _job_dirs(sweep_dir: Path) -> dict[float, Path]:
    """gamma -> run directory of each job found under the sweep directory (read from the run's config.yaml)."""
    import yaml

    out = {}
    for cfg in sweep_dir.rglob("config.yaml"):
        try:
            out[float(yaml.safe_load(cfg.read_text())["loss"]["r1_gamma"])] = cfg.parent
        except (yaml.YAMLError, KeyError, TypeError):  # being written
            continue
    return out


def _run(cmd: list[str], log: Path, timeout: float = 900) -> str:
    with open(log, "wb") as f:
        res = subprocess.run(cmd, env=env_for_tests(), stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    text = log.read_text()
    assert res.returncode == 0, f"sweep failed ({res.returncode}):\n{text[-4000:]}"
    return text


def _done(run_dir: Path, kimg: float = KIMG) -> bool:
    meta = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    return bool(meta["done"]) and abs(meta["kimg"] - kimg) < 1e-9


def test_sweep_runs_each_job_once_and_rerun_skips_or_resumes(shards, tmp_path):
    sweep_dir = tmp_path / "sweep"
    cmd = _sweep_cmd(shards, sweep_dir, ["trainer=cpu"], kimg=KILL_KIMG)

    # first start: job 0 finishes, job 1 is killed after its first checkpoint (step 2 of 8)
    with open(tmp_path / "first.log", "wb") as f:
        env = env_for_tests()  # steps slowed down: the kill must land inside job 1 however fast the machine
        proc = subprocess.Popen([*cmd, *slow_steps_args(env, 0.3)], env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            t0 = time.time()
            while True:
                jobs = _job_dirs(sweep_dir)
                # job 1 has trained a step or two and written its first checkpoint (tick 1: none at tick 0)
                if 1.0 in jobs and (jobs[1.0] / "checkpoints" / "last.json").is_file():
                    break
                assert proc.poll() is None, (
                    "sweep ended before job 1 was killed:\n" + (tmp_path / "first.log").read_text()
                )
                assert time.time() - t0 < 900, "job 1 did not get going"
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    jobs = _job_dirs(sweep_dir)
    assert set(jobs) == {0.5, 1.0} and jobs[0.5] != jobs[1.0], jobs
    # named after what varies between the jobs, not after every override (paths included)
    assert {g: p.relative_to(sweep_dir).as_posix() for g, p in jobs.items()} == {
        0.5: "loss.r1_gamma=0.5", 1.0: "loss.r1_gamma=1"}
    assert _done(jobs[0.5], KILL_KIMG) and not _done(jobs[1.0], KILL_KIMG)

    # rerun of the same sweep: job 0 is skipped, job 1 resumes in its own directory
    text = _run(cmd, tmp_path / "second.log")
    assert text.count("starting from scratch") == 0, text[-3000:]
    assert text.count("is complete") == 1 and text.count("resuming from") == 1, text[-3000:]
    assert _job_dirs(sweep_dir) == jobs, "a rerun must find the same directories"
    for run_dir in jobs.values():
        assert _done(run_dir, KILL_KIMG)
        assert_continuous(read_metrics(run_dir), KILL_KIMG, STEP_KIMG)

    # and once more: nothing to do
    text = _run(cmd, tmp_path / "third.log")
    assert text.count("is complete") == 2 and "resuming from" not in text, text[-3000:]


def test_sweep_with_hydra_job_num_in_run_dir(shards, tmp_path):
    """The habitual Hydra form run.dir=<dir>/${hydra:job.num}: each job trains in <dir>/0, <dir>/1."""
    cmd = [*train_cmd(), "-m", *TINY, f"dataset.path={shards}", f"run.dir={tmp_path}/x/${{hydra:job.num}}",
           f"train.kimg={KIMG}", "loss.r1_gamma=0.5,1", "trainer=cpu"]  # fmt: skip
    text = _run(cmd, tmp_path / "num.log")
    assert "HydraConfig was not set" not in text
    jobs = _job_dirs(tmp_path / "x")
    assert jobs == {0.5: tmp_path / "x" / "0", 1.0: tmp_path / "x" / "1"}, jobs
    for run_dir in jobs.values():
        assert _done(run_dir)
        assert_continuous(read_metrics(run_dir), KIMG, STEP_KIMG)


def test_ddp_sweep_children_run_only_their_job(shards, tmp_path):
    """trainer=ddp with 2 CPU processes per job: 2 jobs, each trained once by its 2 ranks, no re-run of the sweep."""
    sweep_dir = tmp_path / "sweep"
    cmd = _sweep_cmd(shards, sweep_dir, ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"])
    t0 = time.time()
    text = _run(cmd, tmp_path / "ddp.log", timeout=900)
    print(f"DDP sweep of 2 jobs: {time.time() - t0:.0f} s")
    jobs = _job_dirs(sweep_dir)
    assert set(jobs) == {0.5, 1.0}, jobs
    # exactly two trainings started (rank 0 of each job prints it); a child re-running the sweep would add more
    assert text.count("starting from scratch") == 2, text[-4000:]
    assert text.count("All distributed processes registered. Starting with 2 processes") == 2, text[-4000:]
    for run_dir in jobs.values():
        assert _done(run_dir)
        assert_continuous(read_metrics(run_dir), KIMG, STEP_KIMG)
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(dirs) == 2, dirs
