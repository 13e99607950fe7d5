"""``sgtrain-metrics``: image-quality metrics of a generator against packed real data.

    sgtrain-metrics swd --network RUN_DIR_OR_FILE --data SHARDS [--num 2048] [--device cpu|cuda] [--seed 0]

``swd`` prints the sliced Wasserstein distance (ProGAN, Karras et al. 2018, section 5) per Laplacian-pyramid level
and its average, all x 1e3 (lower is better). The logic lives in :mod:`sgtrain.metrics.swd`.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgtrain-metrics", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="metric", required=True)
    swd = sub.add_parser("swd", help="sliced Wasserstein distance on Laplacian-pyramid patches (no pretrained net)")
    swd.add_argument("--network", required=True,
                     help="run directory, portable .safetensors, Lightning .ckpt, NVlabs .pkl or rosinality .pt")
    swd.add_argument("--data", required=True, help="shard directory written by `sgtrain-data pack` (or a pattern)")
    swd.add_argument("--num", type=int, default=2048, help="images per set (default 2048; ProGAN used 8192)")
    swd.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    swd.add_argument("--seed", type=int, default=0, help="seed of z, noise, patch positions and directions")
    swd.add_argument("--batch", type=int, default=32, help="generator batch size")
    swd.add_argument("--psi", type=float, default=1.0, help="truncation psi (1 = none)")
    swd.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    swd.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    import torch

    from sgtrain.io import load_network
    from sgtrain.metrics.swd import swd_generator_vs_shards

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.num < 1:
        print("sgtrain-metrics: --num must be >= 1", file=sys.stderr)
        return 2
    try:
        G = load_network(args.network, device=device)["G_ema"].eval().requires_grad_(False).to(device)
        start = time.time()
        result = swd_generator_vs_shards(G, args.data, num=args.num, batch_size=args.batch, seed=args.seed,
                                         device=device, num_workers=args.workers, truncation_psi=args.psi)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as err:
        print(f"sgtrain-metrics swd: {err}", file=sys.stderr)
        return 2
    seconds = time.time() - start
    if args.json:
        print(json.dumps({"metric": "swd", "network": str(args.network), "data": str(args.data), **result,
                          "seed": args.seed, "seconds": round(seconds, 2)}))
    else:
        print(f"SWD x1e3 of {args.network} against {args.data} ({args.num} images, seed {args.seed}, "
              f"{seconds:.1f} s):")
        for key, value in result.items():
            if key.startswith("SWDx1e3_"):
                print(f"  {key[len('SWDx1e3_'):]:>5s}  {value:10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
