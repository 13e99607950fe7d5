"""Stream packed shards to every rank: the webdataset-based ``ShardDataModule``.

Design (see docs/data.md for the user-facing version):

- A *stream* is one DataLoader worker of one rank; there are ``world_size * num_workers`` streams. Rank and world
  size are read once in the main process (torch.distributed when initialised, else ``RANK``/``WORLD_SIZE``) and
  stored on the dataset object, so they reach the workers by pickling whatever the start method (fork, spawn,
  forkserver). Worker id and count come from ``torch.utils.data.get_worker_info()`` inside the worker.
- ``shards="epoch"`` (default): at epoch ``e`` the shard list is shuffled with a RNG seeded by ``(seed, e)`` (the
  same on every rank) and dealt round-robin to the streams, so in one epoch the streams read disjoint shards and
  together read every shard once. With fewer shards than streams, the streams that share a shard take every k-th
  sample of it, which keeps the samples disjoint.
- ``shards="resampled"``: each stream draws shards at random with replacement (webdataset's ResampledShards idea),
  seeded by ``(seed, epoch, rank, worker)``; no disjointness, suited to huge datasets on object stores.
- In both modes every stream yields exactly ``batches_per_stream`` full batches per epoch (it cycles through its own
  shards if it runs short and stops when it has enough), so every rank yields the same number of batches and DDP
  never waits on a rank that ran out of data. This is webdataset's ``with_epoch`` made exact per stream.
- Decoding (PNG -> uint8; nothing for ``--storage raw`` shards, whose ``.npy`` members are checked against the card
  and viewed) happens in the workers, which also assemble the batch, so one batch crosses the process
  boundary at a time. A sample that fails to decode or has a bad label (a class index outside [0, c_dim), a label
  vector of the wrong length) is skipped, counted (``ShardDataModule.corrupt_count``) and
  replaced by the next one; a shard that cannot be opened or read is skipped and counted the same way.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from sgtrain.errors import InputError, MissingFileError, UserError

from .card import CARD_NAME, LABELS_NAME, DatasetCard, load_card, load_vector_labels, local_dir_of
from .decode import STORAGES, decode_image, decode_stored

MODES = ("epoch", "resampled")
_MAX_SLOTS = 256  # corrupt-sample counters: one slot per worker id (mod _MAX_SLOTS)


def mix_seed(*values: int) -> int:
    """Combine integers into one 63-bit seed, the same in every process (no use of Python's salted ``hash``)."""
    return int(
        np.random.SeedSequence([int(v) & 0xFFFFFFFFFFFFFFFF for v in values])
        .generate_state(2, np.uint32)
        .view(np.uint64)[0]
        >> 1
    )


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``: from torch.distributed when initialised, else ``RANK``/``WORLD_SIZE``, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def assign_shards(num_shards: int, num_streams: int, seed: int, epoch: int) -> list[list[tuple[int, int, int]]]:
    """Deal shards of one epoch to streams, disjointly.

    Args:
        num_shards: number of shards.
        num_streams: ``world_size * num_workers``; stream ``s = rank * num_workers + worker``.
        seed, epoch: the shard order is a permutation drawn from ``(seed, epoch)``.

    Returns:
        For each stream, a list of ``(shard_index, k, j)``: read that shard and keep the samples whose position
        ``i`` in it has ``i % k == j``. With at least as many shards as streams, ``k = 1``; otherwise the streams
        sharing a shard split its samples. Every sample of every shard goes to exactly one stream.
    """
    perm = list(range(num_shards))
    random.Random(mix_seed(seed, epoch, 0x5EED)).shuffle(perm)
    if num_shards >= num_streams:
        return [[(perm[i], 1, 0) for i in range(s, num_shards, num_streams)] for s in range(num_streams)]
    plan = []
    for s in range(num_streams):
        j = s % num_shards
        k = len(range(j, num_streams, num_shards))
        plan.append([(perm[j], k, s // num_shards)])
    return plan


def resolve_shards(path: str | os.PathLike | Sequence[str], card: Any = None) -> tuple[list[str], DatasetCard | None]:
    """Turn a data location into a shard URL list and the dataset card.

    Args:
        path: a directory with ``dataset.json`` (the output of ``sgtrain-data pack``), the card file itself, a brace
            pattern (``/data/ffhq-{000000..000069}.tar``), a ``pipe:`` command or http(s) URL (patterns allowed), or
            a list of such URLs.
        card: a :class:`DatasetCard`, or a path/URL to its json; None = look for ``dataset.json`` next to the shards
            (local paths and http URLs).

    Returns:
        ``(urls, card)``; ``card`` is None when none could be found.

    Raises:
        FileNotFoundError: a directory without card, or a pattern matching nothing.
    """
    if isinstance(card, (str, os.PathLike)):
        card = _read_card_url(os.fspath(card))
    if isinstance(path, (list, tuple)):
        urls = [os.fspath(u) for u in path]
    else:
        path = os.fspath(path)
        if os.path.isdir(path) or (os.path.isfile(path) and path.endswith(".json")):
            card = card or load_card(path)
            root = path if os.path.isdir(path) else os.path.dirname(path)
            return [os.path.join(root, s.name) for s in card.shards], card
        from webdataset.shardlists import expand_urls

        urls = expand_urls(path)
    if not urls:
        raise MissingFileError(f"no shards in {path!r}")
    if card is None:
        first = urls[0]
        if not first.startswith("pipe:"):
            guess = first.rsplit("/", 1)[0] + "/" + CARD_NAME if "/" in first else CARD_NAME
            try:
                card = _read_card_url(guess)
            except (OSError, ValueError, RuntimeError):
                card = None
    return urls, card


def _read_card_url(url: str) -> DatasetCard:
    if os.path.exists(url):
        return load_card(url)
    if "://" not in url and not url.startswith("pipe:"):
        raise MissingFileError(f"no dataset card at {url}")
    from webdataset import gopen

    with gopen(url) as f:
        return DatasetCard.from_dict(json.loads(f.read().decode("utf-8")))


class TarFormatError(UserError, ValueError):
    """A tar stream that is truncated or damaged."""


#: Largest tar member read into memory (a header declaring more is a damaged or hostile shard, refused before any
#: allocation); a 1024x1024 RGB PNG is about 3 MiB.
MAX_MEMBER_BYTES = 256 << 20


def _read_exact(stream: Any, n: int) -> bytes:
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _tar_number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def iter_tar_members(stream: Any) -> Iterator[tuple[str, bytes]]:
    """Regular files of a tar stream as ``(name, data)``, in order.

    A small reader for the shards' hot path (Python's tarfile builds a TarInfo per member and is several times
    slower on small images). Handles ustar, GNU long names and PAX ``path`` records; verifies header checksums.

    Raises:
        TarFormatError: truncated data or a damaged header.
    """
    long_name: str | None = None
    while True:
        header = _read_exact(stream, 512)
        if not header:
            return
        if len(header) < 512:
            raise TarFormatError("truncated tar header")
        if header.count(0) == 512:
            return  # end-of-archive block
        stored = _tar_number(header[148:156])
        if stored != sum(header[:148]) + 256 + sum(header[156:]):
            raise TarFormatError("tar header checksum mismatch (damaged shard)")
        size = _tar_number(header[124:136])
        flag = header[156:157]
        if size > MAX_MEMBER_BYTES:
            member = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            raise TarFormatError(f"tar member {member!r} declares {size} bytes, more than the {MAX_MEMBER_BYTES >> 20} "
                                 "MiB a shard member may hold (damaged or hostile shard; repack it)")
        padded = size + (-size % 512)
        block = _read_exact(stream, padded)
        if len(block) < padded:
            raise TarFormatError("truncated tar member")
        data = block[:size]
        if flag == b"L":
            long_name = data.rstrip(b"\0").decode("utf-8", "replace")
            continue
        if flag == b"x":
            for rec in data.decode("utf-8", "replace").split("\n"):
                _, _, kv = rec.partition(" ")
                key, _, value = kv.partition("=")
                if key == "path":
                    long_name = value
            continue
        if flag not in (b"0", b"\0", b"7"):
            long_name = None
            continue
        if long_name is not None:
            name, long_name = long_name, None
        else:
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            if header[257:262] == b"ustar":
                prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
                if prefix:
                    name = prefix + "/" + name
        yield name, data


def iter_tar_samples(stream: Any) -> Iterator[dict[str, Any]]:
    """Group consecutive tar members into webdataset samples: ``{"__key__": "00000012", "png": bytes, ...}``.

    The key is the member name up to the first dot of its base name, the field the rest (webdataset's rule).
    """
    current: dict[str, Any] | None = None
    try:
        for name, data in iter_tar_members(stream):
            slash = name.rfind("/")
            dot = name.find(".", slash + 1)
            if dot < 0:
                continue
            key, ext = name[:dot], name[dot + 1 :].lower()
            if current is None or current["__key__"] != key:
                if current is not None:
                    yield current
                current = {"__key__": key}
            current[ext] = data
    except TarFormatError:
        if current is not None:  # the members read before the damage are kept (a sample missing a field is then
            yield current  # refused by the reader, counted as corrupt)
        raise
    if current is not None:
        yield current


def decode_png(data: bytes) -> np.ndarray:
    """Decode a stored image (PNG; JPEG/WEBP/BMP also accepted) to uint8 HWC, C = 1, 3 or 4 (L, RGB, RGBA), with
    pyspng / simplejpeg when installed, else Pillow (:func:`sgtrain.data.decode.decode_image`).

    Raises:
        OSError, ValueError: corrupt data or a pixel format other than 8-bit L/RGB/RGBA.
    """
    return decode_image(data)


class ShardStream(torch.utils.data.IterableDataset):
    """Iterable dataset over packed shards that yields whole batches; normally used through ShardDataModule.

    Each ``iter()`` is one epoch: the stream of worker ``w`` of rank ``r`` yields ``batches_per_stream`` tuples
    ``(img, c)`` with ``img`` uint8 [B, C, H, W] (``size`` = (W, H), default R x R) and ``c`` float32 [B, c_dim]
    ([B, 0] without labels). ``storage`` is the card's: ``png`` (decoded) or ``raw`` (uint8 ``.npy`` members, checked
    against [H, W, C] and copied into the batch without a decode).
    The epoch number comes from ``self.epoch`` (set by the loader before each ``iter`` in the main process, and
    advanced by the worker's own copy when workers are persistent).
    """

    def __init__(
        self,
        urls: list[str],
        shard_counts: list[int],
        batch_size: int,
        resolution: int,
        channels: int,
        c_dim: int,
        label_type: str | None,
        samples_per_rank: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        mode: str = "epoch",
        shuffle_buffer: int = 1000,
        xflip: bool = False,
        seed: int = 0,
        size: tuple[int, int] | None = None,
        storage: str = "png",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"shards mode must be one of {MODES}, got {mode!r}")
        if storage not in STORAGES:
            raise InputError(f"storage must be one of {', '.join(STORAGES)} (the card's 'storage'), got {storage!r}")
        self.storage = storage
        self.urls = list(urls)
        self.shard_counts = list(shard_counts)
        self.batch_size = int(batch_size)
        self.resolution, self.channels, self.c_dim = int(resolution), int(channels), int(c_dim)
        self.size = (int(size[0]), int(size[1])) if size is not None else (self.resolution, self.resolution)  # W, H
        self.label_type = label_type
        self.rank, self.world_size = int(rank), int(world_size)
        self.num_workers = max(1, int(num_workers))
        self.mode = mode
        self.shuffle_buffer = int(shuffle_buffer)
        self.xflip = bool(xflip)
        self.seed = int(seed)
        self.epoch = 0
        per_stream = samples_per_rank // self.num_workers
        self.batches_per_stream = max(1, per_stream // self.batch_size)
        # One counter slot per worker, in shared memory so that the main process sees the workers' counts
        # (under fork the mapping is inherited, under spawn/forkserver torch passes it with the pickled dataset).
        self.corrupt = torch.zeros([_MAX_SLOTS], dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        """Batches per rank per epoch (the same on every rank)."""
        return self.batches_per_stream * self.num_workers

    # ------------------------------------------------------------------------------------------- reading
    def _count_corrupt(self, slot: int, what: str, err: BaseException | str) -> None:
        self.corrupt[slot % _MAX_SLOTS] += 1
        n = int(self.corrupt.sum())
        if n <= 10 or n % 1000 == 0:
            reason = str(err) or type(err).__name__  # MemoryError() and the like print as nothing
            warnings.warn(f"sgtrain.data: skipped {what}: {reason} (corrupt so far: {n})", stacklevel=2)

    def _read_shard(self, idx: int, k: int, j: int, slot: int) -> Iterator[dict[str, Any]]:
        from webdataset import gopen

        url = self.urls[idx]
        try:
            stream = gopen(url)
        except Exception as e:  # noqa: BLE001 - an unreachable shard must not end the run
            self._count_corrupt(slot, f"shard {url}", e)
            return
        try:
            for i, sample in enumerate(iter_tar_samples(stream)):
                if i % k == j:
                    sample["__url__"] = url
                    yield sample
        except Exception as e:  # noqa: BLE001 - a damaged shard: keep what was read, go on with the next
            self._count_corrupt(slot, f"rest of shard {url}", e)
        finally:
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass

    def _samples(
        self, rank: int, worker: int, num_workers: int, epoch: int, rng: random.Random
    ) -> Iterator[dict[str, Any]]:
        """Undecoded samples of this stream for one epoch, shuffled, without end (the consumer stops)."""
        slot = worker
        if self.mode == "epoch":
            plan = assign_shards(len(self.urls), self.world_size * num_workers, self.seed, epoch)
            mine = plan[rank * num_workers + worker]

            def one_pass() -> Iterator[dict[str, Any]]:
                for idx, k, j in mine:
                    yield from self._read_shard(idx, k, j, slot)

            fallback = False
            while True:
                # The shuffle buffer drains at the end of each pass, so the first pass (the epoch proper) is
                # complete before any sample repeats; later passes only pad a stream that ran short.
                got = 0
                for s in self._shuffled(one_pass(), rng):
                    got += 1
                    yield s
                if got == 0:
                    if fallback or len(self.urls) == 1:
                        return
                    # Every shard of this stream is unreadable: rather than end the run, fill the quota from all
                    # shards (this stream then overlaps others for this epoch).
                    warnings.warn(
                        f"sgtrain.data: rank {rank} worker {worker} found no readable sample in its "
                        "shards this epoch; reading from all shards instead",
                        stacklevel=2,
                    )
                    start = (rank * num_workers + worker) % len(self.urls)
                    mine = [((start + i) % len(self.urls), 1, 0) for i in range(len(self.urls))]
                    fallback = True
        else:
            total = sum(self.shard_counts)
            weights = [c / total for c in self.shard_counts] if total else None

            def draws() -> Iterator[dict[str, Any]]:
                empty = 0
                while empty < 10 * len(self.urls):
                    idx = rng.choices(range(len(self.urls)), weights=weights)[0]
                    got = 0
                    for s in self._read_shard(idx, 1, 0, slot):
                        got += 1
                        yield s
                    empty = 0 if got else empty + 1

            yield from self._shuffled(draws(), rng)

    def _shuffled(self, src: Iterator[dict[str, Any]], rng: random.Random) -> Iterator[dict[str, Any]]:
        """Random order through a buffer of ``shuffle_buffer`` samples; yields from 64 buffered on, grows to full."""
        size = self.shuffle_buffer
        if size <= 1:
            yield from src
            return
        initial = min(size, 64)
        buf: list[dict[str, Any]] = []
        for s in src:
            buf.append(s)
            if len(buf) < size:
                more = next(src, None)  # take two per yield until full, so the buffer grows while it yields
                if more is not None:
                    buf.append(more)
            if len(buf) >= initial:
                i = rng.randrange(len(buf))
                buf[i], buf[-1] = buf[-1], buf[i]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def _label(self, sample: dict[str, Any]) -> int | np.ndarray | None:
        """The sample's label: a class index in [0, c_dim), a float32 [c_dim] vector, or None without labels.

        Raises (the sample is then skipped and counted as corrupt):
            KeyError: the label field is missing. ValueError: an index out of range or a vector of the wrong length.
        """
        if self.c_dim == 0:
            return None
        if self.label_type == "class":
            idx = int(sample["cls"])
            if not 0 <= idx < self.c_dim:
                raise ValueError(f"class index {idx} outside 0..{self.c_dim - 1} (c_dim={self.c_dim})")
            return idx
        vec = np.asarray(json.loads(sample["json"])["label"], dtype=np.float32)
        if vec.shape != (self.c_dim,):
            raise ValueError(f"label of shape {vec.shape}, expected ({self.c_dim},)")
        return vec

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if num_workers != self.num_workers:
            raise RuntimeError(
                f"ShardStream was built for {self.num_workers} workers but runs under {num_workers}; "
                "build it with the DataLoader's num_workers"
            )
        epoch = self.epoch
        self.epoch += 1  # persistent workers: the worker's copy advances on its own
        rng = random.Random(mix_seed(self.seed, epoch, self.rank, worker, 0xDA7A))
        samples = self._samples(self.rank, worker, num_workers, epoch, rng)
        B, C = self.batch_size, self.channels
        W, H = self.size
        for _ in range(self.batches_per_stream):
            img = np.empty([B, C, H, W], dtype=np.uint8)
            c = np.zeros([B, self.c_dim], dtype=np.float32)
            n = 0
            while n < B:
                try:
                    s = next(samples)
                except StopIteration:
                    raise RuntimeError(
                        f"rank {self.rank} worker {worker}: no readable sample left in its shards "
                        f"({int(self.corrupt.sum())} corrupt); check the shards with `sgtrain-data inspect`"
                    ) from None
                try:
                    arr = decode_stored(s, self.storage, (H, W, C))
                    label = self._label(s)
                except Exception as e:  # noqa: BLE001 - a corrupt sample is skipped, never fatal
                    self._count_corrupt(worker, f"sample {s.get('__url__')}#{s.get('__key__')}", e)
                    continue
                chw = arr.transpose(2, 0, 1)
                if self.xflip and rng.random() < 0.5:
                    chw = chw[:, :, ::-1]
                img[n] = chw
                if label is not None:
                    if self.label_type == "class":
                        c[n, label] = 1.0
                    else:
                        c[n] = label
                n += 1
            yield torch.from_numpy(img), torch.from_numpy(c)


#: Signals the training process handles (checkpoint and stop, checkpoint and requeue: sgtrain.training.cluster).
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of the loader workers: ignore SIGTERM, SIGINT, SIGUSR1 and SIGUSR2.

    SLURM (time limit, ``scancel``, ``--signal`` without ``B:``), ``timeout`` and ``kill -TERM -<pgid>`` signal every
    process of the job, the loader workers too. A worker ended by the signal makes the training process fail at its
    next batch ("DataLoader worker ... is killed by signal: Terminated") before it can save; ignoring the signals
    leaves the decision to the training process, which checkpoints at the next step and then stops the workers.
    Workers still end with their parent (torch's watchdog) and on SIGKILL. Ctrl-C signals the terminal's whole
    foreground process group, the workers too.
    """
    import signal

    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class _EpochLoader(torch.utils.data.DataLoader):
    """DataLoader that tells its ShardStream the epoch number before each iteration."""

    def __init__(self, dataset: ShardStream, start_epoch: int = 0, **kwargs: Any) -> None:
        # iter() of a DataLoader draws its base seed from `generator`, or else from the global torch RNG: a new
        # epoch must not shift the training's random streams (a run resumed at an epoch end would diverge)
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        if kwargs.get("num_workers", 0) > 0:
            kwargs.setdefault("worker_init_fn", ignore_stop_signals)
        super().__init__(dataset, batch_size=None, **kwargs)
        self.next_epoch = int(start_epoch)
        self.current_epoch: int | None = None  # the epoch being iterated; None before the first iter()
        self.skip_batches = 0  # batches of the next epoch already consumed before a resume (skipped once)

    def __iter__(self):  # type: ignore[override]
        self.dataset.epoch = self.next_epoch  # reaches non-persistent workers (the dataset is pickled per epoch)
        self.current_epoch = self.next_epoch
        self.next_epoch += 1
        it = super().__iter__()
        skip, self.skip_batches = self.skip_batches, 0
        for _ in range(skip):  # the stream is deterministic per (seed, epoch, rank, worker): re-read, drop
            next(it)
        return it


def check_labels_source(
    path: str | os.PathLike | list | tuple,
    card: DatasetCard | dict | str | os.PathLike | None = None,
    use_labels: bool = True,
) -> str | None:
    """Check that the labels of a dataset can be drawn during training; call it before training starts.

    Generated images are conditioned on labels drawn from the dataset. Class labels come from the card; vector
    labels come from ``labels.npy``, which sgtrain reads from a local pack directory only, so a URL or ``pipe:``
    dataset with vector labels would otherwise fail at the first training step.

    Args:
        path: ``dataset.path`` (pack directory, ``dataset.json``, brace pattern, URL, ``pipe:`` command, or a list).
        card: the dataset card (a DatasetCard, the parsed ``dataset.json`` dict, or its path/URL); None = find it
            as the datamodule does (next to the shards; for http URLs this reads the remote card).
        use_labels: False when the run ignores labels (``dataset.cond=false``): nothing to check.

    Returns:
        The local directory holding ``labels.npy`` for vector labels; None for class labels, no labels, or when no
        card can be found (the datamodule then reports the missing card itself).

    Raises:
        ValueError: vector labels with a remote ``path`` (the message says what to pass instead), or a
            ``labels.npy`` whose shape does not match the card's ``c_dim``.
        FileNotFoundError: vector labels without ``labels.npy`` in the local directory.
    """
    if not use_labels:
        return None
    if card is None:
        try:
            _, card = resolve_shards(path)
        except (OSError, ValueError):
            return None
    elif isinstance(card, dict):
        card = DatasetCard.from_dict(card)
    elif isinstance(card, (str, os.PathLike)):
        card = _read_card_url(os.fspath(card))
    if card is None or card.label_type != "vector" or card.c_dim == 0:
        return None
    root = local_dir_of(path)
    if root is None:
        shown = path if not isinstance(path, (list, tuple)) else f"[{path[0]!r}, ...]"
        raise ValueError(
            f"dataset.path={shown} is remote but its dataset '{card.name}' has vector labels (c_dim={card.c_dim}): "
            f"sgtrain draws vector labels from {LABELS_NAME}, which it reads only from a local pack directory. "
            f"Pass dataset.path=DIR, a local copy (or mount) of the directory written by `sgtrain-data pack`, or "
            f"train without labels with dataset.cond=false"
        )
    labels = load_vector_labels(root)
    if labels.shape[1] != card.c_dim:
        raise ValueError(
            f"{os.path.join(root, LABELS_NAME)} holds labels of dimension {labels.shape[1]} but the card says "
            f"c_dim={card.c_dim}; repack the dataset with `sgtrain-data pack`"
        )
    return root
