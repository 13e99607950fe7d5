"""Latent projection: find the w (W) or per-layer ws (W+) whose image matches a target.

Sources: Abdal et al. 2019, "Image2StyleGAN" (W+ embedding, perceptual + pixel losses); Karras et al. 2020,
"Analyzing and Improving the Image Quality of StyleGAN", sec. 5 and appendix D (projection in W: start at
w_avg, Adam with learning-rate ramp-up and cosine ramp-down, Gaussian noise added to w that fades over the first
75% of the steps, noise maps optimised too and kept uncorrelated by a multi-scale autocorrelation penalty);
NVlabs' projector.py for the default numbers. The perceptual distance is LPIPS (Zhang et al. 2018) on VGG16
features, read from a local file (see :func:`load_vgg16`); the mse loss needs no file. NVlabs' numbers were tuned for
LPIPS in W; with the mse loss, measured on a trained network, no w noise, a noise penalty of 1e3 instead of 1e5 and
a noise-map learning rate of 0.1x project better (docs/latent.md, "Projection quality"). The noise maps start from
the network's own noise buffers (NVlabs: fresh random maps; both are N(0, 1) draws).

StyleGAN3 (no noise inputs: only the latents are optimised) gets the stabilised projection of stylegan3-fun
(PDillis; its ``--stabilize-projection``, after RiversHaveWings and nshepperd): the input layer's w, which sets the
rotation and translation of the Fourier features through ``synthesis.input.affine``, is held at w_avg, so the
picture's placement stays at its average while the other layers are optimised. stylegan3-fun folds w_avg into the
affine's bias; here ws[:, 0] is set to w_avg instead, so the projected ws render the same image with any tool.
Networks without W space (ProGAN, DCGAN) cannot be projected into W.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from sgtrain.core.batches import in_batches
from sgtrain.errors import InputError, MissingFileError
from sgtrain.latent.common import image_size, make_labels
from sgtrain.latent.studio import capabilities, require_w
from sgtrain.metrics.vgg16 import VGG16_URL, VGG16Features, load_vgg16

__all__ = ["VGG16_URL", "VGG16Features", "load_vgg16", "load_target", "psnr", "project", "render_with_noise"]


def load_target(path: str | os.PathLike, resolution: int | tuple[int, int], channels: int = 3) -> torch.Tensor:
    """Read an image, centre-crop it to the network's aspect and resize it (Lanczos) to the network's size.

    Args:
        resolution: the side R of a square network, or ``(width, height)`` (:func:`image_size`).

    Returns:
        uint8 tensor [channels, height, width].

    Raises:
        FileNotFoundError: no such file.
    """
    import PIL.Image

    if not os.path.exists(path):
        raise MissingFileError(f"target image '{path}' not found")
    img = PIL.Image.open(path).convert("L" if channels == 1 else "RGB")
    W, H = (int(resolution[0]), int(resolution[1])) if isinstance(resolution, (tuple, list)) else (
        int(resolution), int(resolution))
    w, h = img.size
    cw, ch = (h * W // H, h) if w * H >= h * W else (w, w * H // W)  # the largest centred box of aspect W:H
    img = img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    img = img.resize((W, H), PIL.Image.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, ``10 log10(peak^2 / mean((a - b)^2))``.

    Args:
        a, b: images [N, C, H, W] (or [C, H, W]) on the same scale; ``peak`` is that scale's range
            (255 for uint8, 2 for network images in [-1, 1]).

    Returns:
        float32 [N] (or a scalar).
    """
    a, b = a.double(), b.double()
    mse = (a - b).square().flatten(a.ndim - 3).mean(-1)
    return (10 * torch.log10(peak ** 2 / mse.clamp_min(1e-20))).float()


def _noise_reg(noise: torch.Tensor) -> torch.Tensor:
    """Sum over scales of squared autocorrelations at shift 1, per image; noise [N, 1, H, W] -> [N]."""
    reg = noise.new_zeros(noise.shape[0])
    while True:
        reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean([1, 2, 3]).square()
        reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean([1, 2, 3]).square()
        if noise.shape[2] <= 8:
            return reg
        noise = F.avg_pool2d(noise, kernel_size=2)


