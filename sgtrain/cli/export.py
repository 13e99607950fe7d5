"""sgtrain-export: a generator as ONNX or TorchScript for deployment, or a network as an NVlabs pickle.

    sgtrain-export onnx --network RUN|FILE --out g.onnx [--trunc PSI] [--trunc-cutoff N] [--noise-mode const|none]
    sgtrain-export torchscript --network RUN|FILE --out g.pt [same options]
    sgtrain-export nvlabs --network RUN|FILE --out network.pkl [--target stylegan3|stylegan2-ada]

The logic lives in sgtrain.io.export and sgtrain.io.export_nvlabs; docs/networks.md has the format x family matrix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EPILOG = """examples:
  sgtrain-export onnx --network runs/emoji --out g.onnx --trunc 0.7
  sgtrain-export torchscript --network runs/emoji --out g.pt
  sgtrain-export nvlabs --network runs/emoji --out network.pkl   # for NVlabs' gen_images.py, visualizer.py
The graph: input z [N, z_dim] float32 (and c [N, c_dim] when conditional), output img [N, C, H, W] float32 in
[-1, 1]; psi and cutoff are baked in, noise is constant, N is dynamic. Exit status 2 and one line on bad input.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sgtrain-export", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("format", help="onnx, torchscript or nvlabs")
    p.add_argument("--network", required=True, help="run directory, portable .safetensors, .ckpt, NVlabs .pkl, ...")
    p.add_argument("--out", required=True, help="file to write (atomically; nothing is left on failure)")
    p.add_argument("--which", default="G_ema", choices=["G_ema", "G"], help="generator to export (onnx/torchscript)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi baked into the graph (1 = off)")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N ws (default all)")
    p.add_argument("--noise-mode", default="const", help="const (the network's fixed noise) or none")
    targets = list(_targets())
    p.add_argument("--target", default=targets[0], choices=targets,
                   help="nvlabs: the repository that reads the pickle: NVlabs/stylegan3 (StyleGAN2 and 3, the default) "
                        "or NVlabs/stylegan2-ada-pytorch (StyleGAN2)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    from sgtrain.errors import UserError
    from sgtrain.io import load_network
    from sgtrain.io.export import FORMATS, ExportError, export_generator

    try:
        if args.format not in (*FORMATS, "nvlabs"):
            raise ExportError(f"unknown export format {args.format!r}: use onnx, torchscript or nvlabs")
        nets = load_network(args.network, device="cpu")
        if args.format == "nvlabs":
            from sgtrain.io.export_nvlabs import export_nvlabs

            export_nvlabs(nets, args.out, args.target)
        else:
            G = nets.get(args.which)
            if G is None:
                raise ExportError(f"{args.network} has no {args.which}")
            export_generator(G, args.format, args.out, truncation_psi=args.trunc,
                             truncation_cutoff=args.trunc_cutoff, noise_mode=args.noise_mode)
    except (UserError, OSError) as e:  # OSError: the output cannot be written (a full disk, no permission)
        print(f"sgtrain-export: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {args.out}")


def _targets() -> dict:
    """NVlabs' repositories an exported pickle can be read by (sgtrain.io.export_nvlabs.TARGETS; the first is the
    default)."""
    from sgtrain.io.export_nvlabs import TARGETS

    return TARGETS


if __name__ == "__main__":
    main()
