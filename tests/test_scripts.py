"""The scripts under scripts/ cannot rot unseen: each answers --help; the benchmarks build what sgtrain-train builds
and run on tiny CPU settings (slow); scripts/gpu_session.sh runs its CPU dry run (slow)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("*.py"))
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
#: the acceptance setting of issue 25 (tiny networks, 2 timed iterations)
TINY = ["--device", "cpu", "--threads", "1", "--resolution", "32", "--channel-base", "1024", "--channel-max", "64",
        "--map-layers", "2", "--batch", "8", "--iters", "2", "--warmup", "1", "--repeats", "1"]


def _run(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=kw.pop("env", ENV), capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_every_script_is_listed():
    assert {"bench_train.py", "param_count.py", "bench_gradfix.py", "bench_data.py", "bench_loader.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_answers_help(script):
    res = _run([f"scripts/{script}", "--help"], timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("usage:"), res.stdout[:300]
    assert len(res.stdout) > 150


def test_gpu_session_answers_help():
    res = subprocess.run(["bash", "scripts/gpu_session.sh", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    assert "--dry-run" in res.stdout and "session.json" in res.stdout


def test_bench_train_names_a_misspelt_key():
    res = _run(["scripts/bench_train.py", *TINY, "loss.r1_gama=2"], timeout=120)
    assert res.returncode != 0
    assert "loss.r1_gama" in res.stderr and "loss.r1_gamma" in res.stderr, res.stderr[-1000:]
    assert "img/s" not in res.stdout


def test_bench_train_refuses_a_flag_the_family_has_no_key_for():
    res = _run(["scripts/bench_train.py", *TINY, "model=dcgan"], timeout=120)
    assert res.returncode != 0
    assert "--channel-base" in res.stderr and "model=dcgan" in res.stderr and "model.channel_base" in res.stderr


def _bench_train():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_train
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return bench_train


def test_bench_train_flags_become_the_familys_keys():
    import tempfile

    bench_train = _bench_train()
    with tempfile.TemporaryDirectory() as tmp:
        bench_train.synthetic_dataset(tmp, 32)
        args = bench_train.parse_args([*TINY, "--model", "stylegan", "--gamma", "3", "model.D.mbstd_group_size=2"])
        cfg, overrides = bench_train.compose_config(args, tmp)
        assert "model.fmap_base=1024" in overrides and "model.mapping_layers=2" in overrides
        assert cfg.model.G.fmap_base == 1024 and cfg.model.G.mapping_layers == 2 and cfg.loss.r1_gamma == 3
        assert cfg.model.G.resolution == 32 and cfg.train.batch == 8


def test_bench_train_checks_the_resolution_against_the_data(tmp_path):
    bench_train = _bench_train()
    bench_train.synthetic_dataset(str(tmp_path), 32)
    args = bench_train.parse_args(["experiment=paper256", "--batch", "64", "model.resolution=256"])
    with pytest.raises(SystemExit, match="model.resolution=256"):
        bench_train.compose_config(args, str(tmp_path))


def _img_s(out: str) -> float:
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"([\d.]+) img/s", last)
    assert m, out[-1500:]
    return float(m.group(1))


@pytest.mark.slow
@pytest.mark.parametrize("family", [[], ["model=stylegan3_t"], ["model=stylegan"], ["--model", "stylegan2_small"]])
def test_bench_train_runs_any_family(family, tmp_path):
    res = _run(["scripts/bench_train.py", *TINY, *family, "--json", str(tmp_path / "r.json")], timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _img_s(res.stdout) > 0
    assert "note" not in res.stdout.lower() and "fallback" not in res.stdout.lower()
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["img_s"] > 0 and r["flops_per_img"] > 1e6 and r["resolution"] == 32
    if family:
        assert r["model"] == family[-1].split("=")[-1]
    if family == ["model=stylegan"]:  # timed where the progressive schedule reaches 32x32
        assert "from kimg 0 " not in res.stdout and "Dboth/1" in res.stdout


@pytest.mark.slow
def test_param_count_composes_the_presets():
    res = _run(["scripts/param_count.py"], timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    assert res.stdout.count("match") == 2 and "MISMATCH" not in res.stdout
    res = _run(["scripts/param_count.py", "model=stylegan3_t", "--resolution", "32", "model.channel_base=1024"],
               timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"G [\d.]+M .* D [\d.]+M", res.stdout)


@pytest.mark.slow
def test_bench_gradfix_runs_tiny():
    res = _run(["scripts/bench_gradfix.py", "--device", "cpu", "--threads", "1", "--resolution", "16",
                "--channel-base", "256", "--channel-max", "16", "--z-dim", "16", "--batch", "4", "--iters", "1",
                "--warmup", "1", "--repeats", "1", "model.map_layers=1", "model.mbstd_group_size=2"], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(re.findall(r"^(Greg|Dreg) +(torch|gradfix|gradfix\+nwg) +wall", res.stdout, re.M)) == 6, res.stdout


@pytest.mark.slow
def test_bench_data_runs_tiny(tmp_path):
    import numpy as np
    from PIL import Image

    from sgtrain.data.pack import pack

    (tmp_path / "png").mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, [16, 16, 3], dtype=np.uint8)).save(tmp_path / "png" / f"{i}.png")
    pack(str(tmp_path / "png"), str(tmp_path / "shards"), resolution=16, workers=0, progress=False)
    res = _run(["scripts/bench_data.py", "--data", str(tmp_path / "shards"), "--workers", "0", "--batch", "4",
                "--seconds", "1", "--warmup", "1"], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"[\d.]+ img/s", res.stdout), res.stdout


@pytest.mark.slow
def test_gpu_session_dry_run(tmp_path):
    """scripts/gpu_session.sh --dry-run: every step in order on the CPU at tiny sizes, one JSON with every figure."""
    env = dict(ENV, OUT=str(tmp_path / "out"), LOGS=str(tmp_path / "logs"), PY=sys.executable, BUDGET="1500")
    res = subprocess.run(["bash", "scripts/gpu_session.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    steps = json.loads((tmp_path / "out" / "session.json").read_text())["steps"]
    names = [s["step"] for s in steps]
    assert names == ["machine", "build-sgtrain", "data", "gpu-tests", "sg2-step", "sg2-train", "nv-sg2-step",
                     "nv-sg2-train", "sg3t-step", "nv-sg3t-train", "sg2-fp32", "sg2-bf16", "sg2-channels-last",
                     "sg2-tf32", "sg2-compile"], names
    by = {s["step"]: s for s in steps}
    for name in ("build-sgtrain", "data", "gpu-tests", "sg2-step", "sg2-train", "sg3t-step", "sg2-fp32", "sg2-bf16",
                 "sg2-channels-last", "sg2-tf32", "sg2-compile"):
        assert by[name]["rc"] == 0, (name, by[name], res.stdout[-3000:])
    for name in ("sg2-step", "sg3t-step", "sg2-fp32", "sg2-compile"):
        assert by[name]["img_s"] > 0, by[name]
    assert by["sg2-step"]["flops_per_img"] > 0 and by["sg2-step"]["model"] == "stylegan2_small"
    assert by["sg3t-step"]["model"] == "stylegan3_t"
    assert by["sg2-train"]["img_s"] > 0 and len(by["sg2-train"]["ticks"]) >= 2, by["sg2-train"]
    assert by["nv-sg2-train"]["skipped"] == "dry run"
    assert (tmp_path / "out" / "logs.tar").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / ".devref" / "stylegan3" / "training" / "networks_stylegan2.py").is_file(),
                    reason="needs NVlabs' stylegan3 in .devref/stylegan3 (fetch github:NVlabs/stylegan3)")
def test_bench_nvlabs_step_runs_tiny():
    res = _run(["scripts/bench_nvlabs_step.py", "--nvlabs", ".devref/stylegan3", *TINY], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _img_s(res.stdout) > 0


def _doc_commands(path: Path) -> list[str]:
    """The commands of the ```bash blocks of a doc page, continuation lines joined."""
    text = path.read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def test_performance_doc_commands_name_scripts_and_flags_that_exist():
    """Every `python scripts/X.py --flag ...` in docs/performance.md names a script of the repository and flags its
    --help lists; no command runs a script that is neither in the repository nor NVlabs' (under .devref/)."""
    cmds = _doc_commands(REPO / "docs" / "performance.md")
    assert any("scripts/bench_train.py" in c for c in cmds)
    helps: dict[str, str] = {}
    bad = []
    for cmd in cmds:
        for script, rest in re.findall(r"python3? (\S+\.py)((?: +[^|;&]*)?)", cmd):
            if script.startswith(".devref/"):  # NVlabs' own code, fetched there (the page says how)
                continue
            if not script.startswith("scripts/") or not (REPO / script).is_file():
                bad.append(f"{script}: not a script of the repository ({cmd})")
                continue
            if script not in helps:
                helps[script] = _run([script, "--help"], timeout=120).stdout
            for flag in re.findall(r"(?<!\S)(--[\w-]+)", rest.replace("$A", "")):
                if flag not in helps[script]:
                    bad.append(f"{script} {flag}: not in its --help ({cmd})")
    assert not bad, "\n".join(bad)


def test_bench_loader_runs_tiny(tmp_path):
    out = tmp_path / "loader.json"
    res = _run(["scripts/bench_loader.py", "--resolutions", "16,256", "--images", "2", "--seconds", "0.05",
                "--rounds", "1", "--json", str(out)], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "load average" in res.stdout and re.search(r"256x256: 405 img/s .* needs [\d.]+ cores", res.stdout)
    got = json.loads(out.read_text())
    from sgtrain.data.decode import available_decoders

    decoders = {"pillow"} | ({"fast"} if available_decoders()["pyspng"] else set())
    for res_, what, storage in [(16, "decode", "png"), (256, "decode", "jpeg"), (256, "loader", "png")]:
        rows = [r for r in got["results"] if (r["resolution"], r["what"], r["storage"]) == (res_, what, storage)]
        assert {r["decoder"] for r in rows} == decoders and all(r["img_per_s_per_core"] > 0 for r in rows)
    assert got["cores"][0]["resolution"] == 256 and got["cores"][0]["cores"] > 0
    for res_, what in [(16, "decode"), (256, "decode"), (16, "loader"), (256, "loader")]:  # --storage raw's rows
        rows = [r for r in got["results"] if (r["resolution"], r["what"], r["storage"]) == (res_, what, "raw")]
        assert [r["decoder"] for r in rows] == ["none"] and rows[0]["img_per_s_per_core"] > 0
        assert rows[0]["mb_per_image"] == pytest.approx((res_ * res_ * 3 + 128) / 1e6)
    assert [c["storage"] for c in got["cores"]] == ["png", "raw"] and got["cores"][1]["cores"] > 0
    assert re.search(r"\n *256 +loader +raw +none +[\d.]+ ", res.stdout)
    assert re.search(r"256x256: 405 img/s .* needs [\d.]+ cores .*\(raw, none,", res.stdout)


@pytest.mark.slow
def test_equal_time_trains_side_by_side_and_scores_each(tmp_path):
    """scripts/equal_time.py (docs/performance.md's R3GAN-beside-StyleGAN figures) on tiny runs of two families."""
    sys.path.insert(0, str(REPO / "tests"))
    from _tiny_run import TINY, TINY_FAMILIES, make_shards

    shards = make_shards(tmp_path, n=32, res=16)
    common = " ".join(a for a in TINY if not a.startswith(("model", "logger", "trainer.progress", "run.print",
                                                            "train.swd", "dataset.num_workers", "trainer.threads")))
    runs = [f"sg2={' '.join(TINY_FAMILIES['stylegan2'])} {common}", f"r3={' '.join(TINY_FAMILIES['r3gan'])} {common}"]
    res = _run(["scripts/equal_time.py", "--minutes", "0.75", "--data", str(shards), "--out", str(tmp_path / "out"),
                "--swd-images", "16", "--grid", "2x2", *[a for r in runs for a in ("--run", r)]], timeout=600)
    again = _run(["scripts/equal_time.py", "--score-only", "--data", str(shards), "--out", str(tmp_path / "out"),
                  "--swd-images", "8", "--grid", "1x2", *[a for r in runs for a in ("--run", r)]], timeout=600)
    assert again.returncode == 0 and "| r3 |" in again.stdout, again.stderr[-2000:]
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["name"] for r in summary["runs"]] == ["sg2", "r3"]
    for r in summary["runs"]:
        assert r["kimg"] > 0 and r["swd_x1e3"] > 0 and Path(r["grid"]).is_file()
    assert "| sg2 |" in res.stdout and "| r3 |" in res.stdout


@pytest.mark.slow
def test_bench_threads_runs_tiny(tmp_path):
    """Every policy trains beside a competing busy loop; the table names the threads each used and its s/kimg."""
    sys.path.insert(0, str(REPO / "tests"))
    from _tiny_run import make_shards

    shards = make_shards(tmp_path, n=16, res=16)
    tiny = ["model=stylegan2_small", "model.resolution=16", "model.z_dim=16", "model.w_dim=16",
            "model.channel_base=128", "model.channel_max=16", "model.mbstd_group_size=2", "train.batch=4",
            "train.grid=[2,2]", "dataset.num_workers=1"]
    res = _run(["scripts/bench_threads.py", "--data", str(shards), "--kimg", "0.012", "--tick", "0.004",
                "--threads", "1", "--rounds", "1", "--competitors", "1", "--json", str(tmp_path / "r.json"), *tiny],
               timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "load average before" in res.stdout and "load average after" in res.stdout
    out = json.loads((tmp_path / "r.json").read_text())
    assert set(out["median_sec_per_kimg"]) == {"policy", "torch", "threads=1"}
    assert all(v > 0 for v in out["median_sec_per_kimg"].values())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert out["runs"]["policy"][0]["threads"] == str(max(1, cores - 1))  # one core left to the loader worker
    assert out["runs"]["threads=1"][0]["threads"] == "1"
