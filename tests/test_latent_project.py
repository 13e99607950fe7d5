"""Projection into W / W+ (NVlabs' projector schedule) on a tiny random StyleGAN2 generator, CPU."""

import pytest
import torch
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.latent import load_vgg16, project, psnr, seeds_to_ws, synthesize
from sgtrain.latent.project import VGG16_URL, VGG16Features


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def targets(G):
    """Images the network generated (const noise, psi 0.5), float in [0, 255] scale, and their w_avg distance."""
    with torch.no_grad():
        imgs = synthesize(G, seeds_to_ws(G, [1, 2], truncation_psi=0.5), noise_mode="const")
        start = synthesize(G, G.mapping.w_avg[None, None].repeat(1, G.num_ws, 1), noise_mode="const")
    return (imgs + 1) * 127.5, (start + 1) * 127.5


def test_project_w_plus_recovers_a_generated_image(G, targets):
    tgt, start = targets
    assert bool((psnr(start.expand_as(tgt), tgt) < 20).all())  # the starting point is far from the targets
    noise_before = {k: v.clone() for k, v in G.synthesis.named_buffers() if "noise_const" in k}
    out = project(G, tgt, space="w+", num_steps=200, loss="mse", optimize_noise=False, w_avg_samples=2000,
                  history_every=50)
    assert out["ws"].shape == (2, G.num_ws, G.w_dim)
    assert not torch.equal(out["ws"][0, 0], out["ws"][0, -1])  # W+: layers differ
    assert bool((out["psnr"] >= 30).all()), out["psnr"]
    torch.testing.assert_close(out["psnr"], psnr((out["images"] + 1) * 127.5, tgt))
    assert out["history"].shape == (5, 2, G.num_ws, G.w_dim) and out["history_steps"][-1] == 200
    for k, v in G.synthesis.named_buffers():  # G itself is untouched
        if k in noise_before:
            assert torch.equal(v, noise_before[k])


def test_project_w_recovers_a_generated_image(G, targets):
    tgt, _ = targets
    out = project(G, tgt, space="w", num_steps=100, loss="mse", optimize_noise=False, w_avg_samples=2000)
    assert torch.equal(out["ws"][:, 0], out["ws"][:, -1])  # W: one w broadcast to every layer
    assert bool((out["psnr"] >= 25).all()), out["psnr"]


