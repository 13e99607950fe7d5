#!/usr/bin/env python
"""The peer of bench_train.py: NVlabs' StyleGAN2 training step, timed the same way, from their own code.

Imports NVlabs' stylegan3 checkout given by --nvlabs (networks_stylegan2.Generator / Discriminator and
training/loss.StyleGAN2Loss; nothing of theirs is in this repository: fetch github:NVlabs/stylegan3 into .devref/,
which git ignores) and drives it as their training/training_loop.py does at train.py --cfg=stylegan2's settings:
phases Gmain, Greg every 4, Dmain, Dreg every 16, Adam with the lazy-regularization lr and betas, the flat gradient
nan_to_num, G_ema; fused_modconv_default inference_only, pl_no_weight_grad, float16 in the 4 highest resolutions
with conv_clamp 256 (CUDA only). Random uint8 images already on the device; warm-up, then --repeats timed runs of
--iters iterations. Takes the flags of bench_train.py that it shares (others are ignored), so one line of flags runs
both. Last line: "<N> img/s" (median over repeats).

    python scripts/bench_nvlabs_step.py --nvlabs .devref/stylegan3 --device cpu --threads 2 --resolution 64 \\
        --channel-base 4096 --channel-max 128 --map-layers 2 --batch 32 --gamma 1 --iters 16 --warmup 2
"""
import argparse
import copy
import os
import resource
import statistics
import sys
import time
import types

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--nvlabs", default=".devref/stylegan3", help="NVlabs stylegan3 checkout (c233a91)")
p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
p.add_argument("--resolution", type=int, default=64, help="image resolution (pixels)")
p.add_argument("--channel-base", type=int, default=32768, help="channel_base (NVlabs --cbase)")
p.add_argument("--channel-max", type=int, default=512, help="channel_max (NVlabs --cmax)")
p.add_argument("--map-layers", type=int, default=8, help="mapping layers (NVlabs --map-depth)")
p.add_argument("--mbstd-group-size", type=int, default=4, help="NVlabs --mbstd-group")
p.add_argument("--batch", type=int, default=32, help="NVlabs --batch (one GPU)")
p.add_argument("--batch-gpu", type=int, default=None, help="NVlabs --batch-gpu; default --batch")
p.add_argument("--gamma", type=float, default=10, help="R1 gamma (NVlabs --gamma)")
p.add_argument("--pl-weight", type=float, default=2, help="path length weight (cfg stylegan2: 2)")
p.add_argument("--style-mixing", type=float, default=0.9, help="style mixing probability (cfg stylegan2: 0.9)")
p.add_argument("--G-reg-interval", type=int, default=4)
p.add_argument("--D-reg-interval", type=int, default=16)
p.add_argument("--num-fp16-res", type=int, default=4, help="float16 blocks (CUDA only; NVlabs --fp32: 0)")
p.add_argument("--iters", type=int, default=16, help="iterations per timed repeat")
p.add_argument("--warmup", type=int, default=16, help="untimed iterations first")
p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
a, _ = p.parse_known_args()
if not os.path.isfile(os.path.join(a.nvlabs, "training", "networks_stylegan2.py")):
    raise SystemExit(f"bench_nvlabs_step.py: error: --nvlabs {a.nvlabs}: not a checkout of NVlabs/stylegan3 (fetch "
                     "github:NVlabs/stylegan3 and unpack it there)")
sys.path.insert(0, os.path.abspath(a.nvlabs))
try:
    import pkg_resources  # noqa: F401  (their conv2d_gradfix imports parse_version from it)
except ImportError:
    from packaging.version import parse as _parse

    sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=_parse)
import dnnlib  # noqa: E402
import torch  # noqa: E402
from training.loss import StyleGAN2Loss  # noqa: E402
from training.networks_stylegan2 import Discriminator, Generator  # noqa: E402

if a.threads:
    torch.set_num_threads(a.threads)
dev = torch.device(a.device)
torch.manual_seed(0)
net = dict(c_dim=0, img_resolution=a.resolution, img_channels=3, channel_base=a.channel_base,
           channel_max=a.channel_max, num_fp16_res=a.num_fp16_res, conv_clamp=256)
