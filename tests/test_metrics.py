"""Tests of sgtrain.metrics' FID, KID, precision/recall, IS and PPL against NVlabs' numbers and direct computations.

NVlabs' numbers (tests/fixtures/metrics/, README there) come from NVlabs' stylegan3 metrics/ code run with the same
small random TorchScript detector (tests/fixtures/metrics/tiny_detector.pt) on the same image sets
(metrics_helpers.fixture_images) and the same generator weights (tests/fixtures/io/nvlabs_ada_tiny_uncond.pkl).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from metrics_helpers import DETECTOR, FIXTURES, fixture_images, write_png_folder

from sgtrain.metrics import detectors as det_mod
from sgtrain.metrics.feature_stats import FeatureStats, compute_dataset_stats, stats_cache_path
from sgtrain.metrics.image_sources import FolderSource, ShardSource, open_image_source
from sgtrain.metrics.inception_score import inception_score_from_probs
from sgtrain.metrics.kid import kid_from_features
from sgtrain.metrics.metric_main import compute_metric, compute_metric_between, parse_metric
from sgtrain.metrics.ppl import path_lengths, ppl_from_distances, slerp
from sgtrain.metrics.precision_recall import precision_recall_from_features

IO_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "io")
NV = json.load(open(os.path.join(FIXTURES, "nvlabs_metrics.json")))
FEATURES = dict(return_features=True)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The networks here are tiny: one thread avoids OpenMP spin-waits on a busy 2-core machine (20x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Image set A as a PNG folder and as sorted shards, set B as a PNG folder and a zip."""
    from sgtrain.data import pack

    root = tmp_path_factory.mktemp("metric_sets")
    a = write_png_folder(fixture_images("A"), str(root / "A"))
    b = write_png_folder(fixture_images("B"), str(root / "B"))
    pack(a, str(root / "A_shards"), resolution=16, workers=1, progress=False, order="sorted", shard_size=20000)
    with zipfile.ZipFile(root / "B.zip", "w") as zf:
        for name in sorted(os.listdir(b)):
            zf.write(os.path.join(b, name), name)
    return dict(A=a, A_shards=str(root / "A_shards"), B=b, B_zip=str(root / "B.zip"), root=root)


@pytest.fixture(scope="module")
def G():
    from sgtrain.io import load_network

    return load_network(os.path.join(IO_FIXTURES, "nvlabs_ada_tiny_uncond.pkl"))["G_ema"].eval()


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


# --------------------------------------------------------------------------------------------- NVlabs' numbers
def test_dataset_mean_cov_match_nvlabs(sets):
    ref = np.load(os.path.join(FIXTURES, "nvlabs_stats.npz"))
    det = det_mod.load_detector(DETECTOR)
    for name, path in (("A", sets["A"]), ("A", sets["A_shards"]), ("B", sets["B"]), ("B", sets["B_zip"])):
        stats = compute_dataset_stats(open_image_source(path), det, FEATURES, capture_mean_cov=True, cache=False)
        mu, cov = stats.mean_cov()
        assert stats.num_items == len(fixture_images(name))
        assert np.abs(mu - ref[f"mean_{name}"]).max() <= 1e-5 * np.abs(ref[f"mean_{name}"]).max()
        assert np.abs(cov - ref[f"cov_{name}"]).max() <= 1e-5 * np.abs(ref[f"cov_{name}"]).max()


