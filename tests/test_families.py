"""Every family trains through the same seam: model=<family> on a tiny packed dataset, with the progressive schedule
where the family has one, ADA, and quality metrics during training.

The schedule itself (a pure function of kimg) is checked against NVlabs' training_schedule formula written out here.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from _tiny_run import TINY_FAMILIES as FAMILIES
from _tiny_run import make_shards
from PIL import Image

from sgtrain.core.schedule import ProgressiveSchedule, process_reals
from sgtrain.training.config import ConfigError, compose, validate_config

COMMON = [
    "train.tick_kimg=0.004", "train.snap_kimg=1000", "train.swd=false", "train.grid=[2,2]", "logger=none",
    "trainer.progress_bar=false", "dataset.num_workers=0", "dataset.shuffle=16", "run.print_config=false",
    "trainer=cpu", "trainer.threads=1",
]
@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    """32 discs on flat backgrounds, 16x16, packed in 2+ shards (tests/_tiny_run.py)."""
    return str(make_shards(tmp_path_factory.mktemp("families")))


def _rows(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _nvlabs_lod(kimg: float, res_log2: int, init: int, training: float, transition: float) -> float:
    """NVlabs' training_schedule lod, written out (stylegan training/training_loop.py)."""
    phase_dur = training + transition
    phase_idx = int(np.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = res_log2 - np.floor(np.log2(init)) - phase_idx
    if transition > 0:
        lod -= max(phase_kimg - training, 0.0) / transition
    return max(lod, 0.0)


def test_schedule_follows_nvlabs_formula():
    s = ProgressiveSchedule(lod_initial_resolution=8, lod_training_kimg=600, lod_transition_kimg=600,
                            minibatch_dict={4: 512, 8: 256, 16: 128, 32: 64, 64: 32},
                            max_minibatch_per_gpu={64: 8}, G_lrate_dict={64: 0.0015}, lrate_rampup_kimg=100)
    for kimg in np.linspace(0, 7000, 141):
        p = s(int(kimg * 1000), 256, batch=16, G_lr=0.001, D_lr=0.002, world=2)
        lod = _nvlabs_lod(kimg, 8, 8, 600, 600)
        assert p.lod == pytest.approx(lod, abs=1e-12), kimg
        res = 2 ** (8 - int(math.floor(lod)))
        assert p.resolution == res
        mb = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}.get(res, 16)
        mb = min(mb - mb % 2, 16) if res == 64 else mb - mb % 2
        assert p.minibatch == mb
        ramp = min(kimg / 100, 1.0)
        assert p.G_lrate == pytest.approx((0.0015 if res == 64 else 0.001) * ramp)
        assert p.D_lrate == pytest.approx(0.002 * ramp)
    assert s.minibatches(256, 16, 1) == [256, 128, 64, 8, 16, 16]


