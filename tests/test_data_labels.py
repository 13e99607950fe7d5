"""Labels in the data pipeline: vector labels read once, URL datasets with vector labels refused before training,
bad class indices skipped and counted instead of killing a loader worker."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import sgtrain.data.card as card_mod
from sgtrain.data import ShardDataModule, check_labels_source, load_card, local_dir_of, pack, sample_vector_labels

R = 8


def _png(i: int) -> bytes:
    arr = np.zeros([R, R, 3], np.uint8)
    arr[..., 0] = i
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def vector_pack(tmp_path_factory):
    """8 images with 2-D vector labels [i, -i] (an NVlabs zip with dataset.json labels), packed."""
    root = tmp_path_factory.mktemp("vec")
    with zipfile.ZipFile(root / "src.zip", "w") as zf:
        labels = []
        for i in range(8):
            zf.writestr(f"img{i}.png", _png(i))
            labels.append([f"img{i}.png", [float(i), -float(i)]])
        zf.writestr("dataset.json", json.dumps({"labels": labels}))
    card = pack(root / "src.zip", root / "out", R, workers=0, progress=False, order="sorted")
    assert card.label_type == "vector" and card.c_dim == 2
    return root / "out"


@pytest.fixture(scope="module")
def class_pack(tmp_path_factory):
    """16 images in 2 class folders, one shard."""
    root = tmp_path_factory.mktemp("cls")
    for i in range(16):
        d = root / "src" / f"k{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:03d}.png").write_bytes(_png(i))
    card = pack(root / "src", root / "out", R, workers=0, progress=False, order="sorted")
    assert card.label_type == "class" and card.c_dim == 2 and len(card.shards) == 1
    return root / "out"


def _count_np_load(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = np.load

    def counted(path, *a, **k):
        calls.append(os.fspath(path))
        return real(path, *a, **k)

    monkeypatch.setattr(card_mod.np, "load", counted)
    card_mod._load_labels.cache_clear()
    return calls


def test_vector_labels_are_read_once(vector_pack, monkeypatch):
    calls = _count_np_load(monkeypatch)
    dm = ShardDataModule(vector_pack, batch_size=2, num_workers=0)
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([dm.sample_labels(4, generator=g) for _ in range(50)])
    assert draws.shape == (200, 2) and draws.dtype == torch.float32
    assert torch.equal(draws[:, 1], -draws[:, 0]) and set(draws[:, 0].tolist()) == {float(i) for i in range(8)}
    for _ in range(20):
        sample_vector_labels(vector_pack, 3)
    assert len(calls) == 1, f"labels.npy read {len(calls)} times"

    # a repacked directory (new file) is read again
    labels = np.load(vector_pack / "labels.npy")
    np.save(vector_pack / "labels.npy", labels * 2)
    os.utime(vector_pack / "labels.npy", ns=(1, 10**18))
    assert float(sample_vector_labels(vector_pack, 64, torch.Generator().manual_seed(1))[:, 0].max()) == 14.0
    assert len(calls) == 3  # (the np.load above is the test's own)
    np.save(vector_pack / "labels.npy", labels)
    card_mod._load_labels.cache_clear()


def test_check_labels_source_local_remote_and_missing(vector_pack, class_pack, tmp_path):
    card = load_card(vector_pack)
    assert check_labels_source(vector_pack) == str(vector_pack)
    assert check_labels_source(str(vector_pack / "dataset.json")) == str(vector_pack)
    pattern = str(vector_pack / f"{card.name}-{{000000..000000}}.tar")
    assert check_labels_source(pattern) == str(vector_pack)
    assert local_dir_of("file://" + str(vector_pack)) == str(vector_pack)

    remote = ["http://data.example/vec-{000000..000003}.tar", "pipe:curl -s s3://b/vec-000000.tar", ["s3://b/x.tar"]]
    for path in remote:
        assert local_dir_of(path) is None
        with pytest.raises(ValueError, match=r"vector labels \(c_dim=2\).*dataset.cond=false"):
            check_labels_source(path, card)
        with pytest.raises(ValueError, match="vector labels"):
            check_labels_source(path, card.to_dict())
        assert check_labels_source(path, card, use_labels=False) is None
    # class labels and unlabelled data need nothing local
    assert check_labels_source(remote[0], load_card(class_pack)) is None
    assert check_labels_source(class_pack) is None
    # no card found: nothing to check here (the datamodule asks for the card itself)
    assert check_labels_source("pipe:cat /nonexistent.tar") is None

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset.json").write_text((vector_pack / "dataset.json").read_text())
    with pytest.raises(FileNotFoundError, match="labels.npy.*dataset.cond=false"):
        check_labels_source(broken)
    np.save(broken / "labels.npy", np.zeros([8, 3], np.float32))
    with pytest.raises(ValueError, match="dimension 3.*c_dim=2"):
        check_labels_source(broken)


def test_remote_vector_dataset_fails_with_the_check_message(vector_pack):
    card = load_card(vector_pack)
    dm = ShardDataModule(f"pipe:cat {vector_pack / card.shards[0].name}", batch_size=2, num_workers=0, card=card)
    with pytest.raises(ValueError, match="local pack directory"):
        dm.sample_labels(2)


def _with_bad_classes(class_pack, out, bad: dict[int, bytes]) -> str:
    """A copy of the class pack's shard whose samples at the given positions get another ``cls`` value."""
    card = load_card(class_pack)
    dst_path = out / card.shards[0].name
    with tarfile.open(class_pack / card.shards[0].name) as src, tarfile.open(dst_path, "w") as dst:
        keys: list[str] = []
        for m in src.getmembers():
            data = src.extractfile(m).read()
            key, ext = m.name.split(".", 1)
            if key not in keys:
                keys.append(key)
            if ext == "cls" and len(keys) - 1 in bad:
                data = bad[len(keys) - 1]
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return str(dst_path)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_bad_class_index_is_skipped_and_counted(class_pack, tmp_path, num_workers):
    url = _with_bad_classes(class_pack, tmp_path, {1: b"7", 4: b"-1", 9: b"2"})
    card = load_card(class_pack)
    # (a worker's warnings stay in the worker; with num_workers=0 they reach the test)
    with pytest.warns(UserWarning, match="class index") if num_workers == 0 else contextlib.nullcontext():
        dm = ShardDataModule([url], batch_size=4, num_workers=num_workers, card=card, epoch_samples=12,
                             shuffle_buffer=0, start_method="fork" if num_workers else None,
                             persistent_workers=False)  # fmt: skip
        batches = list(dm.train_dataloader(rank=0, world_size=1))
    assert len(batches) == 3
    labels = torch.cat([c for _, c in batches])
    assert labels.shape == (12, 2) and torch.equal(labels.sum(1), torch.ones(12))  # every row one-hot
    assert dm.corrupt_count == 3