def test_fid_kid_pr_is_between_two_sets_match_nvlabs(sets):
    kw = dict(detector=DETECTOR, num_gen=250, cache=False, device="cpu")
    for real, fake in ((sets["A"], sets["B"]), (sets["A_shards"], sets["B_zip"])):
        fid = compute_metric_between("fid50k_full", real, fake, **kw)["results"]["fid50k_full"]
        kid = compute_metric_between("kid50k_full", real, fake, **kw)["results"]["kid50k_full"]
        assert rel(fid, NV["fid_AB"]) < 1e-3
        assert rel(kid, NV["kid_AB"]) < 1e-3
    pr = compute_metric_between("pr50k3_full", sets["A"], sets["B"], **kw)["results"]
    assert abs(pr["pr50k3_full_precision"] - NV["pr_AB"][0]) < 1e-6
    assert abs(pr["pr50k3_full_recall"] - NV["pr_AB"][1]) < 1e-6
    res = compute_metric_between("is50k", None, sets["B"], **kw)["results"]
    assert rel(res["is50k_mean"], NV["is_B"][0]) < 1e-5 and rel(res["is50k_std"], NV["is_B"][1]) < 1e-3


def test_kid_subsets_follow_nvlabs_draws(sets):
    det = det_mod.load_detector(DETECTOR)
    fa = compute_dataset_stats(open_image_source(sets["A"]), det, FEATURES, capture_all=True, cache=False)
    fb = compute_dataset_stats(open_image_source(sets["B"]), det, FEATURES, capture_all=True, cache=False)
    kid = kid_from_features(fa.all_features(), fb.all_features(), num_subsets=10, max_subset_size=100, seed=123)
    assert rel(kid, NV["kid_AB_sub100x10_seed123"]) < 1e-3
    other = kid_from_features(fa.all_features(), fb.all_features(), num_subsets=10, max_subset_size=100, seed=124)
    assert other != kid


def test_generator_fid_kid_within_nvlabs_sampling_spread(sets, G, tmp_path):
    g = NV["gen"]
    kw = dict(detector=DETECTOR, num_gen=g["num_gen"], cache_dir=str(tmp_path), device="cpu")
    for key, name in (("fid", "fid50k_full"), ("kid", "kid50k_full")):
        ours = [compute_metric(name, G, sets["A"], seed=s, **kw)["results"][name] for s in range(4)]
        nv = np.asarray(g[key])
        spread = np.sqrt(np.var(ours, ddof=1) / len(ours) + nv.var(ddof=1) / len(nv))
        assert abs(np.mean(ours) - nv.mean()) <= 3 * spread, (key, ours, nv)
        assert len(set(ours)) == len(ours)  # seeds give different samples


def test_ppl_within_nvlabs_sampling_spread(G, tmp_path):
    g = NV["gen"]
    ours = [compute_metric("ppl2_wend", G, detector=DETECTOR, num_gen=g["ppl_num_samples"], seed=s,
                           device="cpu")["results"]["ppl2_wend"] for s in range(4)]
    nv = np.asarray(g["ppl2_wend"])
    spread = np.sqrt(np.var(ours, ddof=1) / len(ours) + nv.var(ddof=1) / len(nv))
    assert abs(np.mean(ours) - nv.mean()) <= 3 * spread, (ours, nv)


# --------------------------------------------------------------------------------------------- direct computations
def test_pr_matches_brute_force():
    rng = np.random.RandomState(0)
    real = rng.randn(70, 6).astype(np.float32)
    gen = (rng.randn(55, 6) * 1.3 + 0.4).astype(np.float32)

    def direct(manifold, probes, k):
        d_mm = np.sqrt(((manifold[:, None].astype(np.float64) - manifold[None]) ** 2).sum(-1))
        radii = np.sort(d_mm, axis=1)[:, k]
        d_pm = np.sqrt(((probes[:, None].astype(np.float64) - manifold[None]) ** 2).sum(-1))
        return float((d_pm <= radii[None]).any(axis=1).mean())

    for k in (1, 3, 5):
        p, r = precision_recall_from_features(real, gen, nhood_size=k, row_batch_size=16, col_batch_size=9,
                                              feature_dtype=torch.float32)
        assert p == pytest.approx(direct(real, gen, k), abs=1e-7)
        assert r == pytest.approx(direct(gen, real, k), abs=1e-7)
    assert precision_recall_from_features(real, real, row_batch_size=16, col_batch_size=9) == (1.0, 1.0)


