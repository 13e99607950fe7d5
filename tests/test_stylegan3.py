"""StyleGAN3 (configs T and R) against NVlabs' own networks, pickles and gen_images.py output.

Fixtures in tests/fixtures/stylegan3/ (README there): training-snapshot pickles written by NVlabs' stylegan3 code
(commit in each JSON) with every parameter and buffer randomised, the outputs NVlabs' modules gave for them (CPU,
float32), and the PNGs NVlabs' gen_images.py wrote with --translate/--rotate. sgtrain opens the pickles without their
code; its modules must give the same outputs (max abs difference <= 1e-4).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sgtrain.io import load_network, save_network
from sgtrain.io.safe_pickle import collect_state_dict, safe_load_pickle
from sgtrain.latent.common import to_uint8
from sgtrain.models import stylegan2, stylegan3
from sgtrain.models.stylegan3 import Generator, input_transform, make_transform

FIX = Path(__file__).parent / "fixtures" / "stylegan3"
CONFIGS = ["t_uncond32", "t_cond16", "r_uncond32", "r_cond16"]
NVLABS_COMMIT = "c233a919a6faee6e36a316ddd4eddababad1adf9"
TOL = 1e-4


def _load(name: str) -> tuple[dict, dict]:
    meta = json.loads((FIX / f"{name}.json").read_text())
    with np.load(FIX / f"{name}.npz") as d:
        ref = {k: d[k] for k in d.files}
    return meta, ref


def _close(actual: torch.Tensor, expected: np.ndarray, what: str, tol: float = TOL) -> None:
    a = actual.detach().float().numpy()
    assert a.shape == expected.shape, f"{what}: shape {a.shape} != {expected.shape}"
    err = float(np.abs(a - expected).max())
    assert err <= tol, f"{what}: max abs difference {err:.3g} > {tol}"


@pytest.fixture(scope="module")
def nets() -> dict[str, dict]:
    return {name: load_network(FIX / f"{name}.pkl") for name in CONFIGS}


@pytest.mark.parametrize("name", CONFIGS)
def test_nvlabs_pickle_gives_nvlabs_images(nets, name):
    meta, ref = _load(name)
    assert meta["commit"] == NVLABS_COMMIT
    loaded = nets[name]
    G_ema, G, D = loaded["G_ema"], loaded["G"], loaded["D"]
    assert isinstance(G_ema, stylegan3.Generator) and isinstance(G, stylegan3.Generator)
    assert isinstance(D, stylegan2.Discriminator)
    z, c, d_img = (torch.from_numpy(ref[k]) for k in ("z", "c", "d_img"))
    with torch.no_grad():
        _close(G_ema.mapping(z, c), ref["ws"], "ws")
        _close(G_ema(z, c, truncation_psi=1, noise_mode="const"), ref["img_psi1"], "image psi 1")
        _close(G_ema(z, c, truncation_psi=0.7), ref["img_psi07"], "image psi 0.7")
        _close(G_ema(z, c, truncation_psi=0.5, truncation_cutoff=3), ref["img_cutoff"], "image psi 0.5 cutoff 3")
        _close(G(z, c), ref["img_G_psi1"], "training G image")
        _close(D(d_img, c), ref["D_logits"], "D logits")
    # The fixture networks differ where they must, so that a swapped or ignored tensor would show.
    assert np.abs(ref["img_psi1"] - ref["img_G_psi1"]).max() > 1e-2
    assert np.abs(ref["img_psi1"] - ref["img_psi07"]).max() > 1e-2


@pytest.mark.parametrize("name", CONFIGS)
def test_input_transform_matches_gen_images(nets, name):
    meta, ref = _load(name)
    t = meta["transform"]
    m = input_transform(t["translate"], t["angle"])
    _close(m, ref["transform"], "inverse transform", tol=1e-6)
    G = nets[name]["G_ema"]
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    old = G.synthesis.input.transform.clone()
    try:
        G.synthesis.input.transform.copy_(m)
        with torch.no_grad():
            _close(G(z, c), ref["img_transform"], "image with a translated and rotated input")
    finally:
        G.synthesis.input.transform.copy_(old)
    assert torch.equal(old, torch.eye(3))
    assert np.abs(ref["img_transform"] - ref["img_psi1"]).max() > 1e-2


@pytest.mark.parametrize("name", CONFIGS)
def test_keys_shapes_and_init_kwargs(nets, name):
    meta, _ = _load(name)
    G = Generator(**meta["G_kwargs"])
    assert [[k, list(v.shape)] for k, v in G.state_dict().items()] == meta["G_state"]
    assert sum(p.numel() for p in G.parameters()) == meta["num_params"]["G"]
    assert G.num_ws == meta["G_kwargs"].get("num_layers", 14) + 2
    raw = safe_load_pickle(FIX / f"{name}.pkl")
    pickled = collect_state_dict(raw["G_ema"])
    ours = nets[name]["G_ema"].state_dict()
    assert list(pickled) == list(ours)
    for k, v in pickled.items():
        assert torch.equal(v, ours[k]), k
    rebuilt = Generator(**nets[name]["G_ema"].init_kwargs)
    assert [k for k in rebuilt.state_dict()] == list(ours)
    json.dumps(nets[name]["G_ema"].init_kwargs)


@pytest.mark.parametrize("name", CONFIGS)
def test_designed_filters_match_nvlabs(name):
    """The Kaiser (and, for R, jinc) low-pass filters come out as NVlabs' scipy-based design, without scipy."""
    meta, ref = _load(name)
    G = Generator(**meta["G_kwargs"])
    sd = G.state_dict()
    designed = {k[len("filter/"):]: v for k, v in ref.items() if k.startswith("filter/")}
    assert sorted(designed) == sorted(k for k in sd if k.endswith("_filter"))
    radial = 0
    for k, v in designed.items():
        _close(sd[k], v, k, tol=1e-6)
        radial += v.ndim == 2
    assert (radial > 0) == name.startswith("r_")


