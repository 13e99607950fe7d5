#!/usr/bin/env python
"""Benchmark of the training step sgtrain-train runs, for any family, on synthetic data.

Composes the same config as sgtrain-train (conf/train.yaml, with model=... / experiment=... and any key=value given
as positional overrides; the flags below are mapped to the family's keys and printed), builds the networks, loss,
schedule, augment pipe and GANModule with the same build step (sgtrain.training.run.build_training), and times
GANModule.training_step (phases Gmain, Greg every G_reg_interval, Dmain, Dreg every D_reg_interval, Adam, G_ema)
without a Lightning Trainer around it, on random uint8 images already on the device (the data loader is not
measured). The synthetic data is a dataset card (dataset.json, no images) of --resolution and --channels, so the
networks are sized as for packed data. A config that does not compose or validate is an error naming the key.
Each timed repeat covers whole lazy cycles (--iters a multiple of lcm(G_reg_interval, D_reg_interval)); a
progressive family (progan, stylegan) is timed where its schedule reaches the full resolution (--kimg to choose).

Prints: img/s, sec/kimg, peak memory, FLOPs per image (matmul and convolution FLOPs of one call of each phase,
torch.utils.flop_counter's formulas, weighted by the lazy intervals) and MFU against the device's dense peak
(table below; CPU: n/a). The last line is "<N> img/s" (median over repeats).

Examples:

    # the CPU setting of docs/performance.md (StyleGAN2; NVlabs' --cfg=stylegan2 loss settings at gamma 1)
    python scripts/bench_train.py --device cpu --resolution 64 --channel-base 4096 --channel-max 128 \\
        --map-layers 2 --batch 32 --gamma 1 --threads 2
    # another family, as sgtrain-train model=stylegan3_t would build it
    python scripts/bench_train.py model=stylegan3_t --device cpu --resolution 32 --batch 8 --threads 1
    # NVlabs' paper256 on a GPU (batch 64 in one pass)
    python scripts/bench_train.py experiment=paper256 --resolution 256 --batch 64 --batch-gpu 64

Flags that set a model knob map to the family's own name of it: --channel-base to model.channel_base (StyleGAN2/3)
or model.fmap_base (ProGAN/StyleGAN: NVlabs' TF knob, its own formula), --channel-max to model.channel_max or
model.fmap_max, --map-layers to model.map_layers or model.mapping_layers, --z-dim/--w-dim to model.z_dim/w_dim or
model.latent_size/dlatent_size; a flag the family has no key for is an error (give the family's key instead).
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
import tempfile
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

#: Flag (argparse dest) -> the config keys it sets, first that the composed family has.
FLAG_KEYS: dict[str, tuple[str, ...]] = {
    "channel_base": ("model.channel_base", "model.fmap_base"),
    "channel_max": ("model.channel_max", "model.fmap_max"),
    "map_layers": ("model.map_layers", "model.mapping_layers"),
    "z_dim": ("model.z_dim", "model.latent_size"),
    "w_dim": ("model.w_dim", "model.dlatent_size"),
    "mbstd_group_size": ("model.mbstd_group_size", "model.D.mbstd_group_size"),
    "conv_clamp": ("model.conv_clamp",),
    "num_fp16_res": ("model.num_fp16_res",),
    "batch": ("train.batch",),
    "batch_gpu": ("train.batch_gpu",),
    "gamma": ("loss.r1_gamma",),
    "pl_weight": ("loss.pl_weight",),
    "style_mixing": ("loss.style_mixing_prob", "model.G.style_mixing_prob"),
    "G_reg_interval": ("train.G_reg_interval",),
    "D_reg_interval": ("train.D_reg_interval",),
    "pl_no_weight_grad": ("loss.pl_no_weight_grad",),
    "fused_modconv": ("model.G.fused_modconv_default",),
}


def _int_or_null(text: str) -> str:
    """An integer, or null/none (the config's None: e.g. no lazy regularization, conv_clamp off)."""
    if text.lower() in ("null", "none"):
        return "null"
    return str(int(text))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides as for sgtrain-train: model=stylegan3_t, experiment=paper256, loss.r1_gamma=2")
    p.add_argument("--model", default=None, help="the family (same as the override model=NAME)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    p.add_argument("--resolution", type=int, default=64, help="resolution of the synthetic data (pixels)")
    p.add_argument("--channels", type=int, default=3, help="image channels of the synthetic data")
    g = p.add_argument_group("config keys (default: the composed config's value)")
    g.add_argument("--channel-base", type=int, default=None, help="model.channel_base / model.fmap_base")
    g.add_argument("--channel-max", type=int, default=None, help="model.channel_max / model.fmap_max")
    g.add_argument("--map-layers", type=int, default=None, help="model.map_layers / model.mapping_layers")
    g.add_argument("--z-dim", type=int, default=None, help="model.z_dim / model.latent_size")
    g.add_argument("--w-dim", type=int, default=None, help="model.w_dim / model.dlatent_size")
    g.add_argument("--mbstd-group-size", type=int, default=None, help="minibatch-stddev group size of D")
    g.add_argument("--batch", type=int, default=None, help="train.batch (one process here)")
    g.add_argument("--batch-gpu", type=_int_or_null, default=None, help="train.batch_gpu: images per pass")
    g.add_argument("--gamma", type=float, default=None, help="loss.r1_gamma (R1 gamma)")
    g.add_argument("--pl-weight", type=float, default=None, help="loss.pl_weight (path length weight)")
    g.add_argument("--style-mixing", type=float, default=None, help="style mixing probability")
    g.add_argument("--G-reg-interval", type=_int_or_null, default=None, help="train.G_reg_interval (null = none)")
    g.add_argument("--D-reg-interval", type=_int_or_null, default=None, help="train.D_reg_interval (null = none)")
    g.add_argument("--fused-modconv", default=None, choices=["true", "false", "inference_only"],
                   help="model.G.fused_modconv_default (StyleGAN2)")
    g.add_argument("--pl-no-weight-grad", default=None, choices=["true", "false"], help="loss.pl_no_weight_grad")
    g.add_argument("--num-fp16-res", type=int, default=None, help="model.num_fp16_res (with --precision fp16)")
    g.add_argument("--conv-clamp", type=_int_or_null, default=None, help="model.conv_clamp (null = no clamping)")
    p.add_argument("--ops", default="auto", choices=["auto", "fused", "ref"], help="SGTRAIN_OPS")
    p.add_argument("--precision", default="config", choices=["config", "fp32", "fp16", "bf16"],
                   help="config: as sgtrain-train (the family's float16 blocks on CUDA, model.num_fp16_res); fp32: "
                   "model.num_fp16_res=0; fp16: float16 blocks with conv_clamp (CUDA only); bf16: "
                   "model.num_fp16_res=0 and autocast to bfloat16 around the step")
    p.add_argument("--channels-last", action="store_true", help="float16 blocks in channels_last (NVlabs option)")
    p.add_argument("--tf32", default="off", choices=["on", "off"], help="TF32 matmul/conv (NVlabs: off)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile G.mapping, G.synthesis and D (regularization phases run eager: compiled "
                   "graphs do not support double backward)")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: a quick check)")
    p.add_argument("--cudnn-benchmark", default="on", choices=["on", "off"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--kimg", type=float, default=None,
                   help="training progress to time at (progressive schedule); default: where it reaches full "
                   "resolution")
    p.add_argument("--iters", type=int, default=None, help="iterations per timed repeat; default one lazy cycle")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first; default one lazy cycle")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--profile", default=None, help="write a torch.profiler table (and chrome trace .json) here")
    p.add_argument("--json", default=None, help="also write the results as JSON to this path")
    p.add_argument("--print-config", action="store_true", help="print the composed config (resolved)")
    return p.parse_intermixed_args(argv)


def synthetic_dataset(directory: str, resolution: int, channels: int = 3) -> str:
    """Write a dataset card (dataset.json) of an unconditional dataset of ``resolution`` x ``resolution`` images with
    ``channels`` channels and no shards into ``directory``, for composing a config without data; returns it."""
    from sgtrain.data.card import DatasetCard

    DatasetCard(name="synthetic", count=2**20, resolution=int(resolution), channels=int(channels)).save(directory)
    return directory


def _has_key(cfg: Any, key: str) -> bool:
    from omegaconf import OmegaConf

    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    return OmegaConf.is_dict(node) and leaf in node


def flag_overrides(args: argparse.Namespace, cfg: Any) -> list[str]:
    """The overrides the flags stand for, in the keys of the family composed in ``cfg``.

    Raises:
        SystemExit: a flag given for a family that has none of its keys (the message names the keys).
    """
    family = cfg.model.get("name")
    values = {dest: getattr(args, dest) for dest in FLAG_KEYS}
    if args.precision in ("fp32", "bf16"):
        values["num_fp16_res"] = 0 if _has_key(cfg, "model.num_fp16_res") else None
    out = []
    for dest, value in values.items():
        if value is None:
            continue
        key = next((k for k in FLAG_KEYS[dest] if _has_key(cfg, k)), None)
        if key is None:
            flag = "--" + dest.replace("_", "-")
            raise SystemExit(f"bench_train.py: error: {flag}: model={family} has no key "
                             f"{' or '.join(FLAG_KEYS[dest])}; give the family's own key as an override instead")
        out.append(f"{key}={value}")
    if args.channels_last:
        out += ["+model.G.fp16_channels_last=true", "+model.D.block_kwargs.fp16_channels_last=true"]
    return out


def compose_checked(overrides: list[str], prog: str = "bench_train.py", validate: bool = True) -> Any:
    """``compose(overrides)`` checked as sgtrain-train checks it (unknown keys named; validate_config unless not
    ``validate``).

    Raises:
        SystemExit: a config that does not compose or validate, with sgtrain's or Hydra's message naming the key.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sgtrain.training.config import ConfigError, compose, precheck_overrides, validate_config

    try:
        why = precheck_overrides(overrides)
        if why:
            raise ConfigError(why)
        cfg = compose(overrides)
        if validate:
            validate_config(cfg)
    except (ConfigError, HydraException, OmegaConfBaseException) as err:  # each names the key or the group
        raise SystemExit(f"{prog}: error: {err}") from err
    return cfg


def compose_config(args: argparse.Namespace, data_dir: str) -> tuple[Any, list[str]]:
    """The sgtrain-train config of ``args`` (flags mapped to the family's keys, then the positional overrides, which
    win), validated as sgtrain-train validates it; returns (cfg, overrides).

    Raises:
        SystemExit: a config that does not compose or validate, or a flag the family has no key for.
    """
    base = [f"model={args.model}"] if args.model else []
    base += [f"dataset.path={data_dir}", "logger=none", "trainer.progress_bar=false"]
    user = list(args.overrides)
    mapped = flag_overrides(args, compose_checked(base + user, validate=False))
    overrides = base + mapped + user
    return compose_checked(overrides), overrides


def build_module(cfg: Any, device: Any) -> Any:
    """The GANModule of sgtrain-train's build step for ``cfg``, on ``device``, ready to be driven without a Trainer."""
    import lightning as L

    from sgtrain.training.run import build_training

    L.seed_everything(int(cfg.train.seed), workers=True, verbose=False)
    module = build_training(cfg, world=1).module.to(device)
    # Drive training_step without a Trainer: the optimizers and backward it would get from Lightning.
    opts = module.configure_optimizers()
    module.optimizers = lambda use_pl_optimizer=True: opts  # type: ignore[method-assign]
    module.manual_backward = lambda loss, *a, **k: loss.backward(*a, **k)  # type: ignore[method-assign]
    module.setup("fit")
    return module


def start_nimg(module: Any, kimg: float | None) -> int:
    """Images shown before the timed iterations: ``kimg``, else where a progressive schedule reaches lod 0."""
    if kimg is not None:
        return int(round(kimg * 1000))
    sched = module.schedule
    if sched is None:
        return 0
    res = int(module.G.img_resolution)
    steps = max(0, int(math.log2(res)) - int(math.log2(min(sched.lod_initial_resolution, res))))
    nimg = int(math.ceil(steps * (sched.lod_training_kimg + sched.lod_transition_kimg) * 1000))
    assert sched.lod(nimg, res) == 0, (nimg, sched)
    return nimg


def lazy_cycle(module: Any) -> int:
    """Iterations after which every phase has run its lazy share: lcm of the phase intervals (1 without any)."""
    return math.lcm(*(interval for _, _, _, interval in module.phases()))


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


def enable_compile(module: Any, backend: str = "inductor") -> None:
    """Compile G.mapping, G.synthesis (or G itself without them) and D in place; run the regularization phases
    eagerly."""
    import torch

    parts = [getattr(module.G, n) for n in ("mapping", "synthesis") if hasattr(module.G, n)] or [module.G]
    for net in [*parts, module.D]:
        net.compile(backend=backend)
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


def count_flops(module: Any, img: Any, c: Any) -> tuple[float, dict[str, float]]:
    """Matmul/conv FLOPs per image of one iteration in lazy proportion, and per phase (one call each, per image).

    Args:
        module: the GANModule (its loss, phases and networks; left as it was: gradients cleared, loss state kept).
        img: real images float32 [N, C, H, W] in [-1, 1] on the module's device, N = one pass (round_size).
        c: their labels float32 [N, c_dim].
    """
    import torch

    per_phase: dict[str, float] = {}
    weights: dict[str, float] = {}
    saved = {k: v.detach().clone() for k, v in module.loss.state_dict().items()}
    for name, net, _, interval in module.phases():
        z = torch.randn([img.shape[0], module.G.z_dim], device=img.device)
        gen_c = module.sample_labels(img.shape[0])
        module._train_params(net)
        with _FlopCounter() as counter:
            module.loss.accumulate_gradients(phase=name, real_img=img, real_c=c, gen_z=z, gen_c=gen_c, gain=interval,
                                             cur_nimg=module.cur_nimg)
        net.requires_grad_(False)
        per_phase[name] = float(counter.total) / img.shape[0]
        weights[name] = 1.0 / interval
    for p in list(module.G.parameters()) + list(module.D.parameters()):
        p.grad = None
    module.loss.load_state_dict(saved)
    return sum(per_phase[k] * w for k, w in weights.items()), per_phase


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
        print("# note: float16 blocks run only on CUDA (the networks run float32 elsewhere); timing float32")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        set_tf32(args.tf32 == "on")
        torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    with tempfile.TemporaryDirectory(prefix="sgtrain-bench-") as data_dir:
        synthetic_dataset(data_dir, args.resolution, args.channels)
        cfg, overrides = compose_config(args, data_dir)
        if args.print_config:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(cfg, resolve=True))
        module = build_module(cfg, device)
    module.cur_nimg = module.tick_start_nimg = start_nimg(module, args.kimg)
    start_kimg = module.cur_nimg / 1000
    module.cur_tick = 1  # no kimg-0 tick inside the timed iterations
    cycle = lazy_cycle(module)
    iters = args.iters or cycle
    warmup = cycle if args.warmup is None else args.warmup
    if iters % cycle:
        print(f"# warning: --iters {iters} is not a multiple of the lazy cycle {cycle}; phases are not in proportion")
    if args.compile:
        enable_compile(module, args.compile_backend)
    point = module.schedule_point()
    minibatch = point.minibatch if point is not None else int(cfg.train.batch)
    G = module.G
    gen = torch.Generator(device="cpu").manual_seed(int(cfg.train.seed))
    res = int(G.img_resolution)
    channels = int(getattr(G, "img_channels", args.channels))
    batch = torch.randint(0, 256, [minibatch, channels, res, res], generator=gen, dtype=torch.uint8).to(device)
    labels = module.sample_labels(minibatch)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else torch.autocast(device.type, enabled=False)
    )

    def step() -> None:
        with autocast:
            module.training_step((batch, labels), module.batch_idx)

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

    rates, cpu_rates = [], []
    for _ in range(args.repeats):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        n0 = module.cur_nimg
        for _ in range(iters):
            step()
        sync()
        rates.append((module.cur_nimg - n0) / (time.perf_counter() - t0))
        cpu_rates.append((module.cur_nimg - n0) / max(time.process_time() - c0, 1e-9))
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
        from sgtrain.core.schedule import process_reals

        rs = module.round_size
        img = batch[:rs].to(torch.float32) / 127.5 - 1
        point = module.schedule_point()
        if point is not None:
            img = process_reals(img, point.lod)
        with autocast:
            flops_img, per_phase = count_flops(module, img, labels[:rs])
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
    phases = " ".join(f"{name}/{interval}" for name, _, _, interval in module.phases())
    print(f"# sgtrain bench_train  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(
        f"# device {device} ({dev_name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"python {platform.python_version()}"
    )
    print(f"# config: sgtrain-train {' '.join(o for o in overrides if not o.startswith('dataset.path='))}")
    print(
        f"# model {cfg.model.name} ({type(G).__module__}.{type(G).__name__}, {type(module.D).__name__}), loss "
        f"{type(module.loss).__name__}, res {res}, minibatch {minibatch}, pass {module.round_size}, phases/interval "
        f"{phases}, from kimg {start_kimg:g}, G {sum(p.numel() for p in G.parameters()) / 1e6:.3f}M, D "
        f"{sum(p.numel() for p in module.D.parameters()) / 1e6:.3f}M params"
    )
    print(
        f"# ops {ops_state}, precision {args.precision}, tf32 {args.tf32}, compile {args.compile}, "
        f"channels_last {args.channels_last}"
    )
    print(
        f"# warmup {warmup} it in {warm_s:.1f} s; {args.repeats} repeats x {iters} it; img/s per repeat: "
        + ", ".join(f"{r:.2f}" for r in rates)
    )
    print(f"img/s        {img_s:.2f}")
    if device.type == "cpu":  # steadier than wall time on a shared machine: images per second of this process's CPU
        print(f"img/cpu-s    {statistics.median(cpu_rates):.3f} (process CPU time, all threads)")
    print(f"sec/kimg     {1000 / img_s:.1f}")
    print(f"peak memory  {mem_text}")
    if flops_img is not None:
        phase_text = ", ".join(f"{k} {v / 1e9:.3f}" for k, v in per_phase.items())
        print(f"FLOPs/image  {flops_img / 1e9:.3f} GFLOP (lazy-weighted; per phase call, GFLOP/img: {phase_text})")
        print(f"achieved     {flops_img * img_s / 1e12:.4f} TFLOP/s")
    print(f"MFU          {'n/a' if mfu is None else f'{100 * mfu:.2f} %'} ({peak_text})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                dict(
                    img_s=img_s,
                    rates=rates,
                    img_per_cpu_s=statistics.median(cpu_rates),
                    sec_per_kimg=1000 / img_s,
                    peak_mem_gib=peak_mem,
                    peak_mem_kind="cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
                    flops_per_img=flops_img,
                    per_phase_flops_per_img=per_phase,
                    mfu=mfu,
                    peak_flops=peak,
                    model=str(cfg.model.name),
                    overrides=[o for o in overrides if not o.startswith("dataset.path=")],
                    minibatch=minibatch,
                    batch_gpu=module.round_size,
                    resolution=res,
                    warmup_iters=warmup,
                    iters=iters,
                    args={k: v for k, v in vars(args).items()},
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
