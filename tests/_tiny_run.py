"""Helpers shared by the slow cluster tests (resume, sweeps, SLURM): a tiny dataset and a tiny `sgtrain-train`.

Sizes are chosen for a loaded 2-core CPU: 16x16 images, channel_max 16, batch 4, one tick (a metrics line and a
checkpoint) per training step, deterministic kernels, one thread per process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

#: Overrides of a tiny run: each step is a tick (tick_kimg = batch / 1000), so every step writes a metrics.jsonl line
#: and checkpoints/last.ckpt.
TINY = [
    "model=stylegan2_small",
    "model.resolution=16",
    "model.channel_base=512",
    "model.channel_max=16",
    "model.z_dim=16",
    "model.w_dim=16",
    "model.map_layers=1",
    "model.mbstd_group_size=2",
    "train.batch=4",
    "train.tick_kimg=0.004",
    "train.ckpt_kimg=0.004",
    "train.snap_kimg=1000",
    "train.swd=false",
    "train.grid=[2,2]",
    "logger=none",
    "trainer.progress_bar=false",
    "dataset.num_workers=0",
    "run.print_config=false",
    "trainer.deterministic=true",
    "trainer.threads=1",
]

#: Tiny networks of every family at 16x16 (with ``TINY``'s training settings minus the model): the progressive ones grow
#: 4 -> 8 -> 16 with 8 kimg per resolution and 16 kimg fade-ins, minibatch 8 at 4x4 and 8x8 and 4 at 16x16.
PROGRESSIVE = ["schedule.lod_initial_resolution=4", "schedule.lod_training_kimg=0.008",
               "schedule.lod_transition_kimg=0.016", "schedule.minibatch_dict={4:8,8:8,16:4}", "train.batch=4",
               "schedule.minibatch_repeats=2"]
TINY_FAMILIES = {
    "progan": ["model=progan", "model.resolution=16", "model.fmap_base=64", "model.fmap_max=16",
               "model.D.mbstd_group_size=2", *PROGRESSIVE],
    "stylegan": ["model=stylegan", "model.resolution=16", "model.fmap_base=64", "model.fmap_max=16",
                 "model.latent_size=16", "model.dlatent_size=16", "model.mapping_layers=1",
                 "model.D.mbstd_group_size=2", *PROGRESSIVE],
    "dcgan": ["model=dcgan", "model.resolution=16", "model.G.ngf=8", "model.D.ndf=8", "train.batch=4"],
    "stylegan2": ["model=stylegan2_small", "model.resolution=16", "model.z_dim=16", "model.w_dim=16",
                  "model.channel_base=128", "model.channel_max=16", "model.mbstd_group_size=2", "train.batch=4"],
    "stylegan3_t": ["model=stylegan3_t", "model.resolution=16", "model.channel_base=256", "model.channel_max=16",
                    "model.z_dim=16", "model.w_dim=16", "model.map_layers=1", "model.D.channel_base=128",
                    "model.D.channel_max=16", "model.mbstd_group_size=2", "model.num_fp16_res=0",
                    "model.D.num_fp16_res=0", "train.batch=4"],
    # the authors' layout: separate reals for D and G, D's passes of 2 (gradients averaged), every schedule decaying
    "r3gan": ["model=r3gan_small", "model.NoiseDimension=8", "model.WidthPerStage=[16,16,8]",
              "model.CardinalityPerStage=[2,2,1]", "model.BlocksPerStage=[1,1,1]", "train.batch=4", "augment=fixed",
              "train.decay_kimg=0.032", "train.ema_kimg_final=0.01", "augment.p_final=0.5", "train.D_batch_gpu=2"],
}

LOSS_KEYS = ("Loss/G/loss", "Loss/D/loss", "Loss/G/reg", "Loss/D/reg", "pl_mean")


def train_cmd() -> list[str]:
    """``sgtrain-train`` as a command that works from any directory (the console script of this interpreter)."""
    exe = Path(sys.executable).with_name("sgtrain-train")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sgtrain.cli.train"]


def make_shards(root: Path, n: int = 32, res: int = 16) -> Path:
    """Pack ``n`` synthetic ``res`` x ``res`` RGB images (discs on flat backgrounds) into >= 2 shards under root."""
    from PIL import Image

    src = root / "imgs"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:res, :res]
    for i in range(n):
        a = np.zeros((res, res, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
        r = rng.integers(res // 5, res // 2)
        a[(yy - res // 2) ** 2 + (xx - res // 2) ** 2 < r * r] = rng.integers(0, 255, 3, dtype=np.uint8)
        Image.fromarray(a).save(src / f"{i:03d}.png")
    out = root / "shards"
    exe = Path(sys.executable).with_name("sgtrain-data")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sgtrain.cli.data"]
    subprocess.run(
        [*cmd, "pack", str(src), str(out), "--resolution", str(res), "--shard-size", "3KB", "--workers", "1",
         "--no-progress", "--overwrite"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    shutil.rmtree(src)
    return out


def env_for_tests() -> dict[str, str]:
    """The environment of a child training process: offline, one thread, no stray DDP variables."""
    env = dict(os.environ)
    for k in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "RANK", "SGTRAIN_HYDRA_JOB"):
        env.pop(k, None)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
    return env


def read_metrics(run_dir: Path) -> list[dict]:
    """The lines of ``run_dir/metrics.jsonl`` (cut lines skipped)."""
    from sgtrain.training.callbacks import read_jsonl

    return read_jsonl(Path(run_dir) / "metrics.jsonl")


def wait_for_lines(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until ``metrics.jsonl`` has ``n`` lines; fail if ``proc`` ends first or on timeout."""
    t0 = time.time()
    while len(read_metrics(run_dir)) < n:
        if proc.poll() is not None:
            raise AssertionError(f"training ended (exit {proc.returncode}) before {n} metrics lines")
        if time.time() - t0 > timeout:
            raise AssertionError(f"no {n} metrics lines within {timeout} s")
        time.sleep(0.05)