def test_design_lowpass_filter_equals_scipy_firwin():
    scipy_signal = pytest.importorskip("scipy.signal")
    for numtaps, cutoff, width, fs in [(12, 2.0, 6.4, 32), (24, 5.3, 4.1, 64), (7, 1.1, 1.0, 8), (40, 60.0, 20.0, 256)]:
        ours = stylegan3.design_lowpass_filter(numtaps, cutoff, width, fs).double().numpy()
        theirs = scipy_signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert stylegan3.design_lowpass_filter(1, 2.0, 1.0, 8) is None
    f = stylegan3.design_lowpass_filter(13, 2.0, 3.0, 16, radial=True)
    assert f.shape == (13, 13) and torch.isfinite(f).all()  # odd size: the centre tap uses the limit
    assert float(f.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(f, f.t())


@pytest.mark.parametrize("name", ["t_cond16", "r_uncond32"])
def test_ws_gradient_matches_nvlabs(nets, name):
    """d sum(G.synthesis(ws) * u) / d ws (the path-length regulariser's first backward) through filtered_lrelu."""
    _, ref = _load(name)
    G = nets[name]["G_ema"]
    ws = torch.from_numpy(ref["ws"]).requires_grad_(True)
    img = G.synthesis(ws, noise_mode="const")
    u = torch.from_numpy(np.random.RandomState(99).randn(*img.shape).astype(np.float32))
    (grad,) = torch.autograd.grad((img * u).sum(), ws)
    scale = float(np.abs(ref["pl_grad_ws"]).max())
    _close(grad, ref["pl_grad_ws"], "pl grad ws", tol=TOL * max(scale, 1.0))


@pytest.mark.parametrize("name", ["t_uncond32", "r_cond16"])
def test_update_emas_moves_magnitude_ema_and_w_avg_like_nvlabs(name):
    _, ref = _load(name)
    G = load_network(FIX / f"{name}.pkl")["G_ema"]
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    before = np.array([float(getattr(G.synthesis, n).magnitude_ema) for n in G.synthesis.layer_names])
    with torch.no_grad():
        G(z, c, update_emas=True)
    after = np.array([float(getattr(G.synthesis, n).magnitude_ema) for n in G.synthesis.layer_names])
    assert np.abs(after - before).max() > 1e-4
    np.testing.assert_allclose(after, ref["ema_magnitude_ema"], rtol=1e-5, atol=1e-6)
    _close(G.mapping.w_avg, ref["ema_w_avg"], "w_avg after update_emas", tol=1e-5)


def test_gen_images_png_bytes():
    """What NVlabs' gen_images.py writes (seed -> z, --trunc, --translate, --rotate -> inverse transform, uint8)."""
    meta = json.loads((FIX / "gen_images.json").read_text())
    with np.load(FIX / "gen_images.npz") as d:
        ref = {k: d[k] for k in d.files}
    G = load_network(FIX / meta["network"])["G_ema"]
    label = torch.zeros([1, G.c_dim])
    for run, args in meta["runs"].items():
        opts = dict(a[2:].split("=", 1) for a in args)
        translate = [float(v) for v in opts.get("translate", "0,0").split(",")]
        angle = float(opts.get("rotate", 0))
        psi = float(opts["trunc"])
        G.synthesis.input.transform.copy_(input_transform(translate, angle))
        for seed in meta["seeds"]:
            key = f"{run}/seed{seed:04d}"
            png = Image.open(io.BytesIO(ref[key + "_png"].tobytes()))
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), ref[key])
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
            with torch.no_grad():
                img = to_uint8(G(z, label, truncation_psi=psi, noise_mode="const"))[0].numpy()
            diff = np.abs(img.astype(int) - ref[key].astype(int))
            # Equal bytes; a value that lands within float rounding of a .0 boundary may truncate the other way.
            assert diff.max() <= 1 and (diff > 0).mean() <= 0.005, f"{key}: {int((diff > 0).sum())} bytes differ"
    identity = input_transform((0, 0), 0)
    torch.testing.assert_close(identity, torch.eye(3))


