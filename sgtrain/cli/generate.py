"""sgtrain-generate: images from seeds (truncation trick) or from latent files, for every family; StyleGAN3's
--translate/--rotate as in NVlabs' gen_images.py."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from sgtrain.errors import InputError
from sgtrain.latent import (
    generate_images,
    load_generator,
    load_ws,
    make_grid,
    parse_grid,
    parse_range,
    render_ws,
    save_image,
)
from sgtrain.latent._cli import add_sampling_args, add_transform_args, base_parser, parse_vec2, run
from sgtrain.latent.studio import render_controls, require_w

EPILOG = """examples:
  sgtrain-generate --network runs/emoji --seeds 0-15 --trunc 0.7 --grid 4x4 --outdir out/gen
  sgtrain-generate --network ffhq.pkl --projected-w out/proj/projected_w.npz --outdir out/proj_render
  sgtrain-generate --network sg3.pkl --seeds 0-3 --trunc 0.7 --translate 0.1,-0.25 --rotate 30 --outdir out/moved
ProGAN and DCGAN networks take z only: seeds work, --trunc must stay 1 and --projected-w needs a W space.
With --batch-size 1 the PNG files are byte-identical to those of NVlabs' gen_images.py (which renders one seed at a
time; a larger batch may round an occasional pixel the other way).
"""


def _main(args) -> None:
    if (args.seeds is None) == (args.projected_w is None):
        raise InputError("give either --seeds or --projected-w")
    G = load_generator(args.network, args.device)
    grid = parse_grid(args.grid)
    translate = parse_vec2(args.translate)
    if args.projected_w is not None:
        require_w(G, "rendering W latents (--projected-w)")
        ws = load_ws(args.projected_w, G.num_ws, G.w_dim)
        names = [f"proj{i:02d}.png" for i in range(len(ws))]
    else:
        seeds = parse_range(args.seeds)
        names = [f"seed{s:04d}.png" for s in seeds]
    if grid is not None and len(names) > grid[0] * grid[1]:
        raise InputError(f"{len(names)} images do not fit --grid {args.grid}; choose a larger grid or fewer seeds")
    os.makedirs(args.outdir, exist_ok=True)
    kept = []
    with render_controls(G, translate=translate, rotate=args.rotate):
        for i in range(0, len(names), args.batch_size):  # write as we go: thousands of seeds need not fit in memory
            if args.projected_w is not None:
                images = render_ws(G, ws[i:i + args.batch_size], args.noise_mode, args.batch_size).numpy()
            else:
                images = generate_images(G, seeds[i:i + args.batch_size], args.trunc, args.trunc_cutoff,
                                         args.class_idx, args.noise_mode, args.batch_size).numpy()
            for img, name in zip(images, names[i:i + args.batch_size]):
                save_image(img, os.path.join(args.outdir, name))
            if grid is not None:
                kept.append(images)
    if grid is not None:
        save_image(make_grid(np.concatenate(kept), *grid), os.path.join(args.outdir, "grid.png"))
    print(f"wrote {len(names)} images{' and grid.png' if grid else ''} to {args.outdir}")


def main(argv: Sequence[str] | None = None) -> None:
    p = base_parser("sgtrain-generate", "Generate images from seeds with the truncation trick, or render latents "
                    "from a .npz (key 'w', [N, num_ws, w_dim]) such as sgtrain-project's projected_w.npz.", EPILOG)
    p.add_argument("--seeds", help="seeds, e.g. '0-99' or '1,5,7-9'; image seedNNNN.png per seed")
    p.add_argument("--projected-w", metavar="W.npz", help="render these ws instead (projNN.png per latent)")
    add_sampling_args(p)
    add_transform_args(p)
    p.add_argument("--grid", metavar="RxC", help="also write grid.png with R rows and C columns")
    p.add_argument("--outdir", required=True, help="output folder")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
