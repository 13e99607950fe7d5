#!/usr/bin/env python
"""Seconds per kimg of a short quickstart-like training beside a competing CPU-bound process, for each thread policy.

Issue 30: on a 2-core machine with other work, torch's default thread count (one per core of the machine) made the
quickstart 5-6x slower than ``trainer.threads=1``. This runs ``sgtrain-train experiment=quickstart`` (or the
``--experiment`` given, with any ``key=value`` overrides) for ``--kimg`` kimg under each policy:

* ``policy``: ``trainer.threads=null``, sgtrain's thread policy (sgtrain.training.threads: the cores free to the
  process minus its loader workers);
* ``torch``: torch's own default, one thread per core of the machine (``trainer.threads=<os.cpu_count()>``), the
  behaviour before the policy;
* ``N`` for each N of ``--threads``: ``trainer.threads=N`` (left out where it equals torch's default).

While each run trains, ``--competitors`` busy-loop processes (pure Python, one core each) run beside it; they are
started before and stopped after every run. The policies are run in alternating order over ``--rounds`` rounds, so a
load that drifts hits them alike. Each run's s/kimg is taken from its ``metrics.jsonl`` between the end of its first
tick (start-up and warm-up excluded) and its last tick; the table gives the median over the rounds and the ratio to
the best. The load average (``os.getloadavg``) before and after is printed: on a machine shared with other work the
figures are not those of a quiet machine.

``OMP_NUM_THREADS`` is removed from the children's environment (the policy respects it when it is set).

Examples::

    python scripts/bench_threads.py --data data/smileys                      # the quickstart's data, 3 kimg each
    python scripts/bench_threads.py --data data/smileys --threads 1,2 --rounds 3 --competitors 1
    python scripts/bench_threads.py --data data/smileys --competitors 0      # a quiet machine, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "while True:\n    pass\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="extra sgtrain-train overrides (key=value)")
    p.add_argument("--data", default=None, help="packed shards (default: 100 synthetic 32x32 images in a temp dir)")
    p.add_argument("--experiment", default="quickstart", help="sgtrain-train experiment= (default quickstart)")
    p.add_argument("--kimg", type=float, default=3.0, help="kimg trained per run (default 3)")
    p.add_argument("--tick", type=float, default=0.5, help="train.tick_kimg (default 0.5)")
    p.add_argument("--threads", default="1,2", help="comma-separated trainer.threads settings to try (default 1,2)")
    p.add_argument("--competitors", type=int, default=1, help="busy-loop processes beside each run (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="rounds over all policies, alternating order (default 2)")
    p.add_argument("--workdir", default=None, help="directory of the runs (default: a temp dir, removed)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed per run (default 3600)")
    return p


def _train_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("sgtrain-train")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sgtrain.cli.train"]


def _synthetic_shards(root: Path, n: int = 100, res: int = 32) -> str:
    import numpy as np
    from PIL import Image

    from sgtrain.data import pack

    src = root / "imgs"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:res, :res]
    for i in range(n):
        a = np.zeros((res, res, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
        r = rng.integers(res // 5, res // 2)
        a[(yy - res // 2) ** 2 + (xx - res // 2) ** 2 < r * r] = rng.integers(0, 255, 3, dtype=np.uint8)
        Image.fromarray(a).save(src / f"{i:03d}.png")
    pack(str(src), str(root / "shards"), resolution=res, workers=0, progress=False)
    return str(root / "shards")


def _sec_per_kimg(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if len(rows) < 2:
        raise RuntimeError(f"{run_dir}: fewer than 2 ticks in metrics.jsonl; raise --kimg or lower --tick")
    first, last = rows[0], rows[-1]
    return (last["time_s"] - first["time_s"]) / (last["kimg"] - first["kimg"])


def _run(policy: str, threads: int | None, args: argparse.Namespace, data: str, run_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    cmd = [*_train_cmd(), f"experiment={args.experiment}", f"dataset.path={data}", f"run.dir={run_dir}",
           f"train.kimg={args.kimg}", f"train.tick_kimg={args.tick}", "train.snap_kimg=100000", "train.swd=false",
           f"train.ckpt_kimg={args.kimg}", "logger=none", "trainer.progress_bar=false", "run.print_config=false",
           f"trainer.threads={'null' if threads is None else threads}", *args.overrides]
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.competitors)]
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    finally:
        for b in busy:
            b.send_signal(signal.SIGKILL)
            b.wait()
    if res.returncode != 0:
        raise RuntimeError(f"{policy}: sgtrain-train exited {res.returncode}:\n{(res.stdout + res.stderr)[-3000:]}")
    m = re.search(r"intra-op threads: (\d+)", res.stdout)
    used = m.group(1) if m else "?"
    return {"policy": policy, "threads": used, "sec_per_kimg": _sec_per_kimg(run_dir)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_threads-"))
    work = Path(args.workdir) if args.workdir else tmp
    try:
        data = args.data or _synthetic_shards(tmp / "data")
        policies: list[tuple[str, int | None]] = [("policy", None), ("torch", os.cpu_count() or 1)]
        wanted = dict.fromkeys(int(n) for n in args.threads.split(",") if n.strip())
        policies += [(f"threads={n}", n) for n in wanted if n != policies[1][1]]  # torch's default is there already
        load0 = os.getloadavg()
        print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; {os.cpu_count()} cores in the "
              f"machine, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} free to this "
              f"process; {args.competitors} competing busy-loop process(es)", flush=True)
        results: dict[str, list[dict]] = {name: [] for name, _ in policies}
        for r in range(args.rounds):
            order = policies if r % 2 == 0 else policies[::-1]
            for name, threads in order:
                run_dir = work / f"{name.replace('=', '')}-r{r}"
                shutil.rmtree(run_dir, ignore_errors=True)
                t0 = time.time()
                res = _run(name, threads, args, data, run_dir)
                results[name].append(res)
                print(f"round {r} {name:<10s} {res['threads']:>3s} threads  {res['sec_per_kimg']:8.1f} s/kimg  "
                      f"({time.time() - t0:.0f} s)", flush=True)
        load1 = os.getloadavg()
        med = {name: statistics.median(x["sec_per_kimg"] for x in rs) for name, rs in results.items()}
        best = min(med.values())
        print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
        print(f"{'policy':<10s} {'threads':>7s} {'s/kimg':>9s} {'vs best':>8s}")
        for name, _ in policies:
            print(f"{name:<10s} {results[name][0]['threads']:>7s} {med[name]:9.1f} {med[name] / best:8.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"median_sec_per_kimg": med, "runs": results, "load_before": load0,
                                                   "load_after": load1, "competitors": args.competitors,
                                                   "kimg": args.kimg, "experiment": args.experiment}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
