#!/usr/bin/env python
"""Cost of the training checkpoint per tick: paper256 networks, ticks with and without a checkpoint.

Runs the real ``sgtrain-train`` twice at NVlabs' paper256 settings (StyleGAN2, channel_base 16384, 256x256) on a
tiny packed dataset: once with ``train.ckpt_kimg`` equal to the tick (a full checkpoint - G, G_ema, D, both Adam
states - written with fsync at every tick, as sgtrain did before ``train.ckpt_kimg`` existed), once with the default
cadence (no checkpoint until the end). Prints the median seconds per tick of each (from metrics.jsonl, first tick
excluded), the size of ``last.ckpt`` and the number of checkpoint writes.

    python scripts/bench_ckpt.py --ticks 6 --tick-images 8 [--threads 2]

On a CPU a tick of one iteration (8 images) keeps the run short; the checkpoint's cost per tick is the difference,
independent of the tick length, so it carries over to ticks of 1 kimg.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from sgtrain.training.callbacks import read_jsonl


def _shards(root: Path, res: int = 256, n: int = 32) -> Path:
    from sgtrain.data import pack

    src = root / "imgs"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, [res, res, 3], dtype=np.uint8)).save(src / f"{i}.png")
    pack(str(src), str(root / "shards"), resolution=res, workers=0, progress=False)
    return root / "shards"


def _run(shards: Path, run_dir: Path, ticks: int, tick_images: int, ckpt_kimg: float, threads: int) -> dict:
    tick_kimg = tick_images / 1000
    exe = Path(sys.executable).with_name("sgtrain-train")
    cmd = [str(exe), "experiment=paper256", f"dataset.path={shards}", f"run.dir={run_dir}", "logger=none",
           f"train.batch={tick_images}", f"train.batch_gpu={tick_images}", f"train.tick_kimg={tick_kimg}",
           f"train.kimg={tick_kimg * ticks}", f"train.ckpt_kimg={ckpt_kimg}", "train.ckpt_minutes=null",
           "train.snap_kimg=1000", "train.swd=false", "train.grid=[1,1]", "trainer=cpu", f"trainer.threads={threads}",
           "trainer.progress_bar=false", "run.print_config=false", "dataset.num_workers=0"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    secs = [r["sec_per_tick"] for r in rows[1:]]
    return {"median_sec_per_tick": statistics.median(secs), "ticks": len(rows),
            "ckpt_mb": os.path.getsize(run_dir / "checkpoints" / "last.ckpt") / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ticks", type=int, default=6)
    p.add_argument("--tick-images", type=int, default=8, help="images per tick (one iteration of this batch)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shards = _shards(Path(tmp))
        every = _run(shards, Path(tmp) / "every", args.ticks, args.tick_images, args.tick_images / 1000, args.threads)
        cadence = _run(shards, Path(tmp) / "cadence", args.ticks, args.tick_images, 200.0, args.threads)
    print(f"paper256 on CPU, {args.tick_images} images per tick, {args.ticks} ticks, {args.threads} threads")
    print(f"checkpoint every tick:   {every['median_sec_per_tick']:.2f} s/tick (last.ckpt {every['ckpt_mb']:.0f} MB)")
    print(f"train.ckpt_kimg=200:     {cadence['median_sec_per_tick']:.2f} s/tick (one checkpoint, at the end)")
    print(f"checkpoint cost per tick: {every['median_sec_per_tick'] - cadence['median_sec_per_tick']:.2f} s")


if __name__ == "__main__":
    main()
