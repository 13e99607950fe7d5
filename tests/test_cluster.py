"""Fast tests of sgtrain.training.cluster: SLURM parsing, sweep env cleanup, RNG, signal -> checkpoint -> resume."""

from __future__ import annotations

import os
import random
import signal
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from sgtrain.training import cluster

# ----------------------------------------------------------------------------------------------------------------------
# SLURM environment


def test_slurm_info_parses_job_array_and_restart():
    env = {
        "SLURM_JOB_ID": "1234",
        "SLURM_ARRAY_JOB_ID": "1200",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_RESTART_COUNT": "2",
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NAME": "gan",
    }
    info = cluster.slurm_info(env)
    assert info is not None
    assert (info.procid, info.ntasks, info.localid, info.nodeid, info.nnodes) == (5, 8, 1, 1, 2)
    assert info.restart_count == 2
    assert info.requeue_id == "1200_3"
    plain = cluster.slurm_info({"SLURM_JOB_ID": "77"})
    assert plain is not None and plain.requeue_id == "77" and plain.restart_count == 0 and plain.ntasks == 1
    assert cluster.slurm_info({}) is None


def test_env_global_rank():
    assert cluster.env_global_rank({}) == 0
    assert cluster.env_global_rank({"RANK": "3", "SLURM_PROCID": "1"}) == 3
    assert cluster.env_global_rank({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "2", "SLURM_PROCID": "1"}) == 1
    assert (
        cluster.env_global_rank({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "LOCAL_RANK": "1"}) == 1
    )
    assert cluster.env_global_rank({"LOCAL_RANK": "0", "NODE_RANK": "1"}) == 1


def test_cluster_plugins_turns_off_lightning_auto_requeue():
    from lightning.fabric.plugins.environments import SLURMEnvironment

    assert cluster.cluster_plugins({}) == []
    assert cluster.cluster_plugins({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "bash"}) == []
    plugins = cluster.cluster_plugins({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "train"})
    assert len(plugins) == 1 and isinstance(plugins[0], SLURMEnvironment)
    assert plugins[0].auto_requeue is False


def test_requeue_outside_slurm_is_refused():
    assert cluster.requeue_slurm_job(info=None) is False or "SLURM_JOB_ID" in os.environ


# ----------------------------------------------------------------------------------------------------------------------
# Sweep job directories


def test_job_dirname_is_safe_stable_and_bounded():
    assert cluster.job_dirname("train.gamma=0.5") == "train.gamma=0.5"
    assert cluster.job_dirname("dataset.path=/data/x y,train.gamma=1") == "dataset.path=_data_x_y,train.gamma=1"
    assert cluster.job_dirname("") == "default"
    many = ",".join(f"model.key{i}=/some/long/path/{i}" for i in range(30))
    a, b = cluster.job_dirname(many), cluster.job_dirname(many + ",train.gamma=2")
    assert len(a) <= 120 and len(b) <= 120 and a != b and "/" not in a
    assert a == cluster.job_dirname(many)


def test_job_dirname_resolver_in_hydra_config():
    from omegaconf import OmegaConf

    cluster.register_resolvers()
    cluster.register_resolvers()  # idempotent
    cfg = OmegaConf.create({"o": "dataset.path=/x,train.gamma=1", "d": "${sgtrain_job_dirname:${o}}"})
    assert cfg.d == "dataset.path=_x,train.gamma=1"


# ----------------------------------------------------------------------------------------------------------------------
# Local sweeps with DDP


def test_ddp_job_scope_restores_environment(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_PORT", "1234")
    with cluster.ddp_job_scope():
        os.environ["LOCAL_RANK"] = "0"
        os.environ["MASTER_PORT"] = "999"
    assert "LOCAL_RANK" not in os.environ and os.environ["MASTER_PORT"] == "1234"


# ----------------------------------------------------------------------------------------------------------------------
# RNG


def _draw():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])


def test_capture_restore_rng_roundtrip():
    torch.manual_seed(1)
    state = cluster.capture_rng_state()
    a = _draw()
    cluster.restore_rng_state(state)
    assert _draw() == a
    import io  # states must survive torch.save / torch.load

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    cluster.restore_rng_state(torch.load(buf, weights_only=True))
    assert _draw() == a


def test_gather_without_process_group_is_local():
    assert cluster.gather_objects({"pl_mean": 0.5}) == [{"pl_mean": 0.5}]
    states = cluster.gather_rng_states()
    assert len(states) == 1 and torch.equal(states[0]["torch"], torch.get_rng_state())


