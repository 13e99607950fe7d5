"""sgtrain-blend: combine latents layer range by layer range, or average them, and render."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from sgtrain.errors import InputError
from sgtrain.latent import (
    blend_ws,
    load_generator,
    load_sources,
    make_grid,
    mean_ws,
    parse_layer_spec,
    render_ws,
    save_image,
    save_ws,
)
from sgtrain.latent._cli import add_sampling_args, base_parser, run

EPILOG = """Sources are named a, b, c ... in the order of --w; each is a latent file (.npz with key 'w', e.g. a
projected_w.npz) or a seed. 'end' stands for the last layer (num_ws - 1). The style-mixing presets coarse, middle
and fine (StyleGAN's ranges; see sgtrain-mix -h) stand for their layers, e.g. --layers "coarse:a,middle:b,fine:a".
Blending needs a W space (StyleGAN, StyleGAN2, StyleGAN3).
examples:
  sgtrain-blend --network cars.pkl --w truck/projected_w.npz,sports/projected_w.npz --layers "0-5:a,6-end:b" \\
      --outdir out/blend
  sgtrain-blend --network runs/emoji --w 85,100,7 --mean --outdir out/avg
Writes blend.png (per latent: blendNN.png when the sources hold several), sources.png (each source, then the
blend) and blend_w.npz.
"""


def _main(args) -> None:
    if (args.layers is None) == (not args.mean):
        raise InputError("give either --layers 'RANGE:SOURCE,...' or --mean")
    G = load_generator(args.network, args.device)
    sources = load_sources(G, args.w, args.trunc, args.trunc_cutoff, args.class_idx)
    if args.mean:
        ws = mean_ws(sources)
    else:
        owner = parse_layer_spec(args.layers, list(sources), G.num_ws, G.img_resolution)
        ws = blend_ws(sources, owner)
        print("layers: " + ", ".join(f"{i}:{o}" for i, o in enumerate(owner)))
    images = render_ws(G, ws, args.noise_mode, args.batch_size).numpy()
    os.makedirs(args.outdir, exist_ok=True)
    if len(images) == 1:
        save_image(images[0], os.path.join(args.outdir, "blend.png"))
    else:
        for i, img in enumerate(images):
            save_image(img, os.path.join(args.outdir, f"blend{i:02d}.png"))
    src_imgs = [render_ws(G, v[:1], args.noise_mode, args.batch_size).numpy() for v in sources.values()]
    strip = [s[0] for s in src_imgs] + [images[0]]
    save_image(make_grid(np.stack(strip), 1, len(strip)), os.path.join(args.outdir, "sources.png"))
    save_ws(os.path.join(args.outdir, "blend_w.npz"), ws)
    print(f"sources {', '.join(sources)} -> {args.outdir}")


def main(argv: Sequence[str] | None = None) -> None:
    p = base_parser("sgtrain-blend", "Blend latents: take each layer range from a chosen source, or average.",
                    EPILOG)
    p.add_argument("--w", required=True, help="comma-separated sources: .npz/.npy latent files or seeds")
    p.add_argument("--layers", help="which source each layer range takes, e.g. '0-6:a,7-end:b' or "
                   "'coarse:a,middle:b,fine:a'")
    p.add_argument("--mean", action="store_true", help="average all sources instead")
    add_sampling_args(p)
    p.add_argument("--outdir", required=True, help="output folder")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
