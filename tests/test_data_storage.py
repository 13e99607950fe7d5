"""Decoded uint8 storage in the shards (issue 27, ``sgtrain-data pack --storage raw``): the training loader, the metric
shard source and ``inspect`` read the ``.npy`` members without a decode and give the PNG storage's pixels bitwise; a
member that disagrees with the card (byte count, dtype, shape, a pickle) is refused without an allocation."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sgtrain.data import PackError, ShardDataModule, load_card, pack
from sgtrain.data.card import DatasetCard
from sgtrain.data.decode import RawArrayError, decode_raw, decode_stored, encode_raw
from sgtrain.data.preview import read_samples
from sgtrain.data.stream import ShardStream
from sgtrain.errors import InputError, UserError


def _photos(root, n: int = 6, size: tuple[int, int] = (40, 30)) -> None:
    """Noisy gradients of varying sizes, one RGBA with transparency, one 16-bit grayscale (each gets converted)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = size[0] + 3 * i, size[1] + 2 * i
        yy, xx = np.mgrid[:h, :w] / max(h, w)
        base = np.stack([np.sin(5 * xx + k + i) * np.cos(3 * yy - k) for k in range(3)], -1) * 100 + 128
        img = np.clip(base + rng.normal(0, 20, [h, w, 3]), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"p{i}.png")
    rgba = np.zeros([36, 36, 4], np.uint8)
    rgba[6:30, 6:30] = [200, 40, 90, 255]
    rgba[0] = [10, 200, 10, 100]
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    Image.fromarray((np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 28).astype(np.uint16)).save(
        root / "gray16.png")


def _loader_images(out) -> torch.Tensor:
    dm = ShardDataModule(str(out), batch_size=load_card(out).count, num_workers=0, shuffle_buffer=1)
    img, _ = next(iter(dm.train_dataloader(rank=0, world_size=1)))
    return img


def _metric_images(out) -> torch.Tensor:
    from sgtrain.metrics.image_sources import ShardSource

    src = ShardSource(str(out))
    parts = sorted(src.iter_batches(batch_size=3), key=lambda b: int(b[0][0]))
    idx = torch.cat([i for i, _ in parts])
    assert idx.tolist() == list(range(src.count))
    return torch.cat([x for _, x in parts])


def _members(out) -> list[tuple[str, bytes]]:
    got = []
    for s in load_card(out).shards:
        with tarfile.open(os.path.join(out, s.name)) as tf:
            got += [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]
    return got


@pytest.mark.parametrize("resolution, channels", [(16, 3), ("32x16", 4), (16, 1)])
def test_raw_storage_gives_the_png_storages_pixels(tmp_path, resolution, channels):
    _photos(tmp_path / "src")
    kw = dict(channels=channels, workers=0, progress=False, order="sorted")
    png = pack(tmp_path / "src", tmp_path / "png", resolution, **kw)
    raw = pack(tmp_path / "src", tmp_path / "raw", resolution, storage="raw", **kw)
    assert raw.storage == "raw" and raw.pack["format"] == "npy" and png.storage == "png"
    assert load_card(tmp_path / "raw").storage == "raw" and raw.count == png.count == 8
    w, h = raw.size
    members = _members(tmp_path / "raw")
    assert members and all(n.endswith(".npy") for n, _ in members)
    first = np.load(io.BytesIO(members[0][1]), allow_pickle=False)  # any NumPy reads them
    assert first.dtype == np.uint8 and first.shape == (h, w, channels)
    assert len(members[0][1]) == 128 + h * w * channels  # the pixels and NumPy's header, nothing else
    a, b = _loader_images(tmp_path / "png"), _loader_images(tmp_path / "raw")
    assert a.dtype == b.dtype == torch.uint8 and tuple(a.shape) == (8, channels, h, w)
    assert torch.equal(a, b)
    assert torch.equal(_metric_images(tmp_path / "png"), _metric_images(tmp_path / "raw"))
    small = pack(tmp_path / "src", tmp_path / "small", resolution, storage="raw", shard_size="4KB", **kw)
    assert len(small.shards) > 1 and torch.equal(_metric_images(tmp_path / "small"), a)  # dataset order = pack order
    (pa, ka), (pb, kb) = read_samples(tmp_path / "png", 8), read_samples(tmp_path / "raw", 8)
    assert ka == kb and np.array_equal(pa, pb) and pa.shape == (8, h, w, channels)
    assert a.float().std() > 10  # real pictures, not a constant that would match anyway


