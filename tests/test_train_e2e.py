"""sgtrain-train end to end on a tiny packed dataset: run directory, resume, kill/resume, DDP on 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _tiny_run import slow_steps_args
from PIL import Image

from sgtrain.training.config import compose

TINY = [
    "model=stylegan2_small", "model.resolution=16", "model.z_dim=16", "model.w_dim=16", "model.channel_base=128",
    "model.channel_max=16", "model.mbstd_group_size=2", "train.batch=4", "train.tick_kimg=0.008",
    "train.ckpt_kimg=0.008",
    "train.swd_images=16", "train.grid=[2,2]", "dataset.num_workers=0", "dataset.shuffle=16", "trainer=cpu",
    "trainer.progress_bar=false", "run.print_config=false",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    """32 coloured discs on white, 16x16, packed with sgtrain-data's packer."""
    from sgtrain.data import pack

    root = tmp_path_factory.mktemp("e2e")
    src = root / "imgs"
    src.mkdir()
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:16, :16]
    for i in range(32):
        img = np.full([16, 16, 3], 255, np.uint8)
        r = rng.uniform(4, 7)
        img[(yy - 7.5) ** 2 + (xx - 7.5) ** 2 < r * r] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(src / f"{i:03d}.png")
    pack(str(src), str(root / "shards"), resolution=16, workers=0, progress=False)
    return str(root / "shards")


def _metrics(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_tiny_run_writes_run_dir_and_resumes(shards, tmp_path):
    from sgtrain.io import load_network
    from sgtrain.training.run import train

    run_dir = str(tmp_path / "run")
    base = TINY + [f"dataset.path={shards}", f"run.dir={run_dir}", "logger=csv", "train.snap_kimg=0.016"]
    out = train(compose(base + ["train.kimg=0.016"]))
    assert out["complete"] and out["kimg"] >= 0.016
    for f in ("config.yaml", "metrics.jsonl", "metric-swd.jsonl", "samples/reals.png", "samples/fakes000000.png",
              "checkpoints/last.ckpt", "checkpoints/last.json", "network-snapshot-000000.safetensors",
              "network-snapshot-000000.json"):
        assert os.path.isfile(os.path.join(run_dir, f)), f
    assert Image.open(os.path.join(run_dir, "samples/reals.png")).size == (32, 32)
    recs = _metrics(run_dir)
    assert [r["tick"] for r in recs] == list(range(len(recs)))
    assert recs[-1]["nimg"] == 16 and recs[0]["nimg"] == 4
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/G/reg", "Loss/D/reg", "img_per_s", "sec_per_kimg",
                "peak_mem_gb"):
        assert any(key in r for r in recs), key
    assert all(np.isfinite(r["Loss/G/loss"]) for r in recs)
    swd = [json.loads(line) for line in open(os.path.join(run_dir, "metric-swd.jsonl"))]
    assert [s["kimg"] for s in swd] == [0.0, 0.016] and all(s["swd"] > 0 for s in swd)
    snap = load_network(os.path.join(run_dir, "network-snapshot-000000.safetensors"))
    assert snap["G_ema"].img_resolution == 16

    ck = torch.load(os.path.join(run_dir, "checkpoints/last.ckpt"), map_location="cpu", weights_only=True)
    assert ck["sgtrain"]["cur_nimg"] == 16 and len(ck["sgtrain"]["rng"]) == 1
    pl_mean = ck["sgtrain"]["pl_mean"]
    assert pl_mean > 0
    assert any(k.startswith("G_ema.") for k in ck["state_dict"]) and len(ck["optimizer_states"]) == 2

    # Rerun with the same run dir: complete, nothing to do.
    assert train(compose(base + ["train.kimg=0.016"]))["complete"]
    assert len(_metrics(run_dir)) == len(recs)
    # Longer: resumes from last.ckpt (kimg, pl_mean, optimizer steps restored) and continues the ticks.
    out = train(compose(base + ["train.kimg=0.032"]))
    assert out["kimg"] == pytest.approx(0.032)
    recs2 = _metrics(run_dir)
    assert [r["nimg"] for r in recs2[: len(recs)]] == [r["nimg"] for r in recs]
    assert [r["tick"] for r in recs2] == list(range(len(recs2)))
    nimg = [r["nimg"] for r in recs2]
    assert nimg == sorted(nimg) and nimg[-1] == 32 and nimg[len(recs)] > 16
    ck2 = torch.load(os.path.join(run_dir, "checkpoints/last.ckpt"), map_location="cpu", weights_only=True)
    adam_steps = [s["state"][0]["step"].item() for s in ck2["optimizer_states"]]
    assert adam_steps[1] > [s["state"][0]["step"].item() for s in ck["optimizer_states"]][1]
    assert ck2["sgtrain"]["pl_mean"] != pl_mean


