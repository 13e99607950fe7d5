"""sgtrain-metrics: image-quality metrics of a generator against real data, or between two image sets.

    sgtrain-metrics METRIC --network NET --data DATA [--detector FILE] [--num-gen K] [--device cpu|cuda]
    sgtrain-metrics eqt50k_int --network SG3_NET [--num-gen K]
    sgtrain-metrics METRIC --real A --fake B [--detector FILE] [--num-gen K]
    sgtrain-metrics swd --network NET --data SHARDS [--num 2048]

The logic lives in sgtrain.metrics (metric_main.compute_metric and compute_metric_between; swd).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from sgtrain.errors import UserError

_DESCRIPTION = """\
Image-quality metrics under NVlabs' names, computed the way NVlabs' stylegan3 code computes them.

Metrics (N is a count in thousands of images, K the number of neighbours):
  fidNk_full      Frechet Inception Distance, N thousand generated images against every real image (fid50k_full)
  fidNk           FID against the first N thousand real images (fid50k, fid10k, fid2k, ...)
  kidNk_full      Kernel Inception Distance against up to 1,000,000 real images (kid50k_full)
  kidNk           KID against the first N thousand real images
  prNkK_full      precision and recall with K neighbours, up to 200,000 real images (pr50k3_full)
  prNkK           precision and recall against the first N thousand real images
  isNk            Inception Score over 10 splits (is50k)
  ppl2_wend       perceptual path length in W at path ends, 50,000 paths (also ppl_zfull, ppl_wend, ...)
  eqt50k_int      StyleGAN3's EQ-T in dB (integer translations), 50,000 samples; no data, no feature network
  eqt50k_frac     EQ-T_frac in dB (sub-pixel translations)
  eqr50k          EQ-R in dB (rotations); the three need a generator with an input transform (StyleGAN3)
  swd             sliced Wasserstein distance on Laplacian-pyramid patches (no feature network)

FID, KID and IS need NVlabs' Inception network, file inception-2015-12-05.pkl, published at
https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl
(or inception-2015-12-05.pt from stylegan2-ada-pytorch). Precision/recall and PPL need NVlabs' VGG16, file vgg16.pkl
from the same place. sgtrain never downloads them: pass the file with --detector, or put it in
~/.cache/sgtrain/metrics/detectors/, or leave it where NVlabs' code caches its downloads (~/.cache/dnnlib/downloads).

Statistics of the real images are cached in ~/.cache/sgtrain/metrics (change with --cache-dir or
SGTRAIN_CACHE_DIR) and reused while the data, the feature network and the options are the same.

Several processes share the work when started by torchrun, for example
  torchrun --nproc_per_node 8 -m sgtrain.cli.metrics fid50k_full --network NET --data DATA