def test_make_transform_is_gen_images_matrix():
    m = make_transform((0.3, -1.0), 90)
    np.testing.assert_allclose(m, [[0, 1, 0.3], [-1, 0, -1.0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(make_transform((0, 0), 0), np.eye(3))
    inv = input_transform((0.3, -1.0), 90).double().numpy()
    np.testing.assert_allclose(inv @ m, np.eye(3), atol=1e-6)


def test_translating_the_input_moves_the_image_by_whole_pixels(nets):
    """Config T is translation-equivariant: input_transform((tx, ty)) shifts the image by (tx W, ty H) pixels."""
    from sgtrain.metrics.equivariance import apply_integer_translation

    _, ref = _load("t_uncond32")
    G = nets["t_uncond32"]["G_ema"]
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    old = G.synthesis.input.transform.clone()
    try:
        G.synthesis.input.transform.copy_(input_transform((8 / 32, -4 / 32), 0))
        with torch.no_grad():
            moved = G(z, c)
    finally:
        G.synthesis.input.transform.copy_(old)
    orig = torch.from_numpy(ref["img_psi1"])
    shifted, mask = apply_integer_translation(orig, 8 / 32, -4 / 32)
    assert float(((shifted - moved) * mask).abs().max()) < 5e-3  # equal up to the network's aliasing
    assert float((orig - moved).abs().max()) > 0.1


def test_noise_mode_is_accepted_and_ignored(nets):
    _, ref = _load("t_cond16")
    G = nets["t_cond16"]["G_ema"]
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        outs = [G(z, c, noise_mode=m) for m in ("random", "const", "none")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, c, noise_mode="bogus")


def test_discriminator_is_stylegan2s():
    assert stylegan3.Discriminator is stylegan2.Discriminator
    D = stylegan3.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    assert D(torch.zeros(2, 3, 16, 16), None).shape == (2, 1)


def test_wrong_shapes_fail_with_a_message():
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3, channel_base=64, channel_max=4,
                  num_layers=2, num_critical=1)
    with pytest.raises(ValueError, match=r"ws: expected shape \[\*, 4, 4\]"):
        G.synthesis(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="z"):
        G(torch.zeros(1, 5), torch.zeros(1, 0))


def test_portable_file_and_convert_cli_keep_the_images(tmp_path, nets):
    from sgtrain.cli.convert import main as convert

    _, ref = _load("r_cond16")
    assert convert([str(FIX / "r_cond16.pkl"), str(tmp_path / "conv")]) == 0
    header = json.loads((tmp_path / "conv.json").read_text())
    assert header["networks"]["G_ema"]["class"] == "sgtrain.models.stylegan3.networks.Generator"
    assert re.match(r"sgtrain\.models\.stylegan2\.networks\.Discriminator$", header["networks"]["D"]["class"])
    back = load_network(tmp_path / "conv")
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        _close(back["G_ema"](z, c), ref["img_psi1"], "image from the portable file")
        _close(back["D"](torch.from_numpy(ref["d_img"]), c), ref["D_logits"], "D logits from the portable file")
    # A user transform set before saving travels with the file (it is a buffer).
    G = nets["r_cond16"]["G_ema"]
    G2 = Generator(**G.init_kwargs)
    G2.load_state_dict(G.state_dict())
    G2.synthesis.input.transform.copy_(input_transform((0.1, 0.0), 10))
    save_network(tmp_path / "moved", G2)
    torch.testing.assert_close(load_network(tmp_path / "moved")["G_ema"].synthesis.input.transform,
                               G2.synthesis.input.transform)


def test_training_step_gradients_reach_every_parameter():
    """A tiny G trains: first- and second-order gradients flow through filtered_lrelu to every parameter."""
    torch.manual_seed(0)
    G = Generator(z_dim=4, c_dim=2, w_dim=4, img_resolution=16, img_channels=3, channel_base=64, channel_max=4,
                  num_layers=3, num_critical=1, conv_clamp=256)
    z, c = torch.randn(2, 4), torch.eye(2)
    ws = G.mapping(z, c, update_emas=True)
    img = G.synthesis(ws, update_emas=True)
    (g,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    (img.square().mean() + g.square().sum()).backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert float(G.mapping.w_avg.abs().sum()) > 0