def test_ddp_gradient_average_once():
    """GANModule._reduce_grads on 2 gloo processes: the mean of the ranks' gradients, applied exactly once."""
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=_reduce_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join(60)
    for grads in results:
        assert grads == pytest.approx([1.5, 1.5, 1.5, 0.0])  # (1 + 2) / 2; a NaN becomes 0


def _reduce_worker(rank: int, world: int, port: int, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from sgtrain.training.module import GANModule

    lin = torch.nn.Linear(3, 1)
    lin.weight.grad = torch.full([1, 3], float(rank + 1))
    lin.bias.grad = torch.tensor([float("nan")])

    class _Fake:
        world = 2

    GANModule._reduce_grads(_Fake(), lin)
    q.put(lin.weight.grad.flatten().tolist() + lin.bias.grad.tolist())
    dist.destroy_process_group()


def _cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "sgtrain.cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_parameters_identical(shards, tmp_path):
    run_dir = str(tmp_path / "ddp")
    p = _cli(TINY + [f"dataset.path={shards}", f"run.dir={run_dir}", "logger=none", "trainer.devices=2",
                     "trainer.strategy=ddp", "train.kimg=0.032", "train.snap_kimg=1", "train.swd=false"])
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 0, out[-3000:]
    recs = _metrics(run_dir)
    assert recs[-1]["nimg"] == 32
    checked = [r["ddp_param_max_diff"] for r in recs if "ddp_param_max_diff" in r]
    assert "ddp_param_max_diff" in recs[-1] and checked == [0.0] * len(checked), checked  # at snapshots and the end
    assert all(np.isfinite(r["Loss/D/loss"]) for r in recs)
    ck = torch.load(os.path.join(run_dir, "checkpoints/last.ckpt"), map_location="cpu", weights_only=True)
    assert len(ck["sgtrain"]["rng"]) == 2 and ck["sgtrain"]["world_size"] == 2


@pytest.mark.slow
def test_sigkill_and_rerun_continues_kimg(shards, tmp_path):
    run_dir = str(tmp_path / "kill")
    args = TINY + [f"dataset.path={shards}", f"run.dir={run_dir}", "logger=wandb", "train.kimg=0.4",
                   "train.snap_kimg=0.1", "train.swd=false"]
    env = dict(os.environ)  # steps slowed down: the kill must land mid-run however fast the machine
    p = _cli(args + slow_steps_args(env, 0.1), env=env)
    last = os.path.join(run_dir, "checkpoints", "last.json")
    t0 = time.time()
    while time.time() - t0 < 600:
        if os.path.exists(last) and json.load(open(last))["cur_nimg"] >= 40:
            break
        time.sleep(0.2)
        assert p.poll() is None, p.stdout.read()[-3000:]
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert zipfile.is_zipfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    wandb_id = open(os.path.join(run_dir, "wandb_id.txt")).read()
    p = _cli(args)
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 0, out[-3000:]
    assert "resuming from" in out
    recs = _metrics(run_dir)
    nimg = [r["nimg"] for r in recs]
    ticks = [r["tick"] for r in recs]
    assert ticks == list(range(len(recs))), ticks
    assert nimg == sorted(set(nimg)) and nimg[-1] == 400
    assert all(b - a <= 8 for a, b in zip(nimg, nimg[1:]))
    assert open(os.path.join(run_dir, "wandb_id.txt")).read() == wandb_id
    for f in os.listdir(os.path.join(run_dir, "checkpoints")):
        if f.endswith(".ckpt"):
            assert zipfile.is_zipfile(os.path.join(run_dir, "checkpoints", f)), f
        assert ".tmp-" not in f and not f.endswith(".tmp"), f  # no temporary of either scheme left


def test_conditional_run_with_gradient_accumulation(tmp_path):
    """Class-labelled shards (two folders) train a conditional G; batch_gpu < batch accumulates gradients."""
    from sgtrain.data import pack
    from sgtrain.io import load_network
    from sgtrain.training.run import train

    rng = np.random.default_rng(2)
    for cls in ("red", "blue"):
        (tmp_path / "src" / cls).mkdir(parents=True)
        for i in range(8):
            img = np.zeros([16, 16, 3], np.uint8)
            img[..., 0 if cls == "red" else 2] = rng.integers(128, 255)
            Image.fromarray(img).save(tmp_path / "src" / cls / f"{i}.png")
    pack(str(tmp_path / "src"), str(tmp_path / "shards"), resolution=16, workers=0, progress=False)
    run_dir = str(tmp_path / "run")
    out = train(compose(TINY + [f"dataset.path={tmp_path / 'shards'}", f"run.dir={run_dir}", "logger=none",
                                "train.batch_gpu=2", "train.kimg=0.008", "train.tick_kimg=0.004",
                                "train.snap_kimg=0.008", "train.swd=false"]))
    assert out["complete"]
    net = load_network(run_dir)
    assert net["G_ema"].c_dim == 2 and net["D"].c_dim == 2
    recs = _metrics(run_dir)
    assert [r["nimg"] for r in recs] == [4, 8] and all(np.isfinite(r["Loss/D/loss"]) for r in recs)


@pytest.mark.slow
def test_sigterm_to_the_whole_job_saves_with_loader_workers(shards, tmp_path):
    """SLURM's time limit and scancel, and `timeout`, signal every process of the job, the loader workers too. The
    workers must not die of it (the run then failed at its next batch with "DataLoader worker ... killed by signal"
    and saved nothing): the run checkpoints at the step the signal reached and exits 128 + SIGTERM."""
    run_dir = str(tmp_path / "group")
    args = TINY + [f"dataset.path={shards}", f"run.dir={run_dir}", "logger=none", "train.kimg=0.4",
                   "train.snap_kimg=1", "train.swd=false", "dataset.num_workers=2"]
    env = dict(os.environ)
    p = _cli(args + slow_steps_args(env, 0.1), env=env, start_new_session=True)
    last = os.path.join(run_dir, "checkpoints", "last.json")
    t0 = time.time()
    while not (os.path.exists(last) and json.load(open(last))["cur_nimg"] >= 16):
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() - t0 < 600
        time.sleep(0.2)
    before = json.load(open(last))["cur_nimg"]
    os.killpg(p.pid, signal.SIGTERM)  # the training process and its two loader workers
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "checkpoint saved" in out and "killed by signal" not in out, out[-3000:]
    meta = json.load(open(last))
    assert not meta["done"] and meta["cur_nimg"] >= before


@pytest.mark.slow
def test_ctrl_c_mid_tick_saves_and_rerun_resumes_there(shards, tmp_path):
    """Ctrl-C (SIGINT to the whole foreground group: the training process and its loader worker) in the middle of a
    tick saves the step it reached and exits 130, without Lightning's "graceful shutdown" that saved nothing; the
    rerun resumes from there, not from the tick's checkpoint before it."""
    run_dir = str(tmp_path / "ctrl-c")
    tick = 16  # images per tick: 4 steps of 4; the tick's own checkpoint is written at its end only
    args = TINY + [f"dataset.path={shards}", f"run.dir={run_dir}", "logger=none", "train.kimg=0.08",
                   f"train.tick_kimg={tick / 1000}", f"train.ckpt_kimg={tick / 1000}", "train.snap_kimg=1",
                   "train.swd=false", "dataset.num_workers=1"]
    env = dict(os.environ)
    p = _cli(args + slow_steps_args(env, 0.3), env=env, start_new_session=True)
    t0 = time.time()
    while len(_metrics(run_dir) if os.path.exists(os.path.join(run_dir, "metrics.jsonl")) else []) < 2:
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() - t0 < 600
        time.sleep(0.05)
    at_tick = _metrics(run_dir)[-1]["nimg"]  # a tick just ended; the next steps are mid-tick (0.3 s each at least)
    time.sleep(0.45)
    os.killpg(p.pid, signal.SIGINT)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 128 + signal.SIGINT, out[-3000:]
    assert "checkpoint saved" in out and "KeyboardInterrupt" not in out and "exited unexpectedly" not in out, out
    saved = torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), map_location="cpu",
                       weights_only=False)["sgtrain"]["cur_nimg"]
    assert at_tick < saved < at_tick + tick, (at_tick, saved)  # mid-tick: the step Ctrl-C reached, not the tick's
    assert not json.load(open(os.path.join(run_dir, "checkpoints", "last.json")))["done"]
    p = _cli(args)
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 0, out[-3000:]
    assert "resuming from" in out
    nimg = [r["nimg"] for r in _metrics(run_dir)]
    assert nimg == sorted(set(nimg)) and nimg[-1] == 80, nimg
    resumed = [n for n in nimg if n > at_tick]
    assert resumed[0] - saved <= tick, (saved, nimg)  # at most one tick on from the Ctrl-C point
