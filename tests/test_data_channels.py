"""--channels 1|3|4 end to end (issue 27): pack, train, snapshot, sgtrain-generate writing L / RGBA PNGs, metrics."""

from __future__ import annotations

import io
import os
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sgtrain.data import load_card, pack


def _rgba_folder(root, n: int = 8) -> None:
    """Discs of colour i on a transparent background (alpha 0 outside, 255 inside, 128 on one row)."""
    root.mkdir(parents=True)
    yy, xx = np.mgrid[:16, :16]
    for i in range(n):
        img = np.zeros([16, 16, 4], np.uint8)
        disc = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 30
        img[disc] = [30 * i, 255 - 30 * i, 90, 255]
        img[0, :, :] = [200, 10, 10, 128]
        Image.fromarray(img, "RGBA").save(root / f"{i}.png")


def _first_png(out) -> Image.Image:
    card = load_card(out)
    with tarfile.open(os.path.join(out, card.shards[0].name)) as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith(".png"))
        return Image.open(io.BytesIO(tf.extractfile(m).read()))


def test_pack_keeps_alpha_with_4_channels_and_composites_on_white_by_default(tmp_path):
    _rgba_folder(tmp_path / "src")
    card = pack(tmp_path / "src", tmp_path / "rgba", 16, channels=4, workers=0, progress=False, order="sorted")
    assert card.channels == 4 and card.pack["channels"] == 4
    img = _first_png(tmp_path / "rgba")
    assert img.mode == "RGBA"
    arr = np.asarray(img)
    assert arr[8, 8, 3] == 255 and arr[8, 0, 3] == 0 and arr[0, 5, 3] == 128 and tuple(arr[0, 5, :3]) == (200, 10, 10)
    rgb = pack(tmp_path / "src", tmp_path / "rgb", 16, workers=0, progress=False, order="sorted")
    arr3 = np.asarray(_first_png(tmp_path / "rgb"))
    assert rgb.channels == 3 and arr3.shape == (16, 16, 3)
    assert tuple(arr3[8, 0]) == (255, 255, 255)  # transparent: white
    assert abs(int(arr3[0, 5, 1]) - round(10 * 128 / 255 + 255 * 127 / 255)) <= 1  # half alpha on white
    gray = pack(tmp_path / "src", tmp_path / "gray", 16, channels=1, workers=0, progress=False, order="sorted")
    assert gray.channels == 1 and _first_png(tmp_path / "gray").mode == "L"


def test_stream_yields_4_channel_batches(tmp_path):
    from sgtrain.data import ShardDataModule

    _rgba_folder(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "rgba", 16, channels=4, workers=0, progress=False)
    dm = ShardDataModule(str(tmp_path / "rgba"), batch_size=4, num_workers=0, shuffle_buffer=1)
    dm.setup("fit")
    img, c = next(iter(dm.train_dataloader()))
    assert img.dtype == torch.uint8 and tuple(img.shape) == (4, 4, 16, 16) and c.shape == (4, 0)
    assert set(img[:, 3].unique().tolist()) == {0, 128, 255}


def test_augment_color_moves_rgb_and_keeps_alpha():
    from sgtrain.core.augment import AugmentPipe

    x = torch.rand([4, 4, 16, 16]) * 2 - 1
    pipe = AugmentPipe(brightness=1, contrast=1, saturation=1, hue=1)
    pipe.p.copy_(torch.ones([]))
    torch.manual_seed(0)
    out4 = pipe(x)
    torch.manual_seed(0)
    out3 = pipe(x[:, :3].contiguous())
    torch.testing.assert_close(out4[:, 3], x[:, 3])
    torch.testing.assert_close(out4[:, :3], out3)
    assert not torch.allclose(out4[:, :3], x[:, :3])


@pytest.mark.parametrize("channels, mode", [(4, "RGBA"), (1, "L")])
def test_train_snapshot_and_generate_keep_the_channels(tmp_path, channels, mode):
    from test_train_e2e import TINY

    from sgtrain.cli.generate import main as generate_main
    from sgtrain.io import load_network
    from sgtrain.training.config import compose
    from sgtrain.training.run import train

    _rgba_folder(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "shards", 16, channels=channels, workers=0, progress=False)
    run_dir = str(tmp_path / "run")
    out = train(compose(TINY + [f"dataset.path={tmp_path / 'shards'}", f"run.dir={run_dir}", "logger=none",
                                "train.kimg=0.008", "train.tick_kimg=0.004", "train.snap_kimg=0.008",
                                "train.swd=false"]))
    assert out["complete"]
    net = load_network(run_dir)
    assert net["G_ema"].img_channels == channels and net["D"].img_channels == channels
    assert Image.open(os.path.join(run_dir, "samples", "reals.png")).mode == mode
    generate_main(["--network", run_dir, "--seeds", "0-1", "--outdir", str(tmp_path / "gen"), "--device", "cpu"])
    img = Image.open(tmp_path / "gen" / "seed0000.png")
    assert img.mode == mode and img.size == (16, 16)
    if channels == 4:  # the alpha the generator drew is written, not dropped
        assert len(np.unique(np.asarray(img)[..., 3])) > 1


