"""NVlabs network pickles open without NVlabs' code and give NVlabs' outputs.

Fixtures (tests/fixtures/io, README.md there): training-snapshot pickles written with NVlabs' own code
(stylegan3 c233a919 networks_stylegan2 / stylegan2-ada-pytorch d72cc7d0 networks.py, built like their train.py and
pickled like their training_loop.py) and the outputs NVlabs' modules gave for fixed z, c and images (CPU float32,
noise_mode='const').
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sgtrain.io import UnsupportedNetworkError, load_network, safe_load_pickle
from sgtrain.io.safe_pickle import PersistentRecord, collect_state_dict

FIX = Path(__file__).parent / "fixtures" / "io"
PICKLES = ["nvlabs_stylegan3_tiny_cond_orig", "nvlabs_ada_tiny_uncond"]


@pytest.mark.parametrize("name", PICKLES)
def test_nvlabs_snapshot_matches_nvlabs_outputs(name: str) -> None:
    ref = np.load(FIX / f"{name}.npz")
    nets = load_network(FIX / f"{name}.pkl")
    assert {"G_ema", "G", "D", "augment_p", "training_info"} <= set(nets)
    z, c, img = (torch.from_numpy(ref[k]) for k in ("z", "c", "img_in"))
    with torch.no_grad():
        outs = {
            "G_ema_psi1": nets["G_ema"](z, c, truncation_psi=1, noise_mode="const"),
            "G_ema_psi07": nets["G_ema"](z, c, truncation_psi=0.7, noise_mode="const"),
            "G_psi1": nets["G"](z, c, truncation_psi=1, noise_mode="const"),
            "G_ema_ws": nets["G_ema"].mapping(z, c),
            "D_logits": nets["D"](img, c),
        }
    for key, out in outs.items():
        diff = float(np.abs(out.numpy() - ref[key]).max())
        assert diff <= 1e-4, f"{name} {key}: max |diff| {diff}"
    # G and G_ema hold different weights in the fixture: a swapped mapping would show here.
    assert np.abs(ref["G_psi1"] - ref["G_ema_psi1"]).max() > 1e-2
    assert nets["augment_p"] == pytest.approx(float(ref["augment_p"]))
    info = nets["training_info"]
    assert info["source"] == "nvlabs-pickle"
    assert info["training_set_kwargs"]["resolution"] == ref["img_in"].shape[-1]
    assert info["augment_kwargs"]["xflip"] == 1
    for m in (nets["G_ema"], nets["G"], nets["D"]):
        assert not m.training and not any(p.requires_grad for p in m.parameters())


def test_init_kwargs_follow_the_pickle() -> None:
    nets = load_network(FIX / "nvlabs_stylegan3_tiny_cond_orig.pkl")
    g, d = nets["G_ema"].init_kwargs, nets["D"].init_kwargs
    assert (g["c_dim"], g["img_resolution"], g["channel_base"], g["channel_max"]) == (4, 16, 256, 16)
    assert g["mapping_kwargs"]["num_layers"] == 2 and g["conv_clamp"] == 256
    assert d["architecture"] == "orig" and d["epilogue_kwargs"]["mbstd_group_size"] == 2
    ada = load_network(FIX / "nvlabs_ada_tiny_uncond.pkl")["G_ema"].init_kwargs
    assert "synthesis_kwargs" not in ada and ada["channel_base"] == 256  # ada's nested kwargs were flattened


def test_state_dict_equals_pickled_tensors() -> None:
    raw = safe_load_pickle(FIX / "nvlabs_ada_tiny_uncond.pkl")
    assert isinstance(raw["G_ema"], PersistentRecord) and raw["G_ema"].class_name == "Generator"
    nets = load_network(FIX / "nvlabs_ada_tiny_uncond.pkl")
    for key in ("G_ema", "G", "D"):
        pickled = collect_state_dict(raw[key])
        ours = nets[key].state_dict()
        assert list(pickled) == list(ours)
        for k, v in pickled.items():
            assert torch.equal(v, ours[k]), k


def test_stylegan3_generator_opens_and_gives_nvlabs_images() -> None:
    """A StyleGAN3 G_ema pickle (networks_stylegan3.py) opens as sgtrain.models.stylegan3.Generator with NVlabs'
    outputs (more StyleGAN3 configs, with D and the input transform: tests/test_stylegan3.py)."""
    from sgtrain.models.stylegan3 import Generator as SG3Generator

    ref = np.load(FIX / "nvlabs_stylegan3_sg3_tiny.npz")
    nets = load_network(FIX / "nvlabs_stylegan3_sg3_tiny.pkl")
    G = nets["G_ema"]
    assert isinstance(G, SG3Generator) and set(nets) == {"G_ema", "training_info"}
    assert G.init_kwargs["num_layers"] == 4 and G.num_ws == 6
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        outs = {"ws": G.mapping(z, c), "img_psi1": G(z, c), "img_psi07": G(z, c, truncation_psi=0.7)}
    for key, out in outs.items():
        diff = float(np.abs(out.numpy() - ref[key]).max())
        assert diff <= 1e-4, f"sg3_tiny {key}: max |diff| {diff}"


def test_unknown_architecture_is_reported_by_name() -> None:
    raw = safe_load_pickle(FIX / "nvlabs_ada_tiny_uncond.pkl")
    from sgtrain.io.nvlabs import convert_nvlabs_snapshot

    with pytest.raises(UnsupportedNetworkError, match=r"AugmentPipe"):
        convert_nvlabs_snapshot({"G_ema": raw["augment_pipe"]})


def test_nvlabs_run_directory_opens_newest_snapshot(tmp_path: Path) -> None:
    shutil.copy(FIX / "nvlabs_ada_tiny_uncond.pkl", tmp_path / "network-snapshot-000004.pkl")
    shutil.copy(FIX / "nvlabs_ada_tiny_uncond.pkl", tmp_path / "network-snapshot-000120.pkl")
    nets = load_network(tmp_path)
    assert nets["training_info"]["kimg"] == 120
