"""Progressive growing: the level of detail, minibatch and learning rates as a pure function of kimg.

Source: Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and Variation" (ProGAN),
section 2 and appendix A; NVlabs' ``training_schedule`` (NVlabs/stylegan ``training/training_loop.py``), whose
semantics :class:`ProgressiveSchedule` follows: training starts at ``lod_initial_resolution``; each resolution is
trained for ``lod_training_kimg`` and the next one faded in over ``lod_transition_kimg``; ``lod`` (level of detail)
is ``log2(full resolution / current resolution)`` and falls continuously during a fade-in. The same schedule serves
ProGAN and StyleGAN (v1); StyleGAN2/3 train without it (``schedule: null``).

Also here: :func:`cosine_decay`, the cosine schedule of hyper-parameters over images seen (R3GAN's training loop).

The real images follow the schedule on the device (:func:`process_reals`): box-downscaled to the current resolution,
cross-faded with the next lower one by the fractional part of lod, and nearest-upscaled back to the full resolution,
as NVlabs' ``process_reals`` does (the networks always take and give full-resolution images).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["ProgressiveSchedule", "SchedulePoint", "cosine_decay", "process_reals", "progressive_transfer_settings",
           "set_lod"]


@dataclass(frozen=True)
class SchedulePoint:
    """The training parameters at one point of the schedule.

    Attributes:
        kimg: the point (thousands of real images shown to D, all ranks together).
        lod: level of detail, float >= 0: 0 = full resolution; ``k + f`` = fading from ``res / 2**(k+1)`` to
            ``res / 2**k`` with ``f`` the part still to go.
        resolution: the resolution being trained, ``full / 2**floor(lod)`` pixels.
        minibatch: global minibatch (all ranks together) in images.
        G_lrate, D_lrate: Adam learning rates of G and D (before the lazy-regularization adjustment).
    """

    kimg: float
    lod: float
    resolution: int
    minibatch: int
    G_lrate: float
    D_lrate: float


def _int_keys(d: Mapping[Any, Any] | None) -> dict[int, Any]:
    return {int(k): v for k, v in (d or {}).items()}


class ProgressiveSchedule:
    """NVlabs' progressive-growing ``training_schedule`` (ProGAN / StyleGAN), a pure function of ``cur_nimg``.

    Args:
        lod_initial_resolution: resolution at the start of training (pixels, power of two).
        lod_training_kimg: kimg to train each resolution before the next one starts fading in.
        lod_transition_kimg: kimg over which a new resolution fades in; 0 = switch at once.
        minibatch_dict: global minibatch per resolution ``{resolution: images}``; resolutions not listed use the
            base minibatch (``train.batch``).
        max_minibatch_per_gpu: cap per process ``{resolution: images}`` (NVlabs: memory limits at high resolution).
        G_lrate_dict, D_lrate_dict: learning rate per resolution; others use the base rates (``train.G_lr`` /
            ``train.D_lr``).
        lrate_rampup_kimg: learning rates ramp up linearly from 0 over this many kimg; 0 = no ramp-up.
        reset_opt_for_new_lod: reset Adam's moments whenever a new set of layers enters (floor or ceil of lod
            changes), as NVlabs' training loop does.
        minibatch_repeats: iterations run with the same schedule point before it is evaluated again (NVlabs'
            training loop: 4); 1 = every iteration.

    Raises:
        ValueError: a non-power-of-two initial resolution or negative durations.
    """

    def __init__(
        self,
        lod_initial_resolution: int = 4,
        lod_training_kimg: float = 600,
        lod_transition_kimg: float = 600,
        minibatch_dict: Mapping[Any, int] | None = None,
        max_minibatch_per_gpu: Mapping[Any, int] | None = None,
        G_lrate_dict: Mapping[Any, float] | None = None,
        D_lrate_dict: Mapping[Any, float] | None = None,
        lrate_rampup_kimg: float = 0,
        reset_opt_for_new_lod: bool = True,
        minibatch_repeats: int = 1,
    ) -> None:
        r = int(lod_initial_resolution)
        if r < 4 or r & (r - 1):
            raise ValueError(f"schedule.lod_initial_resolution={lod_initial_resolution} must be a power of two >= 4")
        if lod_training_kimg < 0 or lod_transition_kimg < 0 or lrate_rampup_kimg < 0:
            raise ValueError("schedule.lod_training_kimg, lod_transition_kimg and lrate_rampup_kimg must be >= 0")
        self.lod_initial_resolution = r
        self.lod_training_kimg = float(lod_training_kimg)
        self.lod_transition_kimg = float(lod_transition_kimg)
        self.minibatch_dict = _int_keys(minibatch_dict)
        self.max_minibatch_per_gpu = _int_keys(max_minibatch_per_gpu)
        self.G_lrate_dict = _int_keys(G_lrate_dict)
        self.D_lrate_dict = _int_keys(D_lrate_dict)
        self.lrate_rampup_kimg = float(lrate_rampup_kimg)
        self.reset_opt_for_new_lod = bool(reset_opt_for_new_lod)
        if int(minibatch_repeats) < 1:
            raise ValueError(f"schedule.minibatch_repeats={minibatch_repeats} must be >= 1")
        self.minibatch_repeats = int(minibatch_repeats)

    def lod(self, cur_nimg: int, resolution: int) -> float:
        """Level of detail after ``cur_nimg`` images for a network of full ``resolution`` (NVlabs' formula)."""
        kimg = cur_nimg / 1000.0
        phase_dur = self.lod_training_kimg + self.lod_transition_kimg
        phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
        phase_kimg = kimg - phase_idx * phase_dur
        lod = math.log2(resolution) - math.floor(math.log2(self.lod_initial_resolution)) - phase_idx
        if self.lod_transition_kimg > 0:
            lod -= max(phase_kimg - self.lod_training_kimg, 0.0) / self.lod_transition_kimg
        return max(lod, 0.0)

    def minibatch(self, res: int, base: int, world: int) -> int:
        """Global minibatch at training resolution ``res``: the dict or ``base``, a multiple of ``world``, capped."""
        mb = int(self.minibatch_dict.get(res, base))
        mb -= mb % world
        if res in self.max_minibatch_per_gpu:
            mb = min(mb, int(self.max_minibatch_per_gpu[res]) * world)
        return mb

    def __call__(self, cur_nimg: int, resolution: int, batch: int, G_lr: float, D_lr: float,
                 world: int = 1) -> SchedulePoint:
        """The schedule at ``cur_nimg``.

        Args:
            cur_nimg: real images shown so far (all ranks together).
            resolution: the networks' full output resolution.
            batch, G_lr, D_lr: base minibatch and learning rates (``train.batch``, ``train.G_lr``, ``train.D_lr``).
            world: number of training processes (the minibatch is rounded down to a multiple of it).
        """
        lod = self.lod(cur_nimg, resolution)
        res = 2 ** (int(math.log2(resolution)) - int(math.floor(lod)))
        mb = self.minibatch(res, batch, world)
        g, d = float(self.G_lrate_dict.get(res, G_lr)), float(self.D_lrate_dict.get(res, D_lr))
        if self.lrate_rampup_kimg > 0:
            ramp = min(cur_nimg / 1000.0 / self.lrate_rampup_kimg, 1.0)
            g, d = g * ramp, d * ramp
        return SchedulePoint(kimg=cur_nimg / 1000.0, lod=lod, resolution=res, minibatch=mb, G_lrate=g, D_lrate=d)

    def resolutions(self, resolution: int) -> list[int]:
        """Every resolution the schedule trains, from the initial one to ``resolution``."""
        lo = min(self.lod_initial_resolution, resolution)
        return [2**k for k in range(int(math.log2(lo)), int(math.log2(resolution)) + 1)]

    def minibatches(self, resolution: int, batch: int, world: int) -> list[int]:
        """The global minibatches of every resolution trained (to size the loader batch, which must divide them)."""
        return [self.minibatch(r, batch, world) for r in self.resolutions(resolution)]

    def __repr__(self) -> str:
        return (f"ProgressiveSchedule(lod_initial_resolution={self.lod_initial_resolution}, "
                f"lod_training_kimg={self.lod_training_kimg:g}, lod_transition_kimg={self.lod_transition_kimg:g})")


def process_reals(x: torch.Tensor, lod: float) -> torch.Tensor:
    """Real images at the schedule's level of detail, at full resolution (NVlabs' ``process_reals`` FadeLOD/Upscale).

    ``x`` is box-downscaled by ``2**floor(lod)`` (NVlabs' dataset stores each lod as 2x2 means of the previous one),
    lerped toward its own 2x2 box-blurred copy by ``lod - floor(lod)`` (the fade-in of a new resolution), and
    nearest-upscaled back to the input size.

    Args:
        x: real images, float32 [N, C, H, W] in [-1, 1], H and W divisible by ``2**ceil(lod)``.
        lod: level of detail >= 0.

    Returns:
        float32 [N, C, H, W]; ``x`` itself when ``lod == 0``.
    """
    if lod <= 0:
        return x
    k = int(math.floor(lod))
    y = F.avg_pool2d(x, 2**k) if k > 0 else x
    frac = lod - k
    if frac > 0:
        y = torch.lerp(y, F.interpolate(F.avg_pool2d(y, 2), scale_factor=2, mode="nearest"), frac)
    return F.interpolate(y, scale_factor=2**k, mode="nearest") if k > 0 else y


def set_lod(modules: list[torch.nn.Module], lod: float) -> None:
    """Write ``lod`` into every buffer named ``lod`` of the given networks (ProGAN G/D, StyleGAN synthesis/D)."""
    for m in modules:
        for name, buf in m.named_buffers():
            if name == "lod" or name.endswith(".lod"):
                buf.fill_(float(lod))


def progressive_transfer_settings(cfg: Any) -> list[str]:
    """Fine-tuning a grown progressive network (``train.resume_from``) trains at full resolution: sets
    ``schedule.lod_initial_resolution`` to the network's resolution unless ``train.resume_kimg`` asks to follow the
    growing schedule from that kimg (NVlabs' TF code would regrow it). ``cfg`` is the composed config, changed in
    place; returns what changed."""
    from omegaconf import OmegaConf, open_dict

    sched = cfg.get("schedule")
    res = OmegaConf.select(cfg, "model.G.resolution")
    if (sched is None or "lod_initial_resolution" not in sched or float(cfg.train.resume_kimg) or res is None
            or int(sched.lod_initial_resolution) == int(res)):
        return []
    with open_dict(cfg):
        sched.lod_initial_resolution = int(res)
    return [f"schedule.lod_initial_resolution={int(res)} (full resolution; set train.resume_kimg to follow the "
            "growing schedule from that kimg instead)"]


def cosine_decay(cur_nimg: float, base_value: float, total_nimg: float, final_value: float) -> float:
    """A hyper-parameter that follows half a cosine from ``base_value`` at 0 to ``final_value`` at ``total_nimg``
    images, then stays at ``final_value``: ``base + (1 - d) * (final - base)``, ``d = (1 + cos(pi * n / total)) / 2``.

    Source: Huang et al. 2024 (R3GAN), section 4 / appendix (lr, Adam beta2, gamma, EMA half-life and augmentation
    probability decayed over 20M images); the authors' ``cosine_decay_with_warmup`` without warm-up or hold (the form
    their training loop uses), written with the same arithmetic so values agree to the last bit.

    Args:
        cur_nimg: real images shown so far (>= 0).
        base_value: the value at 0 images.
        total_nimg: images over which the value decays (> 0).
        final_value: the value at and after ``total_nimg``.

    Returns:
        The value at ``cur_nimg`` (float).

    Raises:
        ValueError: ``total_nimg <= 0``.
    """
    if not total_nimg > 0:
        raise ValueError(f"cosine_decay: total_nimg={total_nimg} must be > 0")
    if cur_nimg > total_nimg:
        return float(final_value)
    decay = 0.5 * (1 + math.cos(math.pi * cur_nimg / float(total_nimg)))
    return float(base_value + (1 - decay) * (final_value - base_value))
