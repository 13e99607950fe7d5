"""sgtrain-data pack / inspect on tiny synthetic images made here."""

from __future__ import annotations

import hashlib
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
from sgtrain.data.pack import parse_size

R = 8


def _img(i: int, size=(R, R), mode="RGB") -> Image.Image:
    """An image whose pixels encode its index: R = i % 256, G = i // 256, B = 77 (plus alpha 255 for RGBA)."""
    arr = np.zeros([size[1], size[0], 3], np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = i % 256, i // 256, 77
    return Image.fromarray(arr).convert(mode)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _read_shards(out: str) -> list[dict]:
    """Samples of all shards in card order, read with Python's tarfile (independent of the packer)."""
    card = load_card(out)
    samples = []
    for s in card.shards:
        with tarfile.open(os.path.join(out, s.name)) as tf:
            cur: dict = {}
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                if cur.get("__key__") != key:
                    if cur:
                        samples.append(cur)
                    cur = {"__key__": key, "__shard__": s.name}
                cur[ext] = tf.extractfile(m).read()
            if cur:
                samples.append(cur)
    return samples


def _decode(b: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(b)))


def _make_folder(root, n_per_class=6, classes=("cat", "dog")) -> list[str]:
    names = []
    for c, cls in enumerate(classes):
        os.makedirs(root / cls, exist_ok=True)
        for k in range(n_per_class):
            i = c * 100 + k
            ext = ["png", "bmp", "webp"][k % 3]
            _img(i).save(root / cls / f"{k:03d}.{ext}", **({"lossless": True} if ext == "webp" else {}))
            names.append(f"{cls}/{k:03d}.{ext}")
    return names


def _make_folder_names(n_per_class=6, classes=("cat", "dog")) -> list[str]:
    return [f"{cls}/{k:03d}.{['png', 'bmp', 'webp'][k % 3]}" for cls in classes for k in range(n_per_class)]


