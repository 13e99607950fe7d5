"""EQ-T, EQ-T_frac, EQ-R (StyleGAN3 appendix E) against the values NVlabs' metrics/equivariance.py computed for the
tiny fixture networks (tests/fixtures/stylegan3/equivariance.json), plus checks of the image-space operators."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sgtrain.io import load_network
from sgtrain.metrics import equivariance as eq

FIX = Path(__file__).parent / "fixtures" / "stylegan3"
REF = json.loads((FIX / "equivariance.json").read_text())
METRICS = {"eqt50k_int": eq.eqt50k_int, "eqt50k_frac": eq.eqt50k_frac, "eqr50k": eq.eqr50k}


@pytest.fixture(scope="module")
def generators() -> dict[str, torch.nn.Module]:
    return {name: load_network(FIX / f"{name}.pkl")["G_ema"] for name in REF["psnr_db"]}


@pytest.mark.parametrize("name", ["t_uncond32", "r_uncond32"])
@pytest.mark.parametrize("metric", list(METRICS))
def test_metric_equals_nvlabs(generators, name, metric):
    seed = 0
    got = METRICS[metric](generators[name], REF["num_samples"], seed=seed, batch_size=REF["batch_size"])
    want = REF["psnr_db"][name][str(seed)][metric]
    assert abs(got - want) <= 0.5, f"{name} {metric}: {got:.4f} dB, NVlabs {want:.4f} dB"


def test_other_seed_and_one_call_for_all_metrics(generators):
    G = generators["t_uncond32"]
    got = eq.eqt50k_int(G, REF["num_samples"], seed=1, batch_size=REF["batch_size"])
    assert abs(got - REF["psnr_db"]["t_uncond32"]["1"]["eqt50k_int"]) <= 0.5
    both = eq.compute_equivariance(G, 4, seed=3, eqt_int=True, eqt_frac=True, eqr=True)
    assert set(both) == {"eqt50k_int", "eqt50k_frac", "eqr50k"} and all(math.isfinite(v) for v in both.values())


def test_rotation_equivariant_config_scores_higher_on_eq_r():
    """The R network is far more rotation-equivariant than the T one (the paper's table 1 in miniature)."""
    r = REF["psnr_db"]
    assert r["r_uncond32"]["0"]["eqr50k"] > r["t_uncond32"]["0"]["eqr50k"] + 10


def test_generator_is_left_untouched_and_conditional_labels_work(generators):
    G = load_network(FIX / "r_cond16.pkl")["G_ema"]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    a = eq.eqt50k_frac(G, 4, seed=0)
    b = eq.eqt50k_frac(G, 4, seed=0, labels=torch.eye(G.c_dim)[:2])
    assert math.isfinite(a) and math.isfinite(b) and a != b
    assert eq.eqt50k_frac(G, 4, seed=0) == a  # deterministic for a seed
    for k, v in G.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="labels gave shape"):
        eq.eqt50k_int(G, 4, labels=lambda n, g: torch.zeros(n, G.c_dim + 1))


def test_refuses_generators_without_input_transform():
    from sgtrain.models.stylegan2 import Generator

    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3, channel_base=32, channel_max=8)
    with pytest.raises(ValueError, match="input transform"):
        eq.eqt50k_int(G, 4)
    with pytest.raises(ValueError, match="at least one"):
        eq.compute_equivariance(G, 4)


def test_integer_translation_operator():
    x = torch.randn(2, 3, 8, 8)
    z, m = eq.apply_integer_translation(x, 2 / 8, -1 / 8)
    shifted = torch.roll(x, shifts=(-1, 2), dims=(2, 3))
    assert torch.equal(z * m, shifted * m)
    assert int(m[0, 0].sum()) == (8 - 2) * (8 - 1)
    z, m = eq.apply_integer_translation(x, 1.0, 0)  # shifted out entirely
    assert not m.any() and not z.any()


def test_fractional_translation_by_whole_pixels_is_the_integer_one():
    x = torch.randn(1, 2, 12, 12)
    zf, mf = eq.apply_fractional_translation(x, 3 / 12, -2 / 12)
    zi, mi = eq.apply_integer_translation(x, 3 / 12, -2 / 12)
    assert bool((mf <= mi).all()) and int(mf.sum()) > 0
    torch.testing.assert_close(zf * mf, zi * mf, atol=1e-6, rtol=0)
    half, _ = eq.apply_fractional_translation(torch.ones(1, 1, 12, 12), 0.5 / 12, 0)
    assert float(half[0, 0, 6, 6]) == pytest.approx(1.0, abs=1e-5)  # the Lanczos filter keeps DC


def test_zero_rotation_keeps_band_limited_images():
    """A smooth image rotated by 0 (and pseudo-rotated by 0) comes back unchanged inside the masks."""
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    x = torch.sin(xx * 0.4 + yy * 0.25)[None, None] + 0.3 * torch.cos(yy * 0.3)[None, None]
    z, m = eq.apply_fractional_rotation(x, 0.0)
    assert int(m.sum()) > 0
    torch.testing.assert_close(z * m, x * m, atol=2e-3, rtol=0)
    p, pm = eq.apply_fractional_pseudo_rotation(x, 0.0)
    torch.testing.assert_close(p * pm, x * pm, atol=2e-3, rtol=0)
    f = eq.construct_affine_bandlimit_filter(eq.rotation_matrix(0.3), amax=6, up=4)
    assert f.shape == (47, 47) and float(f.sum()) == pytest.approx(1.0, abs=1e-4)