The last lines printed are "<name> <value>", one per result (precision and recall, IS mean and std).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgtrain-metrics", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metric", help="metric name, for example fid50k_full, kid50k_full, pr50k3_full, is50k, "
                                       "ppl2_wend, eqt50k_int, fid10k, swd")
    parser.add_argument("--network", help="generator: run directory, portable .safetensors, Lightning .ckpt, "
                                           "NVlabs .pkl or rosinality .pt")
    parser.add_argument("--data", help="real images: shard directory written by sgtrain-data pack, image folder or "
                                       "zip (needed for FID, KID, PR, SWD and conditional generators)")
    parser.add_argument("--real", help="first image set (the reference) when comparing two image sets")
    parser.add_argument("--fake", help="second image set, in place of a generator")
    parser.add_argument("--detector", help="feature network file (Inception for FID, KID, IS; VGG16 for PR, PPL)")
    parser.add_argument("--num-gen", type=int, default=None,
                        help="generated images (PPL: paths) instead of the count in the metric name; with --real/--fake"
                             " the fake images used (default: every image of --fake)")
    parser.add_argument("--num", type=int, default=2048, help="swd only: images per set (default 2048)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of latents, labels, noise and subsets (default 0)")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per network call (default 64; swd: generator batch, default 32)")
    parser.add_argument("--psi", type=float, default=1.0, help="truncation psi (1 = none, as in the papers)")
    parser.add_argument("--cache-dir", default=None, help="directory of cached real statistics")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached real statistics")
    parser.add_argument("--workers", type=int, default=None,
                        help="image decoding threads (default: up to 4; swd: loader processes, default 0)")
    parser.add_argument("--alpha", choices=["white"], default=None,
                        help="RGBA images (--channels 4 data or generator) for FID, KID, PR, IS, PPL, whose feature "
                             "networks take RGB: composite them on white (without it they are refused; swd and the "
                             "EQ metrics use every channel; L images are repeated to RGB as NVlabs does)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def _swd(args: argparse.Namespace) -> int:
    import torch

    from sgtrain.io import load_network
    from sgtrain.metrics.swd import swd_generator_vs_shards

    if not args.network or not args.data:
        print("sgtrain-metrics swd: pass --network and --data", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.num < 1:
        print("sgtrain-metrics: --num must be >= 1", file=sys.stderr)
        return 2
    try:
        G = load_network(args.network, device=device)["G_ema"].eval().requires_grad_(False).to(device)
        start = time.time()
        result = swd_generator_vs_shards(G, args.data, num=args.num, batch_size=args.batch or 32, seed=args.seed,
                                         device=device, num_workers=args.workers or 0, truncation_psi=args.psi)
    except UserError as err:
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


def _init_distributed(device_arg: str | None) -> tuple[str | None, bool]:
    """Join the process group torchrun describes (WORLD_SIZE > 1); returns the device and whether we joined."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return device_arg, False
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device_arg is None or device_arg.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local)
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return (f"cuda:{local}" if use_cuda else "cpu"), True


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 2 bad input or missing file)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["download"]:  # sgtrain-metrics download inception|vgg16 (sgtrain.metrics.download)
        from sgtrain.metrics.download import main as download_main

        return download_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.metric == "swd":
        return _swd(args)

    from sgtrain.metrics.detector_files import DetectorNotFoundError, find_detector_file
    from sgtrain.metrics.metric_names import parse_metric

    prog = f"sgtrain-metrics {args.metric}"
    try:
        spec = parse_metric(args.metric)
    except UserError as err:
        print(f"sgtrain-metrics: {err}", file=sys.stderr)
        return 2
    two_sets = args.real is not None or args.fake is not None
    if two_sets and (args.network or args.data):
        print(f"{prog}: use either --network/--data or --real/--fake", file=sys.stderr)
        return 2
    if two_sets and (args.fake is None or (spec.needs_real and args.real is None)):
        print(f"{prog}: comparing two image sets needs --real A and --fake B", file=sys.stderr)
        return 2
    if two_sets and spec.kind in ("ppl", "eq"):
        what = "PPL walks the latent space of" if spec.kind == "ppl" else "equivariance moves the input of"
        print(f"{prog}: {what} a generator; pass --network (two image sets cannot give it)", file=sys.stderr)
        return 2
    if not two_sets and not args.network:
        print(f"{prog}: pass --network (and --data), or --real and --fake", file=sys.stderr)
        return 2
    if not two_sets and spec.needs_real and not args.data:
        print(f"{prog}: pass --data with the real images", file=sys.stderr)
        return 2
    try:  # the feature network first: a missing file fails before anything is loaded
        if spec.detector is not None:
            find_detector_file(spec.detector, args.detector, cache_dir=args.cache_dir)
    except DetectorNotFoundError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2

    import torch

    from sgtrain.io import load_network
    from sgtrain.metrics.metric_main import compute_metric, compute_metric_between

    device, joined = _init_distributed(args.device)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    common = dict(detector=args.detector, num_gen=args.num_gen, device=device, seed=args.seed,
                  cache=not args.no_cache, cache_dir=args.cache_dir, batch_size=args.batch or 64,
                  workers=args.workers if args.workers is not None else min(4, os.cpu_count() or 1),
                  progress=not args.quiet, alpha=args.alpha)
    try:
        if two_sets:
            out = compute_metric_between(args.metric, args.real, args.fake, **common)
            what = f"{args.fake} against {args.real}"
        else:
            G = load_network(args.network, device=device)["G_ema"].eval().requires_grad_(False)
            G_kwargs = {} if args.psi == 1.0 else dict(truncation_psi=args.psi)
            out = compute_metric(args.metric, G, data=args.data, G_kwargs=G_kwargs, **common)
            what = f"{args.network}" + (f" against {args.data}" if args.data else "")
    except UserError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    if joined:
        torch.distributed.destroy_process_group()
    if rank != 0:
        return 0
    if args.json:
        print(json.dumps({**out, "network": args.network, "data": args.data, "real": args.real, "fake": args.fake,
                          "sec": round(out["sec"], 3)}))
        return 0
    if two_sets:
        counted = f"{out['num_gen']} fake images" + (f" against {out['num_real']} real images" if out["num_real"]
                                                      else "")
    else:
        counted = f"{out['num_gen']} {'paths' if spec.kind == 'ppl' else 'images'}"
    print(f"{args.metric} of {what}: {counted}, seed {args.seed}, {out['num_gpus']} process(es), {out['sec']:.1f} s")
    for key, value in out["results"].items():
        print(f"{key} {value:.8g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
