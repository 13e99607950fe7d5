#!/usr/bin/env python
"""Train several configs for the same wall time, side by side, and compare their SWD against the data.

Each run is ``sgtrain-train`` with the given overrides, one CPU thread and no loader workers, started together (one
core each on a machine with as many free cores as runs). After ``--minutes`` each gets SIGTERM, on which sgtrain
checkpoints and stops; then G_ema of its ``checkpoints/last.ckpt`` is scored by ``sgtrain-metrics swd`` against the
data and renders a grid of fixed seeds with ``sgtrain-generate``. Prints a Markdown table and writes
``OUT/summary.json``. docs/performance.md ("R3GAN beside StyleGAN on the smileys") has the command and the figures.

    python scripts/equal_time.py --minutes 10 --data data/smileys --out runs/equal-time \\
        --run stylegan=experiment=quickstart --run r3gan=experiment=r3gan_quickstart
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    module = {"sgtrain-train": "sgtrain.cli.train", "sgtrain-metrics": "sgtrain.cli.metrics",
              "sgtrain-generate": "sgtrain.cli.generate"}[name]
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


def _parse_run(text: str) -> tuple[str, list[str]]:
    name, sep, overrides = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise argparse.ArgumentTypeError(f"--run {text!r}: use NAME=OVERRIDES, e.g. r3gan=experiment=r3gan_quickstart")
    return name, overrides.split()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", type=_parse_run, required=True, metavar="NAME=OVERRIDES",
                   help="a run: its name and its sgtrain-train overrides (space-separated); repeat for each")
    p.add_argument("--data", required=True, help="shard directory (dataset.path of every run)")
    p.add_argument("--out", required=True, help="folder for the run directories, grids and summary.json")
    p.add_argument("--minutes", type=float, default=10.0, help="wall time of every run (default 10)")
    p.add_argument("--swd-images", type=int, default=512, help="images per set for SWD (default 512)")
    p.add_argument("--grid", default="4x8", help="grid of seeds 0.. rendered from each run (RxC, default 4x8)")
    p.add_argument("--extra", default="", help="overrides added to every run (space-separated)")
    p.add_argument("--score-only", action="store_true", help="score the runs already in --out; train nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true")
    procs = {}
    for name, overrides in args.run:
        if args.score_only:
            procs[name] = (None, None, overrides, out / name)
            continue
        run_dir = out / name
        cmd = [*_tool("sgtrain-train"), *overrides, f"dataset.path={args.data}", f"run.dir={run_dir}",
               "trainer.threads=1", "dataset.num_workers=0", "logger=none", "trainer.progress_bar=false",
               "run.print_config=false", "train.swd=false", "train.kimg=100000", *args.extra.split()]
        log = open(out / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                       log, cmd, run_dir)
    t0 = time.time()
    running = [pr for pr, *_ in procs.values() if pr is not None]
    while running and time.time() - t0 < args.minutes * 60 and any(pr.poll() is None for pr in running):
        time.sleep(1)
    for pr in running:
        if pr.poll() is None:
            pr.send_signal(signal.SIGTERM)
    for pr, log, _cmd, _dir in procs.values():
        if pr is None:
            continue
        try:
            pr.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(pr.pid, signal.SIGKILL)
            pr.wait()
        log.close()
    rows = []
    grid_rc = args.grid.lower().split("x")
    n_seeds = int(grid_rc[0]) * int(grid_rc[1])
    for name, (_pr, _, cmd, run_dir) in procs.items():
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()] \
            if (run_dir / "metrics.jsonl").exists() else []
        if not ckpt.exists() or not lines:
            raise SystemExit(f"equal_time: run {name} wrote no checkpoint (see {out / (name + '.log')})")
        res = subprocess.run([*_tool("sgtrain-metrics"), "swd", "--network", str(ckpt), "--data", args.data,
                              "--num", str(args.swd_images), "--json"], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"equal_time: sgtrain-metrics swd failed for {name}: {res.stderr.strip()[-500:]}")
        swd = json.loads(res.stdout.strip().splitlines()[-1])
        (out / f"{name}-swd.json").write_text(json.dumps(swd, indent=2))
        grid_dir = out / f"{name}-grid"
        res = subprocess.run([*_tool("sgtrain-generate"), "--network", str(ckpt), "--seeds", f"0-{n_seeds - 1}",
                              "--grid", args.grid, "--outdir", str(grid_dir)], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"equal_time: sgtrain-generate failed for {name}: {res.stderr.strip()[-500:]}")
        rows.append(dict(name=name, overrides=cmd, kimg=lines[-1]["kimg"], ticks=len(lines),
                         sec_per_kimg=lines[-1].get("sec_per_kimg"), swd_x1e3=swd["SWDx1e3_avg"],
                         swd_per_level={k: v for k, v in swd.items() if k.startswith("SWDx1e3_")},
                         grid=str(grid_dir / "grid.png")))
    summary = dict(minutes=args.minutes, data=args.data, swd_images=args.swd_images, load=os.getloadavg(), runs=rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"| run | kimg in {args.minutes:g} min | SWD (x1e3, lower is better) | grid |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['kimg']:.2f} | {r['swd_x1e3']:.1f} | {r['grid']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