class _BrightnessClassifier(torch.nn.Module):
    """IS test network: class probabilities a softmax of -(mean brightness / 255 - centre_k)^2 * 50, 4 classes."""

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        m = img.to(torch.float32).mean(dim=[1, 2, 3]) / 255
        centres = torch.tensor([0.125, 0.375, 0.625, 0.875])
        return torch.softmax(-(m[:, None] - centres[None]).square() * 50, dim=1)


def test_is_matches_hand_computation(tmp_path):
    path = str(tmp_path / "isdet.pt")
    torch.jit.save(torch.jit.script(_BrightnessClassifier()), path)
    levels = np.array([20, 100, 160, 240] * 5, dtype=np.uint8)  # 20 images, 4 brightness levels
    imgs = np.broadcast_to(levels[:, None, None, None], (20, 3, 8, 8)).copy()
    write_png_folder(imgs, str(tmp_path / "imgs"))
    out = compute_metric_between("is50k", None, str(tmp_path / "imgs"), detector=path, num_gen=20, cache=False)

    def probs(level):
        logits = [-((level / 255 - c) ** 2) * 50 for c in (0.125, 0.375, 0.625, 0.875)]
        e = np.exp(np.array(logits) - max(logits))
        return e / e.sum()

    scores = []
    for s in range(10):  # splits of 2 consecutive images
        p = [probs(float(v)) for v in levels[2 * s:2 * s + 2]]
        marginal = (p[0] + p[1]) / 2
        kl = [sum(pi[j] * np.log(pi[j] / marginal[j]) for j in range(4)) for pi in p]
        scores.append(np.exp(np.mean(kl)))
    assert out["results"]["is50k_mean"] == pytest.approx(np.mean(scores), rel=1e-5)
    assert out["results"]["is50k_std"] == pytest.approx(np.std(scores), rel=1e-4, abs=1e-6)
    one_hot = np.eye(4)[np.arange(40) % 4] * 0.999999 + 0.00000025
    assert inception_score_from_probs(one_hot, num_splits=10)[0] == pytest.approx(4.0, rel=1e-3)


def test_ppl_path_lengths_direct(G):
    lp = det_mod.load_detector(DETECTOR).lpips_features
    n, eps = 3, 1e-4
    Gc = __import__("copy").deepcopy(G)
    got = path_lengths(Gc, lp, torch.zeros([n, 0]), torch.Generator().manual_seed(5), epsilon=eps)
    # The same draws, by hand: t (unused at the path end), z0 and z1, then one noise map per noise buffer.
    g = torch.Generator().manual_seed(5)
    torch.rand([n], generator=g)
    z0, z1 = torch.randn([2 * n, G.z_dim], generator=g).chunk(2)
    Gd = __import__("copy").deepcopy(G)
    for name, buf in Gd.named_buffers():
        if name.endswith(".noise_const"):
            buf.copy_(torch.randn(buf.shape, generator=g))
    with torch.no_grad():
        w0, w1 = Gd.mapping(z0, torch.zeros([n, 0])), Gd.mapping(z1, torch.zeros([n, 0]))
        # float32 rounding of w (batching, lerp) is amplified by 1 / eps: agreement to ~1e-3 is all there is
        w_eps = w0.lerp(w1, torch.full([n, 1, 1], eps))
        a, b = Gd.synthesis(torch.cat([w0, w_eps]), noise_mode="const", force_fp32=True).chunk(2)
        want = (lp((a + 1) * 127.5) - lp((b + 1) * 127.5)).square().sum(1) / eps**2
    torch.testing.assert_close(got, want, rtol=1e-2, atol=0)
    # a finite-difference derivative: halving epsilon changes little
    half = path_lengths(__import__("copy").deepcopy(G), lp, torch.zeros([n, 0]), torch.Generator().manual_seed(5),
                        epsilon=eps / 2)
    torch.testing.assert_close(half, got, rtol=0.05, atol=0)


