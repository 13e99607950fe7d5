"""sgtrain-mix: the style-mixing grid of the StyleGAN paper (Karras et al. 2019, fig. 3)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sgtrain.latent import load_generator, parse_range, save_image, style_mixing_grid
from sgtrain.latent._cli import add_sampling_args, base_parser, run

EPILOG = """styles: coarse, middle, fine, or layer indices such as '0-6', '0,1,8-end'.
  For a 1024x1024 network (num_ws 18) the presets are the paper's: coarse 0-3, middle 4-7, fine 8-17; networks of
  64x64 and up keep the paper's resolution bands (coarse 4-8 px, middle 16-32, fine 64+); smaller networks split
  their resolutions into three groups (32x32: 0-3, 4-5, 6-7; 16x16: 0-1, 2-3, 4-5). The chosen layers are printed.

example:
  sgtrain-mix --network runs/emoji --rows 85,100,75 --cols 55,821,1789 --styles coarse --outdir out/mix
"""


def _main(args) -> None:
    G = load_generator(args.network, args.device)
    rows, cols = parse_range(args.rows), parse_range(args.cols)
    out = style_mixing_grid(G, rows, cols, args.styles, args.trunc, args.trunc_cutoff, args.class_idx,
                            args.noise_mode, args.batch_size)
    os.makedirs(args.outdir, exist_ok=True)
    save_image(out["grid"], os.path.join(args.outdir, "grid.png"))
    for i, r in enumerate(rows):
        save_image(out["rows"][i].numpy(), os.path.join(args.outdir, f"{r}-{r}.png"))
        for j, c in enumerate(cols):
            save_image(out["mixed"][i, j].numpy(), os.path.join(args.outdir, f"{r}-{c}.png"))
    for j, c in enumerate(cols):
        save_image(out["cols"][j].numpy(), os.path.join(args.outdir, f"{c}-{c}.png"))
    print(f"styles '{args.styles}' = layers {out['layers']} of num_ws={G.num_ws}; "
          f"wrote grid.png and {len(rows) * len(cols)} mixtures to {args.outdir}")


def main(argv: Sequence[str] | None = None) -> None:
    p = base_parser("sgtrain-mix", "Style-mixing grid: each row seed's image takes the column seed's w in the chosen "
                    "layers. Top row: column seeds; left column: row seeds.", EPILOG)
    p.add_argument("--rows", required=True, help="row seeds, e.g. '85,100,75'")
    p.add_argument("--cols", required=True, help="column seeds, e.g. '55,821,1789'")
    p.add_argument("--styles", default="coarse", help="coarse | middle | fine | layer range like '0-6'")
    add_sampling_args(p)
    p.add_argument("--outdir", required=True, help="output folder: grid.png and ROW-COL.png per cell")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
