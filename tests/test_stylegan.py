"""StyleGAN (v1) networks and NVlabs' StyleGAN TensorFlow pickles.

Fixtures (tests/fixtures/stylegan, README.md there): ``(G, D, Gs)`` pickles written by NVlabs/stylegan's own TF code
(1e0d5c7, ``G_style`` / ``D_basic``, every variable randomised, G / D / Gs different) and the outputs TF gave for
fixed z, c and images: Gs images at several lods, with truncation, mapping output, synthesis of given ws, D scores
at several lods, the G (training) image at its pickled lod, dlatent_avg after one training-mode run of G.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from sgtrain.io import UnsupportedNetworkError, load_network, safe_load_pickle, save_network
from sgtrain.io.tensorflow import convert_tf_snapshot
from sgtrain.models.stylegan import Discriminator, Generator

FIX = Path(__file__).parent / "fixtures" / "stylegan"
CONFIGS = ["uncond32", "cond16", "variant16", "plain8"]
TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ref(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIX / f"tf_stylegan_{name}.npz"))


def _d_images(ref: dict[str, np.ndarray], G: Generator) -> torch.Tensor:
    """D's inputs: the fixture script drew them from RandomState(7) (standard normal)."""
    n = len(ref["c_d"])
    shape = (n, G.img_channels, G.img_resolution, G.img_resolution)
    return torch.from_numpy(np.random.RandomState(7).randn(*shape).astype(np.float32))


def _close(out: torch.Tensor, ref: np.ndarray, what: str) -> None:
    assert tuple(out.shape) == ref.shape, what
    diff = float(np.abs(out.detach().numpy() - ref).max())
    assert diff <= TOL, f"{what}: max |diff| {diff}"


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict]:
    return {name: load_network(FIX / f"tf_stylegan_{name}.pkl") for name in CONFIGS}


@pytest.mark.parametrize("name", CONFIGS)
def test_tf_stylegan_gives_nvlabs_images_and_scores(loaded: dict, name: str) -> None:
    ref = _ref(name)
    nets = loaded[name]
    G, D, Gs = (copy.deepcopy(nets[k]) for k in ("G", "D", "G_ema"))
    assert isinstance(Gs, Generator) and isinstance(D, Discriminator)
    z, c, c_d = (torch.from_numpy(ref[k]) for k in ("z", "c", "c_d"))
    img = _d_images(ref, Gs)
    # lod buffers come from the pickle: G_style's own lod (NVlabs copies it into G_synthesis before each run).
    assert float(G.synthesis.lod) == float(ref["G_lod"]) and float(D.lod) == float(ref["D_lod"])
    assert float(Gs.synthesis.lod) == 0
    with torch.no_grad():
        _close(G(z, c, noise_mode="const"), ref["G_img"], "G at its pickled lod")
        _close(D(img, c_d), ref[f"D_lod{float(ref['D_lod']):g}"], "D at its pickled lod")
        for lod in ref["lods"]:
            Gs.synthesis.lod.fill_(float(lod))
            D.lod.fill_(float(lod))
            _close(Gs(z, c, noise_mode="const"), ref[f"Gs_lod{lod:g}"], f"Gs lod {lod}")
            _close(D(img, c_d), ref[f"D_lod{lod:g}"], f"D lod {lod}")
        Gs.synthesis.lod.fill_(0)
        _close(Gs(z, c, truncation_psi=0.7, truncation_cutoff=8, noise_mode="const"), ref["Gs_psi0.7_cutoff8"],
               "psi 0.7 cutoff 8")
        _close(Gs(z, c, truncation_psi=0.5, truncation_cutoff=4, noise_mode="const"), ref["Gs_psi0.5_cutoff4"],
               "psi 0.5 cutoff 4")
        _close(Gs.mapping(z, c), ref["Gs_ws"], "mapping")
        _close(Gs.synthesis(torch.from_numpy(ref["Gs_synthesis_ws_in"]), noise_mode="const"),
               ref["Gs_synthesis_img"], "synthesis of given ws")
    # The fixture's networks differ, so a swapped or half-loaded network would show.
    assert np.abs(ref["Gs_psi0.5_cutoff4"] - ref["Gs_lod0"]).max() > 1e-2
    assert np.abs(ref["Gs_lod0.5"] - ref["Gs_lod0"]).max() > 1e-2


