"""R3GAN against the authors' code (brownvc/R3GAN; fixtures in tests/fixtures/r3gan/, see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sgtrain.core.schedule import cosine_decay
from sgtrain.models.r3gan.loss import R3GANLoss
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
    loss = R3GANLoss(torch.nn.Identity(), torch.nn.Identity(), gamma=2.0, gamma_final=0.2, decay_kimg=1)
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


def test_authors_snapshot_pickle_opens_without_their_code_and_gives_their_images(tmp_path):
    import sys

    from sgtrain.io import load_network

    assert "R3GAN" not in sys.modules and "training" not in sys.modules
    nets = load_network(FIX / "network-snapshot-000012.pkl")
    assert {"G", "D", "G_ema"} <= set(nets)
    assert "R3GAN" not in sys.modules and "training" not in sys.modules  # read as records, never imported
    G_ema, D = nets["G_ema"], nets["D"]
    assert isinstance(G_ema, Generator) and isinstance(D, Discriminator)
    assert G_ema.init_kwargs["FP16Stages"] == [2] and D.init_kwargs["FP16Stages"] == [0]  # their bfloat16 stages
    ref = load_file(FIX / "snapshot_outputs.safetensors")
    c = torch.zeros([ref["z"].shape[0], 0])
    with torch.no_grad():
        img = G_ema(ref["z"], c)
        torch.testing.assert_close(img, ref["G_ema_img"].float(), atol=TOL, rtol=TOL)
        torch.testing.assert_close(D(img, c).flatten(), ref["D_logits"].float().flatten(), atol=TOL, rtol=TOL)


def test_authors_snapshot_converts_to_a_portable_file_that_renders_the_same(tmp_path):
    from sgtrain.io import load_network
    from sgtrain.io.portable import save_network

    nets = load_network(FIX / "network-snapshot-000012.pkl")
    out, _ = save_network(tmp_path / "net", nets["G_ema"], nets["G"], nets["D"])
    back = load_network(out)
    assert {"G", "D", "G_ema"} <= set(back) and back["G_ema"].init_kwargs == nets["G_ema"].init_kwargs
    z = torch.randn([2, 8], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(back["G_ema"](z, None), nets["G_ema"](z, None), atol=0, rtol=0)


class _RecordingLoss(R3GANLoss):
    """R3GANLoss that records what the training module hands it (phase, reals, gain, optimizer state)."""

    calls: list = []

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg, backward=None):
        _RecordingLoss.calls.append((phase, real_img.clone(), gain, cur_nimg))
        return super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg, backward)


def test_training_module_runs_the_authors_loop(tmp_path):
    """Through Lightning: D's phase first on its own reals, then G's on the next batch, D's passes averaged
    (D_batch_gpu 2 of 4: gain 0.5), G_ema after both, and lr / beta2 / EMA / p following the cosine over cur_nimg."""
    import functools
    import math

    import lightning as L

    from sgtrain.core.augment import AugmentPipe
    from sgtrain.core.schedule import cosine_decay
    from sgtrain.training.module import GANModule

    torch.manual_seed(0)
    cfg = CONFIGS["uncond"]
    G, D = Generator(**cfg["G"]), Discriminator(**cfg["D"])
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(0.0)  # augment.p (the build sets it from the config)
    module = GANModule(G=G, D=D, loss=functools.partial(_RecordingLoss, gamma=0.5), augment_pipe=pipe, batch=4,
                       D_batch_gpu=2, G_lr=2e-3, D_lr=1e-3, betas=(0.0, 0.9), G_reg_interval=None, D_reg_interval=None,
                       ema_kimg=0.0, decay_kimg=0.016, lr_final=1e-4, beta2_final=0.99, ema_kimg_final=0.008,
                       p_final=0.4, total_kimg=0.012, tick_kimg=0.004)
    seen = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            groups = [dict(g) for o in pl_module.optimizers() for g in o.optimizer.param_groups]
            seen.append((pl_module.cur_nimg, groups, float(pl_module.augment_pipe.p)))

    imgs = torch.randint(0, 256, [64, 3, 16, 16], dtype=torch.uint8)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(imgs, torch.zeros([64, 0])), batch_size=4)
    _RecordingLoss.calls = []
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Probe()])
    trainer.fit(module, data)
    assert module.cur_nimg == 12 and module.batch_idx == 3
    assert module.loader_batches == 6  # two batches of reals per iteration, counted once (cur_nimg += batch)
    calls = _RecordingLoss.calls
    assert [c[0] for c in calls] == ["Dboth", "Dboth", "Gboth"] * 3
    assert [c[2] for c in calls] == [0.5, 0.5, 1.0] * 3  # gain = pass / per-device batch
    expect = imgs.float() / 127.5 - 1
    for it in range(3):
        d1, d2, g = (c[1] for c in calls[3 * it:3 * it + 3])
        torch.testing.assert_close(torch.cat([d1, d2]), expect[8 * it:8 * it + 4], atol=0, rtol=0)  # D's reals
        torch.testing.assert_close(g, expect[8 * it + 4:8 * it + 8], atol=0, rtol=0)  # G's: the next batch
    # the values in force during iteration k, computed from cur_nimg at its start (seen before the next iteration)
    final = (module.cur_nimg, [dict(g) for o in module.optimizers() for g in o.optimizer.param_groups],
             float(module.augment_pipe.p))
    for nimg, groups, p in [*seen[2::2], final]:
        n = nimg - 4
        assert groups[0]["lr"] == cosine_decay(n, 2e-3, 16, 1e-4) and groups[1]["lr"] == cosine_decay(n, 1e-3, 16, 1e-4)
        assert groups[0]["betas"] == (0.0, cosine_decay(n, 0.9, 16, 0.99))
        assert p == pytest.approx(cosine_decay(n, 0.0, 16, 0.4), abs=1e-7)
    assert seen[2][1][0]["lr"] == 2e-3 and final[1][0]["lr"] < 2e-3 and final[2] > 0
    # G_ema: half-life 0 at nimg 0 (G_ema = G after the first step), then the decayed half-life
    assert module.decayed(8)["ema_nimg"] == cosine_decay(8, 0.0, 16, 8.0)
    beta = 0.5 ** (4 / cosine_decay(8, 0.0, 16, 8.0))
    assert 0 < beta < 1 and not math.isnan(beta)


def test_r3gan_config_refuses_stylegan_keys_and_lazy_intervals(tmp_path):
    from _tiny_run import TINY_FAMILIES, make_shards

    from sgtrain.errors import ConfigError
    from sgtrain.training.config import compose, validate_config

    shards = make_shards(tmp_path, n=8, res=16)
    with pytest.raises(ConfigError, match="4 stages .32x32. but the images are 16x16: give 3 entries"):
        validate_config(compose(["model=r3gan_small", f"dataset.path={shards}", "train.batch=4"]))
    base = [*TINY_FAMILIES["r3gan"], f"dataset.path={shards}"]
    validate_config(compose(base))
    with pytest.raises(ConfigError, match="loss.pl_weight"):
        validate_config(compose([*base, "+loss.pl_weight=2"]))
    with pytest.raises(ConfigError, match="model.mapping_kwargs"):
        validate_config(compose([*base, "+model.mapping_kwargs={num_layers:8}"]))
    with pytest.raises(ConfigError, match="train.D_reg_interval=16.*null"):
        validate_config(compose([*base, "train.D_reg_interval=16"]))
    with pytest.raises(ConfigError, match="train.decay_kimg"):
        validate_config(compose([*base, "train.decay_kimg=null"]))
    with pytest.raises(ConfigError, match="train.G_batch_gpu=3"):
        validate_config(compose([*base, "train.G_batch_gpu=3"]))