def test_project_with_noise_optimisation_runs_and_normalises_noise(G, targets):
    tgt, _ = targets
    out = project(G, tgt[:1], space="w", num_steps=5, loss="mse", w_avg_samples=500)
    assert out["noise"]
    for v in out["noise"].values():
        assert v.shape[:2] == (1, 1)
        torch.testing.assert_close(v.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
        torch.testing.assert_close(v.square().mean(), torch.tensor(1.0), atol=1e-4, rtol=0)


def test_lpips_needs_a_vgg_file_and_names_it(G, targets, tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg16.pt") as e:
        project(G, targets[0], loss="lpips-vgg", num_steps=1)
    assert VGG16_URL in str(e.value) and "--loss mse" in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vgg16(tmp_path / "missing.pt")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="lacks VGG16 weights"):
        load_vgg16(tmp_path / "bad.pth")


def test_lpips_with_a_torchvision_state_dict(G, targets, tmp_path):
    torch.manual_seed(1)
    vgg = VGG16Features()
    state = {f"features.{k}": v for k, v in vgg.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too; ignored
    torch.save(state, tmp_path / "vgg16_tv.pth")
    f = load_vgg16(tmp_path / "vgg16_tv.pth")
    tgt, start = targets
    x = torch.cat([tgt, start])
    feats = f(x)
    torch.testing.assert_close(feats, vgg(x))
    # LPIPS with unit weights: per layer, spatial mean of squared distances of channel-normalised features.
    assert float((feats[0] - feats[0]).square().sum()) == 0
    assert 0 < float((feats[0] - feats[2]).square().sum()) <= 4 * 5
    out = project(G, tgt[:1], loss="lpips-vgg", vgg=f, num_steps=3, w_avg_samples=500, optimize_noise=False)
    assert torch.isfinite(out["ws"]).all()


class _PixelFeatures(torch.nn.Module):
    """A stand-in with the call signature of NVlabs' TorchScript vgg16.pt."""

    def forward(self, x: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        assert not resize_images and return_lpips
        return x.flatten(1) / 255.0


def test_lpips_with_an_nvlabs_style_torchscript_file(G, targets, tmp_path):
    torch.jit.script(_PixelFeatures()).save(str(tmp_path / "vgg16.pt"))
    f = load_vgg16(tmp_path / "vgg16.pt")
    tgt, _ = targets
    torch.testing.assert_close(f(tgt), tgt.flatten(1) / 255.0)
    out = project(G, tgt[:1], space="w", loss="lpips-vgg", vgg=tmp_path / "vgg16.pt", num_steps=60,
                  w_avg_samples=1000, optimize_noise=False)
    assert float(out["psnr"][0]) >= 20  # pixel "features" make this an mse projection


def test_project_rejects_wrong_target_size(G):
    with pytest.raises(ValueError, match="load_target"):
        project(G, torch.zeros(1, 3, 8, 8), loss="mse", num_steps=1)


def test_default_noise_optimisation_recovers_a_generated_image(G, targets):
    """The user's case: defaults (noise maps optimised) on an image the network made. NVlabs' LPIPS numbers with
    mse (random noise start, penalty 1e5, w noise 0.05, noise lr 1x) stay below 16 dB here."""
    tgt, _ = targets
    out = project(G, tgt, space="w+", num_steps=200, loss="mse", w_avg_samples=2000)
    assert bool((out["psnr"] >= 28).all()), out["psnr"]
    old = project(G, tgt, space="w+", num_steps=200, loss="mse", w_avg_samples=2000, noise_init="random",
                  regularize_noise_weight=1e5, initial_noise_factor=0.05, noise_lr_scale=1.0)
    assert bool((old["psnr"] < out["psnr"] - 5).all()), (old["psnr"], out["psnr"])
    w = project(G, tgt, space="w", num_steps=100, loss="mse", w_avg_samples=2000)
    assert bool((w["psnr"] >= 22).all()), w["psnr"]


def test_noise_maps_start_from_the_networks_own(G, targets):
    tgt, _ = targets
    out = project(G, tgt[:1], space="w", num_steps=1, loss="mse", w_avg_samples=500)  # step 1 has lr 0 (ramp-up)
    for name, v in out["noise"].items():
        buf = G.synthesis.get_submodule(name).noise_const
        ref = (buf - buf.mean()) / buf.square().mean().sub(buf.mean() ** 2).sqrt()  # renormalised as every step
        torch.testing.assert_close(v[0, 0], ref, atol=1e-4, rtol=1e-4)
    rnd = project(G, tgt[:1], space="w", num_steps=1, loss="mse", w_avg_samples=500, noise_init="random")
    name = next(iter(rnd["noise"]))
    assert float((rnd["noise"][name][0, 0] - G.synthesis.get_submodule(name).noise_const).abs().mean()) > 0.5
    with pytest.raises(ValueError, match="noise_init"):
        project(G, tgt[:1], loss="mse", num_steps=1, noise_init="zeros")


def test_callback_reports_progress_and_can_stop(G, targets):
    tgt, _ = targets
    seen = []

    def callback(step, num_steps, info):
        seen.append((step, num_steps, tuple(info["images"].shape), tuple(info["ws"].shape), info["lr"]))
        assert info["dist"].shape == (2,)
        return step == 7

    out = project(G, tgt, space="w+", num_steps=50, loss="mse", w_avg_samples=500, callback=callback)
    assert [s[0] for s in seen] == list(range(1, 8)) and all(s[1] == 50 for s in seen)
    assert seen[0][2] == (2, 3, 16, 16) and seen[0][3] == (2, G.num_ws, G.w_dim)
    assert seen[0][4] == 0 and seen[-1][4] > 0  # learning-rate ramp-up
    assert out["ws"].shape == (2, G.num_ws, G.w_dim)


def test_init_ws_is_the_starting_point(G, targets):
    tgt, _ = targets
    init = seeds_to_ws(G, [1, 2], truncation_psi=0.5)  # the targets' own latents
    first = []
    project(G, tgt, space="w+", num_steps=2, loss="mse", w_avg_samples=500, optimize_noise=False, init_ws=init,
            callback=lambda s, n, i: first.append(i["images"]) and False)
    assert bool((psnr((first[0] + 1) * 127.5, tgt) > 40).all())  # step 1 renders init_ws itself
    first.clear()
    mixed = init.clone()
    mixed[:, 0] += 1.0
    mixed[:, 1] -= 1.0  # the layer mean is init
    project(G, tgt, space="w", num_steps=1, loss="mse", w_avg_samples=500, optimize_noise=False, init_ws=mixed,
            callback=lambda s, n, i: first.append(i["ws"]) and False)
    torch.testing.assert_close(first[0], init)
    with pytest.raises(ValueError, match="init_ws"):
        project(G, tgt, loss="mse", num_steps=1, init_ws=torch.zeros(3, G.w_dim))
