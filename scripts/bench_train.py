#!/usr/bin/env python
"""Benchmark of sgtrain's real StyleGAN2 training step on synthetic data.

Runs ``GANModule.training_step`` (the code ``sgtrain-train`` runs: phases Gmain, Greg every G_reg_interval, Dmain,
Dreg every D_reg_interval, StyleGAN2Loss, Adam, G_ema) without a Lightning Trainer around it, on random uint8
images already on the device (the data loader is not measured). Each timed repeat covers whole lazy cycles
(``--iters`` a multiple of lcm(G_reg_interval, D_reg_interval), 16 by default), so every phase runs in its lazy
proportion.

Prints: img/s, sec/kimg, peak memory, FLOPs per image (``torch.utils.flop_counter.FlopCounterMode``: matmul and
convolution FLOPs of one iteration of each phase, weighted by the lazy intervals) and MFU against the device's
dense peak (table below; CPU: n/a). The last line is ``<N> img/s`` (median over repeats).

Example (the CPU acceptance setting of docs/performance.md):

    python scripts/bench_train.py --device cpu --resolution 64 --channel-base 4096 --channel-max 128 \\
        --map-layers 2 --batch 32 --gamma 1 --pl-weight 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

# Dense (no structured sparsity) peak FLOP/s by device-name substring: (fp16/bf16 tensor core, tf32, fp32).
PEAKS: list[tuple[str, tuple[float, float, float]]] = [
    ("H200", (989e12, 494.7e12, 66.9e12)),
    ("H100 PCIe", (756e12, 378e12, 51.2e12)),
    ("H100", (989e12, 494.7e12, 66.9e12)),  # SXM
    ("A100", (312e12, 156e12, 19.5e12)),
    ("L40S", (362e12, 183e12, 91.6e12)),
    ("RTX 4090", (165.2e12, 82.6e12, 82.6e12)),
    ("A10", (125e12, 62.5e12, 31.2e12)),
    ("V100", (125e12, 15.7e12, 15.7e12)),
    ("T4", (65e12, 8.1e12, 8.1e12)),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    p.add_argument("--resolution", type=int, default=64, help="image resolution (pixels)")
    p.add_argument("--channels", type=int, default=3, help="image channels")
    p.add_argument("--channel-base", type=int, default=4096, help="channel_base")
    p.add_argument("--channel-max", type=int, default=128, help="channel_max")
    p.add_argument("--map-layers", type=int, default=2, help="mapping network layers")
    p.add_argument("--z-dim", type=int, default=512)
    p.add_argument("--w-dim", type=int, default=512)
    p.add_argument("--mbstd-group-size", type=int, default=4)
    p.add_argument("--batch", type=int, default=32, help="global batch (one process here)")
    p.add_argument("--batch-gpu", type=int, default=None, help="images per forward/backward pass; None = batch")
    p.add_argument("--gamma", type=float, default=1.0, help="R1 gamma")
    p.add_argument("--pl-weight", type=float, default=2.0, help="path length weight")
    p.add_argument("--style-mixing", type=float, default=0.9, help="style mixing probability")
    p.add_argument("--G-reg-interval", type=int, default=4)
    p.add_argument("--D-reg-interval", type=int, default=16)
    p.add_argument(
        "--fused-modconv",
        default="config",
        choices=["config", "true", "false", "inference_only"],
        help="SynthesisBlock fused_modconv_default; 'config' = what sgtrain's model config gives",
    )
    p.add_argument("--pl-no-weight-grad", default="config", choices=["config", "true", "false"])
    p.add_argument("--ops", default="auto", choices=["auto", "fused", "ref"], help="SGTRAIN_OPS")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "fp16", "bf16"],
        help="fp32: no reduced precision. fp16: NVlabs-style fp16 in the --num-fp16-res highest "
        "resolutions with conv_clamp (CUDA only). bf16: autocast to bfloat16 around the step",
    )
    p.add_argument("--num-fp16-res", type=int, default=4, help="fp16 blocks (with --precision fp16)")
    p.add_argument("--conv-clamp", type=float, default=256, help="conv_clamp (<= 0: None)")
    p.add_argument("--channels-last", action="store_true", help="fp16 blocks in channels_last (NVlabs option)")
    p.add_argument("--tf32", default="off", choices=["on", "off"], help="TF32 matmul/conv (NVlabs: off)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile G.mapping, G.synthesis and D (regularization phases run eager: "
        "compiled graphs do not support double backward)",
    )
    p.add_argument("--cudnn-benchmark", default="on", choices=["on", "off"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--iters", type=int, default=None, help="iterations per timed repeat; default one lazy cycle")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first; default one lazy cycle")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--profile", default=None, help="write a torch.profiler table (and chrome trace .json) here")
    p.add_argument("--json", default=None, help="also write the results as JSON to this path")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def lazy_cycle(args: argparse.Namespace) -> int:
    return math.lcm(max(1, args.G_reg_interval or 1), max(1, args.D_reg_interval or 1))


def peak_flops(device: Any, precision: str, tf32: bool) -> tuple[float | None, str]:
    """Dense peak FLOP/s for the device and the precision of the bulk of the math; (None, why) when unknown."""
    import torch

    if device.type != "cuda":
        return None, "n/a on CPU"
    name = torch.cuda.get_device_name(device)
    for key, (half, tf, fp32) in PEAKS:
        if key in name:
            if precision in ("fp16", "bf16"):
                return half, f"{name} fp16/bf16 dense {half / 1e12:.0f} TFLOP/s"
            if tf32:
                return tf, f"{name} tf32 dense {tf / 1e12:.0f} TFLOP/s"
            return fp32, f"{name} fp32 {fp32 / 1e12:.1f} TFLOP/s"
    return None, f"no peak known for {name}"


def set_tf32(enabled: bool) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def build_module(args: argparse.Namespace, device: Any) -> Any:
    """GANModule with the networks and loss of sgtrain's training config for these settings."""
    import torch

    from sgtrain.training.module import GANModule

    overrides = [
        f"model.resolution={args.resolution}",
        f"model.channel_base={args.channel_base}",
        f"model.channel_max={args.channel_max}",
        f"model.map_layers={args.map_layers}",
        f"model.z_dim={args.z_dim}",
        f"model.w_dim={args.w_dim}",
        f"model.mbstd_group_size={args.mbstd_group_size}",
        f"model.num_fp16_res={args.num_fp16_res if args.precision == 'fp16' else 0}",
        f"model.conv_clamp={args.conv_clamp if args.conv_clamp > 0 else 'null'}",
        "dataset.path=/synthetic",
    ]
    try:
        from sgtrain.training.config import compose
        from sgtrain.training.run import network_kwargs

        cfg = compose(overrides)
        G_kwargs, D_kwargs = network_kwargs(cfg, {"resolution": args.resolution, "channels": args.channels}, 0)
        t = cfg.train
        pl_no_weight_grad = bool(t.pl_no_weight_grad)
        pl_batch_shrink, pl_decay, ema_kimg = int(t.pl_batch_shrink), float(t.pl_decay), float(t.ema_kimg)
        source = "sgtrain config (compose + network_kwargs)"
    except Exception as err:  # the config layer is not importable: same keywords by hand
        print(f"# note: sgtrain config not usable ({type(err).__name__}: {err}); building kwargs directly")
        G_kwargs = dict(
            z_dim=args.z_dim,
            c_dim=0,
            w_dim=args.w_dim,
            img_resolution=args.resolution,
            img_channels=args.channels,
            mapping_kwargs=dict(num_layers=args.map_layers),
            channel_base=args.channel_base,
            channel_max=args.channel_max,
            num_fp16_res=args.num_fp16_res if args.precision == "fp16" else 0,
            conv_clamp=args.conv_clamp if args.conv_clamp > 0 else None,
        )
        D_kwargs = dict(
            c_dim=0,
            img_resolution=args.resolution,
            img_channels=args.channels,
            channel_base=args.channel_base,
            channel_max=args.channel_max,
            num_fp16_res=args.num_fp16_res if args.precision == "fp16" else 0,
            conv_clamp=args.conv_clamp if args.conv_clamp > 0 else None,
            epilogue_kwargs=dict(mbstd_group_size=args.mbstd_group_size),
        )
        pl_no_weight_grad, pl_batch_shrink, pl_decay, ema_kimg = True, 2, 0.01, 10.0
        source = "direct kwargs"
    if args.fused_modconv != "config":
        G_kwargs["fused_modconv_default"] = {"true": True, "false": False}.get(args.fused_modconv, args.fused_modconv)
    if args.pl_no_weight_grad != "config":
        pl_no_weight_grad = args.pl_no_weight_grad == "true"
    if args.channels_last:
        G_kwargs["fp16_channels_last"] = True
        D_kwargs["fp16_channels_last"] = True
    torch.manual_seed(args.seed)
    module = GANModule(
        G_kwargs=G_kwargs,
        D_kwargs=D_kwargs,
        loss_kwargs=dict(
            r1_gamma=args.gamma,
            style_mixing_prob=args.style_mixing,
            pl_weight=args.pl_weight,
            pl_batch_shrink=pl_batch_shrink,
            pl_decay=pl_decay,
            pl_no_weight_grad=pl_no_weight_grad,
        ),
        batch=args.batch,
        batch_gpu=args.batch_gpu,
        G_reg_interval=args.G_reg_interval,
        D_reg_interval=args.D_reg_interval,
        ema_kimg=ema_kimg,
        total_kimg=1e9,
        tick_kimg=1e9,
        seed=args.seed,
    ).to(device)
    # Drive training_step without a Trainer: the optimizers and backward it would get from Lightning.
    opts = module.configure_optimizers()
    module.optimizers = lambda use_pl_optimizer=True: opts  # type: ignore[method-assign]
    module.manual_backward = lambda loss, *a, **k: loss.backward(*a, **k)  # type: ignore[method-assign]
    module.setup("fit")
    module._bench_source = source
    module._bench_kwargs = (G_kwargs, D_kwargs)
    return module