G = Generator(z_dim=512, w_dim=512, mapping_kwargs=dnnlib.EasyDict(num_layers=a.map_layers),
              fused_modconv_default="inference_only", **net).train().requires_grad_(False).to(dev)
D = Discriminator(block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=a.mbstd_group_size),
                  **net).train().requires_grad_(False).to(dev)
G_ema = copy.deepcopy(G).eval()
loss = StyleGAN2Loss(device=dev, G=G, D=D, augment_pipe=None, r1_gamma=a.gamma, style_mixing_prob=a.style_mixing,
                     pl_weight=a.pl_weight, pl_no_weight_grad=True)
phases = []
for name, module, reg_interval in [("G", G, a.G_reg_interval), ("D", D, a.D_reg_interval)]:
    mb_ratio = reg_interval / (reg_interval + 1)
    opt = torch.optim.Adam(module.parameters(), lr=0.002 * mb_ratio, betas=[0.0, 0.99 ** mb_ratio], eps=1e-8)
    phases += [dnnlib.EasyDict(name=name + "main", module=module, opt=opt, interval=1)]
    phases += [dnnlib.EasyDict(name=name + "reg", module=module, opt=opt, interval=reg_interval)]
batch_size = a.batch
batch_gpu = a.batch_gpu or batch_size
ema_kimg = batch_size * 10 / 32
gen = torch.Generator().manual_seed(0)
img_u8 = torch.randint(0, 256, [batch_size, 3, a.resolution, a.resolution], generator=gen, dtype=torch.uint8).to(dev)
state = dict(batch_idx=0, cur_nimg=0)


def iteration():
    phase_real_img = (img_u8.to(torch.float32) / 127.5 - 1).split(batch_gpu)
    phase_real_c = torch.zeros([batch_size, 0], device=dev).split(batch_gpu)
    all_gen_z = torch.randn([len(phases) * batch_size, G.z_dim], device=dev)
    all_gen_z = [phase_gen_z.split(batch_gpu) for phase_gen_z in all_gen_z.split(batch_size)]
    all_gen_c = torch.zeros([len(phases) * batch_size, 0], device=dev)
    all_gen_c = [phase_gen_c.split(batch_gpu) for phase_gen_c in all_gen_c.split(batch_size)]
    for phase, phase_gen_z, phase_gen_c in zip(phases, all_gen_z, all_gen_c):
        if state["batch_idx"] % phase.interval != 0:
            continue
        phase.opt.zero_grad(set_to_none=True)
        phase.module.requires_grad_(True)
        for real_img, real_c, gen_z, gen_c in zip(phase_real_img, phase_real_c, phase_gen_z, phase_gen_c):
            loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c,
                                      gain=phase.interval, cur_nimg=state["cur_nimg"])
        phase.module.requires_grad_(False)
        params = [param for param in phase.module.parameters() if param.grad is not None]
        if len(params) > 0:
            flat = torch.cat([param.grad.flatten() for param in params])
            torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
            grads = flat.split([param.numel() for param in params])
            for param, grad in zip(params, grads):
                param.grad = grad.reshape(param.shape)
        phase.opt.step()
    ema_nimg = ema_kimg * 1000
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p_ in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p_.lerp(p_ema, ema_beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    state["cur_nimg"] += batch_size
    state["batch_idx"] += 1


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


t0 = time.perf_counter()
for _ in range(a.warmup):
    iteration()
sync()
print(f"# warmup {a.warmup} it in {time.perf_counter() - t0:.1f} s")
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats(dev)
rates, cpu = [], []
for _ in range(a.repeats):
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(a.iters):
        iteration()
    sync()
    rates.append(a.iters * batch_size / (time.perf_counter() - t0))
    cpu.append(a.iters * batch_size / (time.process_time() - c0))
mem = (torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda"
       else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
print(f"# NVlabs stylegan3 networks_stylegan2 + StyleGAN2Loss, torch {torch.__version__}, threads "
      f"{torch.get_num_threads()}; img/s per repeat: {', '.join(f'{r:.2f}' for r in rates)}; peak mem {mem:.2f} GiB")
print(f"img/cpu-s    {statistics.median(cpu):.3f} (process CPU time, all threads)")
print(f"{statistics.median(rates):.2f} img/s")
