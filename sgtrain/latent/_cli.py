"""Argument parsing shared by the sgtrain-generate/-mix/-video/-project/-blend/-directions entry points."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import torch

from sgtrain.errors import InputError, UserError


def base_parser(prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """An ArgumentParser with --network, --device and --batch-size."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, metavar="PATH",
                   help="run directory, .ckpt, portable network (.safetensors + .json) or NVlabs .pkl")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="images per network call (default: 16)")
    return p


def add_sampling_args(p: argparse.ArgumentParser, trunc: float = 1.0) -> None:
    """--trunc, --trunc-cutoff, --class, --noise-mode."""
    p.add_argument("--trunc", type=float, default=trunc, metavar="PSI",
                   help=f"truncation psi: 1 = off, 0 = the average image (default: {trunc})")
    p.add_argument("--trunc-cutoff", type=int, default=None, metavar="L",
                   help="truncate only the first L layers of w (default: all)")
    p.add_argument("--class", dest="class_idx", type=int, default=None, metavar="K",
                   help="class index, required for a conditional network")
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"],
                   help="per-pixel noise: the network's fixed noise (const), fresh noise (random) or none")


def parse_vec2(text: str | None) -> tuple[float, float] | None:
    """``'X,Y'`` -> (x, y) floats (NVlabs' gen_images.py ``parse_vec2``); None stays None.

    Raises:
        ValueError: not two comma-separated numbers.
    """
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise InputError(f"cannot parse '{text}': write two numbers X,Y such as '0.1,-0.25'")


def add_transform_args(p: argparse.ArgumentParser) -> None:
    """--translate X,Y and --rotate DEG: StyleGAN3's input transform (NVlabs' gen_images.py options)."""
    p.add_argument("--translate", default=None, metavar="X,Y",
                   help="StyleGAN3 only: translate the picture by X,Y image widths/heights (e.g. '0.1,-0.25')")
    p.add_argument("--rotate", type=float, default=None, metavar="DEG",
                   help="StyleGAN3 only: rotate the picture by DEG degrees (gen_images.py's sign convention)")


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None) -> None:
    """Parse ``argv`` and call ``main``; user errors (:class:`sgtrain.errors.UserError`: bad values, missing files)
    exit 2 with their one-line message and no trace. Any other exception is a bug and shows its traceback."""
    args = parser.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    try:
        main(args)
    except UserError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
