#!/usr/bin/env python
"""Print StyleGAN2 parameter counts for NVlabs' reference configurations (and any config given as JSON).

    python scripts/param_count.py
    python scripts/param_count.py --G '{"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 64,
        "img_channels": 3}' --D '{"c_dim": 0, "img_resolution": 64, "img_channels": 3}'

Expected (NVlabs, stylegan2-ada-pytorch README / training logs): 1024x1024 config-f G 30.370M, D 29.013M;
256x256 paper256 G 24.767M, D 24.001M. Counts are trainable parameters (buffers such as noise_const, w_avg
and resample filters excluded), as NVlabs' print_module_summary reports them.
"""

from __future__ import annotations

import argparse
import json

import torch

from sgtrain.models.stylegan2 import Discriminator, Generator

CONFIGS = {
    "config-f 1024": dict(
        G=dict(
            z_dim=512,
            c_dim=0,
            w_dim=512,
            img_resolution=1024,
            img_channels=3,
            channel_base=32768,
            channel_max=512,
            mapping_kwargs=dict(num_layers=8),
        ),
        D=dict(c_dim=0, img_resolution=1024, img_channels=3, channel_base=32768, channel_max=512),
        expected=(30.370, 29.013),
    ),
    "paper256": dict(
        G=dict(
            z_dim=512,
            c_dim=0,
            w_dim=512,
            img_resolution=256,
            img_channels=3,
            channel_base=16384,
            channel_max=512,
            num_fp16_res=4,
            conv_clamp=256,
            mapping_kwargs=dict(num_layers=8),
        ),
        D=dict(
            c_dim=0,
            img_resolution=256,
            img_channels=3,
            channel_base=16384,
            channel_max=512,
            num_fp16_res=4,
            conv_clamp=256,
            epilogue_kwargs=dict(mbstd_group_size=8),
        ),
        expected=(24.767, 24.001),
    ),
}


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameter elements of ``module``."""
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--G", help="Generator kwargs as JSON (prints this config instead of the presets)")
    parser.add_argument("--D", help="Discriminator kwargs as JSON")
    args = parser.parse_args(argv)

    configs = CONFIGS
    if args.G or args.D:
        configs = {
            "custom": dict(
                G=json.loads(args.G) if args.G else None, D=json.loads(args.D) if args.D else None, expected=None
            )
        }
    ok = True
    for name, cfg in configs.items():
        parts = []
        counts = []
        for key in ("G", "D"):
            if cfg[key] is None:
                continue
            net = (Generator if key == "G" else Discriminator)(**cfg[key])
            n = count_parameters(net)
            counts.append(round(n / 1e6, 3))
            parts.append(f"{key} {n / 1e6:.3f}M ({n:,})")
        line = f"{name}: " + ", ".join(parts)
        if cfg["expected"] is not None:
            match = tuple(counts) == cfg["expected"]
            ok &= match
            line += f"  NVlabs: G {cfg['expected'][0]:.3f}M, D {cfg['expected'][1]:.3f}M  " + (
                "match" if match else "MISMATCH"
            )
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
