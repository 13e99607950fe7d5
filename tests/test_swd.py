"""Tests of sgtrain.metrics.swd (sliced Wasserstein distance, ProGAN section 5) and `sgtrain-metrics swd`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgtrain.metrics import swd


def blobs(n: int, res: int, seed: int) -> torch.Tensor:
    """Smooth random colour images, uint8 [n, 3, res, res]: bicubic upsampling of coarse Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 3, res // 4, res // 4, generator=g)
    img = F.interpolate(base, size=(res, res), mode="bicubic", align_corners=False)
    return (img * 50 + 128).clamp(0, 255).to(torch.uint8)


def noised(img: torch.Tensor, sigma: float, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (img.float() + torch.randn(img.shape, generator=g) * sigma).round().clamp(0, 255).to(torch.uint8)


def test_pyramid_matches_scipy_mirror_convolution_and_reconstructs():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = blobs(2, 32, 0).float()
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    expected = ndimage.convolve(x.numpy(), k[None, None], mode="mirror")[:, :, ::2, ::2]
    np.testing.assert_allclose(swd.gaussian_pyramid_down(x).numpy(), expected, atol=1e-3)
    up = np.zeros((2, 3, 32, 32), np.float32)
    up[:, :, ::2, ::2] = expected
    np.testing.assert_allclose(swd.gaussian_pyramid_up(torch.from_numpy(expected).float()).numpy(),
                               ndimage.convolve(up, 4 * k[None, None], mode="mirror"), atol=1e-3)
    # A Laplacian pyramid is exactly invertible: G_i = L_i + up(G_{i+1}).
    levels = swd.laplacian_pyramid(x, 3)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    rec = levels[-1]
    for lv in levels[-2::-1]:
        rec = swd.gaussian_pyramid_up(rec) + lv
    torch.testing.assert_close(rec, x, atol=1e-3, rtol=0)


def test_resolutions():
    assert swd.swd_resolutions(128) == [128, 64, 32, 16]
    assert swd.swd_resolutions(16) == [16]
    with pytest.raises(ValueError, match="at least 16"):
        swd.swd_resolutions(8)


def test_sliced_wasserstein_distance_of_a_translation():
    # Translating a point set by t moves every sorted projection by t.d, so SWD = mean over directions of |t.d|;
    # for random unit directions in D dimensions E|t.d| = |t| Gamma(D/2) / (sqrt(pi) Gamma((D+1)/2)).
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 20, generator=g)
    t = torch.randn(20, generator=g)
    b = (a + t)[torch.randperm(2000, generator=g)]
    dim = 20
    expected = t.norm().item() * math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi)
    got = swd.sliced_wasserstein_distance(a, b, dir_repeats=4, dirs_per_repeat=128)
    assert got == pytest.approx(expected, rel=0.08)
    assert swd.sliced_wasserstein_distance(a, a[torch.randperm(2000, generator=g)]) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        swd.sliced_wasserstein_distance(a, b[:10])


def test_swd_zero_for_same_set_and_grows_with_noise_and_blur():
    reals = blobs(48, 32, 1)
    same = swd.sliced_wasserstein(reals, reals.clone(), seed=3)
    assert set(same) == {"SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"}
    assert all(v == pytest.approx(0, abs=1e-6) for v in same.values())  # same positions, same patches
    other = swd.sliced_wasserstein(reals, blobs(48, 32, 2), seed=3)  # same distribution, other images
    assert all(math.isfinite(v) and v > 0 for v in other.values())
    noisy = [swd.sliced_wasserstein(reals, noised(reals, s), seed=3) for s in (2, 8, 32)]
    for key in ("SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"):
        assert 0 < noisy[0][key] < noisy[1][key] < noisy[2][key], key
    # Heavy noise lands far outside the sampling floor at the finest level, where pixel noise lives.
    assert noisy[2]["SWDx1e3_32"] > 2 * other["SWDx1e3_32"]
    blurred = [swd.sliced_wasserstein(reals, blurred_copy(reals, s), seed=3)["SWDx1e3_avg"] for s in (0.4, 1.0, 2.0)]
    assert 0 < blurred[0] < blurred[1] < blurred[2]


