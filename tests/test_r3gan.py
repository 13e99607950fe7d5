"""R3GAN against the authors' code (brownvc/R3GAN; fixtures in tests/fixtures/r3gan/, see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sgtrain.models.r3gan.loss import R3GANLoss, cosine_decay
from sgtrain.models.r3gan.networks import Discriminator, Generator

FIX = Path(__file__).parent / "fixtures" / "r3gan"
TOL = 1e-4

CONFIGS = {
    "uncond": dict(
        G=dict(NoiseDimension=8, WidthPerStage=[16, 8, 8], CardinalityPerStage=[2, 2, 2], BlocksPerStage=[1, 1, 1],
               ExpansionFactor=2, KernelSize=3, ResamplingFilter=[1, 2, 1], c_dim=0, img_resolution=16, FP16Stages=[]),
        D=dict(WidthPerStage=[8, 8, 16], CardinalityPerStage=[2, 2, 2], BlocksPerStage=[1, 1, 1], ExpansionFactor=2,
               KernelSize=3, ResamplingFilter=[1, 2, 1], c_dim=0, img_resolution=16, FP16Stages=[])),
    "cond": dict(
        G=dict(NoiseDimension=8, WidthPerStage=[16, 8], CardinalityPerStage=[4, 2], BlocksPerStage=[2, 1],
               ExpansionFactor=2, KernelSize=3, ResamplingFilter=[1, 2, 1], c_dim=5, img_resolution=8,
               ConditionEmbeddingDimension=6, FP16Stages=[]),
        D=dict(WidthPerStage=[8, 16], CardinalityPerStage=[2, 4], BlocksPerStage=[1, 2], ExpansionFactor=2,
               KernelSize=3, ResamplingFilter=[1, 2, 1], c_dim=5, img_resolution=8, ConditionEmbeddingDimension=6,
               FP16Stages=[])),
}


def _sub(t: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}


def _nets(key: str) -> tuple[dict[str, torch.Tensor], Generator, Generator, Discriminator, float, float]:
    path = FIX / f"{key}.safetensors"
    t = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    cfg = CONFIGS[key]
    G, G_ema, D = Generator(**cfg["G"]), Generator(**cfg["G"]), Discriminator(**cfg["D"])
    G.load_state_dict(_sub(t, "G."))  # strict: the authors' state_dict keys, buffers included
    G_ema.load_state_dict(_sub(t, "G_ema."))
    D.load_state_dict(_sub(t, "D."))
    return t, G, G_ema, D, float(meta["gamma"]), float(meta["gain"])


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_outputs_match_authors(key):
    t, G, G_ema, D, _, _ = _nets(key)
    assert t["G_img"].abs().mean() > 0.1 and t["D_real"].abs().mean() > 0.01  # the fixture exercises every branch
    with torch.no_grad():
        torch.testing.assert_close(G(t["z"], t["c"]), t["G_img"], atol=TOL, rtol=TOL)
        torch.testing.assert_close(G_ema(t["z"], t["c"]), t["G_ema_img"], atol=TOL, rtol=TOL)
        torch.testing.assert_close(D(t["real"], t["c"]).flatten(), t["D_real"], atol=TOL, rtol=TOL)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_loss_terms_and_gradients_match_authors(key):
    t, G, _, D, gamma, gain = _nets(key)
    loss = R3GANLoss(G, D, gamma=gamma)
    z, c, real = t["z"], t["c"], t["real"]
    G.requires_grad_(True)
    D.requires_grad_(True)
    stats = loss.accumulate_gradients("Gboth", real, c, z, c, gain, 0)
    torch.testing.assert_close(stats["Loss/G/loss"], t["Gphase_adv"].mean(), atol=TOL, rtol=TOL)
    torch.testing.assert_close(stats["Loss/scores/fake"], t["Gphase_rel"].mean(), atol=TOL, rtol=TOL)
    for n, p in G.named_parameters():
        torch.testing.assert_close(p.grad, t["Gphase_Ggrad." + n], atol=TOL, rtol=TOL, msg=n)
    for p in [*G.parameters(), *D.parameters()]:
        p.grad = None
    stats = loss.accumulate_gradients("Dboth", real, c, z, torch.zeros_like(c), gain, 0)
    for name, ref in [("Loss/D/loss", "Dphase_adv"), ("Loss/scores/real", "Dphase_rel"),
                      ("Loss/r1_penalty", "Dphase_r1"), ("Loss/r2_penalty", "Dphase_r2")]:
        assert t[ref].abs().mean() > 1e-3, ref
        torch.testing.assert_close(stats[name], t[ref].mean(), atol=TOL, rtol=TOL, msg=name)
    assert {"Loss/G/loss", "Loss/D/loss", "Loss/signs/real"} <= {*stats, "Loss/G/loss"}
    for n, p in D.named_parameters():
        assert t["Dphase_Dgrad." + n].abs().max() > 0, n
        torch.testing.assert_close(p.grad, t["Dphase_Dgrad." + n], atol=TOL, rtol=TOL, msg=n)


def test_cosine_decay_matches_formula():
    assert cosine_decay(0, 2.0, 100, 0.5) == pytest.approx(2.0)
    assert cosine_decay(50, 2.0, 100, 0.5) == pytest.approx(1.25)
    assert cosine_decay(100, 2.0, 100, 0.5) == pytest.approx(0.5)
    assert cosine_decay(150, 2.0, 100, 0.5) == 0.5
    loss = R3GANLoss(torch.nn.Identity(), torch.nn.Identity(), gamma=2.0, gamma_final=0.2, total_kimg=1)
    assert loss.gamma_at(500) == pytest.approx(1.1)


def test_bad_configs_are_refused():
    cfg = dict(CONFIGS["uncond"]["G"])
    with pytest.raises(ValueError, match="img_resolution=32"):
        Generator(**{**cfg, "img_resolution": 32})
    with pytest.raises(ValueError, match="same length"):
        Generator(**{**cfg, "BlocksPerStage": [1, 1]})
    with pytest.raises(ValueError, match="ConditionEmbeddingDimension"):
        Generator(**{**cfg, "c_dim": 3})


def test_fresh_networks_have_the_authors_buffers_and_init():
    t, *_ = _nets("uncond")
    torch.manual_seed(0)
    G = Generator(**CONFIGS["uncond"]["G"])
    for n, b in G.named_buffers():
        torch.testing.assert_close(b, t["G." + n], atol=0, rtol=0)  # the interpolation filters
    blk = G.Model.MainLayers[1].Layers[1]
    assert blk.LinearLayer3.Layer.weight.abs().max() == 0  # Fix-up: the residual branch starts at zero
    w = torch.cat([G.Model.MainLayers[i].Layers[1].LinearLayer1.Layer.weight.flatten() for i in (1, 2)])
    fan_in = G.Model.MainLayers[1].Layers[1].LinearLayer1.Layer.weight.shape[1]
    expected = (2 / 1.04) ** 0.5 * 3 ** (-1 / 4) / fan_in ** 0.5  # lrelu gain * L^(-1/(2m-2)) / sqrt(fan_in)
    assert w.std().item() == pytest.approx(expected, rel=0.25)
