"""Batches: the one check of how a run's minibatches split over processes and passes (config validation and
GANModule), and the one way to run a network over many inputs in batches (:func:`in_batches`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sgtrain.errors import ConfigError, InputError

if TYPE_CHECKING:  # torch is imported where it is used: training.config checks batches before torch loads
    import torch

__all__ = ["check_batches", "in_batches"]


def check_batches(minibatches: Sequence[int], world: int, batch_gpu: int | None, loader_batch: int | None = None,
                  group_sizes: Sequence[int] = (), what: str = "train.batch",
                  batch_gpu_key: str = "train.batch_gpu") -> list[int]:
    """Check that every minibatch of a run splits evenly: over ``world`` processes, each process's share into passes
    of ``batch_gpu`` images (gradient accumulation, NVlabs' ``batch_gpu``), each pass into minibatch-stddev groups,
    and each share into loader batches.

    Args:
        minibatches: images per iteration over all processes (one per resolution for a progressive schedule).
        world: number of processes (devices x nodes), >= 1.
        batch_gpu: images per forward/backward pass on one device; None = the whole per-device share.
        loader_batch: images per datamodule batch on each process, or None (not checked).
        group_sizes: the minibatch-stddev group sizes of D (``mbstd_group_size``), 0 or None entries ignored.
        what: the config key(s) the minibatches come from, for the message.
        batch_gpu_key: the config key ``batch_gpu`` comes from (``train.G_batch_gpu``...), for the message.

    Returns:
        the per-pass batch of each minibatch.

    Raises:
        ConfigError: the first split that does not divide, naming the key to change.
    """
    passes = []
    for mb in minibatches:
        if mb < world or mb % world != 0:
            raise ConfigError(f"{what}: a minibatch of {mb} must be a multiple of the number of processes ({world})")
        per_dev = mb // world
        bgpu = min(batch_gpu or per_dev, per_dev)
        if per_dev % bgpu != 0:
            raise ConfigError(f"{batch_gpu_key}={batch_gpu} must divide the per-device batch {per_dev} "
                              f"({what} / {world} processes)")
        for g in group_sizes:
            if g and bgpu % min(int(g), bgpu) != 0:
                raise ConfigError(f"the per-pass batch {bgpu} ({batch_gpu_key}) must be a multiple of the "
                                  f"minibatch-stddev group size {g} (model.mbstd_group_size)")
        if loader_batch and per_dev % loader_batch != 0:
            raise ConfigError(f"the loader batch {loader_batch} does not divide the per-device batch {per_dev}")
        passes.append(bgpu)
    return passes


def in_batches(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, batch_size: int,
               device: torch.device | str | None = None) -> torch.Tensor:
    """``fn`` over consecutive slices of its inputs, the outputs concatenated: the one "run G in batches" (the
    mapping, the synthesis, ``G(z, c)``, an encoder; the latent tools, the sample grids, the metrics' generator pass).

    Args:
        fn: called as ``fn(x0[i:i + batch_size], x1[i:i + batch_size], ...)`` for i = 0, batch_size, ...; returns a
            tensor [n, ...] for n rows (e.g. ``lambda z, c: G.mapping(z, c, truncation_psi=psi)``).
        inputs: tensors with the same first dimension N >= 1 (z [N, z_dim] and c [N, c_dim]; ws [N, num_ws, w_dim]).
        batch_size: rows per call, >= 1; the last call takes the rest.
        device: where each slice goes before the call; None leaves it where it is.

    Returns:
        The outputs concatenated along dim 0: [N, ...], with the dtype and device ``fn`` gives.

    Raises:
        ValueError: batch_size < 1, no inputs or no rows, or inputs of different lengths.
    """
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: give at least 1 row per call")
    if not inputs or inputs[0].shape[0] == 0:
        raise InputError("nothing to run in batches: the inputs have no rows")
    n = inputs[0].shape[0]
    if any(x.shape[0] != n for x in inputs):
        raise InputError(f"inputs of {[x.shape[0] for x in inputs]} rows: every input needs one row per sample")

    def part(x: torch.Tensor, i: int) -> torch.Tensor:
        x = x[i:i + batch_size]
        return x if device is None else x.to(device)

    import torch

    return torch.cat([fn(*(part(x, i) for x in inputs)) for i in range(0, n, batch_size)])
