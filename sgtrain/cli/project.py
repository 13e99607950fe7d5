"""sgtrain-project: find the latents of real images (W or W+ projection)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from sgtrain.errors import InputError
from sgtrain.latent import (
    VideoWriter,
    load_generator,
    load_target,
    load_vgg16,
    make_grid,
    project,
    save_image,
    save_ws,
    to_uint8,
)
from sgtrain.latent._cli import base_parser, run
from sgtrain.latent.project import VGG16_URL, image_size
from sgtrain.latent.studio import require_w

EPILOG = f"""examples:
  sgtrain-project --network runs/emoji --target face.png --loss mse --steps 500 --outdir out/proj
  sgtrain-project --network ffhq.pkl --target a.png b.png --space w+ --vgg ~/weights/vgg16.pt --outdir out/proj
  sgtrain-project --network runs/emoji --target face.png --space w+ --loss mse --init encoder \\
      --encoder runs/emoji/encoder --steps 250 --outdir out/proj_enc
The lpips-vgg loss reads VGG16 weights from --vgg: NVlabs' TorchScript vgg16.pt (published at
{VGG16_URL}) or a torchvision-format VGG16 state dict. Nothing is downloaded.
StyleGAN3: the input layer's w (rotation and translation of the picture) stays at w_avg while the other layers are
optimised (stylegan3-fun's stabilised projection); --free-input optimises it too. ProGAN and DCGAN have no W space.
Outputs (one target): projected_w.npz (key 'w', [1, num_ws, w_dim]), proj.png, target.png, proj.mp4; with several
targets the same per target in OUTDIR/<image name>/ plus OUTDIR/projected_w.npz with all of them and OUTDIR/proj.mp4.
"""


def _main(args) -> None:
    G = load_generator(args.network, args.device)
    require_w(G, "projection")
    device = next(G.parameters()).device
    vgg = load_vgg16(args.vgg, device) if args.loss == "lpips-vgg" else None
    targets = torch.stack([load_target(t, image_size(G), G.img_channels) for t in args.target])
    init_ws = None
    if args.init == "encoder":
        if not args.encoder:
            raise InputError("--init encoder needs --encoder PATH (train one with sgtrain-encoder train)")
        from sgtrain.latent.encoder import encode_images, load_encoder

        init_ws = encode_images(load_encoder(args.encoder, device, G), targets)
    elif args.encoder:
        raise InputError("--encoder is only used with --init encoder")
    steps = args.steps
    every = max(1, steps // args.video_frames) if args.save_video else 0
    ws, proj, scores, frames = [], [], [], []
    for i in range(0, len(targets), args.batch_size):  # each batch projected jointly, with its own noise maps
        out = project(G, targets[i:i + args.batch_size], space=args.space, num_steps=steps, loss=args.loss, vgg=vgg,
                      class_idx=args.class_idx, w_avg_samples=args.w_avg_samples, initial_learning_rate=args.lr,
                      initial_noise_factor=args.w_noise, regularize_noise_weight=args.noise_reg,
                      noise_lr_scale=args.noise_lr,
                      optimize_noise=not args.fixed_noise, noise_init=args.noise_init,
                      init_ws=None if init_ws is None else init_ws[i:i + args.batch_size], seed=args.seed,
                      history_every=every, verbose=True, device=device, anchor_input=False if args.free_input else None)
        ws.append(out["ws"])
        proj.append(to_uint8(out["images"]).numpy())
        scores.append(out["psnr"])
        with torch.no_grad():
            frames.append(np.stack([to_uint8(out["generator"].synthesis(h, noise_mode="const")).numpy()
                                    for h in out["history"]]) if every else None)
    ws, proj, scores = torch.cat(ws), np.concatenate(proj), torch.cat(scores)
    os.makedirs(args.outdir, exist_ok=True)
    tgt = targets.permute(0, 2, 3, 1).numpy()
    stems = [os.path.splitext(os.path.basename(t))[0] for t in args.target]
    if len(set(stems)) < len(stems):
        stems = [f"{i:02d}_{s}" for i, s in enumerate(stems)]
    for i, stem in enumerate(stems):
        d = args.outdir if len(stems) == 1 else os.path.join(args.outdir, stem)
        save_image(tgt[i], os.path.join(d, "target.png"))
        save_image(proj[i], os.path.join(d, "proj.png"))
        save_ws(os.path.join(d, "projected_w.npz"), ws[i:i + 1])
        print(f"{args.target[i]}: PSNR {scores[i]:.2f} dB -> {d}")
    if len(stems) > 1:
        save_ws(os.path.join(args.outdir, "projected_w.npz"), ws)
    if args.save_video:
        path = os.path.join(args.outdir, "proj.mp4")
        frames = np.concatenate(frames, axis=1)  # [steps recorded, N, H, W, C]
        with VideoWriter(path, fps=args.video_fps) as writer:
            for frame in frames:
                writer.append(make_grid(np.stack([tgt, frame], 1).reshape(-1, *frame.shape[1:]), len(stems), 2))
        print(f"progress video (target | projection, {len(frames)} frames): {path}")


def main(argv: Sequence[str] | None = None) -> None:
    p = base_parser("sgtrain-project", "Project images into W (one w per image) or W+ (one w per layer) with "
                    "NVlabs' projector schedule (learning-rate ramp, w noise ramp, noise regularisation).", EPILOG)
    p.add_argument("--target", nargs="+", required=True,
                   help="image file(s); up to --batch-size of them are projected together in one batch")
    p.add_argument("--space", default="w", choices=["w", "w+"], help="W or W+ (default: w)")
    p.add_argument("--steps", type=int, default=1000, help="optimisation steps (default: 1000)")
    p.add_argument("--loss", default="lpips-vgg", choices=["lpips-vgg", "mse"],
                   help="perceptual LPIPS on VGG16 features (needs --vgg) or pixel mse (default: lpips-vgg)")
    p.add_argument("--vgg", metavar="PATH", help="VGG16 weights: NVlabs' vgg16.pt or a torchvision state dict")
    p.add_argument("--class", dest="class_idx", type=int, default=None, metavar="K", help="class of a conditional net")
    p.add_argument("--lr", type=float, default=0.1, help="initial learning rate (default: 0.1)")
    p.add_argument("--w-avg-samples", type=int, default=10000, help="samples for w_avg and w_std (default: 10000)")
    p.add_argument("--init", default="w_avg", choices=["w_avg", "encoder"],
                   help="start at w_avg (NVlabs) or at an encoder's prediction (--encoder; default: w_avg)")
    p.add_argument("--encoder", metavar="PATH", help="encoder from sgtrain-encoder train (file or its folder)")
    p.add_argument("--w-noise", type=float, default=None, metavar="F",
                   help="initial w noise, a fraction of w's spread, fading out over 75%% of the steps (default: "
                        "0.05 for lpips-vgg from w_avg as NVlabs, 0 for mse or from an encoder)")
    p.add_argument("--noise-reg", type=float, default=None, metavar="WEIGHT",
                   help="weight of the noise-map autocorrelation penalty (default: 1e5 for lpips-vgg as NVlabs, "
                        "1e3 for mse)")
    p.add_argument("--noise-lr", type=float, default=None, metavar="SCALE",
                   help="noise maps' learning rate as a fraction of --lr (default: 1 for lpips-vgg, 0.1 for mse)")
    p.add_argument("--noise-init", default="const", choices=["const", "random"],
                   help="optimised noise maps start from the network's own (const, default) or fresh random maps")
    p.add_argument("--fixed-noise", action="store_true",
                   help="keep the network's noise maps instead of optimising per-image noise")
    p.add_argument("--free-input", action="store_true",
                   help="StyleGAN3: optimise the input layer's w too (default: held at w_avg, stylegan3-fun's "
                        "stabilised projection)")
    p.add_argument("--seed", type=int, default=303, help="seed of the w noise and initial noise maps (default: 303)")
    p.add_argument("--no-video", dest="save_video", action="store_false", help="skip the progress video")
    p.add_argument("--video-frames", type=int, default=100, help="frames in the progress video (default: 100)")
    p.add_argument("--video-fps", type=float, default=20, help="progress video frame rate (default: 20)")
    p.add_argument("--outdir", required=True, help="output folder")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
