"""The CPU thread policy of sgtrain-train (sgtrain.training.threads): cores from affinity and cgroup quota, not
os.cpu_count(); intra-op threads + loader workers fit them."""

from __future__ import annotations

import os

import pytest

from sgtrain.training import threads as th


def _files(tmp_path, v2: str | None = None, v1: tuple[str, str] | None = None) -> tuple[str, str]:
    (tmp_path / "v1").mkdir(parents=True, exist_ok=True)
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2)
    if v1 is not None:
        (tmp_path / "v1" / "cpu.cfs_quota_us").write_text(v1[0])
        (tmp_path / "v1" / "cpu.cfs_period_us").write_text(v1[1])
    return str(tmp_path / "cpu.max"), str(tmp_path / "v1" / "cpu.cfs_quota_us")


def test_cgroup_quota_v2_v1_and_none(tmp_path):
    assert th.cgroup_cpu_limit(_files(tmp_path / "a", v2="150000 100000\n")) == 1.5
    assert th.cgroup_cpu_limit(_files(tmp_path / "b", v2="max 100000\n")) is None
    assert th.cgroup_cpu_limit(_files(tmp_path / "c", v1=("200000", "100000"))) == 2.0
    assert th.cgroup_cpu_limit(_files(tmp_path / "d", v1=("-1", "100000"))) is None
    assert th.cgroup_cpu_limit(_files(tmp_path / "e")) is None  # no files
    assert th.cgroup_cpu_limit(_files(tmp_path / "f", v2="garbage")) is None


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux affinity")
def test_available_cores_is_the_affinity_mask_capped_by_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the machine's count must not be used
    assert th.available_cores(_files(tmp_path / "a")) == 4
    assert th.available_cores(_files(tmp_path / "b", v2="150000 100000")) == 2  # 1.5 cores: 2 threads can run
    assert th.available_cores(_files(tmp_path / "c", v2="50000 100000")) == 1
    assert th.available_cores(_files(tmp_path / "d", v2="800000 100000")) == 4


def test_thread_policy_fits_threads_and_workers_into_the_free_cores():
    env: dict[str, str] = {}
    assert th.thread_policy(None, 1, cores=2, environ=env) == (1, "2 cores free to this process - 1 loader worker")
    assert th.thread_policy(None, 3, cores=16, environ=env)[0] == 13
    assert th.thread_policy(None, 3, processes=2, cores=16, environ=env)[0] == 5  # 8 per rank - 3 workers
    assert th.thread_policy(None, 4, cores=2, environ=env)[0] == 1  # never below one
    assert th.thread_policy(None, 0, cores=1, environ=env) == (1, "1 core free to this process")
    assert th.thread_policy(3, 1, cores=2, environ=env) == (3, "trainer.threads")
    assert th.thread_policy(None, 1, cores=2, environ={"OMP_NUM_THREADS": "2"}) == (None, "OMP_NUM_THREADS=2")


def test_thread_policy_leaves_the_cores_other_work_keeps_busy(tmp_path):
    env: dict[str, str] = {}
    assert th.thread_policy(None, 0, cores=2, idle=2.0, environ=env) == (2, "2 cores free to this process")
    assert th.thread_policy(None, 0, cores=2, idle=1.1, environ=env) == (
        1, "2 cores free to this process, 1 busy with other work")
    assert th.thread_policy(None, 0, cores=16, idle=0.0, environ=env)[0] == 1  # never below one
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\n")
    idle = th.idle_cores(0.0, str(stat))  # the same counters twice: no time passed, nothing measured
    assert idle in (None, 0.0)
    measured = th.idle_cores(0.05)
    assert measured is None or 0.0 <= measured <= len(__import__("os").sched_getaffinity(0)) + 0.01
