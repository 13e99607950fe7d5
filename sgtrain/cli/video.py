"""sgtrain-video: latent interpolation videos (mp4 or gif), for every family; StyleGAN3's --translate/--rotate."""

from __future__ import annotations

from collections.abc import Sequence

from sgtrain.latent import interpolation_video, load_generator, parse_grid, parse_range
from sgtrain.latent._cli import add_sampling_args, add_transform_args, base_parser, parse_vec2, run
from sgtrain.latent.studio import render_controls

EPILOG = """examples:
  sgtrain-video --network runs/emoji --seeds 0-4 --interp slerp --loop --seconds 5 --output out/walk.mp4
  sgtrain-video --network runs/emoji --seeds 0-23 --grid 2x3 --space w --interp cubic --loop --output out/grid.gif
  sgtrain-video --network sg3.pkl --seeds 0-3 --loop --translate 0.1,0 --rotate 15 --output out/moved.mp4
With --grid RxC the seeds are shared out in order: the first len(seeds)/(R*C) go to the top-left cell, and so on.
ProGAN and DCGAN networks take z only: --space z (lerp, slerp or cubic) with --trunc 1.
"""


def _main(args) -> None:
    G = load_generator(args.network, args.device)
    grid = parse_grid(args.grid) or (1, 1)
    with render_controls(G, translate=parse_vec2(args.translate), rotate=args.rotate):
        n = interpolation_video(G, parse_range(args.seeds), args.output, args.space, args.interp, args.loop, grid,
                                args.fps, args.seconds, args.trunc, args.trunc_cutoff, args.class_idx,
                                args.noise_mode, args.batch_size)
    print(f"wrote {n} frames ({args.fps:g} fps) to {args.output}")


def main(argv: Sequence[str] | None = None) -> None:
    p = base_parser("sgtrain-video", "Interpolation video through the latents of seeds, in z or w.", EPILOG)
    p.add_argument("--seeds", required=True, help="keyframe seeds, e.g. '0-4'")
    p.add_argument("--space", default="z", choices=["z", "w"], help="interpolate z (then map) or w (default: z)")
    p.add_argument("--interp", default="slerp", choices=["lerp", "slerp", "cubic"],
                   help="lerp, slerp (spherical) or cubic (Catmull-Rom through the keyframes); default slerp")
    p.add_argument("--loop", action="store_true", help="return to the first seed for a seamless loop")
    p.add_argument("--grid", metavar="RxC", help="several walks side by side")
    p.add_argument("--fps", type=float, default=30, help="frames per second (default: 30)")
    p.add_argument("--seconds", type=float, default=5, help="length in seconds (default: 5)")
    add_sampling_args(p)
    add_transform_args(p)
    p.add_argument("--output", required=True, help="output .mp4 (H.264 via imageio-ffmpeg) or .gif")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