def _plant_bad(root) -> dict[str, str]:
    d = root / "cat"
    good = _png_bytes(_img(5, size=(40, 40)))
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (d / "truncated.png").write_bytes(good[: len(good) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("hello")
    (d / "text.png").write_text("not a png")
    _img(3, size=(4, 4)).save(d / "small.png")
    return {
        "cat/corrupt.png": "corrupt",
        "cat/truncated.png": "truncated",
        "cat/empty.jpg": "empty",
        "cat/notes.txt": "not an image",
        "cat/text.png": "not a decodable image",
        "cat/small.png": "too small",
    }


def test_pack_folder_labels_skips_and_card(tmp_path):
    src = tmp_path / "src"
    _make_folder(src)
    bad = _plant_bad(src)
    out = tmp_path / "out"
    card = pack(src, out, R, shard_size=2000, workers=2, progress=False, order="sorted")

    # skipped.txt lists every bad input with its reason; the rest packed
    lines = (out / "skipped.txt").read_text().splitlines()
    skipped = dict(line.split("\t") for line in lines)
    assert set(skipped) == set(bad)
    for name, word in bad.items():
        assert word in skipped[name], (name, skipped[name])
    assert card.count == 12 and card.pack["skipped"] == 6 and card.pack["inputs"] == 18

    # card on disk equals the returned card; labels from folder names
    on_disk = json.loads((out / "dataset.json").read_text())
    assert on_disk["count"] == 12 and on_disk["resolution"] == R and on_disk["channels"] == 3
    assert on_disk["c_dim"] == 2 and on_disk["label_names"] == ["cat", "dog"] and on_disk["class_counts"] == [6, 6]
    assert on_disk["pack"]["crop"] == "center" and on_disk["pack"]["source_type"] == "folder"
    assert len(card.shards) > 1, "shard_size=2000 bytes must split the output"
    for s in card.shards:
        path = out / s.name
        assert s.name.startswith("out-") and s.name.endswith(".tar")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == s.sha256
        assert s.size == path.stat().st_size

    # every image stored losslessly with its class; keys in packing (sorted) order
    samples = _read_shards(str(out))
    assert [s["__key__"] for s in samples] == [f"{i:08d}" for i in range(12)]
    assert sum(s.count for s in card.shards) == 12
    assert [sum(1 for x in samples if x["__shard__"] == s.name) for s in card.shards] == [s.count for s in card.shards]
    for k, s in enumerate(samples):
        c = k // 6
        assert int(s["cls"]) == c
        np.testing.assert_array_equal(_decode(s["png"]), np.asarray(_img(c * 100 + k % 6)))
    index = (out / "index.tsv").read_text().splitlines()
    assert index[0].split("\t") == ["00000000", samples[0]["__shard__"], "cat/000.png"]


def test_pack_deterministic_and_zip_equals_folder(tmp_path):
    src = tmp_path / "src"
    _make_folder(src)
    a = pack(src, tmp_path / "a", R, workers=0, name="d", progress=False)
    b = pack(src, tmp_path / "b", R, workers=2, name="d", progress=False)
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for root, _, files in os.walk(src):
            for f in files:
                p = os.path.join(root, f)
                zf.write(p, os.path.relpath(p, src))
    z = pack(zpath, tmp_path / "z", R, workers=2, name="d", progress=False)
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards] == [s.sha256 for s in z.shards]
    assert z.pack["source_type"] == "zip" and z.label_names == ["cat", "dog"]

    # the default order is a fixed permutation of the sorted paths; index.tsv maps every key back to its file
    assert a.pack["order"] == "shuffled" and a.pack["order_seed"] == 0
    rows = [line.split("\t") for line in (tmp_path / "a" / "index.tsv").read_text().splitlines()]
    paths = [r[2] for r in rows]
    assert sorted(paths) == sorted(_make_folder_names()) and paths != sorted(paths)
    for (key, shard, path), sample in zip(rows, _read_shards(str(tmp_path / "a"))):
        assert sample["__key__"] == key and sample["__shard__"] == shard
        i = int(path.split("/")[1][:3]) + (100 if path.startswith("dog") else 0)
        np.testing.assert_array_equal(_decode(sample["png"]), np.asarray(_img(i)))
        assert int(sample["cls"]) == (1 if path.startswith("dog") else 0)


def test_pack_nvlabs_zip_class_and_vector_labels(tmp_path):
    zpath = tmp_path / "nv.zip"
    labels = []
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(7):
            name = f"00000/img{i:08d}.png"
            zf.writestr(name, _png_bytes(_img(i)))
            labels.append([name, i % 3])
        zf.writestr("dataset.json", json.dumps({"labels": labels}))
    card = pack(zpath, tmp_path / "out", R, workers=0, progress=False, order="sorted")
    assert card.pack["source_type"] == "nvlabs-zip"
    assert card.c_dim == 3 and card.label_type == "class" and card.class_counts == [3, 2, 2]
    samples = _read_shards(str(tmp_path / "out"))
    assert [int(s["cls"]) for s in samples] == [i % 3 for i in range(7)]

    vpath = tmp_path / "nvv.zip"
    with zipfile.ZipFile(vpath, "w") as zf:
        vec = []
        for i in range(4):
            name = f"img{i}.png"
            zf.writestr(name, _png_bytes(_img(i)))
            vec.append([name, [i * 0.5, -1.0]])
        zf.writestr("dataset.json", json.dumps({"labels": vec}))
    card = pack(vpath, tmp_path / "vout", R, workers=0, progress=False, order="sorted")
    assert card.label_type == "vector" and card.c_dim == 2
    np.testing.assert_allclose(np.load(tmp_path / "vout" / "labels.npy"), [[i * 0.5, -1.0] for i in range(4)])
    samples = _read_shards(str(tmp_path / "vout"))
    assert [json.loads(s["json"])["label"] for s in samples] == [[i * 0.5, -1.0] for i in range(4)]


def test_pack_lmdb(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    db = tmp_path / "church_outdoor_train_lmdb"
    env = lmdb.open(str(db), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(5):
            buf = io.BytesIO()
            _img(i, size=(12, 10)).save(buf, "WEBP", lossless=True)
            txn.put(f"key{i:03d}".encode(), buf.getvalue())
        txn.put(b"key999", b"garbage")
    env.close()
    card = pack(db, tmp_path / "out", R, workers=2, progress=False)
    assert card.count == 5 and card.pack["source_type"] == "lmdb" and card.c_dim == 0
    assert (tmp_path / "out" / "skipped.txt").read_text().startswith("key999\t")
    first = _decode(_read_shards(str(tmp_path / "out"))[0]["png"])
    assert first.shape == (R, R, 3) and abs(int(first[..., 2].mean()) - 77) <= 1


def test_crop_upscale_alpha_and_grayscale(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (16, 8), (10, 20, 30)).save(src / "a_wide.png")
    Image.new("RGB", (4, 4), (200, 0, 0)).save(src / "b_small.png")
    rgba = np.zeros([8, 8, 4], np.uint8)
    rgba[..., 0] = 255
    rgba[:, 4:, 3] = 255  # right half opaque red, left half transparent
    Image.fromarray(rgba, "RGBA").save(src / "c_rgba.png")

    card = pack(src, tmp_path / "none", R, crop="none", workers=0, progress=False, order="sorted")
    skipped = (tmp_path / "none" / "skipped.txt").read_text()
    assert "a_wide.png\tnot square" in skipped and "b_small.png\ttoo small" in skipped and card.count == 1
    rgb = _decode(_read_shards(str(tmp_path / "none"))[0]["png"])
    np.testing.assert_array_equal(rgb[:, :4], 255)  # transparent -> white
    np.testing.assert_array_equal(rgb[:, 4:], np.broadcast_to([255, 0, 0], [8, 4, 3]))

    card = pack(
        src,
        tmp_path / "up",
        R,
        allow_upscale=True,
        channels=1,
        resize_filter="box",
        workers=0,
        progress=False,
        order="sorted",
    )
    assert card.count == 3 and card.channels == 1
    imgs = [_decode(s["png"]) for s in _read_shards(str(tmp_path / "up"))]
    assert all(im.shape == (R, R) for im in imgs)
    expected = np.asarray(Image.new("RGB", (1, 1), (10, 20, 30)).convert("L"))[0, 0]
    assert np.all(imgs[0] == expected)  # centre crop of a flat image keeps its (grey) value


def test_cli_errors_overwrite_and_inspect(tmp_path, capsys):
    assert cli_main(["pack", str(tmp_path / "missing"), str(tmp_path / "o"), "--resolution", "8"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["pack", str(tmp_path / "empty"), str(tmp_path / "o"), "--resolution", "8"]) == 2
    assert "empty" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"nope")
    assert cli_main(["pack", str(tmp_path / "junk"), str(tmp_path / "oj"), "--resolution", "8", "--no-progress"]) == 2
    assert "no usable image" in capsys.readouterr().err

    src = tmp_path / "src"
    _make_folder(src, n_per_class=3)
    out = tmp_path / "out"
    args = ["pack", str(src), str(out), "--resolution", "8", "--workers", "1", "--no-progress", "--order", "sorted"]
    assert cli_main(args) == 0
    assert "packed 6 images" in capsys.readouterr().out
    assert cli_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite", "--labels", "none"]) == 0
    assert load_card(out).c_dim == 0

    grid = tmp_path / "grid.png"
    assert cli_main(["inspect", str(out), "--grid", str(grid), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "count       6" in printed and "verify      ok" in printed
    g = np.asarray(Image.open(grid))
    assert g.shape == (2 * (R + 1) + 1, 3 * (R + 1) + 1, 3)  # 6 images -> 2 rows x 3 columns, 1 px padding
    np.testing.assert_array_equal(g[1 : 1 + R, 1 : 1 + R], np.asarray(_img(0)))

    shard = out / load_card(out).shards[0].name
    shard.write_bytes(shard.read_bytes()[:-1024] + b"\0" * 1024 + b"x")
    assert cli_main(["inspect", str(out), "--verify"]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err


def test_pack_errors_and_sizes(tmp_path):
    with pytest.raises(PackError, match="resolution"):
        pack(tmp_path, tmp_path / "o", 2)
    with pytest.raises(PackError, match="crop"):
        pack(tmp_path, tmp_path / "o", 8, crop="top")
    assert parse_size("1GB") == 10**9 and parse_size("64KiB") == 65536 and parse_size("512 MB") == 512 * 10**6
    assert parse_size(1234) == 1234
    with pytest.raises(PackError):
        parse_size("lots")
