"""GANModule: StyleGAN2 training as a LightningModule with manual optimization.

One ``training_step`` is one iteration of NVlabs' training loop (Karras et al. 2020, StyleGAN2, section 3.1 and
appendix B; NVlabs ``training_loop.py``):

1. the per-device batch of real images (uint8 NCHW; x-flipped by the datamodule if asked) becomes float in
   [-1, 1] and is split into ``batch_gpu`` chunks (gradient accumulation);
2. latents z and generated labels c are drawn for every phase;
3. the phases Gmain, Greg (every ``G_reg_interval`` iterations), Dmain, Dreg (every ``D_reg_interval``) each zero
   their network's gradients, accumulate over the chunks (``StyleGAN2Loss.accumulate_gradients`` with
   ``gain = interval``), average the gradients over ranks once (flattened, sum / world size, nan_to_num) and step
   Adam (lr and betas adjusted for lazy regularization);
4. G_ema moves toward G with ``beta = 0.5 ** (batch / (ema_kimg * 1000))`` (optionally ramped up);
5. ``cur_nimg`` grows by the global batch; a tick ends every ``tick_kimg`` and training stops at ``total_kimg``.

Progress is ``cur_nimg`` (real images shown to D summed over ranks), never epochs or Lightning's global_step.
Side effects (metrics, samples, checkpoints, snapshots) live in :mod:`sgtrain.training.callbacks`; this module
only announces a finished tick in :attr:`GANModule.tick_event`.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from sgtrain.losses import StyleGAN2Loss, lazy_regularization

from .cluster import gather_objects, gather_rng_states, restore_rng_state, seed_all

_RANK_LOCAL = re.compile(r"(.*\.)?[^.]+_(avg|ema)")


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
    """StyleGAN2 G, D and G_ema trained with NVlabs' phase schedule (manual optimization).

    Args:
        G_kwargs: Generator constructor keywords (``sgtrain.models.stylegan2.Generator``; NVlabs names).
        D_kwargs: Discriminator constructor keywords.
        loss_kwargs: ``StyleGAN2Loss`` keywords (r1_gamma, style_mixing_prob, pl_weight, pl_batch_shrink,
            pl_decay, pl_no_weight_grad).
        batch: global batch size (all ranks together), images per iteration.
        batch_gpu: images per forward/backward pass on one device; None = the per-device batch. Larger values are
            capped at the per-device batch.
        G_lr, D_lr: Adam learning rates before the lazy-regularization adjustment.
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
        arch: model family module under ``sgtrain.models``.
    """

    def __init__(
        self,
        G_kwargs: dict[str, Any],
        D_kwargs: dict[str, Any],
        loss_kwargs: dict[str, Any] | None = None,
        batch: int = 32,
        batch_gpu: int | None = None,
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
        arch: str = "stylegan2",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        import importlib

        models = importlib.import_module(f"sgtrain.models.{arch}")
        self.G = models.Generator(**G_kwargs).train().requires_grad_(False)
        self.D = models.Discriminator(**D_kwargs).train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.loss = StyleGAN2Loss(self.G, self.D, **(loss_kwargs or {}))
        self.batch = int(batch)
        self.batch_gpu = batch_gpu
        self.total_kimg = float(total_kimg)
        self.tick_kimg = float(tick_kimg)
        self.label_probs = label_probs
        # Optional ``fn(n, generator=None, device=None) -> c [n, c_dim]`` (e.g. ShardDataModule.sample_labels).
        self.label_sampler: Any = None
        # Progress (saved in checkpoints).
        self.cur_nimg = 0
        self.cur_tick = 0
        self.tick_start_nimg = 0
        self.batch_idx = 0
        # Transient.
        self.tick_event: TickEvent | None = None
        self._tick_stats: dict[str, list[torch.Tensor]] = {}
        self._tick_start_time = time.time()
        self._pending_rng: list[dict[str, Any]] | None = None
        self._pending_pl_mean: list[float] | None = None
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
        """Images per iteration on this rank: ``batch // world``."""
        return self.batch // self.world

    @property
    def round_size(self) -> int:
        """Images per forward/backward pass (``batch_gpu`` capped at the per-device batch)."""
        return min(self.batch_gpu or self.batch_per_device, self.batch_per_device)

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    # ------------------------------------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam for G and D with lazy-regularization adjusted lr and betas (StyleGAN2 appendix B)."""
        hp = self.hparams
        opts = []
        for module, lr, interval in [(self.G, hp.G_lr, hp.G_reg_interval), (self.D, hp.D_lr, hp.D_reg_interval)]:
            lr, betas = lazy_regularization(lr, tuple(hp.betas), interval)
            opts.append(torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=hp.eps))
        return opts

    def phases(self) -> list[tuple[str, torch.nn.Module, int, int]]:
        """NVlabs' phases: (name, module, optimizer index, interval)."""
        hp = self.hparams
        out = []
        for prefix, module, idx, interval in [("G", self.G, 0, hp.G_reg_interval), ("D", self.D, 1, hp.D_reg_interval)]:
            if not interval:
                out.append((prefix + "both", module, idx, 1))
            else:
                out.append((prefix + "main", module, idx, 1))
                out.append((prefix + "reg", module, idx, int(interval)))
        return out

    # ------------------------------------------------------------------------------------------------ lifecycle
    def setup(self, stage: str) -> None:
        if self.batch % self.world != 0:
            raise ValueError(f"train.batch={self.batch} is not a multiple of the world size {self.world}")
        if self.batch_per_device % self.round_size != 0:
            raise ValueError(f"train.batch_gpu={self.batch_gpu} does not divide the per-device batch "
                             f"{self.batch_per_device}")

    def on_train_start(self) -> None:
        pl_means, self._pending_pl_mean = self._pending_pl_mean, None
        if pl_means is not None and len(pl_means) == self.world:
            self.loss.pl_mean.fill_(float(pl_means[self.rank]))
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
        """One NVlabs iteration (all phases, G_ema, counters); returns nothing (manual optimization)."""
        img, real_c = self._unpack(batch)
        n = img.shape[0]
        if n != self.batch_per_device:
            raise RuntimeError(f"the datamodule gave a batch of {n} images, expected {self.batch_per_device} "
                               f"(train.batch={self.batch} / {self.world} processes)")
        real = img.to(self.device, torch.float32)
        if img.dtype == torch.uint8:
            real = real / 127.5 - 1
        real_c = real_c.to(self.device)
        rs = self.round_size
        real_chunks, c_chunks = real.split(rs), real_c.split(rs)
        phases = self.phases()
        all_z = torch.randn([len(phases) * n, self.G.z_dim], device=self.device)
        all_c = self.sample_labels(len(phases) * n)
        opts = self.optimizers()

        for i, (name, module, opt_idx, interval) in enumerate(phases):
            if self.batch_idx % interval != 0:
                continue
            opt = opts[opt_idx]
            z_chunks = all_z[i * n:(i + 1) * n].split(rs)
            gc_chunks = all_c[i * n:(i + 1) * n].split(rs)
            with torch.autograd.profiler.record_function(name):
                opt.zero_grad(set_to_none=True)
                module.requires_grad_(True)
                for r_img, r_c, g_z, g_c in zip(real_chunks, c_chunks, z_chunks, gc_chunks):
                    terms = self.loss.accumulate_gradients(
                        phase=name, real_img=r_img, real_c=r_c, gen_z=g_z, gen_c=g_c, gain=interval,
                        cur_nimg=self.cur_nimg, backward=self.manual_backward,
                    )
                    for k, v in terms.items():
                        self._tick_stats.setdefault(k, []).append(v.detach())
                module.requires_grad_(False)
            with torch.autograd.profiler.record_function(name + "_opt"):
                self._reduce_grads(module)
                opt.step()

        with torch.autograd.profiler.record_function("Gema"):
            self.update_ema()
        self.cur_nimg += self.batch
        self.batch_idx += 1
        self._end_of_iteration()

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- lerp(G, G_ema, beta), beta = 0.5 ** (batch / ema_nimg); buffers copied (NVlabs)."""
        hp = self.hparams
        ema_nimg = hp.ema_kimg * 1000
        if hp.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * hp.ema_rampup)
        beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
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
        stats = self._collect_stats()
        self.tick_event = TickEvent(tick=self.cur_tick, cur_nimg=self.cur_nimg, start_nimg=self.tick_start_nimg,
                                    done=done, stats=stats, sec=now - self._tick_start_time)
        # Advance before the callbacks checkpoint, so a resumed run starts the next tick.
        self.cur_tick += 1
        self.tick_start_nimg = self.cur_nimg
        self._tick_start_time = now

    def _collect_stats(self) -> dict[str, float]:
        """Mean of every loss term over the tick, averaged over ranks (a collective: all ranks call it)."""
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
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            out["ddp_param_max_diff"] = self.ddp_param_max_diff()
        return out

    @torch.no_grad()
    def ddp_param_max_diff(self) -> float:
        """Largest difference between ranks of any parameter or buffer of G, D, G_ema (0.0 when in sync).

        Running averages that every rank updates from its own samples (``mapping.w_avg``; names ending in ``_avg``
        or ``_ema``) are left out, as in NVlabs' ``check_ddp_consistency``: they are rank-local by design and the
        copies written to disk come from rank 0. A collective (all ranks call it at each tick); reported in
        metrics.jsonl as ``ddp_param_max_diff``. Gradients averaged once per phase keep every rank's parameters
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
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add progress, per-rank RNG states and the config-independent training state (collective under DDP)."""
        states = gather_rng_states()
        checkpoint["sgtrain"] = {
            "cur_nimg": self.cur_nimg,
            "cur_tick": self.cur_tick,
            "tick_start_nimg": self.tick_start_nimg,
            "batch_idx": self.batch_idx,
            "kimg": self.kimg,
            "total_kimg": self.total_kimg,
            "world_size": self.world,
            "pl_mean": float(self.loss.pl_mean),
            "rng": states,
            # each rank updates pl_mean from its own samples (NVlabs): the state_dict holds rank 0's only
            "pl_mean_per_rank": gather_objects(float(self.loss.pl_mean)),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        s = checkpoint.get("sgtrain")
        if s is None:
            raise ValueError("this checkpoint was not written by sgtrain's GANModule (no 'sgtrain' entry)")
        self.cur_nimg = int(s["cur_nimg"])
        self.cur_tick = int(s["cur_tick"])
        self.tick_start_nimg = int(s["tick_start_nimg"])
        self.batch_idx = int(s["batch_idx"])
        self._pending_rng = s.get("rng")
        self._pending_pl_mean = s.get("pl_mean_per_rank")
        self._resumed = True
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and hasattr(dm, "resume_at"):
            dm.resume_at(self.batch_idx)  # one loader batch per step on every rank
