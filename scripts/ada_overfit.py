#!/usr/bin/env python
"""How much has D memorised its training set? The overfitting measures of the ADA paper, for a run's snapshots.

Karras et al. 2020 (ADA), section 2 and figure 1: when the training set is small, D's outputs on the training
images and on held-out (validation) images of the same distribution drift apart, and the FID of G starts to rise.
For each ``network-snapshot-<kimg>.safetensors`` of each run directory given, this prints:

- D's mean raw logit on ``--num`` training images and on ``--num`` held-out images, and their gap;
- ``auc``: the probability that D scores a random training image above a random held-out one (0.5 = D cannot tell
  them apart, 1 = memorised), with its standard error (Hanley and McNeil 1982);
- with ``--swd``: the sliced Wasserstein distance (x1e3) of G_ema's images to the training and to the held-out images.

Both image sets are packed shards (``sgtrain-data pack``); ``scripts/bench_ada.py`` makes the 1,000 / 2,000 emoji
split. Images reach D as in training, NCHW float32 in [-1, 1], no augmentation, D in eval mode.

    python scripts/ada_overfit.py --train /tmp/ada/train --held /tmp/ada/heldout /tmp/ada/run-none /tmp/ada/run-ada
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch


def d_logits(D: torch.nn.Module, path: str, num: int, device: torch.device) -> torch.Tensor:
    """Raw logits of ``D`` for ``num`` images of the shards at ``path``: float32 [num], on the CPU."""
    from sgtrain.metrics.swd import iter_shard_reals

    out = []
    for img, c in iter_shard_reals(path, num, batch_size=100, use_labels=int(getattr(D, "c_dim", 0)) > 0):
        x = img.to(device).to(torch.float32) / 127.5 - 1
        with torch.no_grad():
            out.append(D(x, c.to(device)).flatten().float().cpu())
    return torch.cat(out)


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(pos > neg) + 0.5 P(pos == neg) over all pairs (the Mann-Whitney AUC); float in [0, 1]."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


def auc_se(a: float, n1: int, n2: int) -> float:
    """Standard error of an AUC ``a`` from ``n1`` and ``n2`` scores (Hanley and McNeil 1982, eq. 2)."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float(((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)) ** 0.5)


def snapshots(run: Path) -> list[tuple[float, Path]]:
    """``(kimg, path)`` of the run's ``network-snapshot-<kimg>.safetensors`` files, by kimg."""
    found = []
    for f in run.glob("network-snapshot-*.safetensors"):
        m = re.fullmatch(r"network-snapshot-(\d+)\.safetensors", f.name)
        if m:
            found.append((float(m.group(1)), f))
    return sorted(found)


def measure(path: Path, train: str, held: str, num: int, swd: bool, device: torch.device) -> dict[str, float]:
    """The measures above for one network file; raises what ``load_network`` raises."""
    from sgtrain.io.loader import load_network

    net = load_network(path, device=device)
    if "D" not in net:
        raise ValueError(f"{path} holds no discriminator; pass snapshots written by sgtrain-train")
    tr, he = d_logits(net["D"], train, num, device), d_logits(net["D"], held, num, device)
    row = {"D_train": float(tr.mean()), "D_held": float(he.mean()), "D_gap": float(tr.mean() - he.mean()),
           "auc": auc(tr, he)}
    row["auc_se"] = auc_se(row["auc"], len(tr), len(he))
    if swd:
        from sgtrain.metrics.swd import swd_generator_vs_shards

        for name, data in (("train", train), ("held", held)):
            res = swd_generator_vs_shards(net["G_ema"], data, num=num, device=device)
            row[f"swd_{name}"] = res["SWDx1e3_avg"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (their network-snapshot-*.safetensors are measured)")
    p.add_argument("--train", required=True, help="shards D was trained on")
    p.add_argument("--held", required=True, help="shards of held-out images of the same kind")
    p.add_argument("--num", type=int, default=1000, help="images from each set")
    p.add_argument("--swd", action="store_true", help="also the SWD of G_ema to both sets")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write all rows as JSON lines here")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    print(f"{'run':>12s} {'kimg':>6s} {'D(train)':>9s} {'D(held)':>8s} {'gap':>6s} {'auc':>6s} {'+-':>5s}"
          + ("  SWD train  SWD held" if args.swd else ""))
    for run in map(Path, args.runs):
        for kimg, f in snapshots(run):
            row = {"run": str(run), "kimg": kimg, **measure(f, args.train, args.held, args.num, args.swd, device)}
            rows.append(row)
            line = (f"{run.name:>12s} {kimg:6g} {row['D_train']:9.3f} {row['D_held']:8.3f} {row['D_gap']:6.3f} "
                    f"{row['auc']:6.3f} {row['auc_se']:5.3f}")
            if args.swd:
                line += f"  {row['swd_train']:9.2f} {row['swd_held']:9.2f}"
            print(line, flush=True)
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
