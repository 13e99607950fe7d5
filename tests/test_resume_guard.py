"""Issue 29, findings 5, 6 and 9: a run directory that cannot be resumed is refused (never overwritten), a damaged
checkpoint is detected and the newest good kept one is used, kept checkpoints are copies, stale temporaries of every
writer are cleaned at start, and a shard member declaring a huge size is refused without losing the sample before it.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from _tiny_run import TINY, make_shards

from sgtrain.data.stream import TarFormatError, iter_tar_samples
from sgtrain.training.callbacks import clean_stale_temporaries, verify_checkpoint, write_checksum
from sgtrain.training.config import ConfigError, compose


def _damage_inside(path: Path) -> str:
    """Overwrite 4 KB in the middle of the largest zip entry's data (zip directory left intact); its name."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    with open(path, "rb+") as f:
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        start = info.header_offset + 30 + n + m
        assert info.file_size > 8192
        f.seek(start + info.file_size // 2 - 2048)
        f.write(os.urandom(4096))
    assert zipfile.is_zipfile(path)
    return info.filename


def test_verify_checkpoint_finds_damage_inside(tmp_path):
    ck = tmp_path / "a.ckpt"
    torch.save({"w": torch.randn(64, 1024)}, ck)
    assert verify_checkpoint(str(ck)) is None  # no checksum file (old run dirs): every entry read, CRC-32 checked
    write_checksum(str(ck))
    assert (tmp_path / "a.ckpt.sha256").read_text().split()[1] == "a.ckpt"
    assert verify_checkpoint(str(ck)) is None
    _damage_inside(ck)
    assert "checksum" in verify_checkpoint(str(ck))
    os.remove(tmp_path / "a.ckpt.sha256")
    assert "damaged" in verify_checkpoint(str(ck))
    (tmp_path / "b.ckpt").write_bytes(b"PK\x03\x04 not a zip")
    assert verify_checkpoint(str(tmp_path / "b.ckpt"))


def test_stale_temporaries_of_every_scheme_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "samples").mkdir()
    stale = [".network-snapshot-000008.safetensors.0123456789ab.tmp", ".network-snapshot-000008.json.a1b2c3d4e5f6.tmp",
             "checkpoints/last.ckpt.tmp-4242", "checkpoints/.last.json.00aa11bb22cc.tmp", "metrics.jsonl.tmp-7",
             "samples/.fakes000008.png.deadbeef0000.tmp"]
    kept = ["notes.tmp", "network-snapshot-000008.safetensors", "checkpoints/last.ckpt", ".hidden.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    removed = clean_stale_temporaries(str(tmp_path))
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in removed) == sorted(stale)
    assert all((tmp_path / n).exists() for n in kept)


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_tar_member_declaring_1_tib_is_refused_keeping_the_sample_before():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _member(tar, "00000000.png", b"png0")
        _member(tar, "00000000.cls", b"3")
        _member(tar, "00000001.png", b"x" * 600)
    raw = bytearray(buf.getvalue())
    off = 512 * 4  # third member's header: after two headers with one data block each
    assert raw[off:off + 12] == b"00000001.png"
    hdr = raw[off:off + 512]
    hdr[124:136] = b"\x80" + (1 << 40).to_bytes(11, "big")  # GNU base-256 size field: 1 TiB
    hdr[148:156] = b" " * 8
    hdr[148:156] = f"{sum(hdr):06o}\0 ".encode()
    raw[off:off + 512] = hdr
    got = []
    with pytest.raises(TarFormatError) as err:
        for sample in iter_tar_samples(io.BytesIO(bytes(raw))):
            got.append(sample)
    assert got == [{"__key__": "00000000", "png": b"png0", "cls": b"3"}]
    assert "1099511627776" in str(err.value) and "00000001.png" in str(err.value)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
def test_damaged_checkpoint_falls_back_and_unresumable_dir_is_refused(shards, tmp_path):
    from sgtrain.training.run import train

    run_dir = tmp_path / "run"
    base = [*TINY, f"dataset.path={shards}", f"run.dir={run_dir}", "train.snap_kimg=0.008", "train.keep_ckpts=3"]
    out = train(compose([*base, "train.kimg=0.016"]))
    assert out["complete"]
    ckdir = run_dir / "checkpoints"
    ckpts = sorted(ckdir.glob("*.ckpt"))
    assert [p.name for p in ckpts] == ["ckpt-000000.ckpt", "last.ckpt"]  # kimg tags: under 1 kimg, one kept file
    for p in ckpts:  # copies, never hard links of last.ckpt; each with its checksum
        assert p.stat().st_nlink == 1 and verify_checkpoint(str(p)) is None, p
        assert (ckdir / f"{p.name}.sha256").is_file()

    # 4 KB of garbage inside last.ckpt, zip directory intact: the kept ckpt-000000 (same step, 16 images) is used.
    _damage_inside(ckdir / "last.ckpt")
    assert verify_checkpoint(str(ckdir / "ckpt-000000.ckpt")) is None  # damage in place did not reach the copy
    stale = [run_dir / ".network-snapshot-000008.safetensors.0123456789ab.tmp", ckdir / "last.ckpt.tmp-99999"]
    for p in stale:
        p.write_bytes(b"partial")
    with pytest.warns(UserWarning, match=r"last\.ckpt is damaged"):
        out = train(compose([*base, "train.kimg=0.024"]))
    assert out["kimg"] == pytest.approx(0.024) and out["complete"]
    assert not any(p.exists() for p in stale)
    from _tiny_run import read_metrics

    nimg = [r["nimg"] for r in read_metrics(run_dir)]
    assert nimg == sorted(nimg) and nimg[-1] == 24 and nimg[:4] == [4, 8, 12, 16]  # resumed, not restarted

    # Every checkpoint unreadable: refused with the choices, nothing overwritten.
    for p in ckdir.glob("*.ckpt"):
        _damage_inside(p)
    before = {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(ConfigError) as err, pytest.warns(UserWarning):
        train(compose([*base, "train.kimg=0.032"]))
    msg = str(err.value)
    assert "\n" not in msg and "train.resume_from=" in msg and "new run.dir" in msg and "network-snapshot-" in msg
    assert {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before

    # Checkpoints deleted (snapshots and metrics still there): refused the same way.
    for p in ckdir.iterdir():
        p.unlink()
    with pytest.raises(ConfigError, match="no readable checkpoint"):
        train(compose([*base, "train.kimg=0.032"]))
    assert {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_run_killed_while_writing_its_first_checkpoint_starts_over(tmp_path):
    """The tick that saves the first checkpoint writes its metrics line first: a kill during that save leaves one
    line past ``ckpt_kimg`` and no checkpoint, a run that starts over; a second such line means the save was done
    and the checkpoint is gone, which is refused."""
    import json

    from sgtrain.training.run import refuse_unresumable

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"kimg": k}) + "\n" for k in (0.004, 0.008)))
    refuse_unresumable(str(tmp_path), 0.004)  # killed inside the first save: nothing to keep
    (tmp_path / "checkpoints").mkdir()
    refuse_unresumable(str(tmp_path), 0.004)  # an empty checkpoints/ (made just before that save) is no result
    with metrics.open("a") as f:
        f.write(json.dumps({"kimg": 0.012}) + "\n")
    with pytest.raises(ConfigError, match=r"metrics to kimg 0\.012, checkpoints that are damaged or gone"):
        refuse_unresumable(str(tmp_path), 0.004)
