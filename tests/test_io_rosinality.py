"""rosinality/stylegan2-pytorch checkpoints load into sgtrain and reproduce rosinality's own outputs.

Fixture tests/fixtures/io/rosinality_16.npz was written by _ref/h5/make_rosinality_fixture.py (git-excluded) with
rosinality's model.py (commit in the npz 'source'; its CUDA op module replaced by a CPU stub so that its own CPU
branches run). rosinality's channel table is 512 wide up to 32x32, so even a 16x16 network has ~12M (G) / 17M (D)
parameters: instead of storing them, the npz holds the keys and shapes of rosinality's state_dicts and the test
rebuilds the same tensors with :func:`rosinality_tensor`, the function the fixture script applied too.
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "io" / "rosinality_16.npz"


def rosinality_tensor(key: str, shape: tuple[int, ...], salt: str = "") -> torch.Tensor:
    """Deterministic non-trivial value for one rosinality state_dict entry (seeded by the key's CRC32).

    Scales follow rosinality's parameterisation so activations stay O(1): mapping weights are stored divided by
    lr_mul 0.01, every bias, noise strength and modulation bias is off its initial value.
    """
    g = torch.Generator().manual_seed(zlib.crc32((salt + key).encode()))
    x = torch.randn(shape, generator=g)
    if key.startswith("style.") and key.endswith(".weight"):
        return x * 100
    if key.startswith("style.") and key.endswith(".bias"):
        return x * 10
    if key.endswith("modulation.bias"):
        return 1 + 0.2 * x
    if key.endswith("noise.weight") or key.endswith("bias"):
        return 0.2 * x
    if key == "latent_avg":
        return 0.3 * x
    return x


def build_state_dict(manifest: dict[str, list[int]], kernels: dict[str, np.ndarray], salt: str) -> dict:
    """rosinality state_dict from the recorded (key -> shape) manifest and blur-kernel buffers."""
    sd = {}
    for key, shape in manifest.items():
        if key.endswith(".kernel"):
            sd[key] = torch.from_numpy(kernels[key])
        else:
            sd[key] = rosinality_tensor(key, tuple(shape), salt)
    return sd


@pytest.fixture(scope="module")
def ref() -> dict:
    data = np.load(FIXTURE)
    manifests = json.loads(str(data["manifests"]))
    kernels = {k: data[k] for k in data.files if k.startswith("kernel:")}

    def sd(name: str, salt: str) -> dict:
        ks = {k.split(":", 2)[2]: v for k, v in kernels.items() if k.split(":", 2)[1] == name}
        return build_state_dict(manifests[name], ks, salt)

    cfg = json.loads(str(data["config"]))
    return {"data": data, "g_ema": sd("g_ema", ""), "g": sd("g", "g/"), "d": sd("d", "d/"), "cfg": cfg,
            "latent_avg": rosinality_tensor("latent_avg", (cfg["style_dim"],))}


def _max_diff(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.numpy() - b).max())


def test_rosinality_checkpoint_reproduces_its_outputs(tmp_path: Path, ref: dict) -> None:
    from sgtrain.io import load_network

    # The layout of rosinality's train.py checkpoints plus convert_weight.py's latent_avg.
    path = tmp_path / "010000.pt"
    torch.save({"g": ref["g"], "d": ref["d"], "g_ema": ref["g_ema"], "latent_avg": ref["latent_avg"],
                "args": argparse.Namespace(size=16, n_mlp=2, latent=64, r1=10.0, arch="stylegan2"),
                "ada_aug_p": 0.25}, path)
    nets = load_network(path)
    data = ref["data"]
    z = torch.from_numpy(data["z"])
    c = torch.zeros([len(z), 0])
    with torch.no_grad():
        diffs = {
            "g_ema_psi1": _max_diff(nets["G_ema"](z, c, noise_mode="const"), data["g_ema_psi1"]),
            "g_ema_psi07": _max_diff(nets["G_ema"](z, c, truncation_psi=0.7, noise_mode="const"), data["g_ema_psi07"]),
            "g_psi1": _max_diff(nets["G"](z, c, noise_mode="const"), data["g_psi1"]),
            "d_logits": _max_diff(nets["D"](torch.from_numpy(data["img_in"]), c), data["d_logits"]),
        }
    assert max(diffs.values()) <= 1e-4, diffs
    assert np.abs(data["g_psi1"] - data["g_ema_psi1"]).max() > 1e-2  # g and g_ema differ: no mix-up possible
    assert nets["augment_p"] == 0.25
    info = nets["training_info"]
    assert info["source"] == "rosinality" and info["args"]["r1"] == 10.0
    kw = nets["G_ema"].init_kwargs
    assert (kw["z_dim"], kw["img_resolution"], kw["mapping_kwargs"]["num_layers"]) == (64, 16, 2)
    assert torch.equal(nets["G_ema"].mapping.w_avg, ref["latent_avg"])


def test_rosinality_g_ema_only_estimates_w_avg(tmp_path: Path, ref: dict) -> None:
    from sgtrain.io import load_network

    # Also the pre-zip torch.save format that older rosinality checkpoints use.
    torch.save({"g_ema": ref["g_ema"]}, tmp_path / "g.pt", _use_new_zipfile_serialization=False)
    nets = load_network(tmp_path / "g.pt")
    assert set(nets) == {"G_ema", "training_info"}
    assert "estimated" in nets["training_info"]["w_avg"]
    w_avg = nets["G_ema"].mapping.w_avg
    assert torch.isfinite(w_avg).all() and w_avg.abs().sum() > 0
    z = torch.from_numpy(ref["data"]["z"])
    with torch.no_grad():
        img = nets["G_ema"](z, torch.zeros([len(z), 0]), noise_mode="const")
    assert _max_diff(img, ref["data"]["g_ema_psi1"]) <= 1e-4


def test_unmappable_rosinality_networks_are_named(ref: dict) -> None:
    from sgtrain.io import UnsupportedNetworkError
    from sgtrain.models.stylegan2.rosinality import rosinality_generator

    sd = dict(ref["g_ema"])
    sd["convs.0.conv.blur.kernel"] = sd["convs.0.conv.blur.kernel"].flip(0) * 0 + 1 / 16
    with pytest.raises(UnsupportedNetworkError, match="blur kernel"):
        rosinality_generator(sd)
    with pytest.raises(UnsupportedNetworkError, match="SWAGAN"):
        rosinality_generator({**ref["g_ema"], "iwt.ll": torch.ones(2, 2)})
