#!/usr/bin/env python
"""Does ADA reduce overfitting on a small dataset? StyleGAN2 with and without augment=ada on 1,000 emoji.

Builds two disjoint sets from Noto Color Emoji (the demo font): 1,000 glyphs to train on and 2,000 others held out,
both at --resolution; trains model=stylegan2_small on the 1,000 twice with the same settings and seed, once with
augment=none and once with augment=ada (target 0.6; --ada-kimg sets how fast p may move), and prints for each run:
the ADA statistic r_t = E[sign(D(reals))] per tick (how sure D is of the training images; near 1 = memorised),
the augmentation probability p, and the sliced Wasserstein distance of G_ema's images to the training images and to
the held-out images, and D's scores of training against held-out images (scripts/ada_overfit.py). Overfitting shows as
r_t near 1, D ranking training images above held-out ones, and a growing gap between the two SWDs.

    python scripts/bench_ada.py --out /tmp/ada --kimg 12 --resolution 32 --ada-kimg 20
    python scripts/bench_ada.py --out /tmp/ada --kimg 240 --resolution 32 --ada-kimg 20 --snap-kimg 20  # further
    python scripts/ada_overfit.py --train /tmp/ada/train --held /tmp/ada/heldout --swd /tmp/ada/run-*
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ada_overfit import measure, snapshots  # noqa: E402

from sgtrain.training.callbacks import read_jsonl  # noqa: E402


def _split(out: Path, resolution: int) -> tuple[Path, Path]:
    from sgtrain.data.emoji import find_font, render_glyphs
    from sgtrain.data.pack import pack

    train, held = out / "train", out / "heldout"
    if (train / "dataset.json").exists() and (held / "dataset.json").exists():
        return train, held
    with tempfile.TemporaryDirectory() as tmp:
        render_glyphs(find_font(), tmp)
        files = sorted(os.listdir(tmp))
        for name, part in (("train", files[::3][:1000]), ("heldout", [f for i, f in enumerate(files) if i % 3][:2000])):
            d = Path(tmp) / name
            d.mkdir()
            for f in part:
                os.link(Path(tmp) / f, d / f)
            pack(str(d), str(out / name), resolution, crop="center", resize_filter="lanczos", channels=3,
                 labels="none", allow_upscale=True, overwrite=True, name=f"emoji-{name}", progress=False)
    return train, held


def _train(data: Path, run_dir: Path, kimg: float, snap_kimg: float, extra: list[str], threads: int) -> None:
    exe = Path(sys.executable).with_name("sgtrain-train")
    cmd = [str(exe), "experiment=quickstart_stylegan2", f"dataset.path={data}", f"run.dir={run_dir}",
           f"train.kimg={kimg}", "train.tick_kimg=1", f"train.snap_kimg={snap_kimg}", "train.swd=false", "logger=none",
           "trainer.progress_bar=false", "run.print_config=false", f"trainer.threads={threads}", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def _swd(run_dir: Path, data: Path, num: int) -> float:
    exe = Path(sys.executable).with_name("sgtrain-metrics")
    out = subprocess.run([str(exe), "swd", "--network", str(run_dir), "--data", str(data), "--num", str(num),
                          "--device", "cpu"], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1].split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="working directory (data and runs)")
    p.add_argument("--kimg", type=float, default=12)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--ada-kimg", type=float, default=20, help="augment.ada_kimg (NVlabs 500; small for short runs)")
    p.add_argument("--snap-kimg", type=float, default=None,
                   help="network snapshot every this many kimg (default: at the end only); scripts/ada_overfit.py "
                        "measures every snapshot")
    p.add_argument("--swd-images", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = _split(out, args.resolution)
    runs = {"none": [], "ada": ["augment=ada", f"augment.ada_kimg={args.ada_kimg}"]}
    for name, extra in runs.items():
        run_dir = out / f"run-{name}"
        last = run_dir / "checkpoints" / "last.json"
        meta = json.loads(last.read_text()) if last.exists() else {}
        if not (meta.get("done") and meta.get("kimg", 0) >= args.kimg):  # trains, resumes, or trains further
            _train(train, run_dir, args.kimg, args.snap_kimg or args.kimg, [*extra, "train.ckpt_kimg=1"], args.threads)
        rows = read_jsonl(run_dir / "metrics.jsonl")
        swd_train = _swd(run_dir, train, args.swd_images)
        swd_held = _swd(run_dir, held, args.swd_images)
        print(f"augment={name}: kimg {rows[-1]['kimg']:g}, {rows[-1]['sec_per_kimg']:.0f} s/kimg")
        print("  r_t = E[sign D(reals)] per tick: " + " ".join(f"{r['Loss/signs/real']:.2f}" for r in rows))
        if name == "ada":
            print("  p per tick: " + " ".join(f"{r.get('augment_p', 0):.3f}" for r in rows))
        print(f"  SWD x1e3 to the training images {swd_train:.2f}, to held-out images {swd_held:.2f}")
        snaps = snapshots(run_dir)
        if snaps:  # D's memorisation (ADA paper fig. 1): its scores of training vs held-out images
            m = measure(snaps[-1][1], str(train), str(held), args.swd_images, swd=False, device=torch.device("cpu"))
            print(f"  D at {snaps[-1][0]:g} kimg: mean logit training {m['D_train']:.3f}, held-out {m['D_held']:.3f}, "
                  f"P(D ranks a training image above a held-out one) {m['auc']:.3f} (0.5: no memorisation)")


if __name__ == "__main__":
    main()
