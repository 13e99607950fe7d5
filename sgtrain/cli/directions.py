"""sgtrain-directions: latent directions. Subcommands: sefa (closed form), fit (supervised: InterFaceGAN's SVM or
logistic regression), apply (edit seeds or latent files), video (a walk along a direction)."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from sgtrain.errors import InputError
from sgtrain.latent import (
    direction_sweep,
    load_generator,
    load_ws,
    parse_grid,
    parse_range,
    save_directions,
    save_image,
    save_ws,
    seeds_to_ws,
    seeds_to_z,
    sefa,
    style_layers,
)
from sgtrain.latent._cli import add_sampling_args, run
from sgtrain.latent.directions import (
    IMAGE_SCORES,
    Direction,
    condition_direction,
    direction_video,
    fit_direction,
    image_scores,
    latent_spaces,
    load_direction,
    load_directions,
    read_scores_csv,
    render_direction,
    render_latents,
    seed_classes,
    seed_latents,
    table_latents,
)
from sgtrain.latent.studio import family_name, require_w

PROG = "sgtrain-directions"
SUBCOMMANDS = ("sefa", "fit", "apply", "video")

EPILOG = """subcommands:
  sefa    closed-form directions of the modulation weights (SeFa, Shen & Zhou 2021); no samples needed
  fit     a direction from (latent, score) pairs: InterFaceGAN's linear SVM or logistic regression, in z, w or w+
  apply   move seeds or projected latents along a direction and render a grid (rows = latents, columns = strengths)
  video   a walk along a direction (InterFaceGAN's "age animation"), .mp4 or .gif

examples:
  sgtrain-directions sefa --network runs/emoji --outdir out/sefa
  sgtrain-directions fit --network runs/emoji --image-score brightness --seeds 0-1999 --outdir out/dirs
  sgtrain-directions fit --network ffhq.pkl --scores ages.csv --attribute age --condition glasses --outdir out/dirs
  sgtrain-directions apply --network runs/emoji --direction out/dirs/brightness.npz --seeds 0-3 --strengths=-2,0,2 \\
      --outdir out/bright
  sgtrain-directions video --network ffhq.pkl --direction out/dirs/age.npz --w proj/projected_w.npz --output age.mp4
Run 'sgtrain-directions SUBCOMMAND -h' for its options. Direction files are described in docs/latent.md.
"""

SEFA_EPILOG = """examples:
  sgtrain-directions sefa --network runs/emoji --outdir out/sefa                      # all layers, directions 0-4
  sgtrain-directions sefa --network ffhq.pkl --layers coarse --indices 0-9 --strengths=-8,8 --outdir out/sefa_pose
  sgtrain-directions sefa --network ffhq.pkl --directions out/sefa/directions.npz --indices 3 --outdir out/d3
Writes directions.npz (directions [w_dim, w_dim], row k = k-th direction; eigenvalues; layers) and one grid per
direction, dirNNN.png: rows = seeds, columns = strengths from the first to the second value of --strengths.
One SeFa direction is used by apply / video with --direction out/sefa/directions.npz --index K.
"""

FIT_EPILOG = """Scores come from one of:
  --scores CSV        a 'seed' or 'file' column (latent .npz files, e.g. projected_w.npz; 'index' picks one of
                      several latents in a file) and one column per attribute; empty cells are missing scores
  --image-score NAME  computed from each seed's image: brightness, redness, left-right, contrast (demos, tests)
  --class-labels      the class of a conditional network: seed s is drawn with class s % c_dim; one direction per
                      class (classK.npz, towards class K), or only --target-class K
Writes OUTDIR/<attribute>.npz per attribute (and OUTDIR/scores.csv for --image-score). --condition A (an attribute
of the same scores, fitted too) or --condition FILE.npz removes the other attributes' normals from the direction
(InterFaceGAN's conditional manipulation): moving along it leaves those attributes as they are.
examples:
  sgtrain-directions fit --network runs/emoji --image-score brightness,left-right --condition left-right \\
      --seeds 0-1999 --space z --outdir out/dirs
  sgtrain-directions fit --network ffhq.pkl --scores attrs.csv --attribute age --method logistic --space w+ \\
      --outdir out/dirs
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", required=True, metavar="PATH",
                   help="run directory, .ckpt, portable network (.safetensors + .json) or NVlabs .pkl")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="images per network call (default: 16)")


