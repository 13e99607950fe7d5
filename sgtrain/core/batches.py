"""The one check of how a run's minibatches split over processes and passes (config validation and GANModule)."""

from __future__ import annotations

from collections.abc import Sequence

from sgtrain.errors import ConfigError

__all__ = ["check_batches"]


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
