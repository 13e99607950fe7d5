"""sgtrain-directions: closed-form latent directions (SeFa) and strength sweeps along them."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sgtrain.latent import (
    direction_sweep,
    load_directions,
    load_generator,
    parse_range,
    save_directions,
    save_image,
    seeds_to_ws,
    sefa,
    style_layers,
)
from sgtrain.latent._cli import add_sampling_args, base_parser, run

EPILOG = """examples:
  sgtrain-directions --network runs/emoji --outdir out/sefa                      # all layers, directions 0-4
  sgtrain-directions --network ffhq.pkl --layers coarse --indices 0-9 --strengths=-8,8 --outdir out/sefa_pose
  sgtrain-directions --network ffhq.pkl --directions out/sefa/directions.npz --indices 3 --seeds 0-7 --outdir out/d3
Writes directions.npz (directions [w_dim, w_dim], row k = k-th direction; eigenvalues; layers) and one grid per
direction, dirNNN.png: rows = seeds, columns = strengths from the first to the second value of --strengths.
"""


def _main(args) -> None:
    G = load_generator(args.network, args.device)
    if args.directions:
        result = load_directions(args.directions)
        if result["directions"].shape[1] != G.w_dim:
            raise ValueError(f"'{args.directions}' holds directions of w_dim {result['directions'].shape[1]}, "
                             f"the network has w_dim {G.w_dim}")
    else:
        layers = None if args.layers == "all" else style_layers(args.layers, G.num_ws, G.img_resolution)
        result = sefa(G, layers)
        os.makedirs(args.outdir, exist_ok=True)
        save_directions(os.path.join(args.outdir, "directions.npz"), result)
    ws = seeds_to_ws(G, range(1000), class_idx=args.class_idx, batch_size=250)[:, 0]
    scale = float((ws - ws.mean(0)).norm(dim=1).mean())
    print(f"for scale: w lies on average {scale:.3g} from w_avg (1000 seeds); directions have length 1")
    ev = result["eigenvalues"]
    print(f"layers {result['layers']}; leading eigenvalues: " + ", ".join(f"{v:.3g}" for v in ev[:8].tolist()))
    indices = parse_range(args.indices)
    bad = [i for i in indices if not 0 <= i < result["directions"].shape[0]]
    if bad:
        raise ValueError(f"--indices {bad} out of range 0-{result['directions'].shape[0] - 1}")
    lo, hi = (float(v) for v in args.strengths.split(","))
    n = max(2, args.num_strengths)
    strengths = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    out = direction_sweep(G, parse_range(args.seeds), result["directions"][indices], result["layers"], strengths,
                          args.trunc, args.trunc_cutoff, args.class_idx, args.noise_mode, args.batch_size)
    for i, grid in zip(indices, out["grids"]):
        save_image(grid, os.path.join(args.outdir, f"dir{i:03d}.png"))
    print(f"wrote {len(indices)} sweeps (strengths {', '.join(f'{s:g}' for s in strengths)}) to {args.outdir}")


def main(argv: Sequence[str] | None = None) -> None:
    p = base_parser("sgtrain-directions", "Closed-form factorization (SeFa, Shen & Zhou 2021) of the modulation "
                    "weights: save the directions and render strength sweeps along chosen ones.", EPILOG)
    p.add_argument("--layers", default="all", help="all | coarse | middle | fine | range like '0-3' (default: all)")
    p.add_argument("--directions", metavar="NPZ", help="use saved directions instead of computing them")
    p.add_argument("--indices", default="0-4", help="directions to render, strongest = 0 (default: 0-4)")
    p.add_argument("--seeds", default="0-3", help="seeds of the sweep rows (default: 0-3)")
    p.add_argument("--strengths", default="-5,5", help="first,last strength in units of w (default: -5,5)")
    p.add_argument("--num-strengths", type=int, default=7, help="columns of each sweep (default: 7)")
    add_sampling_args(p, trunc=0.7)
    p.add_argument("--outdir", required=True, help="output folder")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
