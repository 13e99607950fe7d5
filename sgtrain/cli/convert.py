"""``sgtrain-convert IN OUT``: any network file sgtrain opens -> portable ``OUT.safetensors`` + ``OUT.json``.

IN: a run directory, a portable file, a Lightning .ckpt, an NVlabs .pkl (PyTorch StyleGAN2/3, or TensorFlow
ProGAN / StyleGAN / StyleGAN2; read without running its embedded code or TensorFlow) or a rosinality .pt.
OUT: a stem, ``<stem>.safetensors`` or ``<stem>.json``.

Exit status: 0 on success; 2 when IN cannot be opened (missing, refused pickle global, unsupported architecture,
a broken or hostile file: one line naming the file and the reason) and on a usage error.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="sgtrain-convert",
        description="Convert any network file sgtrain opens to a portable OUT.safetensors + OUT.json pair.",
    )
    ap.add_argument("input", metavar="IN", help="run dir, .safetensors/.json, .ckpt, NVlabs .pkl, rosinality .pt")
    ap.add_argument("output", metavar="OUT", help="output stem (writes OUT.safetensors and OUT.json)")
    args = ap.parse_args(argv)

    from sgtrain.errors import UserError
    from sgtrain.io import load_network, save_network

    try:
        nets = load_network(args.input)
    except UserError as e:
        print(f"sgtrain-convert: error: {e}", file=sys.stderr)
        return 2
    info = dict(nets.get("training_info") or {})
    info["converted_from"] = str(args.input)
    paths = save_network(args.output, nets["G_ema"], G=nets.get("G"), D=nets.get("D"),
                         augment_p=nets.get("augment_p"), training_info=info)
    which = ", ".join(k for k in ("G_ema", "G", "D") if k in nets)
    print(f"sgtrain-convert: wrote {paths[0]} and {paths[1]} ({which})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