def test_cli_packs_raw_and_inspect_verifies_it(tmp_path, capsys):
    from sgtrain.cli.data import main

    _photos(tmp_path / "src")
    out = tmp_path / "raw"
    assert main(["pack", str(tmp_path / "src"), str(out), "--resolution", "16", "--storage", "raw", "--workers", "0",
                 "--no-progress"]) == 0
    assert "3 ch, raw" in capsys.readouterr().out
    assert main(["inspect", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "storage     raw" in text and "verify      ok" in text and (out / "grid.png").is_file()
    shard = out / load_card(out).shards[0].name
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF  # one pixel byte of the first image
    shard.write_bytes(bytes(data))
    assert main(["inspect", str(out), "--verify"]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    again = pack(tmp_path / "src", tmp_path / "again", 16, storage="raw", workers=2, progress=False)
    first = pack(tmp_path / "src", tmp_path / "first", 16, storage="raw", workers=0, progress=False)
    assert [s.sha256 for s in again.shards] == [s.sha256 for s in first.shards]  # deterministic as PNG packs


def test_pack_refuses_an_unknown_storage_and_cards_check_theirs(tmp_path):
    _photos(tmp_path / "src", n=1)
    with pytest.raises(PackError, match="--storage must be one of png, raw"):
        pack(tmp_path / "src", tmp_path / "out", 16, storage="jpeg", workers=0, progress=False)
    assert not (tmp_path / "out").exists()
    card = dict(format="sgtrain-shards", name="x", count=1, resolution=16, channels=3)
    assert DatasetCard.from_dict(card).storage == "png"  # cards written before the field
    with pytest.raises(InputError, match="storage 'zstd'.*update sgtrain, or repack with --storage png"):
        DatasetCard.from_dict({**card, "storage": "zstd"})


RAN: list[str] = []


def _record(what: str) -> None:
    RAN.append(what)


class _Boom:
    """Unpickling this would call _record: a shard that ran code."""

    def __reduce__(self):
        return (_record, ("pickle ran",))


def _npy_header(descr: str, shape: tuple, fortran: bool = False) -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}".encode()
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


HOSTILE = {
    "not npy": (b"\x89PNG\r\n\x1a\n" + bytes(64), "no NumPy magic"),
    "float32": (_npy_header("<f4", (4, 4, 3)) + bytes(4 * 48),
                "dtype '<f4'"),
    "pickle": (_npy_header("|O", (1,)) + pickle.dumps(np.array([_Boom()], dtype=object)), "dtype '|O'"),
    "shape": (encode_raw(np.zeros([4, 2, 3], np.uint8)), r"shape \[4, 2, 3\] where the card says \[4, 4, 3\]"),
    "huge shape": (_npy_header("|u1", (100000, 100000, 3)) + bytes(48), r"shape \[100000, 100000, 3\]"),
    "truncated": (encode_raw(np.zeros([4, 4, 3], np.uint8))[:-5], "43 pixel bytes where shape .* needs 48"),
    "padded": (encode_raw(np.zeros([4, 4, 3], np.uint8)) + b"x", "49 pixel bytes"),
    "fortran": (_npy_header("|u1", (4, 4, 3), True) + bytes(48), "Fortran order"),
    "long header": (b"\x93NUMPY\x02\x00" + (1 << 20).to_bytes(4, "little") + bytes(64), "header"),
    "odd header": (b"\x93NUMPY\x01\x00" + (16).to_bytes(2, "little") + b"__import__('os')" + bytes(48),
                   "not NumPy's"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_member_that_disagrees_with_the_card_is_refused(case):
    data, match = HOSTILE[case]
    with pytest.raises(RawArrayError, match=match) as err:
        decode_raw(data, (4, 4, 3))
    assert "\n" not in str(err.value) and isinstance(err.value, UserError)
    assert RAN == []
    good = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(decode_raw(encode_raw(good), (4, 4, 3)), good)
    with pytest.raises(InputError, match=r"without a \.npy member.*storage 'raw'"):
        decode_stored({"__key__": "0", "png": b"x"}, "raw", (4, 4, 3))


def test_hostile_members_are_skipped_and_counted_by_the_loaders(tmp_path):
    """A shard whose members lie about themselves: the training stream and the metric source keep the good ones."""
    from sgtrain.metrics.image_sources import ShardSource

    _photos(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "raw", 4, storage="raw", workers=0, progress=False, order="sorted")
    card = load_card(tmp_path / "raw")
    bad = [HOSTILE["shape"][0], HOSTILE["pickle"][0], HOSTILE["truncated"][0]]
    members = [(n, bad.pop(0) if i in (1, 3, 5) else d) for i, (n, d) in enumerate(_members(tmp_path / "raw"))]
    path = tmp_path / "raw" / card.shards[0].name
    for s in card.shards:
        os.remove(tmp_path / "raw" / s.name)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for n, d in members:
            info = tarfile.TarInfo(n)
            info.size = len(d)
            tf.addfile(info, io.BytesIO(d))
    stream = ShardStream([str(path)], [8], batch_size=5, resolution=4, channels=3, c_dim=0, label_type=None,
                         samples_per_rank=5, shuffle_buffer=1, storage="raw")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        img, _ = next(iter(stream))
    assert int(stream.corrupt.sum()) == 3 and tuple(img.shape) == (5, 3, 4, 4)
    text = "\n".join(str(w.message) for w in seen)
    assert "shape [4, 2, 3]" in text and "dtype '|O'" in text and "pixel bytes" in text
    assert RAN == []
    good = [np.load(io.BytesIO(d), allow_pickle=False) for i, (_, d) in enumerate(members) if i not in (1, 3, 5)]
    assert torch.equal(img, torch.from_numpy(np.stack(good[:5])).permute(0, 3, 1, 2))

    card.shards = [card.shards[0]]
    card.shards[0].count, card.count = 8, 8
    card.save(tmp_path / "raw")
    with pytest.warns(UserWarning, match=r"skipped .*#00000001: raw \.npy member of shape \[4, 2, 3\]"):
        batches = list(ShardSource(str(tmp_path / "raw")).iter_batches(batch_size=8))
    assert batches[0][0].tolist() == [0, 2, 4, 6, 7]
    with pytest.raises(ValueError, match="storage must be one of png, raw"):
        ShardStream([str(path)], [8], 5, 4, 3, 0, None, 5, storage="npy")


def test_a_raw_pack_trains(tmp_path):
    """sgtrain-train on a --storage raw pack: the loader, the reals grid and SWD read it as they read PNG."""
    from test_train_e2e import TINY

    from sgtrain.training.config import compose
    from sgtrain.training.run import train

    _photos(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "raw", 16, storage="raw", workers=0, progress=False)
    run_dir = tmp_path / "run"
    out = train(compose(TINY + [f"dataset.path={tmp_path / 'raw'}", f"run.dir={run_dir}", "logger=none",
                                "train.kimg=0.008", "train.tick_kimg=0.004", "train.snap_kimg=0.008",
                                "train.swd=true", "train.swd_images=8"]))
    assert out["complete"] and all(np.isfinite(v) for v in out["swd"].values())
    reals = np.asarray(Image.open(run_dir / "samples" / "reals.png"))
    assert reals.shape == (32, 32, 3) and reals.std() > 10  # the 2x2 grid of real images, not a blank
