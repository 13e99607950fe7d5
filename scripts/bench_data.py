#!/usr/bin/env python
"""Decoded images per second of sgtrain's ShardDataModule (one rank, N workers, like one GPU's loader).

    python scripts/bench_data.py --data OUT [--workers 2] [--batch 32] [--seconds 15] [--xflip]

OUT is a directory written by `sgtrain-data pack`. The first batches (worker start-up) are not timed; after that the
loop consumes batches for --seconds, across epoch boundaries, and counts images. The last line is `<N> img/s`.
Figures and the NVlabs comparison are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="packed dataset directory (dataset.json + shards)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--warmup", type=int, default=4, help="batches consumed before the clock starts")
    p.add_argument("--xflip", action="store_true")
    p.add_argument("--shuffle-buffer", type=int, default=1000)
    p.add_argument("--shards", choices=["epoch", "resampled"], default="epoch")
    p.add_argument("--start-method", default=None, help="fork | spawn | forkserver (default: platform's)")
    args = p.parse_args()

    torch.set_num_threads(1)
    from sgtrain.data import ShardDataModule

    dm = ShardDataModule(
        args.data,
        batch_size=args.batch,
        num_workers=args.workers,
        xflip=args.xflip,
        shuffle_buffer=args.shuffle_buffer,
        shards=args.shards,
        start_method=args.start_method,
    )
    loader = dm.train_dataloader(rank=0, world_size=1)
    print(f"data {args.data}: {dm.count} images {dm.resolution}x{dm.resolution}x{dm.num_channels}, c_dim {dm.c_dim}")
    print(
        f"workers {args.workers}, batch {args.batch}, {len(loader)} batches/epoch, shards={args.shards}, "
        f"machine {platform.node()} {os.cpu_count()} CPUs, torch {torch.__version__}"
    )

    def batches():
        while True:
            yield from loader

    it = batches()
    for _ in range(args.warmup):
        next(it)
    n = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    while time.perf_counter() - t0 < args.seconds:
        img, c = next(it)
        assert img.dtype == torch.uint8 and img.shape[1:] == (dm.num_channels, dm.resolution, dm.resolution)
        n += img.shape[0]
    dt = time.perf_counter() - t0
    # CPU time of this process and its (joined) workers per image, start-up included: a figure that contention
    # from other processes on the machine does not inflate as much as the wall-clock rate.
    total = n + args.warmup * args.batch
    it.close()
    if loader._iterator is not None:
        loader._iterator._shutdown_workers()
    extra = f", corrupt skipped {dm.corrupt_count}"
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (time.process_time() - cpu0) + children.ru_utime + children.ru_stime
    print(
        f"{n} images in {dt:.1f} s{extra}; CPU {cpu / total * 1e6:.0f} us/img "
        f"(main process while timed + workers' whole life, over {total} images incl. warm-up)"
    )
    print(f"{n / dt:.0f} img/s")


if __name__ == "__main__":
    main()
