"""Sweep job directories (sgtrain.training.sweep, conf/hydra/default.yaml): named after what varies between the jobs,
and ``run.dir=.../${hydra:job.num}`` honoured under ``-m``. Hydra runs for real (tests/_sweep_app.py), no training;
the slow tests/test_sweep.py trains such sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sgtrain.training.sweep import _static_prefix, sweep_job_dirname, swept_keys

APP = Path(__file__).with_name("_sweep_app.py")


def test_swept_keys_from_sweep_syntax_and_sweeper_params():
    overrides = ["dataset.path=/data/x,y", "loss.r1_gamma=0.5,1", "model=stylegan2,stylegan2_small", "train.kimg=5",
                 "+train.extra=range(3)", "train.seed=choice(1,2)", "train.grid=[2,2]", "hydra/launcher=slurm"]
    assert swept_keys(overrides) == ["dataset.path", "loss.r1_gamma", "model", "train.extra", "train.seed"]
    assert swept_keys(["a=1", "b=[1,2]"]) == []
    assert swept_keys(["a=1"], {"loss.r1_gamma": "1,2", "train.seed": "3"}) == ["loss.r1_gamma"]


def test_sweep_job_dirname_keeps_swept_keys_only():
    job = ["dataset.path=/data/ffhq/shards", "model=stylegan2_small", "loss.r1_gamma=1", "+train.extra=2"]
    assert sweep_job_dirname(job, ["loss.r1_gamma"]) == "loss.r1_gamma=1"
    both = sweep_job_dirname(job, "loss.r1_gamma,train.extra,model")
    assert both == "loss.r1_gamma=1,model=stylegan2_small,train.extra=2"
    assert sweep_job_dirname(job, ["dataset.path"]) == "dataset.path=_data_ffhq_shards"  # still safe
    # nothing swept (a one-job -m): Hydra's override_dirname, made safe as before
    assert sweep_job_dirname(job, [], "dataset.path=/d,model=x") == "dataset.path=_d,model=x"


def test_static_prefix_of_run_dir():
    assert _static_prefix("runs/x/${hydra:job.num}") == "runs/x"
    assert _static_prefix("/abs/runs/${hydra:job.num}/sub") == "/abs/runs"
    assert _static_prefix("runs/x_${hydra:job.num}") == "runs"
    assert _static_prefix("${hydra:job.num}") == "."


def _submitit_jobs(sweep_dir: Path) -> list[dict]:
    """The JOB lines that submitit's job processes logged under <sweep dir>/.submitit/."""
    lines = [line for p in sweep_dir.rglob("*_log.out") for line in p.read_text().splitlines()]
    return sorted((json.loads(line[4:]) for line in lines if line.startswith("JOB ")), key=lambda j: j["num"])


def _sweep(tmp_path: Path, *overrides: str, config: str | None = None) -> list[dict]:
    cmd = [sys.executable, str(APP), "-m", f"dataset.path={tmp_path}/some/data/path", *overrides]
    if config is not None:
        (tmp_path / "conf").mkdir(exist_ok=True)
        (tmp_path / "conf" / "sweep.yaml").write_text(config)
        cmd[2:2] = ["--config-dir", str(tmp_path / "conf"), "--config-name", "sweep"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs = [json.loads(line[4:]) for line in res.stdout.splitlines() if line.startswith("JOB ")]
    return sorted(jobs, key=lambda j: j["num"])


def test_sweep_dirs_named_after_swept_keys(tmp_path):
    jobs = _sweep(tmp_path, "model=stylegan2_small", f"run.dir={tmp_path}/gamma", "train.kimg=5",
                  "loss.r1_gamma=0.5,1")  # fmt: skip
    assert [Path(j["output_dir"]) for j in jobs] == [tmp_path / "gamma" / "loss.r1_gamma=0.5",
                                                     tmp_path / "gamma" / "loss.r1_gamma=1"]
    assert [j["gamma"] for j in jobs] == [0.5, 1.0]
    assert (tmp_path / "gamma" / "multirun.yaml").is_file()
    # two keys swept: both in the name, every combination its own directory
    jobs = _sweep(tmp_path, f"run.dir={tmp_path}/grid", "loss.r1_gamma=1,2", "model=stylegan2,stylegan2_small")
    names = sorted(Path(j["output_dir"]).name for j in jobs)
    assert names == ["loss.r1_gamma=1,model=stylegan2", "loss.r1_gamma=1,model=stylegan2_small",
                     "loss.r1_gamma=2,model=stylegan2", "loss.r1_gamma=2,model=stylegan2_small"]


def test_run_dir_with_hydra_job_num_under_multirun(tmp_path):
    jobs = _sweep(tmp_path, "run.dir=runs/x/${hydra:job.num}", "loss.r1_gamma=1,2")
    assert [j["output_dir"] for j in jobs] == [str(tmp_path / "runs/x/0"), str(tmp_path / "runs/x/1")]
    assert [j["run_dir"] for j in jobs] == ["runs/x/0", "runs/x/1"] and [j["gamma"] for j in jobs] == [1.0, 2.0]
    assert (tmp_path / "runs/x/multirun.yaml").is_file()


def test_sweeper_params_in_a_config_file(tmp_path):
    config = "defaults:\n  - train\n  - _self_\nhydra:\n  sweeper:\n    params:\n      loss.r1_gamma: 3,4\n"
    jobs = _sweep(tmp_path, f"run.dir={tmp_path}/p", config=config)
    assert [Path(j["output_dir"]).name for j in jobs] == ["loss.r1_gamma=3", "loss.r1_gamma=4"]


def test_submitit_jobs_in_their_own_processes_get_the_same_names(tmp_path):
    """Under the submitit launcher each job resolves its directory in a process of its own, from the pickled config
    of the sweep's main process (the SLURM launcher works the same way; tests/test_slurm.py runs it on SLURM)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[dev]' (or '.[slurm]')")
    _sweep(tmp_path, "hydra/launcher=submitit_local", f"run.dir={tmp_path}/s", "loss.r1_gamma=1,2")
    jobs = _submitit_jobs(tmp_path / "s")
    assert [Path(j["output_dir"]).name for j in jobs] == ["loss.r1_gamma=1", "loss.r1_gamma=2"]
    _sweep(tmp_path, "hydra/launcher=submitit_local", "run.dir=n/${hydra:job.num}", "loss.r1_gamma=1,2")
    jobs = _submitit_jobs(tmp_path / "n")
    assert [j["output_dir"] for j in jobs] == [str(tmp_path / "n/0"), str(tmp_path / "n/1")]


@pytest.mark.parametrize("extra", [[], ["train.kimg=5"]])
def test_multirun_without_swept_key_keeps_override_names(tmp_path, extra):
    jobs = _sweep(tmp_path, f"run.dir={tmp_path}/one", *extra)
    assert len(jobs) == 1
    want = ",".join(sorted([f"dataset.path={tmp_path}/some/data/path".replace("/", "_"), *extra]))
    assert Path(jobs[0]["output_dir"]).name == want
