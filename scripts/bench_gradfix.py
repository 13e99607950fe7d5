#!/usr/bin/env python
"""Seconds per Greg (path length) and Dreg (R1) phase with and without ``no_weight_gradients`` (conv2d_gradfix).

Times ``StyleGAN2Loss.accumulate_gradients`` for the two regularization phases of a StyleGAN2 (NVlabs' training
setting: regular, not fused, modulated convolutions in G) in three modes. G, D and the loss are what sgtrain-train
builds for ``model=stylegan2_small loss.r1_gamma=1 loss.style_mixing_prob=0`` (positional overrides change it; the
flags set model.resolution of the synthetic data, model.channel_base, model.channel_max, model.z_dim/w_dim):

- ``torch``: PyTorch's own convolution everywhere (conv2d_gradfix bypassed): its autograd already skips a weight
  gradient that ``torch.autograd.grad(..., inputs=[x])`` does not ask for;
- ``gradfix``: sgtrain's conv2d_gradfix with the switch off (every weight gradient computed, as NVlabs' custom op);
- ``gradfix+nwg``: conv2d_gradfix inside ``no_weight_gradients()`` (R1 as NVlabs; Greg with pl_no_weight_grad).

``--phases Gmain,Dmain`` times the main phases too (no regularization: the custom op only adds its Python cost).
Each mode runs ``--iters`` phases after ``--warmup`` phases, ``--repeats`` times, interleaved; the medians of the
repeats are printed: wall time, and the process's CPU time (steadier on a shared machine; with ``--threads 1`` it is
the op work itself). Losses and gradients are the same in all modes (tests/test_conv2d_gradfix.py).

Example (the CPU figures of docs/performance.md):

    python scripts/bench_gradfix.py --device cpu --resolution 32 --channel-base 2048 --channel-max 64 --batch 8 \\
        --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The sgtrain-train config the phases come from (before the positional overrides).
BASE = ["model=stylegan2_small", "loss.r1_gamma=1", "loss.style_mixing_prob=0", "loss.pl_weight=2",
        "loss.pl_batch_shrink=2"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="sgtrain-train overrides after the base config")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    p.add_argument("--resolution", type=int, default=32, help="image resolution in pixels")
    p.add_argument("--channel-base", type=int, default=2048, help="channel_base")
    p.add_argument("--channel-max", type=int, default=64, help="channel_max")
    p.add_argument("--z-dim", type=int, default=128, help="z_dim and w_dim")
    p.add_argument("--batch", type=int, default=8, help="images per phase (Greg uses batch // 2, NVlabs' shrink)")
    p.add_argument("--iters", type=int, default=5, help="timed phases per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed phases before the first repeat")
    p.add_argument("--repeats", type=int, default=3, help="repeats per mode (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--phases", default="Greg,Dreg", help="comma-separated phases to time (also Gmain, Dmain)")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from bench_train import compose_checked, synthetic_dataset

    from sgtrain.ops import conv2d_gradfix
    from sgtrain.training.run import build_networks, loss_factory

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    torch.manual_seed(0)
    flags = [f"model.channel_base={args.channel_base}", f"model.channel_max={args.channel_max}",
             f"model.z_dim={args.z_dim}", f"model.w_dim={args.z_dim}", f"train.batch={args.batch}"]
    with tempfile.TemporaryDirectory(prefix="sgtrain-bench-") as data_dir:
        synthetic_dataset(data_dir, args.resolution)
        cfg = compose_checked([*BASE, *flags, *args.overrides, f"dataset.path={data_dir}", "logger=none"],
                              prog="bench_gradfix.py")
        G, D = build_networks(cfg)
        make_loss = loss_factory(cfg)
    if getattr(getattr(make_loss, "func", None), "__name__", None) != "StyleGAN2Loss":
        raise SystemExit(f"bench_gradfix.py: error: loss._target_={cfg.loss._target_}: the phases timed here are "
                         "StyleGAN2Loss's (model=stylegan2*, stylegan3_t/_r)")
    G = G.to(device).train().requires_grad_(False)
    D = D.to(device).train().requires_grad_(False)
    n = args.batch
    res, channels = int(G.img_resolution), int(G.img_channels)
    batch = dict(real_img=torch.rand(n, channels, res, res, device=device) * 2 - 1,
                 real_c=torch.zeros(n, G.c_dim, device=device), gen_z=torch.randn(n, G.z_dim, device=device),
                 gen_c=torch.zeros(n, G.c_dim, device=device))  # fmt: skip

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(mode: str, phase: str, count: int) -> tuple[float, float]:
        plain = mode == "torch"
        nwg = mode == "gradfix+nwg"
        # R1 always asks for no_weight_gradients (NVlabs); 'gradfix' turns it off by making the switch a no-op.
        patch = contextlib.ExitStack()
        if plain:
            saved = conv2d_gradfix._records_graph
            conv2d_gradfix._records_graph = lambda *t: False
            patch.callback(setattr, conv2d_gradfix, "_records_graph", saved)
        if not nwg:
            saved_nwg = conv2d_gradfix.no_weight_gradients
            conv2d_gradfix.no_weight_gradients = lambda disable=True: contextlib.nullcontext()
            patch.callback(setattr, conv2d_gradfix, "no_weight_gradients", saved_nwg)
        import sgtrain.core.regularizers as regularizers

        regularizers._fused_no_weight_gradients.cache_clear()
        loss = make_loss(G=G, D=D, augment_pipe=None, pl_no_weight_grad=nwg)
        module = G if phase.startswith("G") else D
        with patch:
            module.requires_grad_(True)
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(count):
                for p in module.parameters():
                    p.grad = None
                loss.accumulate_gradients(phase=phase, cur_nimg=0, gain=4, **batch)
            sync()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            module.requires_grad_(False)
        regularizers._fused_no_weight_gradients.cache_clear()
        return dt / count, dc / count

    modes = ("torch", "gradfix", "gradfix+nwg")
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}, sgtrain-train "
          f"{' '.join(BASE + flags + args.overrides)}, resolution {res}, batch {n} (Greg {n // 2})")  # fmt: skip
    for phase in args.phases.split(","):
        for mode in modes:
            run(mode, phase, args.warmup)
        times: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        for _ in range(args.repeats):
            for mode in modes:
                times[mode].append(run(mode, phase, args.iters))
        base = [statistics.median(t[i] for t in times["torch"]) for i in (0, 1)]
        for mode in modes:
            wall, cpu = (statistics.median(t[i] for t in times[mode]) for i in (0, 1))
            print(f"{phase:5s} {mode:12s} wall {wall * 1e3:7.1f} ms ({wall / base[0]:.2f}x)  cpu {cpu * 1e3:7.1f} ms "
                  f"({cpu / base[1]:.2f}x torch; cpu repeats {', '.join(f'{t[1] * 1e3:.0f}' for t in times[mode])})")


if __name__ == "__main__":
    main()