def test_step_seed_distinct_and_seed_all_reproducible():
    seeds = {cluster.step_seed(0, r, s) for r in range(4) for s in range(50)}
    assert len(seeds) == 200 and all(0 <= x < 2**63 for x in seeds)
    cluster.seed_all(cluster.step_seed(3, 1, 7))
    a = _draw()
    cluster.seed_all(cluster.step_seed(3, 1, 7))
    assert _draw() == a


# ----------------------------------------------------------------------------------------------------------------------
# Signal -> checkpoint at a step boundary -> exact resume (real Lightning trainer, tiny module)


class _NoisyModule(pl.LightningModule):
    """Manual optimization; every step draws random numbers, like a GAN step draws latents."""

    def __init__(self, signal_at: int | None = None, signum: int = signal.SIGUSR1):
        super().__init__()
        self.automatic_optimization = False
        self.lin = torch.nn.Linear(4, 1)
        self.signal_at = signal_at
        self.signum = signum
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        z = torch.randn(8, 4)
        loss = (self.lin(z + batch[0]) ** 2).mean() + float(np.random.rand()) * 0 + random.random() * 0
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.losses.append(float(loss.detach()))
        if self.signal_at is not None and len(self.losses) == self.signal_at:
            os.kill(os.getpid(), self.signum)

    def configure_optimizers(self):
        return torch.optim.Adam(self.lin.parameters(), lr=1e-2)

    # RNG states through the checkpoint, restored just before the first step after a resume (as GANModule does);
    # Lightning loads the checkpoint with torch.load(weights_only=True), which the saved states must survive.
    def on_save_checkpoint(self, checkpoint):
        checkpoint["rng"] = cluster.capture_rng_state()

    def on_load_checkpoint(self, checkpoint):
        self._pending_rng = checkpoint["rng"]

    def on_train_batch_start(self, batch, batch_idx):
        if getattr(self, "_pending_rng", None) is not None:
            cluster.restore_rng_state(self._pending_rng)
            self._pending_rng = None

    def train_dataloader(self):
        # identical rows: this test is about RNG and optimizer state; the data position is the loader's business
        data = torch.full((10, 4), 0.25)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=1, shuffle=False)


def _trainer(tmp_path, callbacks, max_steps=10):
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


@pytest.mark.parametrize("signum,requeue", [(signal.SIGUSR1, True), (signal.SIGTERM, False), (signal.SIGINT, False)])
def test_signal_checkpoints_stops_and_resume_is_exact(tmp_path, monkeypatch, signum, requeue):
    requeues = []
    monkeypatch.setattr(cluster, "requeue_slurm_job", lambda *a, **k: requeues.append(1) or True)
    monkeypatch.setattr(cluster, "slurm_info", lambda *a, **k: SimpleNamespace(requeue_id="1"))
    before = signal.getsignal(signum)

    torch.manual_seed(0)
    ref = _NoisyModule()  # same start for all three: the resumed part must continue the same random streams
    _trainer(tmp_path / "ref", []).fit(ref)

    torch.manual_seed(0)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stopper = cluster.RequeueOnSignal(ckpt)
    m1 = _NoisyModule(signal_at=4, signum=signum)
    _trainer(tmp_path / "run", [stopper]).fit(m1)
    assert stopper.stopped_by_signal and ckpt.is_file()
    assert len(m1.losses) == 4, "stops at the end of the step in which the signal came"
    assert requeues == ([1] if requeue else [])
    assert signal.getsignal(signum) == before, "handlers restored at teardown"

    torch.manual_seed(123)  # a fresh process would start from another RNG state
    m2 = _NoisyModule()
    _trainer(tmp_path / "run", [cluster.RequeueOnSignal(ckpt)]).fit(m2, ckpt_path=str(ckpt))
    assert m1.losses + m2.losses == ref.losses
    for p, q in zip(m2.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_second_sigint_aborts_at_once_without_saving(monkeypatch, tmp_path):
    """Ctrl-C once: flag set, checkpoint at the step's end; Ctrl-C again before that: the process ends at once (130)."""
    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(cluster.os, "_exit", fake_exit)
    stopper = cluster.RequeueOnSignal(tmp_path / "last.ckpt")
    assert signal.SIGINT in stopper.stop_signals
    stopper._handler(signal.SIGINT, None)
    assert stopper.flag == cluster._STOP and exits == []
    with pytest.raises(SystemExit):
        stopper._handler(signal.SIGINT, None)
    assert exits == [128 + signal.SIGINT]
    other = cluster.RequeueOnSignal(tmp_path / "last.ckpt")  # SIGTERM then SIGINT: still one save, no abort
    other._handler(signal.SIGTERM, None)
    other._handler(signal.SIGINT, None)
    assert exits == [128 + signal.SIGINT] and other.signum == signal.SIGTERM