@pytest.mark.parametrize("name", ["uncond32", "cond16", "variant16"])
def test_update_emas_moves_w_avg_as_nvlabs_dlatent_avg(loaded: dict, name: str) -> None:
    ref = _ref(name)
    G = copy.deepcopy(loaded[name]["G"])
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    np.testing.assert_array_equal(G.mapping.w_avg.numpy(), ref["G_dlatent_avg_before"])
    with torch.no_grad():
        G.mapping(z, c)
        np.testing.assert_array_equal(G.mapping.w_avg.numpy(), ref["G_dlatent_avg_before"])  # only when asked
        G.mapping(z, c, update_emas=True)
    _close(G.mapping.w_avg, ref["G_dlatent_avg_after"], "w_avg after one update")
    assert np.abs(ref["G_dlatent_avg_after"] - ref["G_dlatent_avg_before"]).max() > 1e-3


def test_init_kwargs_are_nvlabs_keywords(loaded: dict) -> None:
    raw = safe_load_pickle(FIX / "tf_stylegan_variant16.pkl")
    G, D = loaded["variant16"]["G_ema"], loaded["variant16"]["D"]
    for key, value in raw[2].static_kwargs.items():
        assert G.init_kwargs[key] == value, key
    for key, value in raw[1].static_kwargs.items():
        assert D.init_kwargs[key] == value, key
    assert (G.truncation_psi, G.truncation_cutoff) == (0.6, 2)
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (8, 12, 6, 16, 1)
    assert Generator(**G.init_kwargs).state_dict().keys() == G.state_dict().keys()
    plain = loaded["plain8"]["G_ema"]
    assert plain.num_ws == 1 and plain.c_dim == 2  # use_styles=False: one w for every layer


def _records(name: str):
    return list(safe_load_pickle(FIX / f"tf_stylegan_{name}.pkl"))


