"""Files sgtrain writes get the permissions a plain open() gives under the user's umask (not mkstemp's 0600):
network snapshots and converted files, checkpoints, sample grids, dataset cards."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from sgtrain.cli.convert import main as convert_main
from sgtrain.data.card import DatasetCard
from sgtrain.io import save_network
from sgtrain.io.atomic import atomic_write
from sgtrain.models.stylegan2 import Generator


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _tiny_G() -> Generator:
    torch.manual_seed(0)
    return Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=1, mapping_kwargs=dict(num_layers=1),
                     channel_base=16, channel_max=4, num_fp16_res=0)


def test_snapshot_and_converted_files_follow_umask(tmp_path, umask):
    want = 0o666 & ~umask
    st, js = save_network(tmp_path / "network-snapshot-000000", _tiny_G())
    assert (_mode(st), _mode(js)) == (want, want), (oct(_mode(st)), oct(_mode(js)), oct(want))
    assert convert_main([str(st), str(tmp_path / "converted")]) == 0
    for suffix in (".safetensors", ".json"):
        assert _mode(tmp_path / f"converted{suffix}") == want
    # a rewrite of an existing file too, and no temporary file is left behind
    save_network(tmp_path / "network-snapshot-000000", _tiny_G())
    assert _mode(st) == want
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "converted.json", "converted.safetensors", "network-snapshot-000000.json",
        "network-snapshot-000000.safetensors",
    ]  # fmt: skip


def test_atomic_write_keeps_old_file_on_error(tmp_path, umask):
    dest = tmp_path / "x.txt"
    dest.write_text("old")

    def failing(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(dest, failing)
    assert dest.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    atomic_write(dest, lambda tmp: open(tmp, "w").write("new"))
    assert dest.read_text() == "new" and _mode(dest) == 0o666 & ~umask


def test_training_files_follow_umask(tmp_path, umask):
    from sgtrain.training.callbacks import AtomicCheckpointIO, save_image_grid

    want = 0o666 & ~umask
    AtomicCheckpointIO().save_checkpoint({"a": torch.zeros(2)}, tmp_path / "checkpoints" / "last.ckpt")
    save_image_grid(np.zeros([4, 3, 4, 4], np.float32), str(tmp_path / "fakes.png"), (2, 2))
    DatasetCard(name="d", count=1, resolution=4, channels=3).save(tmp_path)
    for p in ("checkpoints/last.ckpt", "fakes.png", "dataset.json"):
        assert _mode(tmp_path / p) == want, p
