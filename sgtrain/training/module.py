"""GANModule: the training of every GAN family as a LightningModule with manual optimization.

An iteration of NVlabs' training loops (Karras et al. 2020, StyleGAN2, section 3.1 and appendix B; NVlabs
``training_loop.py``; for progressive growing, Karras et al. 2018, ProGAN, section 2 and NVlabs' TF loop):

0. with a progressive schedule: the minibatch, learning rates and lod of this iteration come from the schedule (a
   pure function of kimg); lod is written into the networks, Adam is reset when new layers enter, and loader
   batches are gathered until the minibatch is complete (the minibatch changes with the resolution);
1. the per-device batch of real images (uint8 NCHW; x-flipped by the datamodule if asked) becomes float in
   [-1, 1] (faded to the current lod) and is split into ``batch_gpu`` chunks (gradient accumulation);
2. latents z and generated labels c are drawn for every phase;
3. the phases (Gmain, Greg every ``G_reg_interval`` iterations, Dmain, Dreg every ``D_reg_interval``; Gboth / Dboth
   without lazy regularization; in the order the family's loss asks for) each zero their network's gradients,
   accumulate over the chunks (``GANLoss.accumulate_gradients`` with ``gain = interval``), average the gradients
   over ranks once (flattened, sum / world size, nan_to_num) and step Adam (lr and betas adjusted for lazy
   regularization);
4. G_ema moves toward G with ``beta = 0.5 ** (minibatch / (ema_kimg * 1000))`` (optionally ramped up), after all
   phases, or right after D's phases when the loss trains D first (NVlabs' TF loops update Gs with the D step);
5. ``cur_nimg`` grows by the global minibatch; a tick ends every ``tick_kimg``; training stops at ``total_kimg``.

Progress is ``cur_nimg`` (real images shown to D summed over ranks), never epochs or Lightning's global_step.
Side effects (metrics, samples, checkpoints, snapshots) live in :mod:`sgtrain.training.callbacks`; this module
only announces a finished tick in :attr:`GANModule.tick_event`.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from sgtrain.core.augment import AdaController
from sgtrain.core.batches import check_batches
from sgtrain.core.loss import GANLoss, lazy_regularization
from sgtrain.core.schedule import ProgressiveSchedule, SchedulePoint, cosine_decay, process_reals, set_lod
from sgtrain.models.family import family_of

from .cluster import gather_objects, gather_rng_states, restore_rng_state, seed_all

_RANK_LOCAL = re.compile(r"(.*\.)?([^.]+_(avg|ema)|running_mean|running_var|num_batches_tracked)")


@dataclass
class TickEvent:
    """What the callbacks need to know about a tick that just ended (all ranks see the same values).

    Attributes:
        tick: index of the tick that ended (0 is the first iteration of a fresh run).
        cur_nimg: real images shown to D so far, summed over ranks.
        start_nimg: cur_nimg at the start of this tick.
        done: training reached total_kimg with this iteration.
        stats: loss terms averaged over the tick and over ranks, e.g. ``{'Loss/G/loss': 0.71}``.
        sec: wall-clock seconds of the tick (this process).
    """

    tick: int
    cur_nimg: int
    start_nimg: int
    done: bool
    stats: dict[str, float] = field(default_factory=dict)
    sec: float = 0.0

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    def crossed(self, interval_kimg: float) -> bool:
        """True if this tick passed a multiple of ``interval_kimg`` (or is the last or the first tick)."""
        step = max(1, int(round(interval_kimg * 1000)))
        return self.done or self.start_nimg // step != self.cur_nimg // step or self.start_nimg == 0


class GANModule(L.LightningModule):
    """G, D and G_ema of any GAN family trained with NVlabs' phase schedule (manual optimization).

    The module knows no family: the networks, the loss and the optional progressive schedule come in built (from the
    Hydra config, see :mod:`sgtrain.training.run`). A family plugs in through three contracts:

    - networks: ``G(z, c, **kw)`` with attributes ``z_dim`` and ``c_dim``; ``D(img, c, **kw) -> [N, 1]``; a
      network that grows progressively keeps its level of detail in buffers named ``lod`` (set here every iteration);
    - the loss: a :class:`sgtrain.core.loss.GANLoss` built by ``loss(G=..., D=..., augment_pipe=...)``;
    - the schedule: None (fixed minibatch and learning rates) or a
      :class:`~sgtrain.core.schedule.ProgressiveSchedule` (lod, minibatch and learning rates per resolution, Adam
      reset when new layers enter, reals faded to the current lod).

    Args:
        G: the generator (G_ema starts as a copy of it).
        D: the discriminator.
        loss: ``loss(G=, D=, augment_pipe=) -> GANLoss`` (e.g. ``functools.partial(StyleGAN2Loss, r1_gamma=10)``).
        schedule: progressive schedule, or None.
        augment_pipe: module applied to every image D sees (ADA), or None; its state (e.g. ``p``) is checkpointed.
        ada_target: with an augment pipe, the target of ADA's overfitting heuristic r_t = E[sign(D(reals))] (Karras
            et al. 2020, ADA, section 3; NVlabs 0.6); None = fixed p.
        ada_interval: iterations between adjustments of p (NVlabs 4).
        ada_kimg: kimg over which p may change by one (NVlabs 500).
        freeze_mapping: fine-tuning: the first this many mapping layers of G (its family descriptor's
            ``mapping_layer``) keep their weights (not optimised). Freeze-D is a discriminator keyword (StyleGAN2/3:
            ``block_kwargs.freeze_layers``).
        ddp_check_kimg: under DDP, compare parameters across ranks (``ddp_param_max_diff`` in metrics.jsonl) at the
            ticks that cross a multiple of this many kimg (and the last); None = at every tick.
        batch: global batch (all ranks together), images per iteration; the base minibatch of a schedule.
        batch_gpu: images per forward/backward pass on one device; None = the per-device batch. Larger values are
            capped at the per-device batch.
        G_batch_gpu, D_batch_gpu: the same for G's and for D's phases only (R3GAN's ``--g-batch-gpu`` /
            ``--d-batch-gpu``); None = ``batch_gpu``.
        decay_kimg: length in kimg of the cosine decay (:func:`sgtrain.core.schedule.cosine_decay`, R3GAN) of the
            hyper-parameters given a final value below; None = constant values. Evaluated at the start of every
            iteration from ``cur_nimg`` (so a resumed run continues it exactly).
        lr_final: G's and D's Adam learning rate at ``decay_kimg`` (from ``G_lr`` / ``D_lr``); None = no decay.
        beta2_final: Adam beta2 at ``decay_kimg`` (from ``betas[1]``); None = no decay.
        ema_kimg_final: G_ema half-life in kimg at ``decay_kimg`` (from ``ema_kimg``); None = no decay.
        p_final: the augmentation probability at ``decay_kimg`` (from the pipe's p; not with ADA); None = no decay.
        G_lr, D_lr: Adam learning rates before the lazy-regularization adjustment (the schedule's base rates).
        betas, eps: Adam betas (NVlabs (0, 0.99)) and epsilon (1e-8).
        G_reg_interval, D_reg_interval: lazy regularization intervals (NVlabs 4 and 16); None = regularize every
            iteration in the same phase (Gboth / Dboth).
        ema_kimg: half-life of G_ema in kimg.
        ema_rampup: G_ema ramp-up coefficient (half-life at most ``cur_nimg * ema_rampup``); None = off.
        total_kimg: training length in kimg (training stops when cur_nimg reaches it).
        tick_kimg: tick length in kimg.
        label_probs: class probabilities [c_dim] to draw generated labels from (one-hot); None with c_dim > 0 draws
            classes uniformly; ignored when c_dim == 0.
        seed: base seed; rank r of a world of n uses ``seed * n + r`` for its RNG streams (NVlabs).
        loader_batch: images per batch the datamodule yields on each rank; None = the per-device minibatch. With a
            schedule whose minibatch changes, a smaller divisor of every per-device minibatch: batches are gathered
            until an iteration's minibatch is complete.
    """

    def __init__(
        self,
        G: torch.nn.Module,
        D: torch.nn.Module,
        loss: Callable[..., GANLoss],
        schedule: ProgressiveSchedule | None = None,
        augment_pipe: torch.nn.Module | None = None,
        batch: int = 32,
        batch_gpu: int | None = None,
        G_batch_gpu: int | None = None,
        D_batch_gpu: int | None = None,
        G_lr: float = 0.002,
        D_lr: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        eps: float = 1e-8,
        G_reg_interval: int | None = 4,
        D_reg_interval: int | None = 16,
        ema_kimg: float = 10.0,
        ema_rampup: float | None = None,
        total_kimg: float = 25000,
        tick_kimg: float = 4.0,
        label_probs: list[float] | None = None,
        seed: int = 0,
        loader_batch: int | None = None,
        ada_target: float | None = None,
        ada_interval: int = 4,
        ada_kimg: float = 500,
        ddp_check_kimg: float | None = None,
        freeze_mapping: int = 0,
        decay_kimg: float | None = None,
        lr_final: float | None = None,
        beta2_final: float | None = None,
        ema_kimg_final: float | None = None,
        p_final: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["G", "D", "loss", "schedule", "augment_pipe"])
        self.automatic_optimization = False
        # Freeze-D of a D that keeps frozen layers as parameters (StyleGAN's): those built with requires_grad off
        self.frozen_D = {name for name, p in D.named_parameters() if not p.requires_grad}
        self.G = G.train().requires_grad_(False)
        self.D = D.train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment_pipe = augment_pipe
        self.ada = (AdaController(augment_pipe, ada_target, ada_interval, ada_kimg)
                    if augment_pipe is not None and ada_target is not None else None)
        self.loss = loss(G=self.G, D=self.D, augment_pipe=augment_pipe)
        self.schedule = schedule
        family = family_of(self.G)
        self.frozen = family.mapping_layers(self.G, int(freeze_mapping)) if family is not None else set()
        if freeze_mapping and not self.frozen:
            raise ValueError(f"freeze_mapping={freeze_mapping}: this generator has no mapping layers")
        self.batch = int(batch)
        self.batch_gpu = batch_gpu
        self.net_batch_gpu = {"G": G_batch_gpu or batch_gpu, "D": D_batch_gpu or batch_gpu}
        finals = dict(lr=lr_final, beta2=beta2_final, ema_kimg=ema_kimg_final, augment_p=p_final)
        if decay_kimg is None and any(v is not None for v in finals.values()):
            raise ValueError("lr_final / beta2_final / ema_kimg_final / p_final need decay_kimg (the decay's length)")
        if p_final is not None and (augment_pipe is None or ada_target is not None):
            raise ValueError("p_final needs an augment pipe with a fixed p (not ADA)")
        self.p_base = float(augment_pipe.p) if augment_pipe is not None else 0.0
        self.loader_batch = loader_batch
        self.total_kimg = float(total_kimg)
        self.tick_kimg = float(tick_kimg)
        self.label_probs = label_probs
        # Optional ``fn(n, generator=None, device=None) -> c [n, c_dim]`` (e.g. ShardDataModule.sample_labels).
        self.label_sampler: Any = None
        # Progress (saved in checkpoints).
        self.cur_nimg = 0
        self.cur_tick = 0
        self.tick_start_nimg = 0
        self.batch_idx = 0  # iterations done
        self.loader_batches = 0  # datamodule batches consumed (the data position)
        self.prev_lod = -1.0  # lod of the previous iteration (Adam reset when new layers enter)
        self.point_nimg = 0  # cur_nimg at which the schedule point in use was evaluated
        # Transient.
        self.tick_event: TickEvent | None = None
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # loader batches of an unfinished minibatch
        self._point: SchedulePoint | None = None
        self._tick_stats: dict[str, list[torch.Tensor]] = {}
        self._tick_start_time = time.time()
        self._pending_rng: list[dict[str, Any]] | None = None
        self._pending_loss_state: list[dict[str, Any]] | None = None
        self._resumed = False

    # ------------------------------------------------------------------------------------------------ topology
    @property
    def world(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self._trainer is not None else 0

    @property
    def batch_per_device(self) -> int:
        """Images per iteration on this rank: the current minibatch // world."""
        return self.minibatch // self.world

    @property
    def minibatch(self) -> int:
        """Global minibatch of the current iteration: the schedule's, else ``batch``."""
        return self._point.minibatch if self._point is not None else self.batch

    @property
    def round_size(self) -> int:
        """Images per forward/backward pass (``batch_gpu`` capped at the per-device batch)."""
        return min(self.batch_gpu or self.batch_per_device, self.batch_per_device)

    def pass_size(self, net: str) -> int:
        """Images per forward/backward pass of ``net``'s phases (``'G'`` or ``'D'``): ``G_batch_gpu`` /
        ``D_batch_gpu``, else ``batch_gpu``, capped at the per-device batch."""
        return min(self.net_batch_gpu[net] or self.batch_per_device, self.batch_per_device)

    @property
    def reals_per_iteration(self) -> int:
        """Batches of reals one iteration reads: 2 when the loss gives each network its own (R3GAN), else 1."""
        return 2 if getattr(self.loss, "separate_reals", False) else 1

    def decayed(self, cur_nimg: int | None = None) -> dict[str, float]:
        """The cosine-decayed hyper-parameters at ``cur_nimg`` (default: now): ``G_lr``, ``D_lr``, ``beta2``,
        ``ema_nimg``, ``augment_p`` for those given a final value; empty without ``decay_kimg``."""
        hp = self.hparams
        if hp.get("decay_kimg") is None:
            return {}
        n = self.cur_nimg if cur_nimg is None else cur_nimg
        total = float(hp.decay_kimg) * 1000
        out: dict[str, float] = {}
        if hp.lr_final is not None:
            out["G_lr"] = cosine_decay(n, float(hp.G_lr), total, float(hp.lr_final))
            out["D_lr"] = cosine_decay(n, float(hp.D_lr), total, float(hp.lr_final))
        if hp.beta2_final is not None:
            out["beta2"] = cosine_decay(n, float(hp.betas[1]), total, float(hp.beta2_final))
        if hp.ema_kimg_final is not None:
            out["ema_nimg"] = cosine_decay(n, float(hp.ema_kimg) * 1000, total, float(hp.ema_kimg_final) * 1000)
        if hp.p_final is not None:
            out["augment_p"] = cosine_decay(n, self.p_base, total, float(hp.p_final))
        return out

    def _apply_decay(self, values: dict[str, float]) -> None:
        """Set the decayed learning rates, beta2 and augmentation probability (R3GAN's loop, before the phases)."""
        for opt, key in zip(self.optimizers(), ("G_lr", "D_lr")):
            opt = getattr(opt, "optimizer", opt)  # Lightning's LightningOptimizer wrapper
            for group in opt.param_groups:
                if key in values:
                    group["lr"] = values[key]
                if "beta2" in values:
                    group["betas"] = (group["betas"][0], values["beta2"])
        if "augment_p" in values:
            self.augment_pipe.p.copy_(torch.as_tensor(values["augment_p"], dtype=self.augment_pipe.p.dtype))

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    @property
    def at_iteration_boundary(self) -> bool:
        """True between iterations (no loader batch of an unfinished minibatch is held): a safe point to save."""
        return not self._pending

    def schedule_point(self, cur_nimg: int | None = None) -> SchedulePoint | None:
        """The progressive schedule at ``cur_nimg`` (default: now), or None without a schedule."""
        if self.schedule is None:
            return None
        return self.schedule(self.cur_nimg if cur_nimg is None else cur_nimg, int(self.G.img_resolution),
                             self.batch, float(self.hparams.G_lr), float(self.hparams.D_lr), self.world)

    # ------------------------------------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam for G and D with lazy-regularization adjusted lr and betas (StyleGAN2 appendix B)."""
        hp = self.hparams
        opts = []
        for module, lr, interval in [(self.G, hp.G_lr, hp.G_reg_interval), (self.D, hp.D_lr, hp.D_reg_interval)]:
            lr, betas = lazy_regularization(lr, tuple(hp.betas), interval)
            frozen = self.frozen if module is self.G else self.frozen_D
            params = [p for n, p in module.named_parameters() if n not in frozen]
            opts.append(torch.optim.Adam(params, lr=lr, betas=betas, eps=hp.eps))
        return opts

    def _train_params(self, module: torch.nn.Module) -> None:
        """Turn gradients on for ``module``'s trainable parameters (frozen mapping layers and D layers stay off)."""
        module.requires_grad_(True)
        frozen = self.frozen if module is self.G else self.frozen_D
        for name, p in module.named_parameters():
            if name in frozen:
                p.requires_grad_(False)

    def phases(self) -> list[tuple[str, torch.nn.Module, int, int]]:
        """NVlabs' phases in the loss's order: (name, module, optimizer index, interval)."""
        hp = self.hparams
        nets = {"G": (self.G, 0, hp.G_reg_interval), "D": (self.D, 1, hp.D_reg_interval)}
        out = []
        for prefix in getattr(self.loss, "phase_order", ("G", "D")):
            module, idx, interval = nets[prefix]
            if not interval:
                out.append((prefix + "both", module, idx, 1))
            else:
                out.append((prefix + "main", module, idx, 1))
                out.append((prefix + "reg", module, idx, int(interval)))
        return out

    # ------------------------------------------------------------------------------------------------ lifecycle
    def setup(self, stage: str) -> None:
        minibatches = ([self.batch] if self.schedule is None else
                       self.schedule.minibatches(int(self.G.img_resolution), self.batch, self.world))
        what = "train.batch" if self.schedule is None else "train.batch / schedule.minibatch_dict"
        for key, bgpu in (("batch_gpu", self.batch_gpu), ("G_batch_gpu", self.net_batch_gpu["G"]),
                          ("D_batch_gpu", self.net_batch_gpu["D"])):
            check_batches(minibatches, self.world, bgpu, self.loader_batch, what=what, batch_gpu_key=f"train.{key}")

    def on_train_start(self) -> None:
        states, self._pending_loss_state = self._pending_loss_state, None
        if states is not None and len(states) == self.world:
            self._load_loss_state(states[self.rank])
        if not self._resumed:
            # Per-rank RNG streams (NVlabs: seed * num_gpus + rank); parameters were broadcast from rank 0.
            seed_all(int(self.hparams.seed) * self.world + self.rank)
        self._tick_start_time = time.time()
        if self.cur_nimg >= self.total_kimg * 1000:
            self.trainer.should_stop = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._pending_rng is not None:
            states, self._pending_rng = self._pending_rng, None
            if len(states) == self.world:
                restore_rng_state(states[self.rank])
            else:
                seed_all(int(self.hparams.seed) * self.world + self.rank + self.cur_nimg)
        if self.cur_nimg >= self.total_kimg * 1000:
            self.trainer.should_stop = True
            return -1  # skip the rest of the epoch: nothing left to train
        return None

    # ------------------------------------------------------------------------------------------------ data
    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch from the datamodule -> (uint8 or float images [N, C, H, W], labels float32 [N, c_dim])."""
        if isinstance(batch, dict):
            img = batch.get("img", batch.get("image"))
            c = batch.get("c", batch.get("label"))
        elif isinstance(batch, (list, tuple)):
            img, c = batch[0], batch[1] if len(batch) > 1 else None
        else:
            img, c = batch, None
        n = img.shape[0]
        c_dim = self.G.c_dim
        if c is None or c_dim == 0:
            c = torch.zeros([n, c_dim], device=img.device)
        c = c.to(torch.float32)
        if c.ndim == 1 and c_dim > 0:  # class indices
            c = torch.nn.functional.one_hot(c.long(), c_dim).to(torch.float32)
        return img, c.reshape(n, c_dim)

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generated labels float32 [n, c_dim]: one-hot classes drawn from ``label_probs`` ([n, 0] if c_dim == 0)."""
        c_dim = self.G.c_dim
        if c_dim == 0:
            return torch.zeros([n, 0], device=self.device)
        if self.label_sampler is not None:
            return self.label_sampler(n, generator=generator, device=self.device).to(torch.float32)
        probs = torch.as_tensor(self.label_probs if self.label_probs else [1.0] * c_dim, dtype=torch.float64)
        idx = torch.multinomial(probs, n, replacement=True, generator=generator)
        return torch.nn.functional.one_hot(idx, c_dim).to(torch.float32).to(self.device)

    # ------------------------------------------------------------------------------------------------ step
    def _reduce_grads(self, module: torch.nn.Module) -> None:
        """Average gradients over ranks once, flattened (NVlabs): sum, divide by world size, nan_to_num."""
        params = [p for p in module.parameters() if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.flatten() for p in params])
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(flat)
            flat /= self.world
        torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad = g.reshape(p.shape)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Gather loader batches into the iteration's minibatch, then run one NVlabs iteration; returns nothing."""
        self.tick_event = None  # set again only by an iteration that ends a tick
        if not self._pending and self.schedule is not None:
            # fixed for the whole iteration, and for minibatch_repeats iterations (NVlabs' loop)
            if self.batch_idx % self.schedule.minibatch_repeats == 0 or self._point is None:
                if self.batch_idx % self.schedule.minibatch_repeats == 0:
                    self.point_nimg = self.cur_nimg
                self._point = self.schedule_point(self.point_nimg)
        self._pending.append(self._unpack(batch))
        self.loader_batches += 1
        have = sum(x.shape[0] for x, _ in self._pending)
        need = self.batch_per_device * self.reals_per_iteration
        if have < need:
            return
        if have > need:
            raise RuntimeError(f"the datamodule gave {have} images for an iteration reading {need} on this rank "
                               f"(train.batch={self.batch}, {self.world} processes)")
        if len(self._pending) == 1:
            img, real_c = self._pending[0]
        else:
            img, real_c = torch.cat([x for x, _ in self._pending]), torch.cat([c for _, c in self._pending])
        self._pending = []
        self.iteration(img, real_c)

    def iteration(self, img: torch.Tensor, real_c: torch.Tensor) -> None:
        """One NVlabs iteration on this rank's share of the minibatch: every phase, G_ema, counters, tick.

        Args:
            img: real images, uint8 (0..255) or float ([-1, 1]) [batch_per_device * reals_per_iteration, C, H, W]
                (with two batches of reals, D's first, then G's).
            real_c: their labels, float32 [same N, c_dim].
        """
        n = self.batch_per_device
        point = self._point
        real = img.to(self.device, torch.float32)
        if img.dtype == torch.uint8:
            real = real / 127.5 - 1
        if point is not None:
            self._apply_schedule(point)
            real = process_reals(real, point.lod)
        real_c = real_c.to(self.device)
        if self.reals_per_iteration == 2:  # R3GAN: D's reals, then G's
            reals = {"D": (real[:n], real_c[:n]), "G": (real[n:], real_c[n:])}
        else:
            reals = {"D": (real, real_c), "G": (real, real_c)}
        decayed = self.decayed()
        if decayed:
            self._apply_decay(decayed)
        average = bool(getattr(self.loss, "average_passes", False))
        phases = self.phases()
        all_z = torch.randn([len(phases) * n, self.G.z_dim], device=self.device)
        all_c = self.sample_labels(len(phases) * n)
        opts = self.optimizers()
        # G_ema: after all phases (NVlabs' PyTorch loop), or with the D step when D trains first (their TF loops run
        # the Gs update together with D's, before G's step)
        order = getattr(self.loss, "phase_order", ("G", "D"))
        ema_with_d = getattr(self.loss, "ema_with_D", None)
        ema_after_d = order[0] == "D" if ema_with_d is None else bool(ema_with_d) and order[0] == "D"
        ema_at_end = not ema_after_d

        for i, (name, module, opt_idx, interval) in enumerate(phases):
            if ema_after_d and name.startswith("G"):
                with torch.autograd.profiler.record_function("Gema"):
                    self.update_ema(decayed.get("ema_nimg"))
                ema_after_d = False
            if self.batch_idx % interval != 0:
                continue
            opt = opts[opt_idx]
            rs = self.pass_size(name[0])
            real_chunks, c_chunks = reals[name[0]][0].split(rs), reals[name[0]][1].split(rs)
            z_chunks = all_z[i * n:(i + 1) * n].split(rs)
            gc_chunks = all_c[i * n:(i + 1) * n].split(rs)
            gain = interval * (rs / n if average else 1)
            with torch.autograd.profiler.record_function(name):
                opt.zero_grad(set_to_none=True)
                self._train_params(module)
                for r_img, r_c, g_z, g_c in zip(real_chunks, c_chunks, z_chunks, gc_chunks):
                    terms = self.loss.accumulate_gradients(
                        phase=name, real_img=r_img, real_c=r_c, gen_z=g_z, gen_c=g_c, gain=gain,
                        cur_nimg=self.cur_nimg, backward=self.manual_backward,
                    )
                    for k, v in terms.items():
                        self._tick_stats.setdefault(k, []).append(v.detach())
                    if self.ada is not None and "Loss/signs/real" in terms:
                        self.ada.accumulate(terms["Loss/signs/real"], num=r_img.shape[0])
                module.requires_grad_(False)
            with torch.autograd.profiler.record_function(name + "_opt"):
                self._reduce_grads(module)
                opt.step()

        if ema_at_end:
            with torch.autograd.profiler.record_function("Gema"):
                self.update_ema(decayed.get("ema_nimg"))
        self.cur_nimg += self.minibatch
        self.batch_idx += 1
        if self.ada is not None:
            with torch.autograd.profiler.record_function("ada"):
                self.ada.update(self.batch_idx, self.minibatch)  # a collective: every rank, every iteration
        self._end_of_iteration()

    def _apply_schedule(self, point: SchedulePoint) -> None:
        """Set lod on G and D, the learning rates, and reset Adam when new layers enter (NVlabs' training loop)."""
        set_lod([self.G, self.D], point.lod)
        hp = self.hparams
        new_layers = (math.floor(point.lod) != math.floor(self.prev_lod)
                      or math.ceil(point.lod) != math.ceil(self.prev_lod))
        for opt, lr, interval in zip(self.optimizers(), (point.G_lrate, point.D_lrate),
                                     (hp.G_reg_interval, hp.D_reg_interval)):
            opt = getattr(opt, "optimizer", opt)  # Lightning's LightningOptimizer wrapper
            lr, _ = lazy_regularization(lr, tuple(hp.betas), interval)
            for group in opt.param_groups:
                group["lr"] = lr
            if new_layers and self.schedule.reset_opt_for_new_lod:
                opt.state.clear()
        self.prev_lod = point.lod

    @torch.no_grad()
    def update_ema(self, ema_nimg: float | None = None) -> None:
        """G_ema <- lerp(G, G_ema, beta), beta = 0.5 ** (batch / ema_nimg); buffers copied (NVlabs). ``ema_nimg``:
        the half-life in images (a decayed value); None = ``ema_kimg * 1000`` with the ramp-up."""
        hp = self.hparams
        if ema_nimg is None:
            ema_nimg = hp.ema_kimg * 1000
            if hp.ema_rampup is not None:
                ema_nimg = min(ema_nimg, self.cur_nimg * hp.ema_rampup)
        beta = 0.5 ** (self.minibatch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def _end_of_iteration(self) -> None:
        done = self.cur_nimg >= self.total_kimg * 1000
        self.tick_event = None
        if not (done or self.cur_tick == 0 or self.cur_nimg >= self.tick_start_nimg + self.tick_kimg * 1000):
            return
        now = time.time()
        step = max(1, int(round((self.hparams.ddp_check_kimg or 0) * 1000)))
        check = done or self.hparams.ddp_check_kimg is None or self.tick_start_nimg // step != self.cur_nimg // step
        stats = self._collect_stats(check_ddp=check)
        point = self._point
        if point is not None:
            stats.update(lod=point.lod, minibatch=float(point.minibatch), G_lrate=point.G_lrate, D_lrate=point.D_lrate)
        for k, v in self.decayed(self.cur_nimg - self.minibatch).items():
            stats[f"Progress/{k}"] = v  # the values the tick's last iteration used
        if self.augment_pipe is not None:
            stats["augment_p"] = self.augment_p
            if self.ada is not None and not math.isnan(float(self.ada.r_t)):
                stats["ada_r_t"] = float(self.ada.r_t)
        self.tick_event = TickEvent(tick=self.cur_tick, cur_nimg=self.cur_nimg, start_nimg=self.tick_start_nimg,
                                    done=done, stats=stats, sec=now - self._tick_start_time)
        # Advance before the callbacks checkpoint, so a resumed run starts the next tick.
        self.cur_tick += 1
        self.tick_start_nimg = self.cur_nimg
        self._tick_start_time = now

    def _collect_stats(self, check_ddp: bool = True) -> dict[str, float]:
        """Mean of every loss term over the tick, averaged over ranks (a collective: all ranks call it); with
        ``check_ddp`` under DDP also ``ddp_param_max_diff``."""
        names = sorted(self._tick_stats)
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            # Ranks may have different key sets only if a phase is disabled; keys are config-determined, so equal.
            names_all: list[Any] = [None] * self.world
            dist.all_gather_object(names_all, names)
            names = sorted(set().union(*names_all))
        vals = torch.zeros([len(names), 2], dtype=torch.float64, device=self.device)
        for i, k in enumerate(names):
            v = self._tick_stats.get(k, [])
            if v:
                vals[i, 0] = torch.stack([x.double() for x in v]).sum()
                vals[i, 1] = len(v)
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(vals)
        self._tick_stats = {}
        out = {k: float(vals[i, 0] / vals[i, 1]) for i, k in enumerate(names) if vals[i, 1] > 0}
        if check_ddp and self.world > 1 and dist.is_available() and dist.is_initialized():
            out["ddp_param_max_diff"] = self.ddp_param_max_diff()
        return out

    @torch.no_grad()
    def ddp_param_max_diff(self) -> float:
        """Largest difference between ranks of any parameter or buffer of G, D, G_ema (0.0 when in sync).

        Running averages that every rank updates from its own samples (``mapping.w_avg``; names ending in ``_avg``
        or ``_ema``) are left out, as in NVlabs' ``check_ddp_consistency``: they are rank-local by design and the
        copies written to disk come from rank 0. A collective (all ranks call it at the ticks ``ddp_check_kimg``
        selects); reported in metrics.jsonl as ``ddp_param_max_diff``. Gradients averaged once per phase keep every
        rank's parameters
        bitwise identical.
        """
        tensors = [t for m in (self.G, self.D, self.G_ema)
                   for name, t in list(m.named_parameters()) + list(m.named_buffers())
                   if not _RANK_LOCAL.fullmatch(name)]
        flat = torch.cat([t.detach().float().flatten() for t in tensors])
        hi, lo = flat.clone(), flat.clone()
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        return float((hi - lo).max())

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.tick_event is not None and self.tick_event.done:
            self.trainer.should_stop = True

    # ------------------------------------------------------------------------------------------------ checkpoint
    @property
    def augment_p(self) -> float | None:
        """The augmentation probability p of the augment pipe (ADA), or None without one."""
        return float(self.augment_pipe.p) if self.augment_pipe is not None else None

    def loss_scalars(self) -> dict[str, float]:
        """The loss's scalar buffers by name (e.g. ``{'pl_mean': 0.12}``), this rank's values."""
        return {name.rsplit(".", 1)[-1]: float(b) for name, b in self.loss.named_buffers() if b.numel() == 1}

    def _loss_state(self) -> dict[str, Any]:
        return {name: b.detach().cpu().tolist() for name, b in self.loss.named_buffers()}

    def _load_loss_state(self, state: dict[str, Any]) -> None:
        bufs = dict(self.loss.named_buffers())
        for name, value in state.items():
            if name in bufs:
                bufs[name].copy_(torch.as_tensor(value, dtype=bufs[name].dtype))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add progress, per-rank RNG states, per-rank loss state and how to rebuild the networks (a collective
        under DDP: every rank calls it)."""
        from sgtrain.io.portable import network_header

        states = gather_rng_states()
        checkpoint["sgtrain"] = {
            "cur_nimg": self.cur_nimg,
            "cur_tick": self.cur_tick,
            "tick_start_nimg": self.tick_start_nimg,
            "batch_idx": self.batch_idx,
            "loader_batches": self.loader_batches,
            "prev_lod": self.prev_lod,
            "point_nimg": self.point_nimg,
            "kimg": self.kimg,
            "total_kimg": self.total_kimg,
            "world_size": self.world,
            **self.loss_scalars(),
            "augment_p": self.augment_p,
            "decayed": self.decayed(),  # the cosine-decayed hyper-parameters the next iteration uses (for reading)
            "rng": states,
            # running statistics a rank updates from its own samples (NVlabs: pl_mean): the state_dict holds rank 0's
            "loss_state_per_rank": gather_objects(self._loss_state()),
            "networks": network_header(self.G_ema, self.G, self.D)["networks"],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        s = checkpoint.get("sgtrain")
        if s is None:
            raise ValueError("this checkpoint was not written by sgtrain's GANModule (no 'sgtrain' entry)")
        self.cur_nimg = int(s["cur_nimg"])
        self.cur_tick = int(s["cur_tick"])
        self.tick_start_nimg = int(s["tick_start_nimg"])
        self.batch_idx = int(s["batch_idx"])
        self.loader_batches = int(s.get("loader_batches", self.batch_idx))
        self.prev_lod = float(s.get("prev_lod", -1.0))
        self.point_nimg = int(s.get("point_nimg", self.cur_nimg))
        self._pending_rng = s.get("rng")
        self._pending_loss_state = s.get("loss_state_per_rank")
        if self._pending_loss_state is None and s.get("pl_mean_per_rank") is not None:  # written by sgtrain <= 0.1
            self._pending_loss_state = [{"pl.pl_mean": v} for v in s["pl_mean_per_rank"]]
        self._resumed = True
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and hasattr(dm, "resume_at"):
            dm.resume_at(self.loader_batches)
