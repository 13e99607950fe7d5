"""ProGAN: TF pickles written by NVlabs' own code open without TensorFlow and give NVlabs' images and scores.

Fixtures (tests/fixtures/progan, README.md there): tiny G_paper / D_paper networks of NVlabs/stylegan
``training/networks_progan.py`` (dnnlib, state version 3) and of tkarras/progressive_growing_of_gans ``networks.py``
(tfutil, state version 2, with the auxiliary label output), every variable random, pickled as ``(G, D, Gs)``, with
TF's Gs images and D outputs at several lods.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sgtrain.io import UnsupportedNetworkError, load_network, safe_load_pickle, save_network
from sgtrain.models.progan import Discriminator, EqualizedConv2d, Generator, downscale2d, upscale2d
from sgtrain.models.progan.tf import convert, detect_variant, tf_variable_key

FIX = Path(__file__).parent / "fixtures" / "progan"
NAMES = ["progan_sg_uncond", "progan_sg_cond", "progan_pg_cond", "progan_pg_uncond"]
TOL = 1e-4


def _ref(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIX / f"{name}.npz"))


def _max_diff(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == tuple(b.shape), (tuple(a.shape), b.shape)
    return float(np.abs(a.detach().numpy() - b).max()) if b.size else 0.0


@pytest.mark.parametrize("name", NAMES)
def test_tf_pickle_gives_nvlabs_images_and_scores(name: str) -> None:
    ref = _ref(name)
    nets = load_network(FIX / f"{name}.pkl")
    G, D, Gs = nets["G"], nets["D"], nets["G_ema"]
    assert isinstance(Gs, Generator) and isinstance(G, Generator) and isinstance(D, Discriminator)
    z, c, img = (torch.from_numpy(ref[k]) for k in ("z", "c", "img"))
    assert 0.5 in ref["lods"] and 0.0 in ref["lods"] and 1.0 in ref["lods"]
    aux = name.startswith("progan_pg")
    assert D.aux_labels == aux
    with torch.no_grad():
        # The pickled lods are in the buffers; G runs at its own (0.75), which the fixture recorded.
        assert [float(m.lod) for m in (G, D, Gs)] == pytest.approx(ref["pickled_lod"].tolist())
        assert _max_diff(G(z, c), ref["g_img"]) <= TOL
        for i, lod in enumerate(ref["lods"].tolist()):
            Gs.lod.fill_(lod)
            D.lod.fill_(lod)
            diff = _max_diff(Gs(z, c, noise_mode="const"), ref["gs_img"][i])
            assert diff <= TOL, f"{name} Gs images at lod {lod}: max |diff| {diff}"
            if aux:
                scores, labels = D(img, c, return_labels=True)
                assert _max_diff(labels, ref["d_labels"][i]) <= TOL, f"{name} D labels at lod {lod}"
            else:
                scores = D(img, c)
            diff = _max_diff(scores, ref["d_scores"][i])
            assert diff <= TOL, f"{name} D scores at lod {lod}: max |diff| {diff}"
    # G and Gs hold different weights; the lods differ in image: a swapped mapping or an ignored lod shows.
    i75, i0, i1 = (ref["lods"].tolist().index(v) for v in (0.75, 0.0, 1.0))
    assert np.abs(ref["g_img"] - ref["gs_img"][i75]).max() > 1e-2
    assert np.abs(ref["gs_img"][i0] - ref["gs_img"][i1]).max() > 1e-2
    assert np.abs(ref["d_scores"][i0] - ref["d_scores"][i1]).max() > 1e-3


def test_lod_buffer_and_keys() -> None:
    nets = load_network(FIX / "progan_sg_uncond.pkl")
    for key in ("G", "D", "G_ema"):
        sd = nets[key].state_dict()
        assert "lod" in sd and sd["lod"].dtype == torch.float32 and sd["lod"].shape == ()
        assert dict(nets[key].named_buffers())["lod"] is nets[key].lod
    g_keys = set(nets["G_ema"].state_dict())
    assert {"b4.dense.weight", "b4.dense.bias", "b8.conv0_up.weight", "b16.conv1.bias", "torgb_lod2.weight"} <= g_keys
    d_keys = set(nets["D"].state_dict())
    assert {"fromrgb_lod0.weight", "b16.conv1_down.weight", "b4.conv.weight", "b4.dense1.bias"} <= d_keys
    info = nets["training_info"]
    assert info["build_funcs"] == {"G": "G_paper", "D": "D_paper", "G_ema": "G_paper"}


def test_state_dict_equals_tf_variables() -> None:
    G_rec, D_rec, _ = safe_load_pickle(FIX / "progan_pg_cond.pkl")
    for rec in (G_rec, D_rec):
        net = convert(rec, rec.name)
        sd = net.state_dict()
        assert len(sd) == len(rec.variables)
        for name, value in rec.variables.items():
            ours = sd[tf_variable_key(name)]
            assert ours.numel() == value.size and np.allclose(np.sort(ours.numpy().ravel()), np.sort(value.ravel()))
    # progressive_growing_of_gans stores the fused up-conv weight [k, k, out, in]: 8x8 is 16 -> 8 channels.
    assert G_rec.variables["8x8/Conv0_up/weight"].shape == (3, 3, 8, 16)
    w = convert(G_rec, "G").state_dict()["b8.conv0_up.weight"]
    assert torch.equal(w, torch.from_numpy(G_rec.variables["8x8/Conv0_up/weight"]).permute(2, 3, 0, 1))


def test_variant_detection_without_source_or_version() -> None:
    ref = _ref("progan_pg_cond")
    G_rec, D_rec, Gs_rec = safe_load_pickle(FIX / "progan_pg_cond.pkl")
    assert detect_variant(Gs_rec) == "pggan"  # version 2, placeholder source
    # Re-pickled by stylegan's dnnlib (version 3): weight shapes still tell the layout and the label output.
    for rec in (Gs_rec, D_rec):
        rec.version = 3
    assert detect_variant(Gs_rec) == "stylegan"
    Gs, D = convert(Gs_rec, "G_ema"), convert(D_rec, "D")
    assert D.aux_labels
    z, c, img = (torch.from_numpy(ref[k]) for k in ("z", "c", "img"))
    i = ref["lods"].tolist().index(0.5)
    with torch.no_grad():
        Gs.lod.fill_(0.5)
        D.lod.fill_(0.5)
        assert _max_diff(Gs(z, c), ref["gs_img"][i]) <= TOL
        assert _max_diff(D(img, c, return_labels=True)[1], ref["d_labels"][i]) <= TOL
    # The source text, when a pickle still carries it, decides before the version.
    Gs_rec.build_module_src = "def D_paper(...):\n    labels_out = tf.identity(combo_out[:, 1:], name='labels_out')\n"
    assert detect_variant(Gs_rec) == "pggan"
    Gs_rec.version = 2
    Gs_rec.build_module_src = "def minibatch_stddev_layer(x, group_size=4, num_new_features=1):\n"
    assert detect_variant(Gs_rec) == "stylegan"


def test_unknown_keywords_and_variables_are_named() -> None:
    def records():
        G_rec, D_rec, _ = safe_load_pickle(FIX / "progan_sg_uncond.pkl")
        return G_rec, D_rec

    G_rec, _ = records()
    G_rec.static_kwargs["use_batchnorm"] = True
    with pytest.raises(UnsupportedNetworkError, match="use_batchnorm"):
        convert(G_rec, "G")
    _, D_rec = records()
    D_rec.variables["4x4/Extra/weight"] = np.zeros([3, 3], np.float32)
    with pytest.raises(UnsupportedNetworkError, match="4x4/Extra/weight"):
        convert(D_rec, "D")
    G_rec, _ = records()
    del G_rec.variables["ToRGB_lod1/bias"]
    with pytest.raises(UnsupportedNetworkError, match="torgb_lod1.bias"):
        convert(G_rec, "G")
    # TF-only keywords and the other network's keywords are accepted, as NVlabs' build functions accept them.
    _, D_rec = records()
    D_rec.static_kwargs.update(structure="linear", dtype="float32", latent_size=16, use_pixelnorm=True)
    assert isinstance(convert(D_rec, "D"), Discriminator)


def test_portable_roundtrip(tmp_path: Path) -> None:
    ref = _ref("progan_pg_cond")
    nets = load_network(FIX / "progan_pg_cond.pkl")
    save_network(tmp_path / "pg", nets["G_ema"], G=nets["G"], D=nets["D"], training_info={"kimg": 1})
    back = load_network(tmp_path / "pg")
    z, c, img = (torch.from_numpy(ref[k]) for k in ("z", "c", "img"))
    for key in ("G_ema", "G", "D"):
        a, b = nets[key], back[key]
        assert type(a) is type(b) and a.init_kwargs == b.init_kwargs
        assert float(a.lod) == float(b.lod)
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    assert back["D"].aux_labels
    with torch.no_grad():
        assert torch.equal(back["G_ema"](z, c), nets["G_ema"](z, c))
        assert torch.equal(back["D"](img, c, return_labels=True)[1], nets["D"](img, c, return_labels=True)[1])


def test_generator_interface() -> None:
    torch.manual_seed(0)
    G = Generator(num_channels=3, resolution=16, label_size=2, fmap_base=32, fmap_max=16)
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (16, 2, 16, 3)
    assert Generator(**G.init_kwargs).init_kwargs == G.init_kwargs
    z, c = torch.randn([2, 16]), torch.eye(2)
    img = G(z, c, truncation_psi=1, noise_mode="random", update_emas=True)
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32
    with pytest.raises(ValueError, match="truncation_psi"):
        G(z, c, truncation_psi=0.7)
    with pytest.raises(ValueError, match="c"):
        G(z, torch.zeros([2, 3]))
    D = Discriminator(num_channels=3, resolution=16, label_size=2, fmap_base=32, fmap_max=16, mbstd_group_size=2)
    assert D(img, c, update_emas=True).shape == (2, 1)
    with pytest.raises(ValueError, match="aux_labels"):
        D(img, c, return_labels=True)


def test_only_needed_blocks_run() -> None:
    G = Generator(num_channels=1, resolution=32, fmap_base=32, fmap_max=16)
    D = Discriminator(num_channels=1, resolution=32, fmap_base=32, fmap_max=16)
    called: list[str] = []
    for net in (G, D):
        for name, m in net.named_children():
            m.register_forward_hook(lambda *_, name=name: called.append(name))
    with torch.no_grad():
        G.lod.fill_(2.0)
        D.lod.fill_(2.0)
        img = G(torch.randn([4, G.z_dim]))
        D(img)
    assert sorted(called) == sorted(["b4", "b8", "torgb_lod2", "fromrgb_lod2", "b8", "b4"])
    called.clear()
    with torch.no_grad():
        G.lod.fill_(1.5)
        D.lod.fill_(1.5)
        img = G(torch.randn([4, G.z_dim]))
        D(img)
    assert sorted(called) == sorted(["b4", "b8", "b16", "torgb_lod1", "torgb_lod2",
                                     "fromrgb_lod1", "fromrgb_lod2", "b16", "b8", "b4"])
    # lod 2: the 8x8 image, nearest-upscaled to 32x32.
    with torch.no_grad():
        G.lod.fill_(2.0)
        img = G(torch.randn([1, G.z_dim]))
    assert torch.equal(img, upscale2d(img[:, :, ::4, ::4], 4))


def _copy_weights(dst: torch.nn.Module, src: torch.nn.Module, rename: dict[str, str]) -> None:
    sd = {}
    for k, v in src.state_dict().items():
        for a, b in rename.items():
            k = k.replace(a, b)
        sd[k] = v
    dst.load_state_dict(sd)


def test_fused_scale_equals_separate_resampling() -> None:
    """NVlabs' fused convs: the down-conv equals conv + box downscale; G with fused up-convs equals G with nearest
    upscale + conv once the kernels are flipped (the transposed convolution of the summed kernel convolves where the
    separate path correlates). D differs as a network: its separate path downscales after the activation."""
    torch.manual_seed(1)
    down, conv = EqualizedConv2d(4, 8, 3, resample="down"), EqualizedConv2d(4, 8, 3)
    conv.load_state_dict(down.state_dict())
    x = torch.randn([2, 4, 8, 8])
    with torch.no_grad():
        assert (down(x) - downscale2d(conv(x))).abs().max() <= 1e-5
    kw = dict(num_channels=3, resolution=16, fmap_base=32, fmap_max=16)
    G_fused, G_sep = Generator(**kw, fused_scale=True), Generator(**kw, fused_scale=False)
    with torch.no_grad():
        for name, p in G_fused.named_parameters():
            if name.endswith("bias"):
                p.normal_()
        sd = {}
        for k, v in G_fused.state_dict().items():
            sd[k.replace("conv0_up", "conv0")] = v.flip([2, 3]) if "conv0_up.weight" in k else v
        G_sep.load_state_dict(sd)
        z = torch.randn([4, G_fused.z_dim])
        a, b = G_fused(z), G_sep(z)
    assert (a - b).abs().max() <= 1e-5 and a.abs().max() > 0.1
