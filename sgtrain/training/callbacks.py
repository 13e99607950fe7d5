"""Lightning callbacks that write the run directory: metrics, sample grids, snapshots, checkpoints, progress bar.

They act when :class:`~sgtrain.training.module.GANModule` announces a finished tick (``pl_module.tick_event``);
files are written by rank 0 only, collectives (checkpoint RNG gathering) run on every rank. Layout::

    RUN_DIR/config.yaml                      resolved config of the latest start
    RUN_DIR/metrics.jsonl                    one JSON object per tick (kimg, loss terms, img/s, sec/kimg, memory)
    RUN_DIR/metric-swd.jsonl                 SWD against the data at kimg 0 and at the end
    RUN_DIR/metric-<name>.jsonl              train.metrics (FID, KID...) at every snapshot (NVlabs' layout)
    RUN_DIR/samples/reals.png                a grid of training images
    RUN_DIR/samples/fakes<kimg:06d>.png      the same grid of fixed latents from G_ema, every snap_kimg
    RUN_DIR/network-snapshot-<kimg:06d>.safetensors/.json   exported generators (sgtrain.io.save_network)
    RUN_DIR/checkpoints/last.ckpt            full training state, every ckpt_kimg / ckpt_minutes and at the end
    RUN_DIR/checkpoints/last.json            kimg of last.ckpt and whether the run is complete
    RUN_DIR/checkpoints/ckpt-<kimg:06d>.ckpt one every snap_kimg, newest keep_ckpts kept
"""

from __future__ import annotations

import glob
import json
import os
import re
import resource
import shutil
import sys
import time
import zipfile
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from sgtrain.core.batches import in_batches
from sgtrain.io.atomic import file_sha256

from ._lightning import train_progress_bar
from .module import GANModule, TickEvent


# ---------------------------------------------------------------------------------------------------- files
def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`sgtrain.io.atomic.atomic_write` (its temporary name, which the
    start-up cleaner knows), fsynced before ``os.replace`` (never a partial file)."""
    from ..io.atomic import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (``metrics.jsonl``, ``metric-<name>.jsonl``) in order; [] if it is missing.

    A line cut by a kill (not valid JSON) is skipped, so a killed run's files can always be read.
    """
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes through :func:`sgtrain.io.atomic.atomic_write` (a temporary beside
    ``path``, fsynced, then renamed over it) and writes the checksum beside it.

    A process killed during the write leaves the previous checkpoint intact (plus a stale temporary file that the
    next start removes); ``os.replace`` is atomic on POSIX file systems.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        from sgtrain.io.atomic import atomic_write

        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        digest: list[str] = []

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            digest.append(file_sha256(tmp))

        atomic_write(path, write)
        write_checksum(path, digest[0])
        _fsync_dir(os.path.dirname(path) or ".")


def write_checksum(path: str, digest: str | None = None) -> None:
    """Write ``path.sha256`` (``<hex>  <name>``, sha256sum's format) atomically beside the checkpoint ``path``."""
    digest = digest or file_sha256(path)
    atomic_write_bytes(f"{path}.sha256", f"{digest}  {os.path.basename(path)}\n".encode())


def verify_checkpoint(path: str) -> str | None:
    """Why the checkpoint at ``path`` cannot be used, or None when it is good.

    With a ``path.sha256`` beside it (written at save time), the file's SHA-256 must match; without one (run
    directories from before checksums) every zip entry is read and its CRC-32 checked, so damage inside a storage
    is found even when the zip directory is intact (``zipfile.is_zipfile`` only looks at the directory).

    Returns:
        None, or a short reason ("checksum mismatch", "not a zip archive", "entry data/97 is damaged", ...).
    """
    if not os.path.isfile(path):
        return "missing"
    try:
        side = f"{path}.sha256"
        if os.path.isfile(side):
            with open(side) as f:
                want = f.read().split()[:1]
            return None if want and file_sha256(path) == want[0] else "checksum mismatch (damaged after it was written)"
        if not zipfile.is_zipfile(path):
            return "not a complete zip archive"
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        return None if bad is None else f"entry {bad} is damaged"
    except Exception as err:  # noqa: BLE001 - OSError, BadZipFile, zlib.error, EOFError from a damaged file
        return f"unreadable ({type(err).__name__}: {err})"


def kimg_tag(cur_nimg: int) -> str:
    """File-name stamp of a kimg count: ``cur_nimg // 1000`` on 6 digits (NVlabs)."""
    return f"{int(cur_nimg) // 1000:06d}"


