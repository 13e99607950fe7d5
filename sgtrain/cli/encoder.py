"""sgtrain-encoder: train an image -> W+ encoder on a generator's own samples; encode images with it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import torch

from sgtrain.errors import InputError
from sgtrain.latent import load_generator, load_target, psnr, save_image, save_ws, synthesize, to_uint8
from sgtrain.latent._cli import run
from sgtrain.latent.common import image_size
from sgtrain.latent.encoder import encode_images, load_encoder, train_encoder

PROG = "sgtrain-encoder"

EPILOG = """examples (RUN: a run directory or a network file, e.g. runs/stylegan_small-smileys):
  sgtrain-encoder train --network RUN --out RUN/encoder
  sgtrain-encoder train --network RUN --out RUN/encoder --steps 12000     # continues from step 8000
  sgtrain-encoder encode --network RUN --encoder RUN/encoder --target face.png --outdir out/enc
  sgtrain-project --network RUN --target face.png --init encoder --encoder RUN/encoder \\
      --space w+ --loss mse --steps 250 --outdir out/proj
The encoder learns from the generator's own images (no dataset). Rerunning 'train' with the same --out continues
from OUT/checkpoint.pt; OUT/encoder.safetensors + OUT/encoder.json is the portable export (docs/latent.md).
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", required=True, metavar="PATH",
                   help="run directory, .ckpt, portable network (.safetensors + .json) or NVlabs .pkl")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def _train_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="training folder (checkpoint.pt, encoder.*)")
    p.add_argument("--steps", type=int, default=8000, help="total steps; a rerun continues up to it (default: 8000)")
    p.add_argument("--batch", type=int, default=16, help="generated samples per step (default: 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine-decayed to 10%% (default: 1e-3)")
    p.add_argument("--image-weight", type=float, default=0.0,
                   help="weight of the image mse of the prediction's rendering; > 0 is slower (default: 0)")
    p.add_argument("--mixing-prob", type=float, default=0.5,
                   help="probability of style-mixed training samples, for W+ variety (default: 0.5)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi of the training samples (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training samples (default: 0)")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint and export every N steps (default: 500)")
    p.add_argument("--channel-base", type=int, default=None,
                   help="encoder channels at resolution r = min(base / r, max) (default: 16 * resolution)")
    p.add_argument("--channel-max", type=int, default=256, help="(default: 256)")
    p.add_argument("--hidden", type=int, default=512, help="width of the encoder's fully connected layer (512)")


def _train(args) -> None:
    G = load_generator(args.network, args.device)
    if not all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws")):
        raise InputError("an encoder predicts ws: this network has no W space (it takes z only)")
    for name in ("steps", "batch", "save_every"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    train_encoder(G, args.out, steps=args.steps, batch=args.batch, lr=args.lr, image_weight=args.image_weight,
                  mixing_prob=args.mixing_prob, truncation_psi=args.trunc, seed=args.seed,
                  save_every=args.save_every, encoder_kwargs=dict(channel_base=args.channel_base,
                                                                  channel_max=args.channel_max, hidden=args.hidden))
    print(f"encoder: {os.path.join(args.out, 'encoder.safetensors')} (+ .json); use it with "
          f"sgtrain-project --init encoder --encoder {args.out}")


def _encode_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--encoder", required=True, metavar="PATH", help="encoder file or training folder")
    p.add_argument("--target", nargs="+", required=True, help="image file(s)")
    p.add_argument("--outdir", required=True, help="output folder: projected_w.npz (key 'w'), enc.png per image")


def _encode(args) -> None:
    G = load_generator(args.network, args.device)
    device = next(G.parameters()).device
    encoder = load_encoder(args.encoder, device, G)
    targets = torch.stack([load_target(t, image_size(G), G.img_channels) for t in args.target])
    ws = encode_images(encoder, targets)
    imgs = synthesize(G, ws, noise_mode="const")
    scores = psnr((imgs + 1) * 127.5, targets.to(device).float())
    os.makedirs(args.outdir, exist_ok=True)
    save_ws(os.path.join(args.outdir, "projected_w.npz"), ws)
    for i, (path, img) in enumerate(zip(args.target, to_uint8(imgs).numpy())):
        stem = os.path.splitext(os.path.basename(path))[0]
        save_image(img, os.path.join(args.outdir, f"{i:02d}_{stem}_enc.png"))
        print(f"{path}: PSNR {float(scores[i]):.2f} dB (the encoder's prediction, network noise)")
    print(f"wrote projected_w.npz ([{len(ws)}, {G.num_ws}, {G.w_dim}]) to {args.outdir}")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog=PROG, description="An encoder from images to W+, trained on the generator's own "
                                "samples, to start projection near the answer.", epilog=EPILOG, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for name, add, func, help_ in (
        ("train", _train_args, _train, "train (or continue training) an encoder for a network"),
        ("encode", _encode_args, _encode, "predict the ws of images (a projection's starting point)"),
    ):
        sp = sub.add_parser(name, help=help_, description=help_, formatter_class=fmt)
        add(sp)
        sp.set_defaults(func=func)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    run(lambda args: args.func(args), build_parser(), argv)


if __name__ == "__main__":
    main()
