"""ShardDataModule: batches, labels, epochs, rank/worker splits, corrupt samples. Tiny synthetic shards."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from sgtrain.data import ShardDataModule, load_card, pack
from sgtrain.data.stream import assign_shards, dist_info

R = 8


def _write_images(root, n: int, classes: int = 0) -> None:
    """n images at R x R whose pixels encode the index i (R = i % 256, G = i // 256) and class (B = 40 + 60 c)."""
    for i in range(n):
        c = i % classes if classes else 0
        arr = np.zeros([R, R, 3], np.uint8)
        arr[..., 0], arr[..., 1], arr[..., 2] = i % 256, i // 256, 40 + 60 * c
        arr[0, 0] = (i % 256, i // 256, 0)  # asymmetric: a left-right flip is visible at pixel (0, R-1)
        d = root / (f"class{c}" if classes else "")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(arr).save(d / f"img{i:05d}.png")


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """64 images in 2 classes, 8 shards of 8 (shard size chosen so that exactly 8 samples fit)."""
    root = tmp_path_factory.mktemp("data")
    _write_images(root / "src", 64, classes=2)
    probe = pack(root / "src", root / "probe", R, workers=0, progress=False, order="sorted")
    per_sample = probe.shards[0].size // probe.shards[0].count  # one-shard probe: tar bytes per sample (+ EOF)
    card = pack(
        root / "src",
        root / "out",
        R,
        workers=0,
        progress=False,
        shard_size=8 * (per_sample - 1024 // 64),
        order="sorted",
    )
    assert card.count == 64 and [s.count for s in card.shards] == [8] * 8, [s.count for s in card.shards]
    return root / "out"


def _index(img: torch.Tensor) -> list[int]:
    """Image indices encoded in a uint8 [N, 3, R, R] batch (read away from the flipped corner pixel)."""
    return (img[:, 0, 1, 1].long() + 256 * img[:, 1, 1, 1].long()).tolist()


def _shard_of(i: int, card) -> int:
    """Which shard holds image i: classes interleave, so the packing order is class0 images then class1 images."""
    order = sorted(range(card.count), key=lambda k: (k % 2, k))
    pos = order.index(i)
    return pos // 8


def test_batches_dtype_shape_labels_and_epoch_coverage(packed):
    dm = ShardDataModule(packed, batch_size=4, num_workers=0, shuffle_buffer=16, seed=1)
    assert (dm.resolution, dm.num_channels, dm.c_dim, dm.count) == (R, 3, 2, 64)
    assert dm.label_names == ["class0", "class1"]
    loader = dm.train_dataloader(rank=0, world_size=1)
    assert len(loader) == 16
    epochs = []
    for _ in range(2):
        seen = []
        for img, c in loader:
            assert img.dtype == torch.uint8 and img.shape == (4, 3, R, R) and img.is_contiguous()
            assert c.dtype == torch.float32 and c.shape == (4, 2)
            cls = ((img[:, 2, 1, 1].long() - 40) // 60).tolist()
            np.testing.assert_array_equal(c.argmax(1).tolist(), cls)
            assert torch.all(c.sum(1) == 1)
            seen += _index(img)
        epochs.append(seen)
    assert sorted(epochs[0]) == list(range(64)) and sorted(epochs[1]) == list(range(64))
    assert epochs[0] != epochs[1], "the shuffle must differ between epochs"
    assert dm.corrupt_count == 0

    nolabel = ShardDataModule(packed, batch_size=3, num_workers=0, use_labels=False)
    img, c = next(iter(nolabel.train_dataloader(rank=0, world_size=1)))
    assert c.shape == (3, 0) and nolabel.c_dim == 0


def test_assign_shards_disjoint_and_complete():
    for num_shards, num_streams in [(8, 4), (8, 3), (5, 5), (3, 8), (1, 4), (7, 2)]:
        for epoch in range(3):
            plan = assign_shards(num_shards, num_streams, seed=0, epoch=epoch)
            assert len(plan) == num_streams
            # every (shard, sample position) is read by exactly one stream; positions 0..9 stand for the samples
            owners = {}
            for s, parts in enumerate(plan):
                for shard, k, j in parts:
                    for pos in range(10):
                        if pos % k == j:
                            assert (shard, pos) not in owners
                            owners[shard, pos] = s
            assert len(owners) == num_shards * 10
    orders = {tuple(p[0][0] for p in assign_shards(8, 8, 0, e)) for e in range(5)}
    assert len(orders) > 1, "the shard order must change with the epoch"
    assert assign_shards(8, 4, 3, 2) == assign_shards(8, 4, 3, 2)


def test_xflip_labels_draw_and_resume(packed):
    dm = ShardDataModule(packed, batch_size=8, num_workers=0, xflip=True, seed=3)
    flipped = kept = 0
    for img, _ in dm.train_dataloader(rank=0, world_size=1):
        idx = torch.tensor(_index(img))
        corner_left = img[:, 0, 0, 0].long() == idx % 256
        marker_right = (img[:, 2, 0, R - 1] == 0) & (img[:, 0, 0, R - 1].long() == idx % 256)
        kept += int((img[:, 2, 0, 0] == 0).sum())
        flipped += int(marker_right.sum())
        assert torch.all((img[:, 2, 0, 0] == 0) ^ marker_right)
        assert torch.all(corner_left | marker_right)
    assert kept + flipped == 64 and 16 < flipped < 48

    g = torch.Generator().manual_seed(0)
    draws = dm.sample_labels(4000, generator=g)
    assert draws.shape == (4000, 2) and draws.dtype == torch.float32 and torch.all(draws.sum(1) == 1)
    assert abs(draws[:, 0].mean().item() - 0.5) < 0.05

    # resume: a new datamodule loaded with the saved state replays the same epoch
    dm1 = ShardDataModule(packed, batch_size=8, num_workers=0, seed=5)
    loader = dm1.train_dataloader(rank=0, world_size=1)
    for _ in range(2):
        batches = [_index(img) for img, _ in loader]
    state = dm1.state_dict()
    assert state["epoch"] == 1
    dm2 = ShardDataModule(packed, batch_size=8, num_workers=0, seed=5)
    dm2.load_state_dict(state)
    assert [_index(img) for img, _ in dm2.train_dataloader(rank=0, world_size=1)] == batches

    dm3 = ShardDataModule(packed, batch_size=8, num_workers=0, seed=5)
    loader = dm3.train_dataloader(rank=0, world_size=1)
    assert dm3.state_dict()["epoch"] == 0  # made, not yet iterated
    first = [_index(img) for img, _ in loader]
    assert dm3.state_dict()["epoch"] == 0
    again = dm3.train_dataloader(rank=0, world_size=1)  # a reloaded loader goes on with the next epoch
    assert [_index(img) for img, _ in again] == batches != first
    assert dm3.state_dict()["epoch"] == 1


def test_unbalanced_labels_draw(tmp_path):
    src = tmp_path / "src"
    for c, n in [(0, 9), (1, 3)]:
        (src / f"k{c}").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (R, R), (i, c, 0)).save(src / f"k{c}" / f"{i}.png")
    pack(src, tmp_path / "out", R, workers=0, progress=False)
    dm = ShardDataModule(tmp_path / "out", batch_size=2, num_workers=0)
    freq = dm.sample_labels(8000, generator=torch.Generator().manual_seed(1)).mean(0)
    assert abs(freq[0].item() - 0.75) < 0.03 and abs(freq[1].item() - 0.25) < 0.03


@pytest.mark.parametrize("method", ["fork", "spawn", pytest.param("forkserver", marks=pytest.mark.slow)])
def test_workers_split_with_start_methods(packed, method):
    dm = ShardDataModule(
        packed, batch_size=4, num_workers=2, start_method=method, persistent_workers=True, shuffle_buffer=8
    )
    loader = dm.train_dataloader(rank=0, world_size=1)
    assert len(loader) == 16
    for _ in range(2):  # the second epoch goes through the persistent workers' own epoch counter
        seen = [i for img, _ in loader for i in _index(img)]
        assert sorted(seen) == list(range(64)), "two workers must read disjoint halves covering the dataset"


def test_patterns_and_resampled_equal_batches(packed):
    card = load_card(packed)
    pattern = str(packed / f"{card.name}-{{000000..000007}}.tar")
    per_rank = []
    for rank in range(3):
        dm = ShardDataModule(pattern, batch_size=4, num_workers=0, shards="resampled", seed=7)
        assert dm.card.count == 64  # found next to the shards
        per_rank.append(len([b for b in dm.train_dataloader(rank=rank, world_size=3)]))
    assert per_rank == [5, 5, 5]  # 64 // 3 = 21 samples per rank -> 5 full batches, the same on every rank

    files = [str(packed / s.name) for s in card.shards[:2]]
    dm = ShardDataModule(files, batch_size=4, num_workers=0, card=str(packed / "dataset.json"), epoch_samples=16)
    seen = [i for img, _ in dm.train_dataloader(rank=0, world_size=1) for i in _index(img)]
    assert len(seen) == 16 and {_shard_of(i, card) for i in seen} <= {0, 1}

    pipe = f"pipe:cat {packed / card.shards[0].name}"
    dm = ShardDataModule(pipe, batch_size=4, num_workers=0, card=card, epoch_samples=8)
    seen = [i for img, _ in dm.train_dataloader(rank=0, world_size=1) for i in _index(img)]
    assert sorted(seen) == sorted(i for i in range(64) if _shard_of(i, card) == 0)

    with pytest.raises(ValueError, match="card"):
        ShardDataModule(pipe, batch_size=4)


def test_corrupt_samples_and_shards_are_skipped(packed, tmp_path):
    card = load_card(packed)
    bad = tmp_path / "bad.tar"
    with tarfile.open(packed / card.shards[0].name) as src, tarfile.open(bad, "w", format=tarfile.USTAR_FORMAT) as dst:
        for k, m in enumerate(src.getmembers()):
            data = src.extractfile(m).read()
            if m.name.endswith(".png") and k in (2, 8):
                data = data[:20] + b"\0garbage" * 10  # broken PNG
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    truncated = tmp_path / "trunc.tar"
    raw = (packed / card.shards[1].name).read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2 + 100])
    urls = [str(bad), str(truncated), str(tmp_path / "missing.tar")]
    with pytest.warns(UserWarning, match="skipped"):
        dm = ShardDataModule(urls, batch_size=4, num_workers=0, card=card, epoch_samples=16)
        batches = list(dm.train_dataloader(rank=0, world_size=1))
    # 16 samples need more than one pass over the ~10 readable ones, so every bad part was met at least once
    assert len(batches) == 4 and all(img.shape == (4, 3, R, R) for img, _ in batches)
    assert dm.corrupt_count >= 4  # 2 bad PNGs, the truncated shard's tail, the missing shard
    seen = [i for img, _ in batches for i in _index(img)]
    assert {_shard_of(i, card) for i in seen} <= {0, 1}


def test_dist_info_from_env(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert dist_info() == (3, 4)


def _rank_main(rank: int, world: int, path: str, init_file: str, result_dir: str, workers_start: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        # rank and world size come from torch.distributed (no RANK env in these processes)
        assert "RANK" not in os.environ
        dm = ShardDataModule(path, batch_size=4, num_workers=2, start_method=workers_start, shuffle_buffer=8, seed=11)
        loader = dm.train_dataloader()
        out = []
        for _ in range(2):
            out.append([_index(img) for img, _ in loader])
        torch.save({"rank": rank, "len": len(loader), "epochs": out}, os.path.join(result_dir, f"r{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def _check_two_ranks(packed, tmp_path, ranks_start: str, workers_start: str) -> None:
    os.environ.pop("RANK", None)
    os.environ.pop("WORLD_SIZE", None)
    torch.multiprocessing.start_processes(
        _rank_main,
        args=(2, str(packed), str(tmp_path / "init"), str(tmp_path), workers_start),
        nprocs=2,
        join=True,
        start_method=ranks_start,
    )
    res = [torch.load(tmp_path / f"r{r}.pt") for r in range(2)]
    card = load_card(packed)
    assert res[0]["len"] == res[1]["len"] == 8
    for e in range(2):
        b0, b1 = res[0]["epochs"][e], res[1]["epochs"][e]
        assert len(b0) == len(b1) == 8, "every rank yields the same number of batches"
        s0 = {_shard_of(i, card) for b in b0 for i in b}
        s1 = {_shard_of(i, card) for b in b1 for i in b}
        assert s0.isdisjoint(s1) and len(s0 | s1) == 8, (e, s0, s1)
        flat = [i for b in b0 + b1 for i in b]
        assert sorted(flat) == list(range(64))
    orders = [[_shard_of(b[0], card) for b in res[0]["epochs"][e]] for e in range(2)]
    assert orders[0] != orders[1] or res[0]["epochs"][0] != res[0]["epochs"][1]


def test_two_ranks_read_disjoint_shards_and_equal_batches(packed, tmp_path):
    """Acceptance: 2 processes (gloo), 2 workers each: disjoint shards in every epoch, the same batch count."""
    _check_two_ranks(packed, tmp_path, ranks_start="fork", workers_start="fork")


@pytest.mark.slow
def test_two_spawned_ranks_with_spawned_workers(packed, tmp_path):
    """The same with spawn everywhere (as torchrun/Lightning's ddp_spawn and CUDA-safe loaders do)."""
    _check_two_ranks(packed, tmp_path, ranks_start="spawn", workers_start="spawn")


def test_lightning_fit_epochs_and_checkpoint_state(packed, tmp_path):
    import lightning.pytorch as pl

    class Counter(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.per_epoch: dict[int, list[int]] = {}

        def training_step(self, batch, batch_idx):
            img, c = batch
            assert img.dtype == torch.uint8 and img.shape == (8, 3, R, R) and c.shape == (8, 2)
            self.per_epoch.setdefault(self.current_epoch, []).extend(_index(img))
            return (self.w * img.float().mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    dm = ShardDataModule(packed, batch_size=8, num_workers=0, seed=2)
    model = Counter()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert sorted(model.per_epoch) == [0, 1]
    assert all(sorted(v) == list(range(64)) for v in model.per_epoch.values())
    assert model.per_epoch[0] != model.per_epoch[1]
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    ckpt = torch.load(tmp_path / "x.ckpt", weights_only=False)
    assert ckpt["ShardDataModule"]["epoch"] == 1


def test_shuffle_buffer_fills_and_unreadable_stream_falls_back(packed, tmp_path):
    card = load_card(packed)
    urls = [str(packed / s.name) for s in card.shards]
    dm = ShardDataModule(urls, batch_size=64, num_workers=0, card=card, shuffle_buffer=1000, seed=4)
    ((img, _),) = list(dm.train_dataloader(rank=0, world_size=1))
    order = _index(img)
    assert sorted(order) == list(range(64))
    # with a buffer larger than the data, the last images of the stream can come out first
    assert max(order[:8]) > 32

    import warnings

    msgs, counts = [], []
    for rank in range(2):  # one of the two ranks is dealt the missing shard as its only shard
        dm = ShardDataModule(
            [str(tmp_path / "gone.tar")] + urls[:1], batch_size=4, num_workers=0, card=card, epoch_samples=16
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batches = [_index(img) for img, _ in dm.train_dataloader(rank=rank, world_size=2)]
        assert len(batches) == 2
        msgs += [str(w.message) for w in caught]
        counts.append(dm.corrupt_count)
    assert min(counts) == 0 and max(counts) >= 1
    assert any("reading from all shards" in m for m in msgs)