def _sefa_args(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--layers", default="all", help="all | coarse | middle | fine | range like '0-3' (default: all)")
    p.add_argument("--directions", metavar="NPZ", help="use saved directions instead of computing them")
    p.add_argument("--indices", default="0-4", help="directions to render, strongest = 0 (default: 0-4)")
    p.add_argument("--seeds", default="0-3", help="seeds of the sweep rows (default: 0-3)")
    p.add_argument("--strengths", default="-5,5", help="first,last strength in units of w (default: -5,5)")
    p.add_argument("--num-strengths", type=int, default=7, help="columns of each sweep (default: 7)")
    add_sampling_args(p, trunc=0.7)
    p.add_argument("--outdir", required=True, help="output folder")


def _sefa(args) -> None:
    G = load_generator(args.network, args.device)
    if "w" not in latent_spaces(G):
        raise InputError(f"this network has no W space ({family_name(G)}): SeFa factorizes the style affine layers "
                         "of a style-based generator (StyleGAN, StyleGAN2, StyleGAN3); for a z direction use "
                         "sgtrain-directions fit --space z")
    if args.directions:
        found = load_directions(args.directions)
        if any(d.method != "sefa" for d in found):
            raise InputError(f"'{args.directions}' holds a fitted direction, not SeFa's directions.npz: render it with "
                             "sgtrain-directions apply --direction")
        result = dict(directions=torch.stack([d.vector for d in found]),
                      eigenvalues=torch.tensor([d.meta.get("eigenvalue", float("nan")) for d in found]),
                      layers=found[0].layers or list(range(G.num_ws)))
        if result["directions"].shape[1] != G.w_dim:
            raise InputError(f"'{args.directions}' holds directions of w_dim {result['directions'].shape[1]}, "
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
        raise InputError(f"--indices {bad} out of range 0-{result['directions'].shape[0] - 1}")
    lo, hi = _two_floats(args.strengths, "--strengths")
    n = max(2, args.num_strengths)
    strengths = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    out = direction_sweep(G, parse_range(args.seeds), result["directions"][indices], result["layers"], strengths,
                          args.trunc, args.trunc_cutoff, args.class_idx, args.noise_mode, args.batch_size)
    for i, grid in zip(indices, out["grids"]):
        save_image(grid, os.path.join(args.outdir, f"dir{i:03d}.png"))
    print(f"wrote {len(indices)} sweeps (strengths {', '.join(f'{s:g}' for s in strengths)}) to {args.outdir}")


def _two_floats(text: str, what: str) -> tuple[float, float]:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) != 2:
        raise InputError(f"{what} '{text}': give first,last, e.g. {what}=-3,3")
    return float(parts[0]), float(parts[1])


def _layers(G, spec: str | None) -> list[int] | None:
    if spec is None or spec == "all":
        return None
    require_w(G, "--layers (ws indices)")
    return style_layers(spec, G.num_ws, G.img_resolution)


def _fit_args(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scores", metavar="CSV", help="scores keyed by 'seed' or by latent 'file'")
    src.add_argument("--image-score", metavar="NAMES", help=f"scores from the images: {', '.join(IMAGE_SCORES)}")
    src.add_argument("--class-labels", action="store_true", help="the class labels of a conditional network")
    p.add_argument("--seeds", default="0-1999", help="seeds for --image-score / --class-labels (default: 0-1999)")
    p.add_argument("--attribute", action="append", metavar="NAME",
                   help="attribute column(s) of --scores to fit (repeat; default: every column)")
    p.add_argument("--target-class", type=int, metavar="K", help="with --class-labels: only class K")
    p.add_argument("--condition", action="append", default=[], metavar="NAME|FILE",
                   help="keep this attribute (a score column, fitted too, or a direction .npz) unchanged (repeat)")
    p.add_argument("--space", default="w", choices=["z", "w", "w+"], help="latent space of the fit (default: w)")
    p.add_argument("--method", default="svm", choices=["svm", "logistic"],
                   help="linear SVM on the top/bottom --ratio (InterFaceGAN) or logistic regression (default: svm)")
    p.add_argument("--ratio", type=float, default=None,
                   help="fraction of samples taken from each end of the scores (default: 0.02 for svm as "
                        "InterFaceGAN, 0.5 = all for logistic)")
    p.add_argument("--split", type=float, default=0.7, help="training fraction; the rest measures accuracy (0.7)")
    p.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength of the SVM / logistic fit")
    p.add_argument("--layers", default="all",
                   help="layers an edit applies to by default, stored in the file: all | coarse | middle | fine | 0-3")
    add_sampling_args(p)
    p.add_argument("--outdir", required=True, help="output folder: one <attribute>.npz per direction")


def _fit(args) -> None:
    G = load_generator(args.network, args.device)
    spaces = latent_spaces(G)
    if args.space not in spaces:
        raise InputError(f"this network has no {args.space} space ({family_name(G)} takes z only): use --space z")
    if args.trunc != 1:
        require_w(G, "the truncation trick (--trunc != 1)")
    ratio = args.ratio if args.ratio is not None else (0.02 if args.method == "svm" else 0.5)
    layers = _layers(G, args.layers)
    if layers is None and args.space != "z":
        layers = list(range(G.num_ws))  # explicit, for readers that take the list as given
    seeds = parse_range(args.seeds)
    scores: dict[str, np.ndarray] = {}
    if args.scores:
        table = read_scores_csv(args.scores)
        latents = table_latents(G, table, args.space, args.trunc, args.trunc_cutoff, args.class_idx, args.batch_size)
        scores = table["scores"]
        source = f"{len(table['keys'])} rows of {args.scores}"
    elif args.image_score:
        latents = seed_latents(G, seeds, args.space, args.trunc, args.trunc_cutoff, args.class_idx,
                               batch_size=args.batch_size)
        names = [n.strip() for n in args.image_score.split(",") if n.strip()]
        c = None
        if args.space == "z" and G.c_dim:
            from sgtrain.latent import make_labels

            c = make_labels(G, len(seeds), args.class_idx, next(G.parameters()).device)
        imgs = render_latents(G, latents, args.space, c, args.trunc, args.trunc_cutoff, args.noise_mode,
                              args.batch_size)
        scores = {n: image_scores(imgs, n).cpu().double().numpy() for n in names}
        os.makedirs(args.outdir, exist_ok=True)
        with open(os.path.join(args.outdir, "scores.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["seed", *names])
            for i, s in enumerate(seeds):
                writer.writerow([s, *(f"{scores[n][i]:.6g}" for n in names)])
        source = f"{len(seeds)} seeds, scores from the images"
    else:
        if args.space == "z":
            raise InputError("z does not depend on the class (c enters the mapping network): use --space w or w+")
        classes = seed_classes(seeds, G.c_dim)
        latents = seed_latents(G, seeds, args.space, args.trunc, args.trunc_cutoff, classes=classes,
                               batch_size=args.batch_size)
        targets = range(G.c_dim) if args.target_class is None else [args.target_class]
        cls = np.asarray(classes)
        scores = {f"class{k}": (cls == k).astype(np.float64) for k in targets}
        source = f"{len(seeds)} seeds, class = seed % {G.c_dim}"
    wanted = args.attribute or [a for a in scores if a not in args.condition]
    missing = [a for a in wanted + [c for c in args.condition if not c.endswith(".npz")] if a not in scores]
    if missing:
        raise InputError(f"no scores for {missing}; the scores have {sorted(scores)}")
    print(f"fitting {args.method} (ratio {ratio:g}) in {args.space} on {source}")
    fitted: dict[str, Direction] = {}

    def fit(name: str) -> Direction:
        if name not in fitted:
            r = fit_direction(latents, scores[name], args.method, ratio, args.split, args.C)
            vector, method, accuracy = r.pop("direction"), r.pop("method"), r.pop("accuracy")
            fitted[name] = Direction(vector, args.space, layers, name=name, method=method, accuracy=accuracy, meta=r)
        return fitted[name]

    conditions = []
    for cond in args.condition:
        if cond.endswith(".npz"):
            rec = load_direction(cond)
            rec.check(G)
            if rec.space != args.space:
                raise InputError(f"--condition {cond} is a {rec.space} direction; this fit is in {args.space}")
            conditions.append(rec)
        else:
            conditions.append(fit(cond))
    os.makedirs(args.outdir, exist_ok=True)
    for name in list(dict.fromkeys(wanted + [c for c in args.condition if not c.endswith(".npz")])):
        rec = fit(name)
        others = [c for c in conditions if c.name != name] if name in wanted else []
        if others:
            vector = condition_direction(rec.vector, [c.vector for c in others])
            flat = latents.reshape(latents.shape[0], -1).double().cpu()
            proj = (flat @ vector.reshape(-1).double()).numpy()
            ok = np.isfinite(scores[name])
            p, s = proj[ok] - proj[ok].mean(), scores[name][ok] - scores[name][ok].mean()
            meta = {k: v for k, v in rec.meta.items() if k != "offset"}  # the offset is the unconditioned normal's
            meta.update(conditioned_on=[c.name for c in others], latent_std=float(np.sqrt((p * p).mean())),
                        score_slope=float((p * s).mean() / max((p * p).mean(), 1e-30)))
            rec = replace(rec, vector=vector, meta=meta)
        path = os.path.join(args.outdir, f"{name}.npz")
        rec.save(path)
        cond = f", conditioned on {', '.join(rec.meta['conditioned_on'])}" if rec.meta.get("conditioned_on") else ""
        print(f"{name}: accuracy {rec.accuracy:.3f} (validation, {rec.meta['num_val']} samples), "
              f"{rec.meta['accuracy_all']:.3f} (all samples); latents spread {rec.meta['latent_std']:.3g} along "
              f"it{cond} -> {path}")


def _edit_args(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--direction", required=True, metavar="NPZ",
                   help="direction file from 'fit' (or a SeFa directions.npz with --index)")
    p.add_argument("--index", type=int, default=None, help="which direction of a SeFa directions.npz (default: 0)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--seeds", help="seeds to edit, e.g. '0-3'")
    src.add_argument("--w", metavar="NPZ", help="latent file (key 'w', e.g. projected_w.npz) to edit")
    p.add_argument("--layers", default=None,
                   help="layers to edit: all | coarse | middle | fine | range like '0-5' (default: the file's)")
    add_sampling_args(p)


def _edit_inputs(args, G) -> tuple[Direction, dict]:
    rec = load_direction(args.direction, args.index)
    rec.check(G)
    if args.trunc != 1:
        require_w(G, "the truncation trick (--trunc != 1)")
    if args.seeds is not None:
        seeds = parse_range(args.seeds)
        z = seeds_to_z(seeds, G.z_dim).to(next(G.parameters()).device)
        from sgtrain.latent import make_labels

        c = make_labels(G, len(seeds), args.class_idx, z.device)
        inputs = dict(z=z, c=c)
        if rec.space != "z":
            inputs = dict(ws=seeds_to_ws(G, seeds, args.trunc, args.trunc_cutoff, args.class_idx, args.batch_size))
    else:
        require_w(G, "a latent file of ws (--w; give --seeds for z)")
        inputs = dict(ws=load_ws(args.w, G.num_ws, G.w_dim).to(next(G.parameters()).device))
    kw = dict(layers=_layers(G, args.layers), truncation_psi=args.trunc, truncation_cutoff=args.trunc_cutoff,
              noise_mode=args.noise_mode, batch_size=args.batch_size)
    return rec, {**inputs, **kw}


def _apply_args(p: argparse.ArgumentParser) -> None:
    _edit_args(p)
    p.add_argument("--strengths", default="-3,0,3",
                   help="comma-separated strengths in latent units, one column each (default: -3,0,3; write "
                        "--strengths=-3,0,3 because of the leading minus)")
    p.add_argument("--outdir", required=True, help="output folder: grid.png, edited_w.npz")


def _apply(args) -> None:
    G = load_generator(args.network, args.device)
    rec, kw = _edit_inputs(args, G)
    strengths = [float(s) for s in args.strengths.split(",") if s.strip()]
    if not strengths:
        raise InputError("--strengths names no values; write e.g. --strengths=-3,0,3")
    out = render_direction(G, rec, strengths, **kw)
    os.makedirs(args.outdir, exist_ok=True)
    save_image(out["grid"], os.path.join(args.outdir, "grid.png"))
    msg = "grid.png"
    if out["ws"] is not None:
        ws = out["ws"]
        save_ws(os.path.join(args.outdir, "edited_w.npz"), ws.reshape(-1, *ws.shape[2:]),
                strengths=np.asarray(strengths, dtype=np.float32))
        msg += f" and edited_w.npz ([{ws.shape[0]} latents x {ws.shape[1]} strengths, num_ws, w_dim])"
    std = rec.meta.get("latent_std")
    spread = f"; the fitted samples spread {std:.3g} along it" if isinstance(std, float) else ""
    print(f"{rec.name or 'direction'} ({rec.space}, layers {rec.layers or 'all'}){spread}; "
          f"wrote {msg} to {args.outdir}")


def _video_args(p: argparse.ArgumentParser) -> None:
    _edit_args(p)
    p.add_argument("--strengths", default="-3,3", help="first,last strength (default: -3,3; write --strengths=-3,3)")
    p.add_argument("--no-loop", dest="loop", action="store_false",
                   help="go once from the first to the last strength instead of 0 -> last -> first -> 0")
    p.add_argument("--grid", metavar="RxC", help="arrangement of several latents (default: one row)")
    p.add_argument("--fps", type=float, default=30, help="frames per second (default: 30)")
    p.add_argument("--seconds", type=float, default=4, help="length in seconds (default: 4)")
    p.add_argument("--output", required=True, help="output .mp4 (H.264 via imageio-ffmpeg) or .gif")


def _video(args) -> None:
    G = load_generator(args.network, args.device)
    rec, kw = _edit_inputs(args, G)
    n = direction_video(G, rec, args.output, strengths=_two_floats(args.strengths, "--strengths"),
                        grid=parse_grid(args.grid), loop=args.loop, fps=args.fps, seconds=args.seconds, **kw)
    print(f"wrote {n} frames ({args.fps:g} fps) to {args.output}")


def build_parser() -> argparse.ArgumentParser:
    """The sgtrain-directions parser with its four subcommands (``args.func`` runs the chosen one)."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog=PROG, description="Latent directions: closed-form (SeFa) or fitted to scores "
                                "(InterFaceGAN), applied to seeds or projected latents, walked in a video.",
                                epilog=EPILOG, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for name, add, func, help_, epilog in (
        ("sefa", _sefa_args, _sefa, "closed-form factorization (SeFa) and strength sweeps", SEFA_EPILOG),
        ("fit", _fit_args, _fit, "fit a direction to scores (SVM / logistic regression)", FIT_EPILOG),
        ("apply", _apply_args, _apply, "edit seeds or latent files along a direction", ""),
        ("video", _video_args, _video, "a video walking along a direction", ""),
    ):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=epilog, formatter_class=fmt)
        add(sp)
        sp.set_defaults(func=func)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        # The form before subcommands existed: SeFa options straight after the command name.
        print(f"{PROG}: note: options without a subcommand run SeFa as before; write '{PROG} sefa {argv[0]} ...' "
              f"(subcommands: {', '.join(SUBCOMMANDS)})", file=sys.stderr)
        argv = ["sefa", *argv]
    run(lambda args: args.func(args), build_parser(), argv)


if __name__ == "__main__":
    main()