def project(
    G: torch.nn.Module,
    targets: torch.Tensor,
    *,
    space: str = "w",
    num_steps: int = 1000,
    loss: str = "lpips-vgg",
    vgg: Callable[[torch.Tensor], torch.Tensor] | str | os.PathLike | None = None,
    class_idx: int | None = None,
    w_avg_samples: int = 10000,
    initial_learning_rate: float = 0.1,
    initial_noise_factor: float | None = None,
    lr_rampdown_length: float = 0.25,
    lr_rampup_length: float = 0.05,
    noise_ramp_length: float = 0.75,
    regularize_noise_weight: float | None = None,
    optimize_noise: bool = True,
    noise_lr_scale: float | None = None,
    noise_init: str = "const",
    init_ws: torch.Tensor | None = None,
    seed: int = 303,
    history_every: int = 0,
    verbose: bool = False,
    device: str | torch.device | None = None,
    callback: Callable[[int, int, dict], bool | None] | None = None,
    anchor_input: bool | None = None,
) -> dict:
    """Project target images into the latent space of G, all targets in one batch.

    Each target gets its own latent and its own noise maps, and the losses are summed over targets, so each latent
    gets only its own gradient (Adam works per element). The random w noise and the initial noise maps are drawn for
    the whole batch from ``seed``, so a target's result varies a little with the batch it is in.

    Args:
        G: generator (NVlabs interface). Not modified: a copy is optimised.
        targets: uint8 or float [N, C, H, W] in [0, 255] at G's resolution (see :func:`load_target`).
        space: ``'w'`` (one w per image, NVlabs' projector) or ``'w+'`` (num_ws independent ws, Image2StyleGAN).
        num_steps: optimisation steps.
        loss: ``'lpips-vgg'`` (needs ``vgg``) or ``'mse'`` (mean squared error on images in [-1, 1]).
        vgg: a feature function from :func:`load_vgg16` or a path for it.
        class_idx: class for a conditional network.
        w_avg_samples: z samples for the starting point w_avg and the scale w_std of the w noise.
        initial_learning_rate, lr_rampdown_length, lr_rampup_length: Adam learning rate, cosine ramp-down over the
            last fraction of steps, linear ramp-up over the first fraction.
        initial_noise_factor, noise_ramp_length: Gaussian noise of std ``w_std * factor * (1 - t/length)^2`` added
            to w, fading to 0 at ``t = length`` (fraction of the steps). None: NVlabs' 0.05 for lpips-vgg from
            w_avg; 0 for mse and whenever ``init_ws`` is given (measured: the noise costs 1.5-3 dB with mse, see
            docs/latent.md "Projection quality").
        regularize_noise_weight: weight of the noise autocorrelation penalty. None: NVlabs' 1e5 for lpips-vgg, 1e3
            for mse. The mse distance is a per-pixel mean, far smaller than an LPIPS distance, so NVlabs' weight lets
            the penalty drown it: the noise maps cannot follow the image (mse at 1e5 loses 2-4 dB); far lower weights
            (10-100) let the noise maps copy image content that the latent should carry.
        optimize_noise: optimise the per-layer noise maps (NVlabs' default). False keeps the network's own
            noise_const buffers fixed (an image generated with noise_mode='const' is then exactly reachable).
        noise_lr_scale: the noise maps' learning rate as a fraction of the latent's. None: 1 for lpips-vgg (NVlabs),
            0.1 for mse. Adam moves every noise pixel by about its learning rate per step, so at the full 0.1 the
            maps are scrambled within a few steps and spend the run being re-found (mse measured: +2 dB on
            generated images at 0.1x, no change on photos).
        noise_init: where the optimised noise maps start: ``'const'`` (the network's own noise_const buffers, the
            noise that ``noise_mode='const'`` renders with; they are N(0, 1) draws like NVlabs' start, and an image
            the network generated with them is then reachable) or ``'random'`` (fresh N(0, 1) maps from ``seed``,
            NVlabs' projector).
        init_ws: starting latents float [N, num_ws, w_dim] or [N, w_dim] (e.g. an encoder's prediction, see
            :mod:`sgtrain.latent.encoder`); None starts at w_avg. In W the mean over layers is used.
        seed: seed of the w noise and of random initial noise maps.
        history_every: record ws every this many steps for a progress video (0 = no history).
        anchor_input: hold ws[:, 0], the w of StyleGAN3's input layer (rotation and translation of the Fourier
            features), at w_avg and optimise the other layers (stylegan3-fun's stabilised projection); None = on for
            networks with an input transform (StyleGAN3), off otherwise. Only for networks with an input transform.
        callback: called after every step as ``callback(step, num_steps, info)`` with step counting from 1 and
            ``info`` = {``dist``: float32 [N] distance per target; ``images``: float32 [N, C, H, W] in [-1, 1], this
            step's rendering (before its update, w noise included); ``ws``: [N, num_ws, w_dim] after the update,
            without w noise; ``lr``: float}. A true return value stops the projection after this step (the result
            is that of the last step done).

    Returns:
        dict with ``ws`` float32 [N, num_ws, w_dim], ``images`` float32 [N, C, H, W] in [-1, 1] (rendered with the
        optimised noise), ``noise`` {buffer name: [N, 1, H, W]}, ``history`` [S, N, num_ws, w_dim] (steps
        ``history_steps``), ``psnr`` float32 [N] in dB against the targets, and ``generator``: the optimised copy of
        G holding the per-target noise maps (for :func:`render_with_noise`).

    Raises:
        ValueError: wrong target shape, unknown space or loss; a network without W space (ProGAN, DCGAN);
            anchor_input for a network without an input transform. FileNotFoundError: lpips-vgg without VGG weights.
    """
    require_w(G, "projection")
    has_input_transform = capabilities(G).transform
    if anchor_input is None:
        anchor_input = has_input_transform
    elif anchor_input and not has_input_transform:
        raise InputError("anchor_input holds the w of StyleGAN3's input layer (synthesis.input.affine); this network "
                         "has no input transform")
    if space not in ("w", "w+"):
        raise InputError(f"space '{space}' unknown: use w or w+")
    if loss not in ("lpips-vgg", "mse"):
        raise InputError(f"loss '{loss}' unknown: use lpips-vgg or mse")
    if noise_init not in ("const", "random"):
        raise InputError(f"noise_init '{noise_init}' unknown: use const or random")
    if initial_noise_factor is None:
        initial_noise_factor = 0.05 if loss == "lpips-vgg" and init_ws is None else 0.0
    if regularize_noise_weight is None:
        regularize_noise_weight = 1e5 if loss == "lpips-vgg" else 1e3
    if noise_lr_scale is None:
        noise_lr_scale = 1.0 if loss == "lpips-vgg" else 0.1
    if targets.ndim == 3:
        targets = targets[None]
    want = (G.img_channels, image_size(G)[1], image_size(G)[0])
    if tuple(targets.shape[1:]) != want:
        raise InputError(f"targets have shape {list(targets.shape)}; this network needs [N, {want[0]}, {want[1]}, "
                         f"{want[2]}] (load_target resizes images)")
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    if loss == "lpips-vgg" and not callable(vgg):
        vgg = load_vgg16(vgg, dev)
    N = targets.shape[0]
    G = copy.deepcopy(G).eval().requires_grad_(False).to(dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    log = print if verbose else (lambda *a, **k: None)

    # Starting point and scale, from the mapping of w_avg_samples random z (NVlabs: RandomState(123)).
    with torch.no_grad():
        z = torch.from_numpy(np.random.RandomState(123).randn(w_avg_samples, G.z_dim).astype(np.float32)).to(dev)
        c = make_labels(G, w_avg_samples, class_idx, dev)
        w_samples = in_batches(lambda zz, cc: G.mapping(zz, cc)[:, 0], z, c, batch_size=1000)
        w_avg = w_samples.mean(0)
        w_std = float((w_samples - w_avg).square().sum(1).mean().sqrt())
    layers = G.num_ws if space == "w+" else 1
    if init_ws is None:
        w_opt = w_avg[None, None].repeat(N, layers, 1)
    else:
        init = init_ws.detach().to(dev, torch.float32)
        init = init[:, None] if init.ndim == 2 else init
        if init.ndim != 3 or init.shape[0] != N or init.shape[1] not in (1, G.num_ws) or init.shape[2] != G.w_dim:
            raise InputError(f"init_ws has shape {list(init_ws.shape)}; give [N={N}, num_ws={G.num_ws}, "
                             f"w_dim={G.w_dim}] or [N, w_dim]")
        if anchor_input and init.shape[1] == G.num_ws:  # ws[:, 0] is the anchor, not part of the image's w
            init = torch.cat([init[:, 1:2], init[:, 1:]], dim=1)
        w_opt = init.mean(1, keepdim=True) if space == "w" else init.expand(N, G.num_ws, G.w_dim)
    w_opt = w_opt.clone().requires_grad_(True)
    anchor = w_avg[None, None].expand(N, 1, G.w_dim) if anchor_input else None

    def full_ws(w: torch.Tensor) -> torch.Tensor:  # [N, 1 or num_ws, w_dim] -> [N, num_ws, w_dim]
        w = w.expand(N, G.num_ws, G.w_dim)
        return w if anchor is None else torch.cat([anchor, w[:, 1:]], dim=1)

    # Noise maps: the synthesis layers' noise_const buffers, one copy per target.
    noise_bufs: dict[str, torch.Tensor] = {}
    for name, module in G.synthesis.named_modules():
        buf = getattr(module, "noise_const", None)
        if isinstance(buf, torch.Tensor):
            if optimize_noise and noise_init == "random":
                per = torch.randn([N, 1, *buf.shape[-2:]], generator=gen).to(dev)
            else:
                per = buf.detach().reshape(1, 1, *buf.shape[-2:]).repeat(N, 1, 1, 1)
            per.requires_grad_(optimize_noise)
            module.noise_const = per  # replaces the buffer; broadcasts over channels as [N, 1, H, W]
            noise_bufs[name] = per
    groups = [dict(params=[w_opt], lr_scale=1.0)]
    if optimize_noise and noise_bufs:
        groups.append(dict(params=list(noise_bufs.values()), lr_scale=noise_lr_scale))
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999), lr=initial_learning_rate)

    def features(images01: torch.Tensor) -> torch.Tensor:  # images in [0, 255]
        if images01.shape[1] == 1:
            images01 = images01.repeat(1, 3, 1, 1)
        if images01.shape[2] > 256:
            images01 = F.interpolate(images01, size=(256, 256), mode="area")
        return vgg(images01)

    target = targets.to(dev).float()
    target_m11 = target / 127.5 - 1
    if loss == "lpips-vgg":
        with torch.no_grad():
            target_feats = features(target)
    history, history_steps = [], []
    for step in range(num_steps):
        t = step / num_steps
        fade = max(0.0, 1.0 - t / noise_ramp_length) if noise_ramp_length > 0 else 0.0
        w_noise_scale = w_std * initial_noise_factor * fade ** 2
        lr_ramp = min(1.0, (1.0 - t) / lr_rampdown_length) if lr_rampdown_length > 0 else 1.0
        lr_ramp = (0.5 - 0.5 * math.cos(lr_ramp * math.pi)) * (min(1.0, t / lr_rampup_length)
                                                                if lr_rampup_length > 0 else 1.0)
        for group in opt.param_groups:
            group["lr"] = initial_learning_rate * lr_ramp * group["lr_scale"]

        w_noise = torch.randn(w_opt.shape, generator=gen).to(dev) * w_noise_scale
        ws = full_ws(w_opt + w_noise)
        synth = G.synthesis(ws, noise_mode="const")
        if loss == "lpips-vgg":
            dist = (features((synth + 1) * 127.5) - target_feats).square().sum(1)
        else:
            dist = (synth - target_m11).square().flatten(1).mean(1)
        reg = sum((_noise_reg(v) for v in noise_bufs.values()), torch.zeros_like(dist)) if optimize_noise else 0
        total = (dist + reg * regularize_noise_weight).sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if verbose and (step % max(1, num_steps // 20) == 0 or step == num_steps - 1):
            log(f"step {step + 1:>5d}/{num_steps}: dist {dist.mean().item():<8.5f} loss {total.item():<8.5f}")
        if optimize_noise:
            with torch.no_grad():
                for buf in noise_bufs.values():
                    buf -= buf.mean([1, 2, 3], keepdim=True)
                    buf *= buf.square().mean([1, 2, 3], keepdim=True).rsqrt()
        if history_every and (step % history_every == 0 or step == num_steps - 1):
            history.append(full_ws(w_opt.detach()).clone())
            history_steps.append(step + 1)
        if callback is not None:
            info = dict(dist=dist.detach(), images=synth.detach(), ws=w_opt.detach().expand(N, G.num_ws, G.w_dim),
                        lr=opt.param_groups[0]["lr"])
            if callback(step + 1, num_steps, info):
                break

    with torch.no_grad():
        ws = full_ws(w_opt.detach()).clone()
        images = G.synthesis(ws, noise_mode="const")
        score = psnr((images + 1) * 127.5, target, 255.0)
    return dict(
        ws=ws,
        images=images,
        noise={k: v.detach() for k, v in noise_bufs.items()},
        history=torch.stack(history) if history else ws.new_zeros([0, N, G.num_ws, G.w_dim]),
        history_steps=history_steps,
        psnr=score.cpu(),
        generator=G,
    )


def render_with_noise(G_copy: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """Render ws [N, num_ws, w_dim] with the projection's optimised noise (the ``generator`` that
    :func:`project` returns holds it); float32 [N, C, H, W] in [-1, 1]."""
    with torch.no_grad():
        return G_copy.synthesis(ws, noise_mode="const")