def blurred_copy(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (reflected borders), rounded back to uint8."""
    taps = torch.arange(-6, 7, dtype=torch.float32)
    f = torch.exp(-0.5 * (taps / sigma) ** 2)
    k = torch.outer(f, f) / f.sum() ** 2
    x = F.pad(img.float(), (6, 6, 6, 6), mode="reflect")
    x = F.conv2d(x, k.expand(3, 1, 13, 13), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8)


def test_swd_is_deterministic_and_checks_inputs():
    a, b = blobs(16, 16, 1), blobs(16, 16, 2)
    r1 = swd.sliced_wasserstein(a, b, seed=5, batch_size=8)
    r2 = swd.sliced_wasserstein(list(a.split(8)), [(x, None) for x in b.split(8)], seed=5)
    assert r1 == r2
    assert swd.sliced_wasserstein(a, b, seed=6) != r1
    with pytest.raises(ValueError, match="uint8"):
        swd.sliced_wasserstein(a.float(), b)
    with pytest.raises(ValueError, match="as many reals as fakes"):
        swd.sliced_wasserstein(a[:8], b)


def tiny_generator(c_dim: int = 0):
    from sgtrain.models.stylegan2 import Generator

    torch.manual_seed(0)
    return Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=16, img_channels=3,
                     mapping_kwargs=dict(num_layers=1), channel_base=64, channel_max=8, num_fp16_res=0).eval()


def test_swd_generator_deterministic_and_conditional():
    G = tiny_generator()
    reals = blobs(32, 16, 3)
    r1 = swd.swd_generator(G, reals, num=32, batch_size=16, seed=1)
    r2 = swd.swd_generator(G, list(reals.split(10)), num=32, batch_size=16, seed=1)
    assert r1["num_images"] == 32 and math.isfinite(r1["SWDx1e3_avg"])
    assert r1 == r2
    # A random G is far from the data compared with another sample of the data.
    assert r1["SWDx1e3_avg"] > 2 * swd.sliced_wasserstein(reals, blobs(32, 16, 4), seed=1)["SWDx1e3_avg"]
    with pytest.raises(ValueError, match="only 32"):
        swd.swd_generator(G, reals, num=64)

    Gc = tiny_generator(c_dim=2)
    c = torch.eye(2)[torch.arange(32) % 2]
    rc = swd.swd_generator(Gc, [(reals, c)], num=32, batch_size=16)
    assert math.isfinite(rc["SWDx1e3_avg"])
    with pytest.raises(ValueError, match="conditional"):
        swd.swd_generator(Gc, reals, num=32)


def test_cli_swd_on_packed_shards(tmp_path, capsys):
    from PIL import Image

    from sgtrain.cli.metrics import main
    from sgtrain.data import pack
    from sgtrain.io import save_network

    src = tmp_path / "src"
    src.mkdir()
    for i, img in enumerate(blobs(40, 16, 5)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(src / f"{i:03d}.png")
    pack(str(src), str(tmp_path / "shards"), resolution=16, workers=1, progress=False)
    save_network(tmp_path / "net", G_ema=tiny_generator())

    args = ["swd", "--network", str(tmp_path / "net.safetensors"), "--data", str(tmp_path / "shards"), "--num", "32",
            "--device", "cpu", "--batch", "16"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "avg" in out and "16" in out
    assert main(args + ["--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert math.isfinite(result["SWDx1e3_avg"]) and result["num_images"] == 32
    assert main(args[:-4] + ["--num", "100"]) == 2
    assert "lower --num" in capsys.readouterr().err


def test_shard_reals_reach_the_image_count(tmp_path):
    """--num equal to the image count works although an epoch of the loader drops its last partial batch (100
    images, batch 64: one epoch gives 64)."""
    from _tiny_run import make_shards

    from sgtrain.metrics.swd import iter_shard_reals

    shards = make_shards(tmp_path, n=100)
    batches = list(iter_shard_reals(str(shards), 100, batch_size=64, use_labels=False))
    assert sum(b[0].shape[0] for b in batches) == 100
    with pytest.raises(ValueError, match="holds 100; lower --num"):
        list(iter_shard_reals(str(shards), 101, batch_size=64, use_labels=False))
