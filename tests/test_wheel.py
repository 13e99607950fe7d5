"""The wheel built from the repo works on its own: it holds the Hydra configs (top-level conf/ -> sgtrain/conf) and the
CUDA/C++ sources (top-level ops/ -> sgtrain/ops/csrc), and installed into a fresh virtual environment (no system site
packages: a dependency missing from pyproject.toml fails here) its console scripts pack data, compose a config, train
a few steps and report the ops, from a directory outside the repo.

Slow (about 2 minutes with a warm pip cache: wheel ~10 s, venv + torch ~40 s, the wheel's dependencies ~40 s, the
commands ~40 s); needs the package registry or a pip cache holding sgtrain's dependencies. The durations are printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_run import TINY, env_for_tests

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CSRC_SUFFIXES = (".cu", ".cpp", ".h")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{out[-4000:]}"
    return out


def _source_tree(dst: Path) -> Path:
    """The files a clone would have (tracked, plus new files git does not ignore), copied to ``dst``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                                capture_output=True).stdout.decode().split("\0")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs git to list the repo's files")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


def _clean_env(venv: Path) -> dict[str, str]:
    """No trace of the repo or its virtual environment: PATH starts at the fresh venv's bin."""
    env = env_for_tests()
    for k in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(k, None)
    keep = [p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *keep])
    env["SGTRAIN_OPS_CACHE"] = str(venv.parent / "ops-cache")
    return env


def test_wheel_installs_and_runs_outside_the_repo(tmp_path):
    times: dict[str, float] = {}
    t0 = time.time()

    # 1. the wheel, built from a copy of the source tree (pip's build isolation; the repo is left untouched)
    src = _source_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(dist), "-q"]
    _run(pip_wheel, tmp_path, env_for_tests())
    [wheel] = dist.glob("sgtrain-*.whl")
    times["wheel"] = time.time() - t0

    names = set(zipfile.ZipFile(wheel).namelist())
    confs = {f"sgtrain/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    csrc = {f"sgtrain/ops/csrc/{p.name}" for p in (REPO / "ops").iterdir() if p.suffix in CSRC_SUFFIXES}
    assert "sgtrain/conf/train.yaml" in confs and "sgtrain/ops/csrc/kernels.cu" in csrc
    assert confs <= names, f"configs missing from the wheel: {sorted(confs - names)}"
    assert csrc <= names, f"CUDA/C++ sources missing from the wheel: {sorted(csrc - names)}"
    assert not any(n.startswith(("tests/", "conf/", "ops/")) for n in names), "top-level folders leaked into the wheel"

    # 2. a fresh venv: torch first (as scripts/setup.sh does), then the wheel with its dependencies from the registry
    t1 = time.time()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env_for_tests())
    py = str(venv / "bin" / "python")
    env = _clean_env(venv)
    _run([py, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}"], tmp_path, env)
    times["venv + torch"] = time.time() - t1
    t2 = time.time()
    _run([py, "-m", "pip", "install", "-q", str(wheel)], tmp_path, env)
    _run([py, "-m", "pip", "check"], tmp_path, env)
    times["wheel + dependencies"] = time.time() - t2

    # 3. the console scripts, run from a directory that is not the repo
    t3 = time.time()
    work = tmp_path / "elsewhere"
    work.mkdir()
    site = _run([py, "-c", "import sgtrain, sgtrain.ops.build as b; print(sgtrain.__file__); print(b.CSRC_DIR)"],
                work, env).split()  # fmt: skip
    assert all(str(venv) in p for p in site), f"sgtrain imported from outside the venv: {site}"

    out = _run([str(venv / "bin" / "sgtrain-ops"), "info"], work, env)
    assert f"sources            {site[1]}" in out and "source sha256" in out and "unavailable" not in out
    assert "bias_act" in out and "conv2d_gradfix" in out

    from PIL import Image

    imgs = work / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, [16, 16, 3], dtype=np.uint8)).save(imgs / f"{i:02d}.png")
    shards = work / "shards"
    _run([str(venv / "bin" / "sgtrain-data"), "pack", str(imgs), str(shards), "--resolution", "16", "--workers", "1",
          "--no-progress"], work, env)  # fmt: skip

    train = str(venv / "bin" / "sgtrain-train")
    out = _run([train, "--cfg", "job", "model=progan", f"dataset.path={shards}"], work, env)
    assert "_target_: sgtrain.models.progan.networks.Generator" in out
    run_dir = work / "runs" / "tiny"
    _run([train, *TINY, f"dataset.path={shards}", f"run.dir={run_dir}", "train.kimg=0.008", "trainer=cpu"], work, env)
    assert '"done": true' in (run_dir / "checkpoints" / "last.json").read_text()
    assert (run_dir / "network-snapshot-000000.safetensors").is_file()
    times["commands"] = time.time() - t3

    print("wheel test durations: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
          + f"; total {time.time() - t0:.0f} s")  # fmt: skip
