"""``sgtrain-data``: pack image collections into shards and inspect packed datasets.

    sgtrain-data pack SRC OUT --resolution R|WxH [--crop center|none|center-crop|center-crop-wide]
                      [--resize-filter box|lanczos] [--channels 1|3|4]
                      [--labels auto|folders|none] [--shard-size 1GB] [--workers N] [--allow-upscale] [--overwrite]
                      [--order shuffled|sorted] [--storage png|raw] [--name NAME]
    sgtrain-data inspect OUT [--grid PATH] [--num 64] [--verify]

Exit status: 0 on success (also when bad input files were skipped: they are listed in OUT/skipped.txt),
2 on a usage error, a missing or empty SRC, or an existing OUT without --overwrite.
"""

from __future__ import annotations

import argparse
import os
import sys

from sgtrain.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sgtrain-data", description="Pack images into webdataset shards; inspect them.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="pack a folder, zip, NVlabs dataset zip or LMDB into shards + dataset.json")
    pk.add_argument("src", help="folder (recursive), .zip, NVlabs dataset zip, .tar[.gz], or LSUN LMDB directory")
    pk.add_argument("out", help="output directory for <name>-NNNNNN.tar, dataset.json, skipped.txt")
    pk.add_argument("--resolution", required=True,
                    help="output side R (images become R x R) or WxH, width x height (NVlabs' form, e.g. 512x384)")
    pk.add_argument(
        "--crop",
        "--transform",
        dest="crop",
        choices=["center", "none", "center-crop", "center-crop-wide"],
        default="center",
        help="center: largest centred box of aspect W:H (default); none: images must have that aspect; NVlabs' "
        "center-crop: largest centred square resized to WxH; center-crop-wide: full width at W:H, padded onto WxW",
    )
    pk.add_argument("--resize-filter", choices=["box", "lanczos"], default="lanczos", help="default lanczos")
    pk.add_argument("--channels", type=int, choices=[1, 3, 4], default=3,
                    help="3 = RGB (alpha composited on white, default), 1 = grayscale, 4 = RGBA (alpha kept)")
    pk.add_argument(
        "--labels",
        choices=["auto", "folders", "none"],
        default="auto",
        help="auto: NVlabs dataset.json, else first-level folder names; folders: sub-folder names only; "
        "none: unconditional",
    )
    pk.add_argument("--shard-size", default="1GB", help="target shard size (1GB, 256MB, ...; default 1GB)")
    pk.add_argument("--workers", type=int, default=None, help="decode processes (default: number of CPUs)")
    pk.add_argument("--allow-upscale", action="store_true", help="keep images smaller than R (upsampled)")
    pk.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    pk.add_argument("--name", default=None, help="shard name prefix (default: basename of OUT)")
    pk.add_argument(
        "--order",
        choices=["shuffled", "sorted"],
        default="shuffled",
        help="shuffled: sorted paths permuted with a fixed seed (default); sorted: path order",
    )
    pk.add_argument(
        "--storage",
        choices=["png", "raw"],
        default="png",
        help="png: lossless PNG, decoded by the loader (default); raw: decoded uint8 arrays (.npy), no decode "
        "when training, H x W x C bytes an image",
    )
    pk.add_argument("--no-progress", action="store_true", help="no progress bar")
    ins = sub.add_parser("inspect", help="print the dataset card and write a sample grid PNG")
    ins.add_argument("out", help="packed dataset directory (holds dataset.json)")
    ins.add_argument("--grid", default=None, help="grid PNG path (default OUT/grid.png)")
    ins.add_argument("--num", type=int, default=64, help="images in the grid (default 64)")
    ins.add_argument("--verify", action="store_true", help="check every shard's sha256 against the card")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "pack":
            from sgtrain.data.pack import pack

            card = pack(
                args.src,
                args.out,
                args.resolution,
                crop=args.crop,
                resize_filter=args.resize_filter,
                channels=args.channels,
                labels=args.labels,
                shard_size=args.shard_size,
                workers=args.workers,
                allow_upscale=args.allow_upscale,
                overwrite=args.overwrite,
                name=args.name,
                progress=not args.no_progress,
                order=args.order,
                storage=args.storage,
            )
            skipped = card.pack.get("skipped", 0)
            print(
                f"packed {card.count} images ({card.size[0]}x{card.size[1]}, {card.channels} ch, {card.storage}, "
                f"c_dim={card.c_dim}) into {len(card.shards)} shard(s) in {args.out}; "
                f"skipped {skipped} (listed in {os.path.join(args.out, 'skipped.txt')})"
            )
            return 0
        from sgtrain.data.card import load_card
        from sgtrain.data.preview import verify_shards, write_grid

        card = load_card(args.out)
        print(card.summary())
        path = write_grid(args.out, args.grid, args.num)
        print(f"grid        {path}")
        if args.verify:
            problems = verify_shards(args.out, card)
            for p in problems:
                print(f"error: {p}", file=sys.stderr)
            print("verify      " + ("ok" if not problems else f"{len(problems)} problem(s)"))
            return 1 if problems else 0
        return 0
    except UserError as e:
        print(f"sgtrain-data: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