def save_image_grid(img: np.ndarray, path: str, grid: tuple[int, int], drange: tuple[float, float] = (-1, 1)) -> None:
    """Save images [N, C, H, W] (float in ``drange`` or uint8; C = 1, 3 or 4) as a ``grid = (width, height)`` PNG
    (L, RGB or RGBA), atomically."""
    import io

    from PIL import Image

    lo, hi = drange
    img = np.asarray(img, dtype=np.float32)
    img = np.rint((img - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    gw, gh = grid
    n, c, h, w = img.shape
    if n < gw * gh:
        img = np.concatenate([img, np.zeros([gw * gh - n, c, h, w], np.uint8)])
    img = img[: gw * gh].reshape(gh, gw, c, h, w).transpose(0, 3, 1, 4, 2).reshape(gh * h, gw * w, c)
    pil = Image.fromarray(img[:, :, 0], "L") if c == 1 else Image.fromarray(img, "RGBA" if c == 4 else "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def peak_memory_gb(device: torch.device) -> dict[str, float]:
    """Peak memory: CUDA max allocated/reserved since the last call (then reset), and CPU peak RSS of the process."""
    out = {"cpu_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.type == "cuda":
        out["gpu_peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        out["gpu_peak_reserved_gb"] = torch.cuda.max_memory_reserved(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
        out["peak_mem_gb"] = out["gpu_peak_mem_gb"]
    else:
        out["peak_mem_gb"] = out["cpu_peak_rss_gb"]
    return out


def _echo(trainer: L.Trainer, msg: str) -> None:
    bar = trainer.progress_bar_callback
    tqdm_bar = train_progress_bar(bar) if isinstance(bar, TQDMProgressBar) and bar.is_enabled else None
    if tqdm_bar is not None:
        tqdm_bar.write(msg, file=sys.stdout)
    else:
        print(msg, flush=True)


@torch.no_grad()
def generate_grid(G: torch.nn.Module, z: torch.Tensor, c: torch.Tensor, batch: int) -> np.ndarray:
    """G(z, c, noise_mode='const') in chunks of ``batch``: float32 [N, C, H, W] in about [-1, 1] on the CPU."""
    dev = next(G.parameters()).device
    return in_batches(lambda zz, cc: G(zz, cc, noise_mode="const").float().cpu(), z, c, batch_size=batch,
                      device=dev).numpy()


# ---------------------------------------------------------------------------------------------------- callbacks
class MetricsJSONL(Callback):
    """One JSON line per tick in ``RUN_DIR/metrics.jsonl``, the same values to the Lightning logger, a status line.

    Fields: tick, kimg, nimg, time_s (since this start), sec_per_tick, sec_per_kimg, img_per_s, every loss term
    reported by the family's loss (``Loss/G/loss``, ``Loss/D/reg``, ...), the loss's scalar state (``pl_mean``),
    with a progressive schedule lod, minibatch, G_lrate and D_lrate, memory (``peak_mem_gb`` = CUDA max allocated,
    or peak RSS on CPU), timestamp. On resume, lines past the checkpoint's kimg (written after the last
    checkpoint by a killed run) are dropped, so kimg stays continuous.
    """

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.start_time = time.time()

    def on_train_start(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        self.start_time = time.time()
        if trainer.global_rank != 0 or not os.path.exists(self.path):
            return
        keep = [json.dumps(rec) for rec in read_jsonl(self.path)  # lines cut by a kill are dropped
                if int(rec.get("nimg", round(rec.get("kimg", 0) * 1000))) <= pl_module.cur_nimg]
        atomic_write_bytes(self.path, ("\n".join(keep) + "\n" if keep else "").encode())

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: GANModule, *args: Any) -> None:
        ev: TickEvent | None = pl_module.tick_event
        if ev is None:
            return
        mem = peak_memory_gb(pl_module.device)
        nimg = ev.cur_nimg - ev.start_nimg
        rec: dict[str, Any] = {
            "tick": ev.tick,
            "kimg": round(ev.kimg, 3),
            "nimg": ev.cur_nimg,
            "time_s": round(time.time() - self.start_time, 3),
            "sec_per_tick": round(ev.sec, 3),
            "sec_per_kimg": round(ev.sec / max(nimg, 1) * 1000, 3),
            "img_per_s": round(nimg / max(ev.sec, 1e-9), 3),
            **{k: round(v, 6) for k, v in ev.stats.items()},
            **pl_module.loss_scalars(),
            **{k: round(v, 4) for k, v in mem.items()},
            "timestamp": time.time(),
        }
        if trainer.global_rank != 0:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        if trainer.logger is not None:
            numeric = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and k != "timestamp"}
            trainer.logger.log_metrics(numeric, step=ev.cur_nimg)
        g = ev.stats.get("Loss/G/loss", float("nan"))
        d = ev.stats.get("Loss/D/loss", float("nan"))
        lod = f"lod {ev.stats['lod']:<5.2f} " if "lod" in ev.stats else ""
        _echo(trainer, f"tick {ev.tick:<5d} kimg {ev.kimg:<8.1f} {lod}sec/tick {ev.sec:<7.1f} "
                       f"sec/kimg {rec['sec_per_kimg']:<7.2f} img/s {rec['img_per_s']:<7.1f} G {g:<6.3f} D {d:<6.3f} "
                       f"mem {mem['peak_mem_gb']:.2f}GB")


class SampleGrid(Callback):
    """``samples/reals.png`` once, ``samples/fakes<kimg>.png`` from G_ema at kimg 0 and every ``snap_kimg``.

    Args:
        run_dir: the run directory.
        reals: uint8 [N, C, H, W] training images for the grid (N >= 1).
        labels: float32 [N, c_dim] their labels (used for the fakes of a conditional model).
        grid: (width, height) in images.
        snap_kimg: interval of the fakes grids.
        seed: seed of the fixed latents.
        batch: images per G_ema forward pass.
    """

    def __init__(self, run_dir: str, reals: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int],
                 snap_kimg: float, seed: int = 0, batch: int = 16) -> None:
        self.dir = os.path.join(run_dir, "samples")
        self.grid = (int(grid[0]), int(grid[1]))
        n = self.grid[0] * self.grid[1]
        idx = torch.arange(n) % max(1, reals.shape[0])
        self.reals, self.labels = reals[idx], labels[idx]
        self.snap_kimg = snap_kimg
        g = torch.Generator().manual_seed(int(seed))
        self.z: torch.Tensor | None = None
        self._gen = g
        self.batch = batch

    def _fakes(self, pl_module: GANModule) -> None:
        if self.z is None:
            self.z = torch.randn([self.labels.shape[0], pl_module.G_ema.z_dim], generator=self._gen)
        img = generate_grid(pl_module.G_ema, self.z, self.labels, self.batch)
        save_image_grid(img, os.path.join(self.dir, f"fakes{kimg_tag(pl_module.cur_nimg)}.png"), self.grid)

    def on_train_start(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        if trainer.global_rank != 0:
            return
        os.makedirs(self.dir, exist_ok=True)
        save_image_grid(self.reals.numpy(), os.path.join(self.dir, "reals.png"), self.grid, drange=(0, 255))
        if pl_module.cur_nimg == 0:
            self._fakes(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: GANModule, *args: Any) -> None:
        ev = pl_module.tick_event
        if ev is not None and trainer.global_rank == 0 and ev.start_nimg > 0 and ev.crossed(self.snap_kimg):
            self._fakes(pl_module)


class SnapshotExport(Callback):
    """``network-snapshot-<kimg>`` (safetensors + JSON, :func:`sgtrain.io.save_network`) every ``snap_kimg``.

    Args:
        run_dir: the run directory.
        snap_kimg: export interval in kimg (and at the end).
        info: extra JSON-serialisable fields stored with the snapshot (e.g. the resolved config).
    """

    def __init__(self, run_dir: str, snap_kimg: float, info: dict[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.snap_kimg = snap_kimg
        self.info = dict(info or {})
        self.last_path: str | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: GANModule, *args: Any) -> None:
        ev = pl_module.tick_event
        if ev is None or trainer.global_rank != 0 or ev.start_nimg == 0 or not ev.crossed(self.snap_kimg):
            return
        from sgtrain.io import save_network

        path = os.path.join(self.run_dir, f"network-snapshot-{kimg_tag(ev.cur_nimg)}")
        training_info = dict(self.info, kimg=ev.kimg, cur_nimg=ev.cur_nimg, tick=ev.tick)
        save_network(path, G_ema=pl_module.G_ema, G=pl_module.G, D=pl_module.D, augment_p=pl_module.augment_p,
                     training_info=training_info)
        self.last_path = path


class RunCheckpoint(Callback):
    """``checkpoints/last.ckpt`` every ``ckpt_kimg`` (or ``ckpt_minutes``) and at the end,
    ``checkpoints/ckpt-<kimg>.ckpt`` every ``snap_kimg`` (newest ``keep`` kept).

    A full checkpoint (G, G_ema, D, both Adam states: about 0.7 GB at 256x256) is written with fsync, so it is not
    written at every tick: by kimg (NVlabs snapshots every 50 ticks), and at the first tick ``ckpt_minutes`` after the
    last save, so that a killed run loses little time (rank 0's clock decides, broadcast to all ranks). Signals save
    their own checkpoint (:class:`~sgtrain.training.cluster.RequeueOnSignal`). Runs on every rank (saving gathers
    every rank's RNG state); rank 0 writes. Writes go through the trainer's checkpoint IO (:class:`AtomicCheckpointIO`);
    the kimg-stamped checkpoints are copies of last.ckpt (never hard links: damage in place reaches one file only),
    each with a ``.sha256`` checksum beside it. ``checkpoints/last.json`` describes last.ckpt (kimg, done).

    Args:
        run_dir: the run directory.
        snap_kimg: interval of the kept, kimg-stamped checkpoints.
        keep: number of kimg-stamped checkpoints kept.
        ckpt_kimg: interval of last.ckpt in kimg.
        ckpt_minutes: also save at the first tick this many minutes after the last save; None = by kimg only.
    """

    def __init__(self, run_dir: str, snap_kimg: float, keep: int = 5, ckpt_kimg: float | None = None,
                 ckpt_minutes: float | None = None) -> None:
        self.dir = os.path.join(run_dir, "checkpoints")
        self.snap_kimg = snap_kimg
        self.keep = int(keep)
        self.ckpt_kimg = ckpt_kimg
        self.ckpt_minutes = ckpt_minutes
        self._last_save = time.time()
        self.saves = 0

    @property
    def last(self) -> str:
        return os.path.join(self.dir, "last.ckpt")

    def on_train_start(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        self._last_save = time.time()

    def _minutes_up(self, trainer: L.Trainer) -> bool:
        due = self.ckpt_minutes is not None and time.time() - self._last_save >= self.ckpt_minutes * 60
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor([int(due)], device=trainer.strategy.root_device)
            torch.distributed.broadcast(t, src=0)
            due = bool(t.item())
        return due

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: GANModule, *args: Any) -> None:
        ev = pl_module.tick_event
        if ev is None:
            return
        snap = ev.crossed(self.snap_kimg) and ev.start_nimg > 0
        by_kimg = self.ckpt_kimg is None or (ev.crossed(self.ckpt_kimg) and ev.start_nimg > 0)
        if not (ev.done or snap or by_kimg or self._minutes_up(trainer)):
            return
        if trainer.global_rank == 0:
            os.makedirs(self.dir, exist_ok=True)
        trainer.save_checkpoint(self.last)
        self._last_save = time.time()
        self.saves += 1
        if trainer.global_rank != 0:
            return
        if snap:
            stamped = os.path.join(self.dir, f"ckpt-{kimg_tag(ev.cur_nimg)}.ckpt")
            from ..io.atomic import atomic_write

            def copy(tmp: str) -> None:  # a copy, never a hard link: damage in place to one must not reach the other
                shutil.copyfile(self.last, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())

            atomic_write(stamped, copy)
            write_checksum(stamped)
            self._prune()
        meta = {"kimg": ev.kimg, "cur_nimg": ev.cur_nimg, "total_kimg": pl_module.total_kimg, "done": ev.done,
                "tick": ev.tick, "timestamp": time.time()}
        atomic_write_bytes(os.path.join(self.dir, "last.json"), (json.dumps(meta) + "\n").encode())

    def _prune(self) -> None:
        files = sorted(glob.glob(os.path.join(self.dir, "ckpt-*.ckpt")))
        for f in files[: max(0, len(files) - self.keep)]:
            os.remove(f)
            if os.path.exists(f"{f}.sha256"):
                os.remove(f"{f}.sha256")


#: Names of the temporaries of every writer in a run directory: ``NAME.tmp-<pid>`` (:class:`AtomicCheckpointIO`,
#: :func:`atomic_write_bytes`, kept checkpoints) and ``.NAME.<hex>.tmp`` (:func:`sgtrain.io.atomic.atomic_write`:
#: network snapshots, portable files).
STALE_TEMPORARY = re.compile(r"(\.tmp-\d+|^\..+\.[0-9a-f]{8,}\.tmp)$")


def clean_stale_temporaries(run_dir: str) -> list[str]:
    """Remove the temporaries left by a run killed during a write (every scheme of :data:`STALE_TEMPORARY`) in the
    run directory and its checkpoints/ and samples/ folders; returns the paths removed."""
    removed = []
    for sub in ("", "checkpoints", "samples"):
        folder = os.path.join(run_dir, sub)
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            f = os.path.join(folder, name)
            if STALE_TEMPORARY.search(name) and os.path.isfile(f):
                try:
                    os.remove(f)
                    removed.append(f)
                except OSError:
                    pass
    return removed


class SWDCallback(Callback):
    """Sliced Wasserstein distance of G_ema against real images at kimg 0 (fresh runs) and at the end.

    Prints ``SWD at kimg K: value`` and appends ``{"kimg", "swd", ...}`` to ``RUN_DIR/metric-swd.jsonl``. Uses
    :func:`sgtrain.metrics.swd.sliced_wasserstein` (Karras et al. 2018, ProGAN, section 5: Laplacian-pyramid patches).

    Args:
        run_dir: the run directory.
        reals: uint8 [N, C, H, W] real images.
        labels: float32 [N, c_dim] their labels (generated images use the same labels).
        seed: seed of the generated latents.
        batch: images per G_ema forward pass.
    """

    def __init__(self, run_dir: str, reals: torch.Tensor, labels: torch.Tensor, seed: int = 123,
                 batch: int = 16) -> None:
        self.path = os.path.join(run_dir, "metric-swd.jsonl")
        self.reals, self.labels = reals, labels
        self.seed, self.batch = seed, batch
        self.results: dict[float, float] = {}

    def evaluate(self, pl_module: GANModule) -> dict[str, Any]:
        """Compute SWD now; returns ``{'kimg', 'swd', 'swd_per_level' (if given), 'num_images'}``."""
        from sgtrain.metrics.swd import generated_images_uint8, sliced_wasserstein

        n = int(self.reals.shape[0])
        fakes = torch.cat(list(generated_images_uint8(pl_module.G_ema, n, batch_size=self.batch, seed=self.seed,
                                                      labels=self.labels, device=pl_module.device)))
        res = sliced_wasserstein(self.reals, fakes.cpu())
        rec: dict[str, Any] = {"kimg": round(pl_module.kimg, 3), "num_images": n}
        rec.update({k: float(v) for k, v in res.items()})
        rec["swd"] = float(res["SWDx1e3_avg"])
        return rec

    def _run(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        if trainer.global_rank != 0:
            return
        t0 = time.time()
        rec = self.evaluate(pl_module)
        rec["sec"] = round(time.time() - t0, 2)
        self.results[rec["kimg"]] = rec["swd"]
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        _echo(trainer, f"SWD at kimg {rec['kimg']:.1f}: {rec['swd']:.4f} ({rec['num_images']} images, "
                       f"{rec['sec']:.0f} s)")
        if trainer.logger is not None:
            trainer.logger.log_metrics({"swd": rec["swd"]}, step=pl_module.cur_nimg)

    def on_train_start(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        if pl_module.cur_nimg == 0:
            self._run(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        if pl_module.cur_nimg >= pl_module.total_kimg * 1000:
            self._run(trainer, pl_module)


class QualityMetrics(Callback):
    """``train.metrics`` (NVlabs' names: fid50k_full, kid50k_full, pr50k3_full, is50k, ppl2_wend...) of G_ema at
    every snapshot tick and at the end, computed by :func:`sgtrain.metrics.compute_metric` on every rank.

    Each result goes into that tick's line of ``metrics.jsonl`` (and the logger) as ``metric/<key>``, with the best
    value so far as ``metric/<key>_best`` (lowest FID, KID, PPL; highest IS, precision, recall, EQ-T/EQ-R), and into
    ``RUN_DIR/metric-<name>.jsonl`` in NVlabs' layout. Real-data statistics are cached (``metrics_cache_dir``), so a
    rerun or another job of a sweep reuses them. A metric that fails prints why and training goes on.
    Must run before :class:`MetricsJSONL` (it adds to the tick's stats).

    Args:
        run_dir: the run directory.
        names: metric names.
        data: the training data (shard directory or pattern).
        snap_kimg: interval in kimg (the snapshot interval).
        detector: feature-network file, or ``{'inception': path, 'vgg16': path}``, or None (search the caches).
        cache_dir: real-statistics cache directory, None = the default.
        seed: seed of the generated latents.
        alpha: RGBA images for the RGB feature networks: None = refused, ``"white"`` = composited on white
            (``train.metrics_alpha``; checked when the config is, see ``check_metrics``).
    """

    def __init__(self, run_dir: str, names: list[str], data: str, snap_kimg: float, detector: Any = None,
                 cache_dir: str | None = None, seed: int = 0, alpha: str | None = None) -> None:
        self.run_dir, self.names, self.data = run_dir, list(names), data
        self.snap_kimg, self.detector, self.cache_dir, self.seed = snap_kimg, detector, cache_dir, seed
        self.alpha = alpha
        self.best: dict[str, float] = {}

    @staticmethod
    def higher_is_better(key: str) -> bool:
        """IS, precision, recall and the equivariance PSNRs (EQ-T, EQ-R) grow with quality; FID, KID, PPL shrink."""
        return key.startswith(("is", "pr", "eq")) and not key.endswith("_std")

    def _remember(self, key: str, value: float) -> float:
        old = self.best.get(key)
        if old is None or (value > old if self.higher_is_better(key) else value < old):
            self.best[key] = value
        return self.best[key]

    def on_train_start(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        for name in self.names:  # the best values of the run so far (a resumed run)
            for rec in read_jsonl(os.path.join(self.run_dir, f"metric-{name}.jsonl")):
                if rec.get("snapshot_kimg", 0) <= pl_module.kimg:
                    for k, v in rec.get("results", {}).items():
                        self._remember(k, float(v))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: GANModule, *args: Any) -> None:
        ev = pl_module.tick_event
        if ev is None or ev.start_nimg == 0 or not ev.crossed(self.snap_kimg):
            return
        from sgtrain.metrics import compute_metric

        for name in self.names:
            try:
                out = compute_metric(name, pl_module.G_ema, data=self.data, detector=self.detector,
                                     device=pl_module.device, seed=self.seed, cache_dir=self.cache_dir,
                                     alpha=self.alpha)
            except Exception as err:  # a metric must never end a run
                _echo(trainer, f"metric {name} failed at kimg {ev.kimg:.1f}: {type(err).__name__}: {err}; "
                               "training continues")
                continue
            for key, value in out["results"].items():
                ev.stats[f"metric/{key}"] = float(value)
                ev.stats[f"metric/{key}_best"] = self._remember(key, float(value))
            if trainer.global_rank == 0:
                rec = {"results": out["results"], "metric": name, "total_time": out["sec"],
                       "num_gpus": out.get("num_gpus", 1), "snapshot_kimg": round(ev.kimg, 3),
                       "snapshot_pkl": f"network-snapshot-{kimg_tag(ev.cur_nimg)}", "timestamp": time.time()}
                with open(os.path.join(self.run_dir, f"metric-{name}.jsonl"), "a") as f:
                    f.write(json.dumps(rec) + "\n")
                _echo(trainer, f"{name} at kimg {ev.kimg:.1f}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in out["results"].items()) + f" ({out['sec']:.0f} s)")


class KimgProgressBar(TQDMProgressBar):
    """TQDM bar counted in kimg toward train.kimg, with img/s and the time left (instead of batches and epochs)."""

    KIMG_FORMAT = "{desc} {percentage:3.0f}%|{bar:20}| {n:.2f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]"

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self._t0 = time.time()
        self._n0 = 0

    def init_train_tqdm(self) -> Any:
        """The one training bar, in kimg from the start (Lightning's default 'Training' bar is never drawn)."""
        from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

        m = self.trainer.lightning_module
        return Tqdm(desc="train", total=m.total_kimg, initial=m.kimg, position=2 * self.process_position,
                    disable=self.is_disabled, leave=True, dynamic_ncols=True, file=sys.stdout, smoothing=0,
                    bar_format=self.KIMG_FORMAT)

    def on_train_start(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        super().on_train_start(trainer, pl_module)  # creates the bar through init_train_tqdm
        self._t0, self._n0 = time.time(), pl_module.cur_nimg

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        pass

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: GANModule, *args: Any) -> None:
        bar = self._train_progress_bar
        if bar is None or bar.disable:
            return
        rate = (pl_module.cur_nimg - self._n0) / max(time.time() - self._t0, 1e-9)
        bar.set_postfix_str(f"img/s={rate:.1f}", refresh=False)
        bar.update(min(pl_module.kimg, pl_module.total_kimg) - bar.n)

    def on_train_epoch_end(self, trainer: L.Trainer, *args: Any) -> None:
        pass
