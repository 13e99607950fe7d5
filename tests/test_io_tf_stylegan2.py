"""NVlabs StyleGAN2 TensorFlow pickles open as sgtrain's StyleGAN2 networks, without TensorFlow.

Fixtures (tests/fixtures/stylegan, README.md there): ``(G, D, Gs)`` pickles written by NVlabs/stylegan2's TF code
(bf0fe0b; ``f32``: config-f layout, ``e16``: G resnet / D skip with [1, 2, 1] resampling, ``d16``: the progressive
networks of configs B-D at lod 0) and by NVlabs/stylegan2-ada's TF code (43eca51; ``ada16c``: conditional), with
TF's outputs and, for f32 / e16, the outputs of the networks NVlabs' stylegan2-ada-pytorch ``legacy.py`` made of
them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sgtrain.io import UnsupportedNetworkError, load_network, safe_load_pickle
from sgtrain.io.tensorflow import convert_tf_snapshot
from sgtrain.models.stylegan2 import Discriminator, Generator

FIX = Path(__file__).parent / "fixtures" / "stylegan"
CONFIGS = ["f32", "e16", "d16", "ada16c"]
TOL = 1e-4


def _max_diff(out: torch.Tensor, ref: np.ndarray) -> float:
    assert tuple(out.shape) == ref.shape
    return float(np.abs(out.detach().numpy() - ref).max())


@pytest.mark.parametrize("name", CONFIGS)
def test_stylegan2_tf_pickle_gives_tf_and_legacy_outputs(name: str) -> None:
    ref = dict(np.load(FIX / f"tf_stylegan2_{name}.npz"))
    nets = load_network(FIX / f"tf_stylegan2_{name}.pkl")
    G, D, Gs = nets["G"], nets["D"], nets["G_ema"]
    assert isinstance(Gs, Generator) and isinstance(G, Generator) and isinstance(D, Discriminator)
    z, c, c_d = (torch.from_numpy(ref[k]) for k in ("z", "c", "c_d"))
    shape = (len(c_d), Gs.img_channels, Gs.img_resolution, Gs.img_resolution)
    img = torch.from_numpy(np.random.RandomState(7).randn(*shape).astype(np.float32))  # as the fixture script
    with torch.no_grad():
        outs = {
            "Gs_psi1": Gs(z, c, noise_mode="const"),
            "Gs_psi0.7": Gs(z, c, truncation_psi=0.7, noise_mode="const"),
            "Gs_psi0.5_cutoff4": Gs(z, c, truncation_psi=0.5, truncation_cutoff=4, noise_mode="const"),
            "G_psi1": G(z, c, noise_mode="const"),
            "Gs_ws": Gs.mapping(z, c),
            "D": D(img, c_d),
        }
    for key, out in outs.items():
        assert _max_diff(out, ref[key]) <= TOL, f"{name} {key} vs TensorFlow"
    legacy = {"Gs_psi1": "legacy_G_ema_psi1", "Gs_psi0.7": "legacy_G_ema_psi0.7", "G_psi1": "legacy_G_psi1"}
    for key, lkey in legacy.items():
        if lkey in ref:
            assert _max_diff(outs[key], ref[lkey]) <= TOL, f"{name} {key} vs legacy.py"
    assert np.abs(ref["G_psi1"] - ref["Gs_psi1"]).max() > 1e-2  # G and Gs differ in the fixture


def test_original_discriminator_keeps_its_minibatch_stddev_groups() -> None:
    """NVlabs/stylegan2's D_stylegan2 groups 4 samples by default; legacy.py's conversion uses the whole batch
    (8 here) and so gives other scores. sgtrain follows TensorFlow."""
    ref = dict(np.load(FIX / "tf_stylegan2_f32.npz"))
    D = load_network(FIX / "tf_stylegan2_f32.pkl")["D"]
    assert D.init_kwargs["epilogue_kwargs"]["mbstd_group_size"] == 4
    img = torch.from_numpy(np.random.RandomState(7).randn(8, 3, 32, 32).astype(np.float32))
    with torch.no_grad():
        out = D(img, torch.from_numpy(ref["c_d"]))
    assert _max_diff(out, ref["D"]) <= TOL
    assert np.abs(ref["legacy_D"] - ref["D"]).max() > 1e-4


def test_converted_keywords() -> None:
    f32 = load_network(FIX / "tf_stylegan2_f32.pkl")
    g = f32["G_ema"].init_kwargs
    assert (g["z_dim"], g["w_dim"], g["img_resolution"], g["channel_base"], g["channel_max"]) == (16, 16, 32, 128, 16)
    assert g["architecture"] == "skip" and g["conv_clamp"] is None and g["num_fp16_res"] == 0
    assert g["mapping_kwargs"]["num_layers"] == 2 and g["mapping_kwargs"]["w_avg_beta"] == 0.995
    e16 = load_network(FIX / "tf_stylegan2_e16.pkl")
    assert e16["G_ema"].init_kwargs["architecture"] == "resnet" and e16["D"].init_kwargs["architecture"] == "skip"
    assert e16["G_ema"].init_kwargs["resample_filter"] == [1, 2, 1]
    assert e16["G_ema"].init_kwargs["mapping_kwargs"]["layer_features"] == 20
    d16 = load_network(FIX / "tf_stylegan2_d16.pkl")
    assert d16["G_ema"].init_kwargs["architecture"] == "orig" and d16["D"].init_kwargs["architecture"] == "orig"
    ada = load_network(FIX / "tf_stylegan2_ada16c.pkl")
    ga, da = ada["G_ema"].init_kwargs, ada["D"].init_kwargs
    assert ga["c_dim"] == 3 and ga["mapping_kwargs"]["embed_features"] == 8  # ADA: latent_size, not w_dim (12)
    assert ga["conv_clamp"] == 256 and da["cmap_dim"] == 16 and da["block_kwargs"]["freeze_layers"] == 1
    assert ada["training_info"]["build_funcs"]["D"].endswith("D_main")  # stylegan2-ada stores the short name


def _records(name: str) -> list:
    return list(safe_load_pickle(FIX / f"tf_stylegan2_{name}.pkl"))


def test_progressive_networks_convert_only_at_lod_0() -> None:
    recs = _records("d16")
    recs[2].variables["lod"] = np.float32(1.5)
    with pytest.raises(UnsupportedNetworkError, match=r"lod=1\.5"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("d16")
    recs[1].variables["lod"] = np.float32(0.5)
    with pytest.raises(UnsupportedNetworkError, match=r"D_stylegan.*lod=0\.5"):
        convert_tf_snapshot(tuple(recs))


def test_original_stylegan2_labels_are_refused_with_the_reason() -> None:
    recs = _records("f32")
    mapping = recs[2].components["mapping"]
    recs[2].static_kwargs["label_size"] = 3
    mapping.variables["LabelConcat/weight"] = np.zeros([3, 16], np.float32)
    with pytest.raises(UnsupportedNetworkError, match="LabelConcat"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("f32")
    recs[1].static_kwargs["label_size"] = 3
    with pytest.raises(UnsupportedNetworkError, match="conditional discriminator of the original"):
        convert_tf_snapshot(tuple(recs))


def test_unknown_keywords_and_variables_are_named() -> None:
    recs = _records("e16")
    recs[2].static_kwargs["fmap_mul"] = 2
    with pytest.raises(UnsupportedNetworkError, match="fmap_mul"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("e16")
    recs[2].components["synthesis"].variables["8x8/Extra/weight"] = np.zeros([1], np.float32)
    with pytest.raises(UnsupportedNetworkError, match="8x8/Extra/weight"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("ada16c")
    recs[1].static_kwargs["use_pagan"] = True
    with pytest.raises(UnsupportedNetworkError, match="use_pagan"):
        convert_tf_snapshot(tuple(recs))
    recs = _records("f32")
    recs[2].static_kwargs["fmap_min"] = 12  # would widen the 8x8+ layers: not expressible
    with pytest.raises(UnsupportedNetworkError, match="fmap_min"):
        convert_tf_snapshot(tuple(recs))
