#!/usr/bin/env python
"""A real training run killed with SIGKILL and rerun: is kimg (and lod) continuous in metrics.jsonl?

Starts ``sgtrain-train`` with the given overrides, waits until metrics.jsonl has a line that matches ``--kill-when``
(``fade``: an iteration inside a fade-in, fractional lod; ``kimg=K``: past K kimg), kills the whole process group
with SIGKILL, reruns the same command (which resumes from the run directory's last checkpoint), and prints the
metrics lines around the kill and whether kimg never repeats or jumps and lod never grows back.

    python scripts/kill_and_resume.py --kill-when fade -- model=progan dataset.path=data/smileys run.dir=runs/pg ...

Exit status 0 when the rerun finished and the lines are continuous, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _rows(run_dir: Path) -> list[dict]:
    from sgtrain.training.callbacks import read_jsonl

    return read_jsonl(run_dir / "metrics.jsonl")


def _hit(rows: list[dict], when: str) -> bool:
    if not rows:
        return False
    if when == "fade":
        return any(0 < r.get("lod", 0) % 1 for r in rows)
    return rows[-1]["kimg"] >= float(when.split("=", 1)[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kill-when", default="fade", help="'fade' or 'kimg=K'")
    p.add_argument("overrides", nargs="+", help="sgtrain-train overrides (run.dir=... required)")
    args = p.parse_args()
    run_dir = Path(next(o.split("=", 1)[1] for o in args.overrides if o.startswith("run.dir=")))
    cmd = [str(Path(sys.executable).with_name("sgtrain-train")), *args.overrides]
    log = open(run_dir.parent / f"{run_dir.name}.log", "ab") if run_dir.parent.exists() else subprocess.DEVNULL
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while not _hit(_rows(run_dir), args.kill_when):
        if proc.poll() is not None:
            print(f"the run ended (exit {proc.returncode}) before '{args.kill_when}'")
            return 1
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _rows(run_dir)
    print(f"killed with SIGKILL after {time.time() - t0:.0f} s at kimg {before[-1]['kimg']}"
          + (f", lod {before[-1]['lod']:.3f}" if "lod" in before[-1] else ""))
    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    rows = _rows(run_dir)
    kimgs = [r["kimg"] for r in rows]
    lods = [r.get("lod") for r in rows]
    n = len(before)
    for r in rows[max(0, n - 4): n + 3]:
        print(f"  tick {r['tick']:>4}  kimg {r['kimg']:>8.3f}" + (f"  lod {r['lod']:.3f}" if "lod" in r else ""))
    ok = rc == 0 and kimgs == sorted(set(kimgs)) and all(
        a >= b for a, b in zip(lods, lods[1:]) if a is not None and b is not None)
    print(f"rerun exit {rc}; {len(rows)} lines, kimg {kimgs[0]} -> {kimgs[-1]}: "
          + ("continuous (no repeat, no jump back; lod never grows)" if ok else "NOT continuous"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
