"""A family outside the package: a copy of DCGAN under another module name, registered by its yaml alone.

As a researcher would: the networks copied into a package ``mygan`` on PYTHONPATH, ``conf/model/mygan.yaml`` a copy
of dcgan.yaml pointing its ``_target_``s at it, found through ``hydra.searchpath``. It trains, resumes, writes
snapshots, generates from its run and converts its snapshot with no file of sgtrain edited.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny_run import TINY, env_for_tests, make_shards, read_metrics, train_cmd

import sgtrain

SGTRAIN = Path(sgtrain.__file__).parent
CONF = Path(next(iter(__import__("sgtrain.conf", fromlist=["x"]).__path__)))


def make_family(root: Path) -> tuple[Path, Path]:
    """``root/mygan`` (package: DCGAN's networks and loss under new module names, and a descriptor) and
    ``root/conf/model/mygan.yaml``; returns (the PYTHONPATH entry, the search-path folder)."""
    pkg = root / "src" / "mygan"
    pkg.mkdir(parents=True)
    (pkg / "networks.py").write_text((SGTRAIN / "models" / "dcgan" / "networks.py").read_text())
    (pkg / "loss.py").write_text((SGTRAIN / "models" / "dcgan" / "loss.py").read_text())
    (pkg / "__init__.py").write_text(
        "from sgtrain.models.family import Family\n"
        "FAMILY = Family(name='mygan', display_name='MyGAN', package=__name__)\n"
    )
    yaml = (CONF / "model" / "dcgan.yaml").read_text()
    yaml = yaml.replace("sgtrain.models.dcgan.", "mygan.").replace("name: dcgan", "name: mygan")
    assert "mygan.networks.Generator" in yaml and "mygan.loss.LogisticLoss" in yaml
    (root / "conf" / "model").mkdir(parents=True)
    (root / "conf" / "model" / "mygan.yaml").write_text(yaml)
    return root / "src", root / "conf"


def _env(src: Path, trust: bool) -> dict[str, str]:
    env = env_for_tests()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
    env.pop("SGTRAIN_FAMILIES", None)
    if trust:
        env["SGTRAIN_FAMILIES"] = "mygan"
    return env


def _console(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", f"sgtrain.cli.{name.split('-')[1]}"]


@pytest.mark.slow
def test_family_outside_the_package_trains_resumes_generates_converts(tmp_path):
    src, conf = make_family(tmp_path)
    shards = make_shards(tmp_path, n=16, res=16)
    run = tmp_path / "run"
    tiny = [a for a in TINY if not a.startswith("model")]
    args = [*train_cmd(), *tiny, "model=mygan", "model.resolution=16", "model.G.ngf=8", "model.D.ndf=8",
            f"hydra.searchpath=[file://{conf}]", f"dataset.path={shards}", f"run.dir={run}", "train.snap_kimg=0.008"]
    r = subprocess.run([*args, "train.kimg=0.008"], env=_env(src, False), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    header = json.loads(sorted(run.glob("network-snapshot-*.json"))[-1].read_text())
    assert header["networks"]["G_ema"]["class"] == "mygan.networks.Generator"
    # resume: the rerun continues from kimg 0.008
    r = subprocess.run([*args, "train.kimg=0.016"], env=_env(src, False), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    kimgs = [round(row["kimg"], 3) for row in read_metrics(run)]
    assert kimgs == [0.004, 0.008, 0.012, 0.016], kimgs
    # a file alone never makes sgtrain import a package: without the user's word the tools refuse, naming the fix
    out = tmp_path / "gen"
    r = subprocess.run([*_console("sgtrain-generate"), "--network", str(run), "--seeds", "0-1", "--outdir", str(out)],
                       env=_env(src, False), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "SGTRAIN_FAMILIES=mygan" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([*_console("sgtrain-generate"), "--network", str(run), "--seeds", "0-1", "--outdir", str(out)],
                       env=_env(src, True), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert len(list(out.glob("*.png"))) == 2
    conv = tmp_path / "converted"
    r = subprocess.run([*_console("sgtrain-convert"), str(run), str(conv)], env=_env(src, True), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert json.loads(conv.with_suffix(".json").read_text())["networks"]["D"]["class"] == "mygan.networks.Discriminator"
    # the descriptor answers for it in the latent tools (z only: the W tools refuse with the family's name)
    code = ("import sys; from sgtrain.io import load_network; from sgtrain.latent.studio import family_name;"
            f"G = load_network({str(conv) + '.json'!r})['G_ema']; print(family_name(G))")
    r = subprocess.run([sys.executable, "-c", code], env=_env(src, True), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "MyGAN", r.stderr[-2000:]


def test_untrusted_class_path_in_a_file_imports_nothing(tmp_path, monkeypatch):
    """A portable file naming a module outside sgtrain.models and the trusted packages is refused before any import."""
    from sgtrain.io.errors import UnsupportedNetworkError
    from sgtrain.io.portable import build_module

    monkeypatch.delenv("SGTRAIN_FAMILIES", raising=False)
    for name in ("antigravity.Generator", "os.system", "sgtrain.training.run.train", "mygan_absent.networks.G",
                 "__import__('os').x"):
        before = set(sys.modules)
        with pytest.raises(UnsupportedNetworkError, match=re.escape(name.split(".")[0]) if "(" not in name else "not"):
            build_module(name, {}, "G_ema")
        assert "antigravity" not in set(sys.modules) - before
