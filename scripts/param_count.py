#!/usr/bin/env python
"""Print the parameter counts of the networks sgtrain-train builds, against NVlabs' published counts.

    python scripts/param_count.py                                  # the presets below, checked against NVlabs
    python scripts/param_count.py model=stylegan3_t --resolution 256  # any config, composed as sgtrain-train does

Each preset is a sgtrain-train config (conf/), composed with the same build step as training (the networks of
sgtrain.training.run.build_training) on a synthetic dataset card of its resolution. Expected (NVlabs,
stylegan2-ada-pytorch README / training logs): config-f 1024x1024 (model=stylegan2) G 30.370M, D 29.013M; paper256
(experiment=paper256) G 24.767M, D 24.001M. Counts are trainable parameters (buffers such as noise_const, w_avg and
resample filters excluded), as NVlabs' print_module_summary reports them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: name -> (overrides, resolution, NVlabs' (G, D) in millions)
PRESETS: dict[str, tuple[list[str], int, tuple[float, float]]] = {
    "config-f 1024": (["model=stylegan2"], 1024, (30.370, 29.013)),
    "paper256": (["experiment=paper256"], 256, (24.767, 24.001)),
}


def count_parameters(module: object) -> int:
    """Number of trainable parameter elements of ``module`` (a torch.nn.Module)."""
    return sum(p.numel() for p in module.parameters())  # type: ignore[attr-defined]


def networks(overrides: list[str], resolution: int, channels: int = 3) -> tuple[object, object]:
    """G and D of the sgtrain-train config ``overrides`` for data of ``resolution`` x ``resolution`` x ``channels``.

    Raises:
        SystemExit: a config that does not compose or validate (the message names the key).
    """
    from bench_train import compose_checked, synthetic_dataset

    from sgtrain.training.run import build_networks, check_capabilities

    with tempfile.TemporaryDirectory(prefix="sgtrain-params-") as data_dir:
        synthetic_dataset(data_dir, resolution, channels)
        cfg = compose_checked([*overrides, f"dataset.path={data_dir}", "logger=none"], prog="param_count.py")
        G, D = build_networks(cfg)
        check_capabilities(cfg, G)
    return G, D


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="a sgtrain-train config to count instead of the presets (model=..., experiment=...)")
    parser.add_argument("--resolution", type=int, default=256, help="data resolution for the overrides (pixels)")
    parser.add_argument("--channels", type=int, default=3, help="image channels for the overrides")
    args = parser.parse_intermixed_args(argv)

    configs = PRESETS
    if args.overrides:
        configs = {" ".join(args.overrides): (list(args.overrides), args.resolution, None)}  # type: ignore[dict-item]
    ok = True
    for name, (overrides, resolution, expected) in configs.items():
        G, D = networks(overrides, resolution, args.channels)
        counts = [count_parameters(G), count_parameters(D)]
        line = f"{name} ({resolution}x{resolution}): " + ", ".join(
            f"{key} {n / 1e6:.3f}M ({n:,})" for key, n in zip("GD", counts))
        if expected is not None:
            match = tuple(round(n / 1e6, 3) for n in counts) == expected
            ok &= match
            line += f"  NVlabs: G {expected[0]:.3f}M, D {expected[1]:.3f}M  " + ("match" if match else "MISMATCH")
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
