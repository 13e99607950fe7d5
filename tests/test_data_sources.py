"""Pack sources (issue 27): an NVlabs zip written by their dataset_tool.py, --labels folders, tars, LSUN LMDBs."""

from __future__ import annotations

import importlib
import io
import json
import os
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from sgtrain.cli.data import main as cli_main
from sgtrain.data import PackError, load_card, pack

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "data", "nvlabs_classes.zip")


def _index(out) -> dict[str, str]:
    """key -> path inside SRC, from OUT/index.tsv."""
    rows = [line.split("\t") for line in open(os.path.join(out, "index.tsv")).read().splitlines()]
    return {k: name for k, _, name in rows}


def _samples(out) -> dict[str, dict]:
    """key -> {ext: bytes} over every shard, read with Python's tarfile."""
    got: dict[str, dict] = {}
    for s in load_card(out).shards:
        with tarfile.open(os.path.join(out, s.name)) as tf:
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                got.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return got


def _png(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def test_nvlabs_dataset_tool_zip_packs_with_its_labels(tmp_path):
    """The fixture zip was written by NVlabs' own dataset_tool.py (tests/fixtures/data/README.md)."""
    out = tmp_path / "out"
    card = pack(FIXTURE, out, 16, workers=0, progress=False)
    with zipfile.ZipFile(FIXTURE) as zf:
        labels = dict(map(tuple, json.loads(zf.read("dataset.json"))["labels"]))
        pixels = {n: np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in labels}
    assert card.pack["source_type"] == "nvlabs-zip" and card.count == 12 and card.pack["skipped"] == 0
    assert card.label_type == "class" and card.c_dim == 3 and card.class_counts == [4, 4, 4]
    index, samples = _index(out), _samples(out)
    for key, name in index.items():
        assert int(samples[key]["cls"]) == labels[name], name
        # 16x16 in, 16x16 out: the stored pixels are the tool's pixels exactly
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(samples[key]["png"]))), pixels[name])


def test_nvlabs_zip_trains_a_conditional_generator_of_its_c_dim(tmp_path):
    from test_train_e2e import TINY

    from sgtrain.io import load_network
    from sgtrain.training.config import compose
    from sgtrain.training.run import train

    pack(FIXTURE, tmp_path / "shards", 16, workers=0, progress=False)
    run_dir = str(tmp_path / "run")
    out = train(compose(TINY + [f"dataset.path={tmp_path / 'shards'}", f"run.dir={run_dir}", "logger=none",
                                "train.kimg=0.008", "train.tick_kimg=0.004", "train.snap_kimg=0.008",
                                "train.swd=false"]))
    assert out["complete"]
    net = load_network(run_dir)
    assert net["G_ema"].c_dim == 3 and net["D"].c_dim == 3
    c = torch_one_hot([0, 2], 3)
    img = net["G_ema"](__import__("torch").randn([2, net["G_ema"].z_dim]), c)
    assert tuple(img.shape) == (2, 3, 16, 16) and bool(img.isfinite().all())


def torch_one_hot(idx: list[int], n: int):
    import torch

    return torch.nn.functional.one_hot(torch.tensor(idx), n).float()