def test_ppl_percentile_filter_and_slerp():
    rng = np.random.RandomState(3)
    d = rng.lognormal(size=1000)
    s = np.sort(d)
    # p1 (lower) = s[9] and p99 (higher) = s[990] for 1000 values: both kept, 9 dropped at each end
    assert ppl_from_distances(d) == pytest.approx(s[9:991].mean(), rel=1e-12)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    torch.testing.assert_close(slerp(a, b, torch.zeros(5, 1)), a / a.norm(dim=1, keepdim=True))
    torch.testing.assert_close(slerp(a, b, torch.ones(5, 1)), b / b.norm(dim=1, keepdim=True), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------- names, files, cache
def test_metric_names():
    s = parse_metric("fid50k_full")
    assert (s.kind, s.num_gen, s.max_real, s.detector) == ("fid", 50000, None, "inception")
    assert parse_metric("fid10k").max_real == 10000 and parse_metric("fid2k_full").num_gen == 2000
    assert parse_metric("kid50k_full").max_real == 1000000 and parse_metric("kid50k_full").params["num_subsets"] == 100
    pr = parse_metric("pr50k3_full")
    assert (pr.detector, pr.max_real, pr.params["nhood_size"]) == ("vgg16", 200000, 3)
    assert parse_metric("pr10k5").max_real == 10000 and parse_metric("is50k").params["num_splits"] == 10
    assert parse_metric("ppl2_wend").params == dict(epsilon=1e-4, space="w", sampling="end", crop=False, batch_size=2)
    assert parse_metric("ppl_zfull").params["crop"] is True
    for bad in ("fid", "fid0k", "fid50k_ful", "kid5", "pr50k", "ppl3_wend", "is50k_full"):
        with pytest.raises(ValueError, match="unknown metric"):
            parse_metric(bad)


def _pickled_torchscript(payload: bytes, protocol: int) -> bytes:
    class Carrier:
        def __reduce__(self):
            return (torch.jit.load, (io.BytesIO(payload),)) if protocol >= 3 else (bytes, (payload,))

    return pickle.dumps(Carrier(), protocol=protocol)


def test_pickled_torchscript_opens_without_unpickling(tmp_path, monkeypatch):
    payload = open(DETECTOR, "rb").read()
    x = torch.from_numpy(fixture_images("A")[:4])
    want = torch.jit.load(DETECTOR)(x, return_features=True)
    for protocol in (2, 4, 5):
        path = tmp_path / f"det{protocol}.pkl"
        path.write_bytes(_pickled_torchscript(payload, protocol))
        det = det_mod.load_detector(path)
        torch.testing.assert_close(det(x, **FEATURES), want)

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(det_mod.DetectorFormatError, match="no TorchScript archive.*system"):
        det_mod.load_detector(bad)
    assert not marker.exists()


def test_detector_found_in_dnnlib_cache(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DNNLIB_CACHE_DIR", raising=False)
    monkeypatch.delenv("SGTRAIN_CACHE_DIR", raising=False)
    with pytest.raises(det_mod.DetectorNotFoundError, match="inception-2015-12-05.pkl.*api.ngc.nvidia.com.*--detector"):
        det_mod.find_detector_file("inception")
    url = det_mod.DETECTORS["inception"].urls[0]
    downloads = tmp_path / "dnn" / "downloads"
    downloads.mkdir(parents=True)
    cached = downloads / (hashlib.md5(url.encode()).hexdigest() + "_inception-2015-12-05.pkl")
    cached.write_bytes(_pickled_torchscript(open(DETECTOR, "rb").read(), 4))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnn"))
    assert det_mod.find_detector_file("inception") == str(cached)
    det = det_mod.load_detector(det_mod.find_detector_file("inception"))
    assert det.name == "inception-2015-12-05" and len(det.sha256) == 64
    with pytest.raises(det_mod.DetectorNotFoundError):  # vgg16 is still missing
        det_mod.find_detector_file("vgg16")
    local = tmp_path / "home" / ".cache" / "sgtrain" / "metrics" / "detectors"
    local.mkdir(parents=True)
    (local / "vgg16.pt").write_bytes(open(DETECTOR, "rb").read())
    assert det_mod.find_detector_file("vgg16") == str(local / "vgg16.pt")


def test_real_statistics_cache(sets, tmp_path, monkeypatch):
    det = det_mod.load_detector(DETECTOR)
    src = FolderSource(sets["B"])
    first = compute_dataset_stats(src, det, FEATURES, capture_mean_cov=True, cache_dir=str(tmp_path))
    path, meta = stats_cache_path(src, det, FEATURES, src.count, str(tmp_path))
    assert os.listdir(tmp_path) == [os.path.basename(path)] and meta["num_items"] == 250

    def boom(*args, **kwargs):
        raise AssertionError("the detector ran although the statistics were cached")

    monkeypatch.setattr(det_mod.FeatureDetector, "__call__", boom)
    again = compute_dataset_stats(FolderSource(sets["B"]), det, FEATURES, capture_mean_cov=True,
                                  cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again.mean_cov()[1], first.mean_cov()[1])
    with pytest.raises(AssertionError, match="cached"):  # all features were not cached: KID recomputes
        compute_dataset_stats(FolderSource(sets["B"]), det, FEATURES, capture_all=True, cache_dir=str(tmp_path))
    with pytest.raises(AssertionError, match="cached"):  # another image count is another entry
        compute_dataset_stats(FolderSource(sets["B"]), det, FEATURES, max_items=100, capture_mean_cov=True,
                              cache_dir=str(tmp_path))
    assert FeatureStats.load(path).num_items == 250
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_sources_order_split_and_labels(sets, tmp_path):
    shards, folder = ShardSource(sets["A_shards"]), FolderSource(sets["A"])
    assert len(shards.urls) > 1 and shards.count == folder.count == 300
    for src in (shards, folder):
        seen = []
        for rank in range(3):
            for idx, img in src.iter_batches(rank, 3, max_items=200, batch_size=32):
                seen.append(idx)
                np.testing.assert_array_equal(img.numpy(), fixture_images("A")[idx.numpy()])
        assert sorted(torch.cat(seen).tolist()) == list(range(200))
    # NVlabs dataset.json labels of a folder: class indices become one-hot rows drawn uniformly over images
    lab = tmp_path / "lab"
    write_png_folder(fixture_images("B")[:8], str(lab))
    json.dump({"labels": [[f"{i:06d}.png", i % 2 * 3] for i in range(8)]}, open(lab / "dataset.json", "w"))
    src = FolderSource(str(lab))
    c = src.sample_labels(400, torch.Generator().manual_seed(0))
    assert src.c_dim == 4 and c.shape == (400, 4) and set(c.argmax(1).tolist()) == {0, 3}
    assert 0.4 < float(c[:, 0].mean()) < 0.6


def test_conditional_generator_takes_labels_from_data(sets):
    from sgtrain.io import load_network

    Gc = load_network(os.path.join(IO_FIXTURES, "nvlabs_stylegan3_tiny_cond_orig.pkl"))["G_ema"].eval()
    with pytest.raises(ValueError, match="conditional"):
        compute_metric("is50k", Gc, detector=DETECTOR, num_gen=20, device="cpu")
    lab = sets["root"] / "lab4"
    write_png_folder(fixture_images("B")[:20], str(lab))
    json.dump({"labels": [[f"{i:06d}.png", i % 4] for i in range(20)]}, open(lab / "dataset.json", "w"))
    out = compute_metric("is50k", Gc, data=str(lab), detector=DETECTOR, num_gen=20, device="cpu", cache=False)
    assert np.isfinite(out["results"]["is50k_mean"])


# --------------------------------------------------------------------------------------------- command line
def test_cli_prints_metric_value_last(sets, G, tmp_path, capsys):
    from sgtrain.cli.metrics import main
    from sgtrain.io import save_network

    save_network(tmp_path / "net", G_ema=G)
    common = ["--detector", DETECTOR, "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(["fid50k_full", "--real", sets["A"], "--fake", sets["B"], "--num-gen", "250"] + common) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert last[0] == "fid50k_full" and rel(float(last[1]), NV["fid_AB"]) < 1e-6
    assert main(["kid1k_full", "--network", str(tmp_path / "net.safetensors"), "--data", sets["A_shards"],
                 "--num-gen", "64"] + common) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert last[0] == "kid1k_full" and np.isfinite(float(last[1]))
    assert main(["pr1k3", "--real", sets["A"], "--fake", sets["B"], "--num-gen", "250", "--json"] + common) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["results"]) == {"pr1k3_precision", "pr1k3_recall"}
    # two folders without a count: every image of each (as pytorch-fid / torch-fidelity), and the line says so
    assert main(["fid50k_full", "--real", sets["A"], "--fake", sets["B"]] + common) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    n_a = len(fixture_images("A"))
    assert f"250 fake images against {n_a} real images" in lines[-2], lines
    assert lines[-1].split()[0] == "fid50k_full" and rel(float(lines[-1].split()[1]), NV["fid_AB"]) < 1e-6
    assert main(["fid50k_full", "--real", sets["A"], "--fake", sets["B"], "--num-gen", "251"] + common) == 2
    assert "--num-gen" in capsys.readouterr().err  # B has only 250 images
    assert main(["ppl2_wend", "--real", sets["A"], "--fake", sets["B"]] + common) == 2
    assert main(["fid50k_ful", "--real", sets["A"], "--fake", sets["B"]] + common) == 2
    assert "unknown metric" in capsys.readouterr().err


@pytest.mark.parametrize("metric", ["fid50k_full", "kid50k_full", "pr50k3_full", "is50k", "ppl2_wend", "fid10k"])
def test_missing_feature_network_fails_at_once(metric, tmp_path, monkeypatch, capsys):
    from sgtrain.cli.metrics import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DNNLIB_CACHE_DIR", raising=False)
    monkeypatch.delenv("SGTRAIN_CACHE_DIR", raising=False)
    # neither the network nor the data exist: the feature network is checked first
    assert main([metric, "--network", str(tmp_path / "none.pkl"), "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    name = "vgg16.pkl" if metric.startswith(("pr", "ppl")) else "inception-2015-12-05.pkl"
    assert name in err and "https://api.ngc.nvidia.com/" in err and "--detector" in err
    assert main([metric, "--network", "x", "--data", "y", "--detector", str(tmp_path / "nope.pkl")]) == 2
    assert "nope.pkl' does not exist" in capsys.readouterr().err


def test_missing_feature_network_console_command_returns_quickly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DNNLIB_CACHE_DIR", "SGTRAIN_CACHE_DIR")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "sgtrain.cli.metrics", "fid50k_full", "--network", "n", "--data",
                           "d"], env=env, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "inception-2015-12-05.pkl" in proc.stderr


def test_vgg_state_dict_serves_lpips_only(tmp_path, monkeypatch):
    path = tmp_path / "vgg16_tv.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(det_mod.DetectorFormatError, match="torch.save file"):
        det_mod.load_detector(path)
    monkeypatch.setattr(det_mod, "_vgg_state_dict", lambda p, device: (lambda x: x.mean(dim=[2, 3])))
    det = det_mod.load_detector(path, allow_vgg_state_dict=True)
    x = torch.rand(2, 3, 8, 8) * 255
    torch.testing.assert_close(det.lpips_features(x), x.mean(dim=[2, 3]))
    with pytest.raises(det_mod.DetectorFormatError, match="PPL .LPIPS. only"):
        det(x.to(torch.uint8), return_features=True)
