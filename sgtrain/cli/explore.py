"""sgtrain-explore: a local web page to explore generators (seed grid, truncation, style mixing, directions, noise,
projection, downloads); docs/studio.md."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from sgtrain.latent._cli import run

EPILOG = """examples:
  sgtrain-explore --network runs/stylegan_small-smileys
  sgtrain-explore --network emoji=runs/stylegan_small-smileys --network second=runs/smileys-seed1 --port 8080
  sgtrain-explore --network ffhq.pkl --directions smile.npz --vgg ~/weights/vgg16.pt --device cuda
Then open http://127.0.0.1:PORT/ in a browser. The page needs no internet access; everything is computed locally.
--host 0.0.0.0 makes it reachable from other machines: the page has no authentication, so only do that on a
trusted network (or tunnel: ssh -L 8000:127.0.0.1:8000 server).
"""


def _split_network(spec: str) -> tuple[str | None, str]:
    """'name=path' (when path is not itself an existing file with '=') or 'path'."""
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
        if name and name.replace("-", "_").isidentifier():
            return name, path
    return None, spec


def _main(args: argparse.Namespace) -> None:
    import threading

    import torch
    import uvicorn

    from sgtrain.latent.common import load_generator, resolve_device
    from sgtrain.latent.explore import Explorer, create_app, network_name

    device = resolve_device(args.device)
    nets, paths = {}, {}
    for spec in args.network:
        name, path = _split_network(spec)
        name = name or network_name(path)
        base, k = name, 2
        while name in nets:
            name, k = f"{base}-{k}", k + 1
        print(f"loading {name} from {path}")
        nets[name] = load_generator(path, device)
        paths[name] = path
    explorer = Explorer(nets, paths, directions=args.directions or (), vgg=args.vgg, batch_size=args.batch_size,
                        sefa_count=args.sefa, w_avg_samples=args.w_avg_samples)
    app = create_app(explorer, hosts=_allowed_hosts(args))
    # torch's optimizers import torch._dynamo on first use (seconds): do it now, so the first projection starts at once.
    threading.Thread(target=lambda: torch.optim.Adam([torch.zeros(1, requires_grad=True)]), daemon=True).start()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"sgtrain-explore: http://{host}:{args.port}/  ({len(nets)} network{'s' if len(nets) > 1 else ''}; "
          "Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


def _allowed_hosts(args: argparse.Namespace) -> list[str]:
    """Host names the page may be reached under besides localhost: the bound address, --allow-host, and for a
    wildcard bind (0.0.0.0, ::) this machine's names."""
    import socket

    hosts = [args.host, *(args.allow_host or [])]
    if args.host in ("0.0.0.0", "::", ""):
        hosts += [socket.gethostname(), socket.getfqdn()]
    return hosts


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="sgtrain-explore", description="Explore generators in a local web page: seed "
                                "grid, psi/cutoff, style mixing of any two latents with a per-layer view, noise per "
                                "layer, direction sliders, StyleGAN3 translate/rotate, image projection, downloads.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", action="append", required=True, metavar="[NAME=]PATH",
                   help="network to explore (repeat for several; the page switches between them)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--allow-host", action="append", metavar="NAME",
                   help="another name the page is reached under (its Host header; repeat); others get 403")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="images per network call (default: 16)")
    p.add_argument("--directions", action="append", metavar="NPZ",
                   help="direction file(s) to offer as sliders (sgtrain-directions fit or sgtrain-directions output)")
    p.add_argument("--sefa", type=int, default=8, help="leading SeFa directions offered as sliders (default: 8)")
    p.add_argument("--vgg", metavar="PATH", help="VGG16 weights for the lpips-vgg projection loss (else mse only)")
    p.add_argument("--w-avg-samples", type=int, default=10000,
                   help="z samples for the projection's starting point (default: 10000)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default: warning)")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