def test_unknown_keyword_and_variables_are_named() -> None:
    recs = _records("cond16")
    recs[2].static_kwargs["use_spectral_norm"] = True
    with pytest.raises(UnsupportedNetworkError, match="use_spectral_norm"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("cond16")
    recs[1].variables["4x4/Extra/weight"] = np.zeros([3], np.float32)
    with pytest.raises(UnsupportedNetworkError, match="4x4/Extra/weight"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("cond16")
    del recs[2].components["synthesis"].variables["noise3"]
    with pytest.raises(UnsupportedNetworkError, match="noise3"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("cond16")
    recs[2].components["mapping"].static_kwargs["mapping_layers"] = 5
    with pytest.raises(UnsupportedNetworkError, match="mapping_layers"):
        convert_tf_snapshot(tuple(recs))


def _tiny(label_size: int = 0, **kw) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    G = Generator(latent_size=16, label_size=label_size, dlatent_size=16, num_channels=3, resolution=32,
                  mapping_layers=2, mapping_fmaps=16, fmap_base=64, fmap_max=16, **kw)
    D = Discriminator(num_channels=3, resolution=32, label_size=label_size, fmap_base=64, fmap_max=16,
                      mbstd_group_size=2, **{k: v for k, v in kw.items() if k in ("fused_scale", "blur_filter")})
    with torch.no_grad():
        for net in (G, D):
            for name, t in net.named_parameters():
                if name.endswith(("bias", "noise_strength")):
                    t.normal_(0, 0.2)
    return G, D


def test_lod_range_is_checked_and_only_needed_blocks_run() -> None:
    G, D = _tiny()
    z = torch.randn([2, 16])
    ran: list[str] = []
    for name, m in list(G.synthesis.named_children()) + [(f"D.{n}", m) for n, m in D.named_children()]:
        m.register_forward_hook(lambda *_, name=name: ran.append(name))
    with torch.no_grad():
        G.synthesis.lod.fill_(1.5)
        D.lod.fill_(1.5)
        img = G(z, None)
        D(img, None)
    assert img.shape == (2, 3, 32, 32)
    assert "b32" not in ran and "D.b32" not in ran and {"b16", "b8", "D.b16", "D.b8"} <= set(ran)
    # At lod 1.5 the image is a blend of the 16x16 and 8x8 outputs, each nearest-upscaled: 2x2 blocks are constant.
    assert torch.equal(img[:, :, ::2, ::2], img[:, :, 1::2, 1::2])
    for bad in (-0.5, 3.5, float("nan")):
        G.synthesis.lod.fill_(bad)
        with pytest.raises(ValueError, match="lod"):
            G(z, None)
        D.lod.fill_(bad)
        with pytest.raises(ValueError, match="lod"):
            D(torch.zeros([2, 3, 32, 32]), None)


def test_fused_and_separate_resampling_agree() -> None:
    """Fused downscaling equals conv + box filter; fused upscaling (a transposed conv) equals upscale + conv with the
    kernel flipped, as in NVlabs' TF ops (the fixtures check both paths against TF)."""
    G1, D1 = _tiny(fused_scale=False)
    G2, D2 = _tiny(fused_scale=True)
    sd = {k: v.flip(2, 3) if k.endswith("conv_up.weight") else v for k, v in G1.state_dict().items()}
    G2.load_state_dict(sd)
    D2.load_state_dict(D1.state_dict())
    z = torch.randn([2, 16])
    with torch.no_grad():
        a, b = G1(z, None, noise_mode="const"), G2(z, None, noise_mode="const")
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(D1(a, None), D2(a, None), atol=2e-5, rtol=1e-5)
    assert not G1.synthesis.b8.conv_up.fused and G2.synthesis.b8.conv_up.fused


def test_noise_modes_and_default() -> None:
    G, _ = _tiny()
    z = torch.randn([2, 16])
    with torch.no_grad():
        const = G(z, None, noise_mode="const")
        assert torch.equal(const, G(z, None, noise_mode="const"))
        assert not torch.equal(G(z, None, noise_mode="random"), G(z, None, noise_mode="random"))
        assert not torch.equal(G(z, None), G(z, None))  # randomize_noise=True: 'random' by default (training)
        assert not torch.equal(G(z, None, noise_mode="none"), const)
    G2, _ = _tiny(randomize_noise=False)
    with torch.no_grad():
        torch.testing.assert_close(G2(z, None), G2(z, None, noise_mode="const"), rtol=0, atol=0)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, None, noise_mode="fixed")


def test_portable_round_trip_is_bit_identical(loaded: dict, tmp_path: Path) -> None:
    nets = loaded["cond16"]
    G, D, Gs = (copy.deepcopy(nets[k]) for k in ("G", "D", "G_ema"))
    G.synthesis.lod.fill_(0.75)
    D.lod.fill_(0.25)
    save_network(tmp_path / "sg1", Gs, G=G, D=D, training_info={"kimg": 3})
    back = load_network(tmp_path / "sg1.safetensors")
    for key, net in (("G", G), ("D", D), ("G_ema", Gs)):
        assert type(back[key]) is type(net) and back[key].init_kwargs == net.init_kwargs
        for k, v in net.state_dict().items():
            assert torch.equal(v, back[key].state_dict()[k]), (key, k)
    ref = _ref("cond16")
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        assert torch.equal(back["G"](z, c, noise_mode="const"), G(z, c, noise_mode="const"))
        assert torch.equal(back["G_ema"](z, c, truncation_psi=0.5, noise_mode="const"),
                           Gs(z, c, truncation_psi=0.5, noise_mode="const"))


def test_sgtrain_convert_writes_the_tf_networks(tmp_path: Path, loaded: dict) -> None:
    from sgtrain.cli.convert import main

    assert main([str(FIX / "tf_stylegan_uncond32.pkl"), str(tmp_path / "out")]) == 0
    back = load_network(tmp_path / "out")
    assert set(back) >= {"G", "D", "G_ema"}
    assert float(back["G"].synthesis.lod) == 1.0 and float(back["D"].lod) == 0.5
    ref = _ref("uncond32")
    with torch.no_grad():
        _close(back["G_ema"](torch.from_numpy(ref["z"]), None, noise_mode="const"), ref["Gs_lod0"], "portable Gs")


# ---------------------------------------------------------------------------------------------------------------
# The latent tools and the training loss on a StyleGAN generator.


def test_latent_tools_run_on_stylegan(loaded: dict) -> None:
    from sgtrain.latent import (
        blend_ws,
        generate_images,
        load_sources,
        parse_layer_spec,
        project,
        sefa,
        style_mixing_grid,
        synthesize,
        to_uint8,
    )
    from sgtrain.latent.directions import affine_layers

    G = loaded["uncond32"]["G_ema"]
    seeds = [3, 5]
    imgs = generate_images(G, seeds, truncation_psi=0.7, truncation_cutoff=4)
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds]).astype(np.float32))
    with torch.no_grad():
        expect = to_uint8(G(z, None, truncation_psi=0.7, truncation_cutoff=4, noise_mode="const"))
    assert torch.equal(imgs, expect)

    grid = style_mixing_grid(G, [1, 2], [3], styles="coarse")
    assert grid["mixed"].shape == (2, 1, 32, 32, 3) and grid["layers"] == [0, 1, 2, 3]

    # SeFa: one style affine per layer, fed by ws[i] in registration order.
    layers = affine_layers(G)
    assert [idx for idx, _, _ in layers] == list(range(G.num_ws))
    assert [name for _, name, _ in layers][:3] == ["b4.input.affine", "b4.conv.affine", "b8.conv_up.affine"]
    out = sefa(G, layers=[0, 1])
    assert out["directions"].shape == (G.w_dim, G.w_dim)

    sources = load_sources(G, "3,5", truncation_psi=0.7)
    owner = parse_layer_spec("0-3:a,4-end:b", list(sources), G.num_ws)
    ws = blend_ws(sources, owner)
    assert torch.equal(ws[0, :4], sources["a"][0, :4]) and torch.equal(ws[0, 4:], sources["b"][0, 4:])

    with torch.no_grad():
        target = (synthesize(G, sources["a"], noise_mode="const") + 1) * 127.5
    res = project(G, target, space="w+", num_steps=4, loss="mse", w_avg_samples=200)
    assert res["ws"].shape == (1, G.num_ws, G.w_dim) and torch.isfinite(res["images"]).all()
    assert len(res["noise"]) == G.synthesis.num_layers and all(v.shape[:2] == (1, 1) for v in res["noise"].values())


