"""Files written before the family folders (tests/fixtures/format_v1) still open, render the same and resume."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_run import env_for_tests, make_shards, read_metrics, train_cmd

from sgtrain.io import load_network

FIXTURES = Path(__file__).parent / "fixtures" / "format_v1"
FAMILIES = ["progan", "stylegan", "dcgan", "stylegan2", "stylegan3_t"]


def _render(G: torch.nn.Module, z: np.ndarray) -> np.ndarray:
    G = G.eval()
    with torch.no_grad():
        return G(torch.from_numpy(z), torch.zeros(len(z), G.c_dim), noise_mode="const").numpy()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["network-snapshot.json", "network-snapshot.safetensors", "last.ckpt"])
def test_old_files_open_and_render_the_same(family, name):
    ref = np.load(FIXTURES / family / "images.npz")
    nets = load_network(str(FIXTURES / family / name))
    G = nets["G_ema"]
    if name != "last.ckpt":  # the snapshot's images (the checkpoint is 0.008 kimg further on)
        np.testing.assert_allclose(_render(G, ref["z"]), ref["img"], atol=1e-4, rtol=0)
    else:
        assert np.isfinite(_render(G, ref["z"])).all()
    assert nets.get("D") is not None


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("fmt1"), n=16, res=16)


def _resume(family: str, shards: Path, run_dir: Path) -> list[dict]:
    src = FIXTURES / family
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(src / "last.ckpt", run_dir / "checkpoints" / "last.ckpt")
    shutil.copy(src / "last.json", run_dir / "checkpoints" / "last.json")
    overrides = [o for o in json.loads((src / "run.json").read_text())["overrides"] if not o.startswith("train.kimg=")]
    cmd = [*train_cmd(), *overrides, f"dataset.path={shards}", f"run.dir={run_dir}", "train.kimg=0.024"]
    r = subprocess.run(cmd, env=env_for_tests(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return read_metrics(run_dir)


@pytest.mark.parametrize("family", [pytest.param(f, marks=[] if f == "stylegan2" else [pytest.mark.slow])
                                    for f in FAMILIES])
def test_old_checkpoint_resumes(family, shards, tmp_path):
    rows = _resume(family, shards, tmp_path / "run")
    kimgs = [round(r["kimg"], 3) for r in rows]
    assert kimgs and kimgs[0] > 0.016 and kimgs[-1] == pytest.approx(0.024), kimgs


def test_a_class_that_moved_is_found_through_its_family(tmp_path):
    """Portable files record the family beside the class path: a class moved since the file was written is found in
    its family package (which exports its networks)."""
    for suffix in (".json", ".safetensors"):
        shutil.copy(FIXTURES / "dcgan" / f"network-snapshot{suffix}", tmp_path / f"net{suffix}")
    header = json.loads((tmp_path / "net.json").read_text())
    for spec in header["networks"].values():
        spec["class"] = spec["class"].replace("sgtrain.models.dcgan.", "sgtrain.models.dcgan.moved_away.")
        spec["family"] = "dcgan"
    (tmp_path / "net.json").write_text(json.dumps(header))
    ref = np.load(FIXTURES / "dcgan" / "images.npz")
    np.testing.assert_allclose(_render(load_network(str(tmp_path / "net.json"))["G_ema"], ref["z"]), ref["img"],
                               atol=1e-4, rtol=0)
    for spec in header["networks"].values():
        spec.pop("family")
    (tmp_path / "net.json").write_text(json.dumps(header))
    with pytest.raises(Exception, match="does not exist"):
        load_network(str(tmp_path / "net.json"))