def test_process_reals_fades_and_downscales_like_nvlabs():
    x = torch.randn([2, 3, 16, 16], dtype=torch.float64)
    assert process_reals(x, 0.0) is x

    def nvlabs(x: torch.Tensor, lod: float) -> torch.Tensor:  # FadeLOD + UpscaleLOD on lod-level data
        k = int(np.floor(lod))
        for _ in range(k):  # the dataset's lod k: 2x2 means, k times
            x = x.reshape(2, 3, x.shape[2] // 2, 2, x.shape[3] // 2, 2).mean([3, 5])
        s = x.shape
        y = x.reshape(2, 3, s[2] // 2, 2, s[3] // 2, 2).mean([3, 5], keepdim=True).expand(-1, -1, -1, 2, -1, 2)
        x = x + (y.reshape(s) - x) * (lod - k)
        return x.repeat_interleave(2**k, 2).repeat_interleave(2**k, 3)

    for lod in (0.25, 1.0, 1.5, 2.75):
        assert torch.allclose(process_reals(x, lod), nvlabs(x, lod), atol=1e-12), lod


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_through_the_seam(shards, tmp_path, family):
    from sgtrain.io import load_network
    from sgtrain.training.run import train

    run_dir = str(tmp_path / family)
    kimg = 0.08 if family in ("progan", "stylegan") else 0.016
    cfg = compose([*FAMILIES[family], *COMMON, f"dataset.path={shards}", f"run.dir={run_dir}", f"train.kimg={kimg}",
                   "train.snap_kimg=0.016"])
    out = train(cfg)
    assert out["complete"]
    rows = _rows(run_dir)
    assert all(np.isfinite(r["Loss/G/loss"]) and np.isfinite(r["Loss/D/loss"]) for r in rows)
    assert [r["tick"] for r in rows] == list(range(len(rows)))  # one line per tick, never repeated
    nets = load_network(run_dir)
    G = nets["G_ema"]
    z = torch.randn([2, G.z_dim])
    img = G(z, torch.zeros([2, G.c_dim]), noise_mode="const")
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    if family in ("progan", "stylegan"):
        lods = [r["lod"] for r in rows]
        assert lods[0] == 2.0 and lods[-1] == 0.0
        assert all(a >= b for a, b in zip(lods, lods[1:])), lods  # never grows back
        assert any(0 < x % 1 for x in lods), "no iteration inside a fade-in"
        mbs = {r["lod"]: r["minibatch"] for r in rows}
        assert mbs[2.0] == 8 and mbs[0.0] == 4  # minibatch per resolution (schedule.minibatch_dict)
        lod_bufs = [float(b) for n, b in G.named_buffers() if n == "lod" or n.endswith(".lod")]
        assert lod_bufs == [0.0]
        assert float(nets["D"].lod) == 0.0


def test_ada_raises_p_and_keeps_it(shards, tmp_path):
    from sgtrain.io import load_network
    from sgtrain.training.run import train

    run_dir = str(tmp_path / "ada")
    cfg = compose([*FAMILIES["stylegan2"], *COMMON, f"dataset.path={shards}", f"run.dir={run_dir}", "train.kimg=0.04",
                   "train.snap_kimg=0.04", "augment=ada", "augment.ada_target=0.0", "augment.ada_interval=1",
                   "augment.ada_kimg=0.1"])
    train(cfg)
    rows = _rows(run_dir)
    ps = [r["augment_p"] for r in rows]
    # target 0: r_t > 0 whenever D scores most reals positive, and p (from 0) moves by 4 / 100 per iteration
    assert ps[-1] > 0 and all(p >= 0 for p in ps), ps
    assert all(abs(round(p / 0.04) * 0.04 - p) < 1e-6 for p in ps), ps
    assert all("ada_r_t" in r for r in rows[1:])
    ck = torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=True)
    assert ck["sgtrain"]["augment_p"] == pytest.approx(ps[-1], abs=1e-6)
    assert float(ck["state_dict"]["augment_pipe.p"]) == pytest.approx(ps[-1], abs=1e-6)
    assert load_network(run_dir)["augment_p"] == pytest.approx(ps[-1], abs=1e-6)


def test_metrics_during_training_and_cached_real_statistics(shards, tmp_path):
    from sgtrain.training.run import train

    detector = os.path.join(os.path.dirname(__file__), "fixtures", "metrics", "tiny_detector.pt")
    cache = tmp_path / "cache"
    args = [*FAMILIES["stylegan2"], *COMMON, f"dataset.path={shards}", "train.kimg=0.016", "train.snap_kimg=0.008",
            "train.metrics=[fid1k_full,kid1k_full]", f"train.metrics_detector={detector}",
            f"train.metrics_cache_dir={cache}"]
    train(compose([*args, f"run.dir={tmp_path / 'a'}"]))
    rows = [r for r in _rows(str(tmp_path / "a")) if "metric/fid1k_full" in r]
    assert [r["kimg"] for r in rows] == [0.008, 0.016]
    assert all(r["metric/fid1k_full_best"] == min(x["metric/fid1k_full"] for x in rows[: i + 1])
               for i, r in enumerate(rows))
    jl = [json.loads(line) for line in open(tmp_path / "a" / "metric-kid1k_full.jsonl")]
    assert len(jl) == 2 and "kid1k_full" in jl[0]["results"]
    cached = sorted(os.listdir(cache))
    assert cached, "real statistics were not cached"
    mtimes = {f: os.path.getmtime(cache / f) for f in cached}
    train(compose([*args, f"run.dir={tmp_path / 'b'}"]))  # another run on the same data reuses them
    assert {f: os.path.getmtime(cache / f) for f in sorted(os.listdir(cache))} == mtimes


def test_metrics_without_feature_file_fail_at_once(shards, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no detector in any default place
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    cfg = compose([*FAMILIES["stylegan2"], f"dataset.path={shards}", "train.metrics=[fid50k_full]",
                   f"train.metrics_cache_dir={tmp_path / 'c'}"])
    with pytest.raises(ConfigError, match=r"inception-2015-12-05\.pkl.*train\.metrics_detector=PATH"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match="unknown metric 'fid50'"):
        validate_config(compose([*FAMILIES["stylegan2"], f"dataset.path={shards}", "train.metrics=[fid50]"]))


def test_schedule_keys_on_a_family_without_one_are_refused(shards):
    cfg = compose([*FAMILIES["dcgan"], f"dataset.path={shards}", "+schedule.lod_training_kimg=5"])
    with pytest.raises(ConfigError, match="trains without a progressive schedule"):
        validate_config(cfg)


# (family, the first D layer Freeze-D keeps, a D layer that trains, an override that changes the networks' size)
FINE_TUNE = {
    "stylegan2": ("b16.fromrgb.weight", "b4.out.weight", "model.channel_max=32"),
    # the quickstart's family; a source grown to full resolution (lod 0), as a finished run is
    "stylegan": ("b16.fromrgb.weight", "b4.dense1.weight", "model.fmap_max=32"),
}


@pytest.mark.parametrize("family", list(FINE_TUNE))
def test_fine_tuning_starts_from_the_source_network(shards, tmp_path, family):
    """train.resume_from with Freeze-D and frozen mapping layers: the first grid shows the source network's images,
    the frozen weights do not move, and a network of another size is refused naming what to change."""
    from sgtrain.io import load_network
    from sgtrain.training.run import train

    frozen, trained, other_size = FINE_TUNE[family]
    base = [*FAMILIES[family], *COMMON, f"dataset.path={shards}", "train.snap_kimg=0.016", "train.kimg=0.016"]
    src = tmp_path / "src"
    grown = ["schedule.lod_initial_resolution=16"] if family == "stylegan" else []
    train(compose([*base, f"run.dir={src}", *grown]))
    tuned = tmp_path / "tuned"
    out = train(compose([*base, f"run.dir={tuned}", f"train.resume_from={src}", "model.freeze_layers=2",
                         "train.freeze_mapping=1", "train.kimg=0.004", "train.seed=0"]))
    assert out["complete"]  # one iteration: the end's grid, also fakes000000.png, is still the kimg 0 grid
    first = np.asarray(Image.open(tuned / "samples" / "fakes000000.png"), dtype=np.int16)
    source = np.asarray(Image.open(src / "samples" / "fakes000000.png"), dtype=np.int16)
    # the same images up to float rounding (convolution paths may differ by one level in 8-bit)
    assert np.abs(first - source).max() <= 2, "kimg 0 grid is not the source network's"
    a, b = load_network(src), load_network(tuned)
    for name, t in a["G"].state_dict().items():
        if name.startswith("mapping.fc0."):
            assert torch.equal(t, b["G"].state_dict()[name]), name
    d_src, d_new = a["D"].state_dict(), b["D"].state_dict()
    assert torch.equal(d_src[frozen], d_new[frozen])  # Freeze-D: first layers fixed
    assert not torch.equal(d_src[trained], d_new[trained])  # the rest trains
    with pytest.raises(ConfigError, match=r"model\.G\.<key>|resolution|channel|fmap"):
        train(compose([*base, f"run.dir={tmp_path / 'bad'}", f"train.resume_from={src}", other_size]))


def test_fine_tuning_a_progressive_family_starts_at_full_resolution(shards):
    """train.resume_from on ProGAN/StyleGAN: the grown network trains at full resolution unless train.resume_kimg
    asks for the growing schedule from that kimg (NVlabs' TF semantics)."""
    from sgtrain.training.run import transfer_learning_settings

    for family in ("progan", "stylegan"):
        cfg = compose([*FAMILIES[family], f"dataset.path={shards}", "train.resume_from=x.pkl"])
        assert cfg.schedule.lod_initial_resolution < 16
        changed = transfer_learning_settings(cfg)
        assert cfg.schedule.lod_initial_resolution == 16 and any("lod_initial_resolution=16" in c for c in changed)
        cfg = compose([*FAMILIES[family], f"dataset.path={shards}", "train.resume_from=x.pkl", "train.resume_kimg=5"])
        before = cfg.schedule.lod_initial_resolution
        transfer_learning_settings(cfg)
        assert cfg.schedule.lod_initial_resolution == before


def test_stylegan_freeze_d_counts_layers_from_the_top():
    """Freeze-D on StyleGAN's D: the first N layers in NVlabs' StyleGAN2 order keep requires_grad off; the file
    keywords stay NVlabs' when it is off."""
    from sgtrain.models.stylegan import Discriminator

    D = Discriminator(num_channels=3, resolution=32, fmap_base=64, fmap_max=16, freeze_layers=4)
    off = {n for n, p in D.named_parameters() if not p.requires_grad}
    assert off == {f"b32.{layer}.{w}" for layer in ("fromrgb", "conv0", "conv1_down") for w in ("weight", "bias")} | {
        "b16.fromrgb.weight", "b16.fromrgb.bias", "b16.conv0.weight", "b16.conv0.bias"}, sorted(off)
    assert D.init_kwargs["freeze_layers"] == 4
    assert "freeze_layers" not in Discriminator(num_channels=3, resolution=32, fmap_base=64, fmap_max=16).init_kwargs


def test_schedule_point_is_kept_for_minibatch_repeats(shards, tmp_path):
    """NVlabs' loop evaluates the schedule every minibatch_repeats iterations: lod changes only at those."""
    from sgtrain.training.run import train

    run_dir = str(tmp_path / "rep")
    train(compose([*FAMILIES["progan"], *COMMON, f"dataset.path={shards}", f"run.dir={run_dir}", "train.kimg=0.056",
                   "schedule.minibatch_repeats=3", "train.tick_kimg=0.001"]))
    rows = _rows(run_dir)  # one line per iteration (tick shorter than a minibatch)
    lods = [r["lod"] for r in rows]
    changes = [i for i in range(1, len(lods)) if lods[i] != lods[i - 1]]
    assert changes and all(i % 3 == 0 for i in changes), lods
