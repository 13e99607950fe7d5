"""``ShardDataModule``: the LightningDataModule that streams packed shards to every rank."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from .card import DatasetCard, load_vector_labels
from .stream import MODES, ShardStream, _EpochLoader, check_labels_source, dist_info, resolve_shards


class ShardDataModule(pl.LightningDataModule):
    """Streams webdataset shards written by ``sgtrain-data pack`` as uint8 NCHW batches on every rank.

    A batch is a tuple ``(img, c)``:

    - ``img``: torch.uint8 [batch_size, channels, height, width] (``resolution`` square unless the card says W x H),
      values 0..255 (convert with
      ``img.float() / 127.5 - 1`` for the models' [-1, 1]).
    - ``c``: torch.float32 [batch_size, c_dim]; one-hot rows for class labels, [batch_size, 0] without labels.

    Every rank yields the same number of batches per epoch (``len(train_dataloader())``, about
    ``count / (world_size * batch_size)``). With ``shards="epoch"`` (the default) the ranks and workers read disjoint
    shards in each epoch and together read the whole dataset once; see docs/data.md.

    Args:
        path: directory written by ``sgtrain-data pack`` (holds ``dataset.json``), a brace pattern such as
            ``/data/ffhq-{000000..000009}.tar``, ``pipe:`` commands (``pipe:aws s3 cp s3://b/ffhq-000000.tar -``),
            http(s) URLs, or a list of shard URLs.
        batch_size: images per batch on each rank (per-GPU batch).
        num_workers: DataLoader worker processes per rank; 0 = decode in the main process.
        xflip: flip each image left-right with probability 0.5 (NVlabs' ``--mirror``, drawn per sample).
        shuffle_buffer: samples held per worker for shuffling; 0 or 1 = shard order.
        seed: seed of the shard order and the sample shuffle; the same on every rank.
        shards: ``"epoch"`` = each epoch, shards shuffled by (seed, epoch) and dealt disjointly to rank x worker;
            ``"resampled"`` = each worker draws shards at random with replacement (for very large datasets).
        card: a DatasetCard or the path/URL of its ``dataset.json`` when ``path`` is a pattern or URL whose
            directory holds none; None = find it next to the shards.
        epoch_samples: images per epoch over all ranks; None = the card's count. Required without a card.
        resolution, channels, c_dim: only without a card (they are read from it otherwise).
        start_method: DataLoader worker start method (``fork``, ``spawn``, ``forkserver``); None = the platform's.
        persistent_workers: keep workers between epochs (only with num_workers > 0).
        pin_memory: pin batches for faster host-to-GPU copies.
        prefetch_factor: batches prefetched per worker.
        use_labels: False ignores the dataset's labels (c_dim becomes 0, as NVlabs' ``--cond=False``).

    Raises:
        FileNotFoundError: no shards or no card at ``path``.
        ValueError: bad options, or no card and no ``epoch_samples``/``resolution``.
    """

    def __init__(
        self,
        path: str | os.PathLike | Sequence[str],
        batch_size: int = 32,
        num_workers: int = 2,
        xflip: bool = False,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        shards: str = "epoch",
        card: DatasetCard | str | None = None,
        epoch_samples: int | None = None,
        resolution: int | None = None,
        channels: int = 3,
        c_dim: int = 0,
        start_method: str | None = None,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
        use_labels: bool = True,
    ) -> None:
        super().__init__()
        if shards not in MODES:
            raise ValueError(f"shards must be one of {MODES}, got {shards!r}")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
        self.path = path if isinstance(path, (list, tuple)) else os.fspath(path)
        self.urls, found = resolve_shards(path, card)
        if found is None:
            if resolution is None or epoch_samples is None:
                raise ValueError(
                    f"no dataset.json found for {path!r}; pass card=PATH_OR_URL, or resolution= and epoch_samples="
                )
            found = DatasetCard(
                name="shards",
                count=int(epoch_samples),
                resolution=int(resolution),
                channels=int(channels),
                c_dim=int(c_dim),
                label_type="class" if c_dim else None,
            )
        self.card: DatasetCard = found
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.xflip, self.shuffle_buffer, self.seed, self.shards = bool(xflip), int(shuffle_buffer), int(seed), shards
        self.epoch_samples = int(epoch_samples) if epoch_samples is not None else self.card.count
        self.start_method = start_method
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.pin_memory, self.prefetch_factor = bool(pin_memory), int(prefetch_factor)
        self.use_labels = bool(use_labels)
        self._loader: _EpochLoader | None = None
        self._start_epoch = 0
        self._resume_batches: int | None = None
        self._stream: ShardStream | None = None
        self._vector_labels: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------------- the card
    @property
    def resolution(self) -> int:
        return self.card.resolution

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the images."""
        return self.card.size

    @property
    def num_channels(self) -> int:
        return self.card.channels

    @property
    def c_dim(self) -> int:
        """Label dimension seen by the model (0 when ``use_labels=False``)."""
        return self.card.c_dim if self.use_labels else 0

    @property
    def label_names(self) -> list[str]:
        return list(self.card.label_names) if self.use_labels else []

    @property
    def count(self) -> int:
        return self.card.count

    def sample_labels(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> torch.Tensor:
        """Draw ``n`` labels from the dataset's label distribution, float32 [n, c_dim] ([n, 0] unconditional).

        For conditional generation during training (NVlabs draws the labels of random training images; class
        frequencies from the card give the same distribution). Vector labels are rows of ``labels.npy``, read on
        the first call and kept.

        Raises:
            ValueError: vector labels on a remote dataset (see :func:`sgtrain.data.check_labels_source`).
            FileNotFoundError: vector labels without ``labels.npy`` in the pack directory.
        """
        if self.c_dim == 0:
            return torch.zeros([n, 0], dtype=torch.float32, device=device)
        if self.card.label_type == "vector":
            if self._vector_labels is None:  # read labels.npy once, not at every step
                root = check_labels_source(self.path, self.card)
                self._vector_labels = load_vector_labels(root)
            labels = self._vector_labels
            return labels[torch.randint(0, labels.shape[0], [n], generator=generator)].to(device)
        return self.card.sample_labels(n, generator=generator, device=device)

    @property
    def corrupt_count(self) -> int:
        """Samples and shards skipped so far on this rank because they could not be read or decoded."""
        return int(self._stream.corrupt.sum()) if self._stream is not None else 0

    # ------------------------------------------------------------------------------------------ loaders
    def _shard_counts(self) -> list[int]:
        by_name = {s.name: s.count for s in self.card.shards}
        default = max(1, self.card.count // max(1, len(self.card.shards) or len(self.urls)))
        return [by_name.get(u.rsplit("/", 1)[-1], default) for u in self.urls]

    def make_stream(self, rank: int | None = None, world_size: int | None = None) -> ShardStream:
        """The ShardStream of one rank (rank/world size default to :func:`sgtrain.data.stream.dist_info`)."""
        if rank is None or world_size is None:
            rank, world_size = dist_info()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        return ShardStream(
            urls=self.urls,
            shard_counts=self._shard_counts(),
            batch_size=self.batch_size,
            resolution=self.card.resolution,
            size=self.card.size,
            storage=self.card.storage,
            channels=self.card.channels,
            c_dim=self.c_dim,
            label_type=self.card.label_type if self.use_labels else None,
            samples_per_rank=self.epoch_samples // world_size,
            rank=rank,
            world_size=world_size,
            num_workers=self.num_workers,
            mode=self.shards,
            shuffle_buffer=self.shuffle_buffer,
            xflip=self.xflip,
            seed=self.seed,
        )

    def train_dataloader(self, rank: int | None = None, world_size: int | None = None) -> torch.utils.data.DataLoader:
        """The training loader of this rank: ``len()`` batches per epoch, each ``(img, c)`` as described above."""
        self._stream = self.make_stream(rank, world_size)
        # A loader made again (Lightning's reload_dataloaders_every_n_epochs) goes on from the previous one's epoch.
        start = self._loader.next_epoch if self._loader is not None else self._start_epoch
        kwargs: dict[str, Any] = dict(num_workers=self.num_workers, pin_memory=self.pin_memory)
        if self.num_workers > 0:
            kwargs.update(persistent_workers=self.persistent_workers, prefetch_factor=self.prefetch_factor)
            if self.start_method is not None:
                kwargs["multiprocessing_context"] = self.start_method
        self._loader = _EpochLoader(self._stream, start_epoch=start, **kwargs)
        if self._resume_batches is not None:
            # every epoch has exactly len(loader) batches on every rank: the position is (epoch, batch in epoch)
            self._loader.next_epoch, self._loader.skip_batches = divmod(self._resume_batches, len(self._loader))
            self._resume_batches = None
        return self._loader

    def resume_at(self, batches_done: int) -> None:
        """Continue this rank's stream after ``batches_done`` batches (all epochs), for an exact resume.

        Call before ``train_dataloader()`` (GANModule.on_load_checkpoint does, with its step count); the next loader
        starts at epoch ``batches_done // len`` and skips ``batches_done % len`` batches of it.
        """
        self._resume_batches = int(batches_done)

    # ---------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Data position for checkpoints: the epoch in progress.

        The position inside the epoch is not stored here: ``resume_at`` (called by GANModule with its batch count)
        sets it, so a resumed run continues with the next unseen batch.
        """
        if self._loader is None:
            epoch = self._start_epoch
        elif self._loader.current_epoch is None:
            epoch = self._loader.next_epoch
        else:
            epoch = self._loader.current_epoch
        return {"epoch": epoch, "seed": self.seed, "shards": self.shards}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._start_epoch = int(state_dict.get("epoch", 0))
        if self._loader is not None:
            self._loader.next_epoch = self._start_epoch