def test_style_mix_and_training_loss_work_with_stylegan() -> None:
    from sgtrain.core.regularizers import style_mix
    from sgtrain.models.stylegan2.loss import StyleGAN2Loss

    G, D = _tiny(label_size=3)
    z = torch.randn([4, 16])
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    torch.manual_seed(1)
    ws = style_mix(G.mapping, z, c, prob=1.0)
    plain = G.mapping(z, c)
    assert ws.shape == plain.shape == (4, G.num_ws, 16)
    cutoff = int((ws - plain).abs().sum(dim=(0, 2)).ne(0).float().argmax())
    assert 1 <= cutoff < G.num_ws and torch.equal(ws[:, :cutoff], plain[:, :cutoff])

    G.synthesis.lod.fill_(0.5)
    D.lod.fill_(0.5)
    loss = StyleGAN2Loss(G, D, r1_gamma=10, style_mixing_prob=0.9, pl_weight=0)
    real = torch.randn([4, 3, 32, 32])
    w_avg = G.mapping.w_avg.clone()
    for phase, net in (("Gboth", G), ("Dboth", D)):
        G.requires_grad_(net is G)
        D.requires_grad_(net is D)
        stats = loss.accumulate_gradients(phase, real, c, z, c, gain=1, cur_nimg=0)
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    assert "Loss/r1_penalty" in stats and float(stats["Loss/r1_penalty"]) > 0
    assert not torch.equal(G.mapping.w_avg, w_avg)  # Dmain ran G with update_emas=True
    # lod 0.5 blends the 32x32 output in: its layers get gradients; D's 32x32 block too.
    assert G.synthesis.b32.conv.weight.grad is not None and D.b32.conv0.weight.grad is not None


def test_mapping_without_layers_is_the_normalised_latent() -> None:
    """NVlabs' 'traditional' baselines (mapping_layers=0, no styles): w is the pixel-normalised z."""
    G = Generator(latent_size=16, dlatent_size=16, resolution=8, mapping_layers=0, use_styles=False,
                  use_pixel_norm=True, use_instance_norm=False, const_input_layer=False, use_noise=False,
                  fmap_base=32, fmap_max=16)
    z = torch.randn([3, 16])
    ws = G.mapping(z, None)
    assert ws.shape == (3, 1, 16)
    torch.testing.assert_close(ws[:, 0], z * z.square().mean(1, keepdim=True).add(1e-8).rsqrt())
    assert G(z, None).shape == (3, 3, 8, 8)
    with pytest.raises(ValueError, match="dlatent_size must be 16"):
        Generator(latent_size=16, dlatent_size=12, resolution=8, mapping_layers=0)