def _classed_folder(root, with_json: bool = False) -> None:
    for cls, value in (("cat", 40), ("dog", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.png").write_bytes(_png(np.full([8, 8, 3], value + i, np.uint8)))
    if with_json:  # labels that contradict the folders: --labels folders must ignore them
        names = [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(3)]
        (root / "dataset.json").write_text(json.dumps({"labels": [[n, [0.5, 1.5]] for n in names]}))


def test_labels_folders_ignores_dataset_json_and_refuses_flat_folders(tmp_path):
    _classed_folder(tmp_path / "src", with_json=True)
    auto = pack(tmp_path / "src", tmp_path / "auto", 8, workers=0, progress=False)
    assert auto.label_type == "vector" and auto.c_dim == 2  # auto: the dataset.json wins
    card = pack(tmp_path / "src", tmp_path / "out", 8, labels="folders", workers=0, progress=False)
    assert card.label_type == "class" and card.label_names == ["cat", "dog"] and card.class_counts == [3, 3]
    index, samples = _index(tmp_path / "out"), _samples(tmp_path / "out")
    for key, name in index.items():
        assert int(samples[key]["cls"]) == ["cat", "dog"].index(name.split("/")[0])
    (tmp_path / "src" / "loose.png").write_bytes(_png(np.zeros([8, 8, 3], np.uint8)))
    with pytest.raises(PackError, match="'loose.png' is not in a sub-folder.*--labels none"):
        pack(tmp_path / "src", tmp_path / "out2", 8, labels="folders", workers=0, progress=False)
    assert not (tmp_path / "out2").exists()  # refused before anything is written
    assert cli_main(["pack", str(tmp_path / "src"), str(tmp_path / "out3"), "--resolution", "8", "--labels",
                     "folders", "--no-progress"]) == 2


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz")])
def test_tar_source_equals_the_folder(tmp_path, suffix, mode):
    _classed_folder(tmp_path / "src")
    (tmp_path / "src" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    folder = pack(tmp_path / "src", tmp_path / "from_folder", 8, workers=0, progress=False)
    tar_path = tmp_path / f"src{suffix}"
    with tarfile.open(tar_path, mode) as tf:
        for cls in ("cat", "dog"):
            tf.add(tmp_path / "src" / cls, arcname=cls)
    card = pack(tar_path, tmp_path / "from_tar", 8, workers=2, progress=False)
    assert card.pack["source_type"] == "tar" and card.label_names == ["cat", "dog"]
    assert [s.sha256 for s in card.shards] == [s.sha256 for s in folder.shards]  # same bytes as the folder's pack
    assert (tmp_path / "from_tar" / "skipped.txt").read_text().startswith("cat/bad.png\t")


def test_tar_member_declaring_a_huge_size_is_skipped_unread(tmp_path, monkeypatch):
    packmod = importlib.import_module("sgtrain.data.pack")  # the module (sgtrain.data.pack is also the function)

    tar_path = tmp_path / "hostile.tar"
    noise = np.random.default_rng(0).integers(0, 255, [8, 8, 3]).astype(np.uint8)
    with tarfile.open(tar_path, "w") as tf:
        for i, arr in enumerate([np.full([8, 8, 3], 10, np.uint8), np.full([8, 8, 3], 20, np.uint8), noise]):
            data = _png(arr)
            info = tarfile.TarInfo(f"ok{i}.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        end = tf.offset  # the end of the last member, before the end-of-archive blocks
    # A last header declaring 1 TiB (GNU base-256 size field) with only 512 bytes behind it.
    info = tarfile.TarInfo("zbig.png")
    info.size = 1 << 40
    with open(tar_path, "r+b") as f:
        f.seek(end)
        f.write(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 512)
    card = pack(tar_path, tmp_path / "out", 8, workers=0, progress=False)
    assert card.count == 3 and card.pack["skipped"] == 1
    skipped = (tmp_path / "out" / "skipped.txt").read_text()
    assert skipped == "zbig.png\ttar member declares 1099511627776 bytes, over 1073741824 (not read)\n"
    # A member over the size limit is listed, not read (the limit is 1 GiB; lowered here below the noise PNG's size).
    monkeypatch.setattr(packmod, "MAX_MEMBER_BYTES", len(_png(noise)) - 1)
    card = pack(tar_path, tmp_path / "out2", 8, workers=0, progress=False)
    assert card.count == 2
    assert f"ok2.png\ttar member declares {len(_png(noise))} bytes" in (tmp_path / "out2" / "skipped.txt").read_text()


def _lmdb(path, items: dict[bytes, bytes]) -> None:
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, v in items.items():
            txn.put(k, v)
    env.close()


def test_lsun_lmdb_with_webp_and_jpeg_values(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {f"{i:040x}".encode(): rng.integers(0, 255, [12, 16, 3]).astype(np.uint8) for i in range(4)}
    items = {k: _png(a, "WEBP", lossless=True) if i % 2 else _png(a, "JPEG", quality=95)
             for i, (k, a) in enumerate(imgs.items())}
    items[b"f" * 40] = b"RIFF\0\0\0\0WEBPtruncated"
    _lmdb(tmp_path / "bedroom_train_lmdb", items)
    card = pack(tmp_path / "bedroom_train_lmdb" / "data.mdb", tmp_path / "out", 8, workers=0, progress=False)
    assert card.count == 4 and card.pack["source_type"] == "lmdb" and card.c_dim == 0
    assert (tmp_path / "out" / "skipped.txt").read_text().startswith("f" * 40 + "\t")


def test_lmdb_not_in_lsun_layout_is_refused_naming_the_fix(tmp_path):
    jpeg = _png(np.zeros([8, 8, 3], np.uint8), "JPEG")
    _lmdb(tmp_path / "rosinality", {b"length": b"2", b"128-00000": jpeg, b"128-00001": jpeg})
    with pytest.raises(PackError, match="rosinality's prepare_data.py.*pack the image folder"):
        pack(tmp_path / "rosinality", tmp_path / "out", 8, workers=0, progress=False)
    _lmdb(tmp_path / "arrays", {f"{i}".encode(): np.zeros(64, np.uint8).tobytes() for i in range(20)})
    with pytest.raises(PackError, match="not in LSUN's layout.*export its images to a folder"):
        pack(tmp_path / "arrays", tmp_path / "out", 8, workers=0, progress=False)
    assert not (tmp_path / "out").exists()