def load_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """Model weights (G, D, G_ema, buffers) and flattened optimizer states of a Lightning checkpoint."""
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    out = {f"model.{k}": v for k, v in ck["state_dict"].items()}
    for i, opt in enumerate(ck.get("optimizer_states", [])):
        for pid, st in opt["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    out[f"opt{i}.{pid}.{k}"] = v
    return out


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str]:
    """Largest absolute difference over the common keys (keys must match) and the key where it occurs."""
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:10]
    worst, where = 0.0, ""
    for k in a:
        d = (a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0
        if d > worst:
            worst, where = d, k
    return worst, where


def assert_continuous(rows: list[dict], total_kimg: float, step_kimg: float) -> None:
    """kimg goes up by one tick per line, without gaps or repeats, and ends at ``total_kimg``."""
    kimgs = [round(r["kimg"], 3) for r in rows]
    assert kimgs == sorted(set(kimgs)), f"kimg repeats or goes back: {kimgs}"
    diffs = {round(b - a, 3) for a, b in zip(kimgs, kimgs[1:])}
    assert diffs <= {round(step_kimg, 3)}, f"kimg gaps: {kimgs}"
    assert abs(kimgs[-1] - total_kimg) < 1e-6, f"ends at {kimgs[-1]} kimg, not {total_kimg}"


class SlowSteps:
    """A Lightning callback (``trainer.callbacks=[{_target_:_tiny_run.SlowSteps,seconds:S}]``) that sleeps S seconds
    after every training step, so that a test killing or signalling a tiny run by its metrics lines is not outrun by
    a fast machine. The child needs ``tests/`` on PYTHONPATH (:func:`slow_steps_args`)."""

    def __new__(cls, seconds: float = 0.5):
        import lightning as L

        class _Slow(L.Callback):
            def on_train_batch_end(self, *args, **kwargs) -> None:
                time.sleep(seconds)

        return _Slow()


def slow_steps_args(env: dict[str, str], seconds: float) -> list[str]:
    """Put ``tests/`` on ``env['PYTHONPATH']``; return the override adding :class:`SlowSteps`."""
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return [f"trainer.callbacks=[{{_target_:_tiny_run.SlowSteps,seconds:{seconds}}}]"]
