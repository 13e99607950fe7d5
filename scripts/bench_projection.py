#!/usr/bin/env python
"""PSNR of latent projection (sgtrain.latent.project) on a trained network, and the encoder's head start.

    python scripts/bench_projection.py --network RUN --targets own --count 4 --steps 1000 --space w+ --loss mse
    python scripts/bench_projection.py --network RUN --targets photos:DIR --count 4 --set regularize_noise_weight=0
    python scripts/bench_projection.py --network RUN --targets own --encoder DIR/encoder.safetensors --steps 250

Targets: ``own`` = the network's own images of held-out seeds (``--seed0`` on, psi 1, noise_mode
``--target-noise``: const by default, as ``sgtrain-generate`` writes them; uint8); ``photos:DIR`` = --count images
spread evenly over the sorted image files under DIR, centre-cropped and resized like ``sgtrain-project`` does.
The targets are projected in one batch, each with its own latent and noise maps. ``--set key=value`` passes any
keyword of ``project`` (numbers, true/false, none); ``--encoder PATH`` starts from the encoder's prediction
(``init_ws``); ``--report S1,S2`` also prints the PSNR reached at those steps (through the progress callback,
rendered with the noise maps of that step). Besides the PSNR of the projection (rendered with its optimised noise
maps) it prints the PSNR of the latent alone rendered with the network's own noise (what ``sgtrain-generate
--projected-w`` shows): a large gap means the noise maps copied image content that the latent should carry.
The last line is ``psnr mean <dB> min <dB> max <dB> (<seconds> s)``. Figures are in docs/latent.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import time

import torch


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True)
    p.add_argument("--targets", default="own", help="own | photos:DIR")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--seed0", type=int, default=100000, help="first held-out seed of --targets own")
    p.add_argument("--target-noise", default="const", choices=["const", "random", "none"],
                   help="noise_mode of the --targets own images (default: const, as sgtrain-generate)")
    p.add_argument("--space", default="w+")
    p.add_argument("--loss", default="mse")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--encoder", default=None, help="start from this encoder's prediction")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra project() keyword")
    p.add_argument("--report", default="", help="also report the PSNR at these steps, e.g. 100,250,500")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    from sgtrain.latent import load_generator, load_target, psnr, seeds_to_ws, synthesize
    from sgtrain.latent.project import image_size, project

    G = load_generator(args.network, "cpu")
    if args.targets == "own":
        with torch.no_grad():
            ws = seeds_to_ws(G, range(args.seed0, args.seed0 + args.count))
            torch.manual_seed(args.seed0)  # noise_mode random draws from the global generator
            imgs = synthesize(G, ws, noise_mode=args.target_noise)
        targets = (imgs * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    elif args.targets.startswith("photos:"):
        files = sorted(f for f in glob.glob(os.path.join(args.targets[7:], "**", "*"), recursive=True)
                       if os.path.splitext(f)[1].lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))
        step = max(1, len(files) // args.count)  # spread over the folders
        targets = torch.stack([load_target(f, image_size(G), G.img_channels)
                               for f in files[::step][:args.count]])
    else:
        raise SystemExit(f"--targets {args.targets}: use own or photos:DIR")
    kwargs = dict(space=args.space, loss=args.loss, num_steps=args.steps, verbose=False)
    for item in args.set:
        key, _, val = item.partition("=")
        kwargs[key.replace("-", "_")] = _value(val)
    if args.encoder:
        from sgtrain.latent.encoder import load_encoder

        enc = load_encoder(args.encoder)
        with torch.no_grad():
            kwargs["init_ws"] = enc(targets.float() / 127.5 - 1)
            start = synthesize(G, kwargs["init_ws"], noise_mode="const")
        print(f"encoder start: psnr {psnr((start + 1) * 127.5, targets.float()).mean():.2f} dB")
    report = {int(s) for s in args.report.split(",") if s}
    seen = {}

    def callback(step, num_steps, info):
        if step in report:
            seen[step] = float(psnr((info["images"] + 1) * 127.5, targets.float()).mean())

    if report:
        kwargs["callback"] = callback
    shown = {k: v for k, v in kwargs.items() if k not in ("init_ws", "callback")}
    print(f"network {args.network}, targets {args.targets} x{len(targets)}, {shown}, "
          f"machine {platform.node()} {os.cpu_count()} CPUs, {args.threads} thread(s), torch {torch.__version__}")
    t0 = time.time()
    out = project(G, targets, **kwargs)
    sec = time.time() - t0
    for s in sorted(seen):
        print(f"step {s}: psnr mean {seen[s]:.2f} dB")
    score = out["psnr"]
    with torch.no_grad():  # the latent alone, rendered with the network's own noise (as sgtrain-generate does)
        own = psnr((synthesize(G, out["ws"], noise_mode="const") + 1) * 127.5, targets.float())
    print(f"latent only (network's noise): psnr mean {own.mean():.2f} min {own.min():.2f} dB")
    print("per target: " + ", ".join(f"{v:.2f}" for v in score.tolist()))
    print(f"psnr mean {score.mean():.2f} min {score.min():.2f} max {score.max():.2f} dB ({sec:.0f} s)")


if __name__ == "__main__":
    main()
