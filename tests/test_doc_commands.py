"""Documented commands cannot drift unseen: every command of README.md's guide table and of the docs' ```bash blocks
marked runnable (an HTML comment ``<!-- runnable -->`` on the line before the block) is run in a sandbox (slow: a
few minutes on 2 cores; the collection itself is checked in the fast suite).

The sandbox holds what the commands name: ``SRC`` (64 images), ``~/photos`` (``HOME`` is the sandbox's), ``network.pkl``
(NVlabs' tiny StyleGAN2-ADA fixture) and, for each run directory a command reads (``--network runs/...``) that no
earlier command made, a copy of one tiny trained run. Commands run in order, as written, except:

* ``sgtrain-train``: the config is checked, not trained (``precheck_overrides``, ``compose``, ``validate_config``:
  what runs before training starts); with ``--cfg`` it runs as written. A sweep (``-m``) is checked at each value.
* long runs (``sgtrain-metrics`` over 50k images, ``sgtrain-encoder train``, the ``sgtrain-explore`` server,
  ``sgtrain-ops build``) must answer ``--help``; ``sgtrain-recipe`` runs with ``--dry-run``;
* ``bash scripts/X.sh``: the script exists and parses (``bash -n``): the quickstart and the test suite are long.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tiny_run import TINY, env_for_tests, make_shards, train_cmd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARKER = "<!-- runnable -->"
HELP_ONLY = {"sgtrain-metrics", "sgtrain-explore", "sgtrain-encoder"}
SUBCOMMANDS = {"sgtrain-encoder", "sgtrain-ops", "sgtrain-data", "sgtrain-directions"}


def guide_table_commands(readme: Path = REPO / "README.md") -> list[str]:
    """The commands in the second column of README.md's guide table (each `...` span that starts with a program)."""
    out = []
    text = readme.read_text()
    table = text.split("## Guide", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("task", "---"):
            continue
        out += [s for s in re.findall(r"`([^`]+)`", cells[1]) if re.match(r"(sgtrain-\w+|bash|python) ", s)]
    return out


def runnable_blocks(root: Path = REPO) -> list[tuple[str, list[str]]]:
    """``(file, commands)`` of every ```bash block preceded by the runnable marker in README.md and docs/*.md
    (comments dropped, continuation lines joined)."""
    found = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != MARKER:
                continue
            where = f"{path.name}:{i + 1}"
            assert i + 1 < len(lines) and lines[i + 1].strip() == "```bash", f"{where}: no ```bash after the marker"
            body, j = [], i + 2
            while lines[j].strip() != "```":
                body.append(lines[j])
                j += 1
            cmds = [c.strip() for c in "\n".join(body).replace("\\\n", " ").splitlines()]
            found.append((f"{path.name}:{i + 1}", [c for c in cmds if c and not c.startswith("#")]))
    return found


def test_collection_finds_the_guide_and_the_marked_blocks():
    guide = guide_table_commands()
    assert len(guide) >= 10 and any(c.startswith("sgtrain-generate") for c in guide), guide
    blocks = runnable_blocks()
    assert {name.split(":")[0] for name, _ in blocks} >= {"README.md", "training.md", "latent.md"}, blocks


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    rng = np.random.default_rng(0)
    for folder, n, res in (("SRC", 64, 256), ("home/photos", 32, 64)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img = np.zeros([res, res, 3], np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
            Image.fromarray(img).save(root / folder / f"{i:03d}.png")
    shutil.copy(REPO / "tests" / "fixtures" / "io" / "nvlabs_ada_tiny_uncond.pkl", root / "network.pkl")
    shutil.copytree(REPO / "examples", root / "examples")
    shards = make_shards(root / "tiny", n=16, res=16)
    run = root / "tiny" / "run"
    res = subprocess.run([*train_cmd(), *TINY, f"dataset.path={shards}", f"run.dir={run}", "train.kimg=0.008",
                          "train.snap_kimg=0.008", "logger=none"], env=env_for_tests(), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return root


def _env(root: Path) -> dict[str, str]:
    env = env_for_tests()
    env.update(HOME=str(root / "home"), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", HYDRA_FULL_ERROR="0")
    return env


def _check_train(args: list[str], root: Path, monkeypatch) -> None:
    from sgtrain.training.config import compose, precheck_overrides, validate_config

    monkeypatch.chdir(root)
    sweep = "-m" in args or "--multirun" in args
    args = [a for a in args if a not in ("-m", "--multirun")]
    swept = [a for a in args if sweep and "=" in a and "," in a.split("=", 1)[1] and "[" not in a]
    values = swept[0].split("=", 1)[1].split(",") if swept else [None]
    for v in values:
        one = [a if a not in swept else f"{a.split('=', 1)[0]}={v}" for a in args]
        err = precheck_overrides(one)
        assert err is None, err
        validate_config(compose(one))


def _run_one(cmd: str, root: Path, monkeypatch) -> None:
    home = str(root / "home")
    argv = [os.path.join(home, a[2:]) if a.startswith("~/") else a for a in shlex.split(cmd, comments=True)]
    prog = argv[0]
    if prog == "bash":
        script = REPO / argv[1]
        assert script.is_file(), f"{cmd}: {argv[1]} does not exist"
        res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return
    assert shutil.which(prog, path=str(BIN)), f"{cmd}: no program {prog} (not a console script of the package)"
    if prog == "sgtrain-train" and "--cfg" not in argv:
        _check_train(argv[1:], root, monkeypatch)
        return
    runs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--network"]
    if prog == "sgtrain-recipe":
        from omegaconf import OmegaConf

        runs += [str(v) for v in (OmegaConf.load(root / argv[1]).get("networks") or {}).values()]
    for run in runs:  # a run directory no earlier command wrote: the tiny run stands in for it
        if run.startswith("runs/") and not (root / run).exists():
            shutil.copytree(root / "tiny" / "run", root / run)
    if prog in HELP_ONLY or argv[:2] == ["sgtrain-ops", "build"]:
        argv = argv[:2] + ["--help"] if prog in SUBCOMMANDS else [prog, "--help"]
    elif prog == "sgtrain-recipe":
        argv = [*argv, "--dry-run"]
    res = subprocess.run(argv, cwd=root, env=_env(root), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{cmd}\n{(res.stdout + res.stderr)[-3000:]}"


@pytest.mark.slow
def test_readme_guide_table_commands_run(sandbox, monkeypatch):
    for cmd in guide_table_commands():
        _run_one(cmd, sandbox, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("name, commands", runnable_blocks(), ids=[n for n, _ in runnable_blocks()])
def test_runnable_doc_blocks_run(name, commands, sandbox, monkeypatch):
    for cmd in commands:
        _run_one(cmd, sandbox, monkeypatch)