def enable_compile(module: Any) -> None:
    """Compile G.mapping, G.synthesis and D in place; run the regularization phases eagerly."""
    import torch

    module.G.mapping.compile()
    module.G.synthesis.compile()
    module.D.compile()
    loss = module.loss
    eager = loss.accumulate_gradients

    def accumulate(phase: str, *a: Any, **k: Any) -> Any:
        if phase in ("Greg", "Dreg", "Gboth", "Dboth"):
            with torch.compiler.set_stance("force_eager"):
                return eager(phase, *a, **k)
        return eager(phase, *a, **k)

    loss.accumulate_gradients = accumulate  # type: ignore[method-assign]


def _FlopCounter() -> Any:
    """Counts FLOPs with torch.utils.flop_counter's formulas (matmul, conv, their backward; elementwise ops are
    not counted). FlopCounterMode itself cannot be used: its module tracker breaks ``autograd.grad`` on leaf inputs
    (R1), so the same registry is applied from a plain dispatch mode."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            fn = flop_registry.get(func._overloadpacket)
            if fn is not None:
                self.total += int(fn(*args, **kwargs, out_val=out))
            return out

    return Counter()


def count_flops(module: Any, batch: Any, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    """Matmul/conv FLOPs per image of one iteration in lazy proportion, and per phase (one call each)."""
    import torch

    img = batch.to(torch.float32) / 127.5 - 1
    c = torch.zeros([img.shape[0], 0], device=img.device)
    per_phase: dict[str, float] = {}
    weights = {"Gmain": 1.0, "Greg": 1.0 / args.G_reg_interval, "Dmain": 1.0, "Dreg": 1.0 / args.D_reg_interval}
    saved = {k: v.detach().clone() for k, v in module.loss.state_dict().items()}
    for name, net in [("Gmain", module.G), ("Greg", module.G), ("Dmain", module.D), ("Dreg", module.D)]:
        z = torch.randn([img.shape[0], module.G.z_dim], device=img.device)
        net.requires_grad_(True)
        with _FlopCounter() as counter:
            module.loss.accumulate_gradients(phase=name, real_img=img, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
        net.requires_grad_(False)
        per_phase[name] = float(counter.total)
    for p in list(module.G.parameters()) + list(module.D.parameters()):
        p.grad = None
    module.loss.load_state_dict(saved)
    total = sum(per_phase[k] * w for k, w in weights.items()) / img.shape[0]
    return total, {k: v / img.shape[0] for k, v in per_phase.items()}


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    os.environ["SGTRAIN_OPS"] = args.ops
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.precision == "fp16" and device.type != "cuda":
        print("# note: fp16 blocks run only on CUDA (the networks force fp32 on CPU); timing fp32")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        set_tf32(args.tf32 == "on")
        torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    cycle = lazy_cycle(args)
    iters = args.iters or cycle
    warmup = cycle if args.warmup is None else args.warmup
    if iters % cycle:
        print(f"# warning: --iters {iters} is not a multiple of the lazy cycle {cycle}; phases are not in proportion")

    module = build_module(args, device)
    if args.compile:
        enable_compile(module)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    batch = torch.randint(
        0, 256, [args.batch, args.channels, args.resolution, args.resolution], generator=gen, dtype=torch.uint8
    ).to(device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else torch.autocast(device.type, enabled=False)
    )

    def step() -> None:
        with autocast:
            module.training_step(batch, module.batch_idx)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    rates = []
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        dt = time.perf_counter() - t0
        rates.append(iters * args.batch / dt)
    img_s = statistics.median(rates)

    if device.type == "cuda":
        peak_mem = torch.cuda.max_memory_allocated(device) / 2**30
        mem_text = f"{peak_mem:.2f} GiB (torch.cuda.max_memory_allocated)"
    else:
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        mem_text = f"{peak_mem:.2f} GiB (process peak RSS)"

    flops_img = None
    per_phase: dict[str, float] = {}
    if not args.no_flops:
        with autocast:
            flops_img, per_phase = count_flops(module, batch, args)
    peak, peak_text = peak_flops(device, args.precision, args.tf32 == "on")
    mfu = flops_img * img_s / peak if (flops_img and peak) else None

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts, record_shapes=False) as prof:
            for _ in range(iters):
                step()
            sync()
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        with open(args.profile, "w") as fh:
            fh.write(prof.key_averages().table(sort_by=sort, row_limit=60))
            fh.write("\n\nby phase / scope:\n")
            fh.write(prof.key_averages().table(sort_by="cpu_time_total", row_limit=40))
        prof.export_chrome_trace(args.profile + ".json")

    from sgtrain.ops import build

    ops_state = args.ops
    if device.type == "cuda" and args.ops != "ref":
        ops_state += (
            " (fused built)"
            if build.get_extension(device) is not None
            else f" (fused unavailable: {build.failure_reason()})"
        )
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    print(f"# sgtrain bench_train  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(
        f"# device {device} ({dev_name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"python {platform.python_version()}"
    )
    print(
        f"# res {args.resolution} cbase {args.channel_base} cmax {args.channel_max} map {args.map_layers} "
        f"batch {args.batch} batch_gpu {module.round_size} gamma {args.gamma} pl_weight {args.pl_weight} "
        f"mix {args.style_mixing} lazy {args.G_reg_interval}/{args.D_reg_interval} ops {ops_state} "
        f"precision {args.precision} tf32 {args.tf32} compile {args.compile} channels_last {args.channels_last}"
    )
    print(
        f"# networks from {module._bench_source}; fused_modconv_default "
        f"{module._bench_kwargs[0].get('fused_modconv_default', 'model default')}, pl_no_weight_grad "
        f"{module.loss.pl.pl_no_weight_grad}"
    )
    print(
        f"# warmup {warmup} it in {warm_s:.1f} s; {args.repeats} repeats x {iters} it; img/s per repeat: "
        + ", ".join(f"{r:.2f}" for r in rates)
    )
    print(f"img/s        {img_s:.2f}")
    print(f"sec/kimg     {1000 / img_s:.1f}")
    print(f"peak memory  {mem_text}")
    if flops_img is not None:
        phases = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in per_phase.items())
        print(f"FLOPs/image  {flops_img / 1e9:.3f} GFLOP (lazy-weighted; per phase call, GFLOP/img: {phases})")
        print(f"achieved     {flops_img * img_s / 1e12:.4f} TFLOP/s")
    print(f"MFU          {'n/a' if mfu is None else f'{100 * mfu:.2f} %'} ({peak_text})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                dict(
                    img_s=img_s,
                    rates=rates,
                    sec_per_kimg=1000 / img_s,
                    peak_mem_gib=peak_mem,
                    flops_per_img=flops_img,
                    per_phase_flops=per_phase,
                    mfu=mfu,
                    args=vars(args),
                    device=str(device),
                    device_name=dev_name,
                    torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    time=time.time(),
                ),
                fh,
                indent=1,
            )
    print(f"{img_s:.2f} img/s")
    return img_s


if __name__ == "__main__":
    sys.exit(0 if main() > 0 else 1)