def test_metrics_refuse_rgba_unless_alpha_white():
    """Issue 27's acceptance: RGBA given to a metric that needs RGB is refused, naming the fix (--alpha white); with
    it the images are composited on white as the packer's --channels 3 does. L is repeated to RGB (NVlabs)."""
    from sgtrain.errors import InputError
    from sgtrain.metrics import feature_stats

    img = torch.tensor([[10, 200], [30, 40]], dtype=torch.uint8)
    rgba = torch.stack([img, img, img, torch.tensor([[255, 0], [128, 51]], dtype=torch.uint8)])[None]
    with pytest.raises(InputError, match=r"RGBA \(4 channels\).*pass --alpha white.*train.metrics_alpha=white") as e:
        feature_stats.to_rgb(rgba)
    assert "\n" not in str(e.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the opt-in is explicit: no warning left
        rgb = feature_stats.to_rgb(rgba, alpha="white")
    assert rgb.dtype == torch.uint8 and rgb.shape == (1, 3, 2, 2)
    expect = [[10, 255], [round(30 * 128 / 255 + 255 * 127 / 255), round(40 * 0.2 + 255 * 0.8)]]
    assert rgb[0, 0].tolist() == expect and torch.equal(rgb[0, 0], rgb[0, 2])
    assert torch.equal(feature_stats.to_rgb(img[None, None]), img[None, None].repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match="--channels 3"):
        feature_stats.to_rgb(torch.zeros([1, 2, 2, 2], dtype=torch.uint8))
    with pytest.raises(InputError, match="alpha='black'.*'white'"):
        feature_stats.check_alpha(3, "black")


@pytest.fixture(scope="module")
def rgba_and_gray(tmp_path_factory):
    """The discs packed as RGBA (--channels 4) and as L (--channels 1), 8 images each."""
    root = tmp_path_factory.mktemp("channels")
    _rgba_folder(root / "src")
    pack(root / "src", root / "rgba", 16, channels=4, workers=0, progress=False)
    pack(root / "src", root / "gray", 16, channels=1, workers=0, progress=False)
    return str(root / "rgba"), str(root / "gray")


def test_rgba_data_given_to_an_rgb_metric_is_refused_naming_the_fix(rgba_and_gray, tmp_path, capsys):
    from metrics_helpers import DETECTOR

    from sgtrain.cli.metrics import main

    rgba, gray = rgba_and_gray
    cache = tmp_path / "cache"
    common = ["--num-gen", "8", "--detector", DETECTOR, "--cache-dir", str(cache), "--device", "cpu", "--quiet"]
    for metric in ("fid50k_full", "kid1k_full", "pr1k3", "is1k"):
        assert main([metric, "--real", rgba, "--fake", rgba] + common) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "are RGBA (4 channels)" in err and "--alpha white" in err, err
        assert not cache.exists()  # nothing half-written: no statistics cached
    assert main(["fid50k_full", "--real", rgba, "--fake", rgba, "--alpha", "white"] + common) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("fid50k_full ")
    assert any(cache.rglob("*.npz"))
    assert main(["fid50k_full", "--real", gray, "--fake", gray] + common) == 0  # L: repeated to RGB, as NVlabs


def test_rgba_generator_refused_by_the_api_and_ppl(rgba_and_gray):
    from metrics_helpers import DETECTOR

    from sgtrain.errors import InputError
    from sgtrain.metrics import compute_metric
    from sgtrain.models.stylegan2.networks import Generator

    G = Generator(8, 0, 8, 16, 4, channel_base=64, channel_max=8, num_fp16_res=0, mapping_kwargs=dict(num_layers=1))
    for metric in ("is1k", "ppl2_wend", "fid1k"):
        with pytest.raises(InputError, match=f"{metric}: the generator's images are RGBA.*--alpha white"):
            compute_metric(metric, G, data=rgba_and_gray[0], detector=DETECTOR, device="cpu", cache=False)
    out = compute_metric("is1k", G.eval(), detector=DETECTOR, device="cpu", cache=False, num_gen=20, alpha="white")
    assert np.isfinite(out["results"]["is1k_mean"])
    from sgtrain.metrics.ppl import path_lengths

    with pytest.raises(InputError, match="PPL: the generator's images are RGBA"):
        path_lengths(G, lambda x: x.flatten(1), torch.zeros([2, 0]), torch.Generator().manual_seed(0))
    d = path_lengths(G, lambda x: x.flatten(1), torch.zeros([2, 0]), torch.Generator().manual_seed(0), alpha="white")
    assert d.shape == (2,) and torch.isfinite(d).all()


def test_training_refuses_rgba_data_for_rgb_metrics_at_compose_time(rgba_and_gray, tmp_path):
    from metrics_helpers import DETECTOR
    from test_train_e2e import TINY

    from sgtrain.errors import ConfigError
    from sgtrain.training.config import compose, validate_config
    from sgtrain.training.run import train

    rgba, gray = rgba_and_gray
    run_dir = tmp_path / "run"
    args = TINY + [f"dataset.path={rgba}", f"run.dir={run_dir}", "logger=none", f"train.metrics_detector={DETECTOR}"]
    with pytest.raises(ConfigError, match=r"fid50k_full's feature network takes RGB.*RGBA.*train.metrics_alpha=white"):
        train(compose(args + ["train.metrics=[fid50k_full]"]))
    assert not run_dir.exists()  # refused before anything is written
    validate_config(compose(args + ["train.metrics=[fid50k_full,kid50k_full]", "train.metrics_alpha=white"]))
    validate_config(compose(args + ["train.metrics=[eqt50k_int]"]))  # no feature network: every channel
    validate_config(compose(TINY + [f"dataset.path={gray}", "train.metrics=[fid50k_full]",
                                    f"train.metrics_detector={DETECTOR}"]))
    with pytest.raises(ConfigError, match="train.metrics_alpha=black: use white"):
        validate_config(compose(args + ["train.metrics_alpha=black"]))


def test_metric_shard_source_reads_rgba(tmp_path):
    from sgtrain.metrics.image_sources import ShardSource

    _rgba_folder(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "rgba", 16, channels=4, workers=0, progress=False)
    idx, images = next(ShardSource(str(tmp_path / "rgba")).iter_batches(batch_size=8))
    assert tuple(images.shape) == (8, 4, 16, 16) and images[:, 3].max() == 255 and images[:, 3].min() == 0
