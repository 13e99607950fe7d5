"""Exact resume: a run killed (SIGKILL) at a random step and rerun ends where an uninterrupted run ends.

Both runs are the real ``sgtrain-train`` on CPU with ``trainer.deterministic=true``; each training step is a tick, so
every step writes a metrics line and ``checkpoints/last.ckpt``. Compared: every weight of G, D and G_ema, every Adam
moment, and (single process) every loss term of every step. The tolerance is 0: CPU kernels in deterministic mode are
bitwise reproducible, and a resumed run must redo exactly the same arithmetic.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
from _tiny_run import (
    LOSS_KEYS,
    TINY,
    TINY_FAMILIES,
    assert_continuous,
    env_for_tests,
    load_state,
    make_shards,
    max_abs_diff,
    read_metrics,
    slow_steps_args,
    train_cmd,
    wait_for_lines,
)

pytestmark = pytest.mark.slow

KIMG = 0.032  # 8 steps of batch 4
STEP_KIMG = 0.004


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


def _args(shards: Path, run_dir: Path, extra: list[str]) -> list[str]:
    return [*train_cmd(), *TINY, f"dataset.path={shards}", f"run.dir={run_dir}", f"train.kimg={KIMG}", *extra]


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "ab") as f:
        res = subprocess.run(cmd, env=env_for_tests(), stdout=f, stderr=subprocess.STDOUT, timeout=900)
    assert res.returncode == 0, f"{cmd} failed; see {log}:\n" + log.read_text()[-3000:]


def _run_killed_then_resumed(cmd: list[str], run_dir: Path, kill_after: int) -> None:
    log = run_dir.parent / (run_dir.name + ".log")
    with open(log, "ab") as f:
        env = env_for_tests()  # steps slowed down, so that the kill lands before the run ends on a fast machine
        proc = subprocess.Popen([*cmd, *slow_steps_args(env, 0.3)], env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            wait_for_lines(run_dir, kill_after, proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: DDP children too
            proc.wait()
    n_killed = len(read_metrics(run_dir))
    assert n_killed < round(KIMG / STEP_KIMG), "the run finished before the kill; nothing was resumed"
    _run(cmd, log)


@pytest.mark.parametrize("world", [1, 2], ids=["1proc", "ddp2"])
def test_killed_run_resumes_exactly(shards, tmp_path, world):
    extra = ["trainer=cpu"] if world == 1 else ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    _run(_args(shards, ref_dir, extra), tmp_path / "ref.log")

    n_steps = round(KIMG / STEP_KIMG)
    kill_after = random.Random(os.urandom(8)).randint(1, n_steps - 2)
    print(f"killing after {kill_after} of {n_steps} steps")
    _run_killed_then_resumed(_args(shards, run_dir, extra), run_dir, kill_after)

    ref_rows, rows = read_metrics(ref_dir), read_metrics(run_dir)
    assert_continuous(rows, KIMG, STEP_KIMG)
    if world == 1:
        # same losses, step by step (metrics.jsonl rounds to 6 decimals; the weights below are compared exactly)
        for a, b in zip(ref_rows, rows, strict=True):
            for k in LOSS_KEYS:
                assert (a.get(k), a["kimg"]) == (b.get(k), b["kimg"]), f"{k} differs at kimg {a['kimg']}"
    worst, where = max_abs_diff(
        load_state(ref_dir / "checkpoints" / "last.ckpt"), load_state(run_dir / "checkpoints" / "last.ckpt")
    )
    print(f"largest weight/optimizer difference after resume: {worst:g} ({where})")
    assert worst == 0.0, f"resumed run differs from the uninterrupted one by {worst:g} at {where}"


def test_resume_at_data_epoch_boundary(shards, tmp_path):
    """Resume from the checkpoint of the last step of a data epoch (32 images = 8 batches of 4), by extending a
    finished run: a new DataLoader iterator starts right after that checkpoint, and it must not shift the random
    streams (it draws its base seed from a generator; the global RNG would be consumed otherwise)."""
    n_epoch_kimg = 0.032
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "extended"
    base = [*train_cmd(), *TINY, "trainer=cpu", f"dataset.path={shards}"]
    _run([*base, f"run.dir={ref_dir}", "train.kimg=0.040"], tmp_path / "ref.log")
    _run([*base, f"run.dir={run_dir}", f"train.kimg={n_epoch_kimg}"], tmp_path / "ext.log")
    _run([*base, f"run.dir={run_dir}", "train.kimg=0.040"], tmp_path / "ext.log")
    assert "resuming from" in (tmp_path / "ext.log").read_text()
    ref_rows, rows = read_metrics(ref_dir), read_metrics(run_dir)
    assert [r["kimg"] for r in rows] == [r["kimg"] for r in ref_rows]
    for a, b in zip(ref_rows, rows, strict=True):
        for k in LOSS_KEYS:
            assert a.get(k) == b.get(k), f"{k} differs at kimg {a['kimg']}"
    worst, where = max_abs_diff(
        load_state(ref_dir / "checkpoints" / "last.ckpt"), load_state(run_dir / "checkpoints" / "last.ckpt")
    )
    assert worst == 0.0, f"extended run differs from the uninterrupted one by {worst:g} at {where}"


FAMILY_CASES = [("progan", 1), ("progan", 2), ("stylegan", 1), ("dcgan", 1), ("stylegan3_t", 1), ("ada", 1),
                ("r3gan", 1)]


@pytest.mark.parametrize("family, world", FAMILY_CASES, ids=[f"{f}-{w}proc" for f, w in FAMILY_CASES])
def test_killed_run_of_every_family_resumes_exactly(shards, tmp_path, family, world):
    """SIGKILL at a random tick (for the progressive families inside a fade-in, where lod is fractional), rerun:
    the same kimg, lod, minibatch, loss terms and ADA p at every tick, and bitwise the same weights, optimizer
    moments and buffers (lod, augment p) at the end."""
    model = TINY_FAMILIES["stylegan2" if family == "ada" else family]
    extra = ["augment=ada", "augment.ada_target=0.0", "augment.ada_interval=1", "augment.ada_kimg=0.1"] \
        if family == "ada" else []
    extra += ["trainer=cpu"] if world == 1 else ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    if world == 2:
        model = [*model, "schedule.minibatch_dict={4:8,8:8,16:4}", "train.batch=4"]
    kimg = 0.04
    tiny = [a for a in TINY if not a.startswith("model")]

    def args(run_dir: Path) -> list[str]:
        return [*train_cmd(), *tiny, *model, f"dataset.path={shards}", f"run.dir={run_dir}", f"train.kimg={kimg}",
                *extra]

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    _run(args(ref_dir), tmp_path / "ref.log")
    ref_rows = read_metrics(ref_dir)
    if family in ("progan", "stylegan"):  # lines whose iteration ran inside the 8x8 fade-in
        fading = [i + 1 for i, r in enumerate(ref_rows) if 0 < r["lod"] % 1]
        assert fading, [r["lod"] for r in ref_rows]
        kill_after = random.Random(os.urandom(8)).choice(fading)
    else:
        kill_after = random.Random(os.urandom(8)).randint(1, len(ref_rows) - 2)
    print(f"killing after {kill_after} of {len(ref_rows)} ticks")
    log = tmp_path / "killed.log"
    with open(log, "ab") as f:
        env = env_for_tests()  # steps slowed down, so that the kill lands before the run ends on a fast machine
        proc = subprocess.Popen([*args(run_dir), *slow_steps_args(env, 0.3)], env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_lines(run_dir, kill_after, proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(read_metrics(run_dir)) < len(ref_rows), "the run finished before the kill; nothing was resumed"
    _run(args(run_dir), log)
    rows = read_metrics(run_dir)
    keys = [k for k in ref_rows[-1] if k.startswith(("Loss/", "Progress/"))
            or k in ("lod", "minibatch", "augment_p", "pl_mean")]
    assert [r["kimg"] for r in rows] == [r["kimg"] for r in ref_rows], "kimg not continuous across the kill"
    if world == 1:
        for a, b in zip(ref_rows, rows, strict=True):
            for k in keys:
                assert a.get(k) == b.get(k), f"{k} differs at kimg {a['kimg']}: {a.get(k)} vs {b.get(k)}"
    else:
        assert [r.get("lod") for r in rows] == [r.get("lod") for r in ref_rows]
    worst, where = max_abs_diff(
        load_state(ref_dir / "checkpoints" / "last.ckpt"), load_state(run_dir / "checkpoints" / "last.ckpt")
    )
    assert worst == 0.0, f"resumed run differs from the uninterrupted one by {worst:g} at {where}"
