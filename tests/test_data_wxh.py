"""W x H data (issue 27): --resolution WxH with NVlabs' crop names, StyleGAN2 at W x H (init_res), generate at W x H,
and the families that cannot build W x H refusing at compose time."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from sgtrain.data import PackError, load_card, pack
from sgtrain.data.card import init_res_of
from sgtrain.data.pack import parse_resolution


def _stored(out) -> dict[str, np.ndarray]:
    """index.tsv path -> stored pixels."""
    rows = open(os.path.join(out, "index.tsv")).read().splitlines()
    names = {k: n for k, _, n in (line.split("\t") for line in rows)}
    got = {}
    for s in load_card(out).shards:
        with tarfile.open(os.path.join(out, s.name)) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".png"):
                    got[names[m.name.split(".")[0]]] = np.asarray(Image.open(io.BytesIO(tf.extractfile(m).read())))
    return got


def _src(root) -> None:
    """A 128x64 image (left half red, right half blue), a 100x100 one (a green band in rows 25..75) and a 40x20."""
    root.mkdir()
    wide = np.zeros([64, 128, 3], np.uint8)
    wide[:, :64, 0] = 255
    wide[:, 64:, 2] = 255
    Image.fromarray(wide).save(root / "wide.png")
    sq = np.zeros([100, 100, 3], np.uint8)
    sq[25:75, :, 1] = 255
    Image.fromarray(sq).save(root / "square.png")
    Image.fromarray(np.full([20, 40, 3], 9, np.uint8)).save(root / "small.png")


def test_parse_resolution_and_init_res():
    assert parse_resolution("64x32") == (64, 32) and parse_resolution(" 512X384 ") == (512, 384)
    assert parse_resolution(256) == (256, 256) and parse_resolution("256") == (256, 256)
    with pytest.raises(PackError, match="width x height"):
        parse_resolution("64*32")
    with pytest.raises(PackError, match="at least 4"):
        parse_resolution("64x2")
    assert init_res_of(64, 32) == [2, 4] and init_res_of(512, 384) == [3, 4] and init_res_of(32, 64) == [4, 2]
    with pytest.raises(ValueError, match="multiple of 16"):
        init_res_of(64, 24)
    with pytest.raises(ValueError, match="power of two"):
        init_res_of(96, 48)


def test_pack_wxh_center_none_and_nvlabs_crops(tmp_path):
    _src(tmp_path / "src")
    card = pack(tmp_path / "src", tmp_path / "c", "64x32", workers=0, progress=False)
    assert card.size == (64, 32) and card.resolution == 64 and (card.width, card.height) == (64, 32)
    assert card.count == 2 and card.pack["resolution"] == "64x32"
    assert "small.png\ttoo small (40x20 < 64x32)" in (tmp_path / "c" / "skipped.txt").read_text()
    px = _stored(tmp_path / "c")
    assert px["wide.png"].shape == (32, 64, 3) and px["wide.png"][16, 10, 0] == 255 and px["wide.png"][16, 60, 2] == 255
    assert px["square.png"][16, 32, 1] == 255  # the centred 100x50 box is the green band
    assert load_card(tmp_path / "c").size == (64, 32)  # read back from dataset.json

    card = pack(tmp_path / "src", tmp_path / "n", "64x32", crop="none", workers=0, progress=False)
    assert card.count == 1
    assert "square.png\tnot of aspect 64:32 (100x100)" in (tmp_path / "n" / "skipped.txt").read_text()

    pack(tmp_path / "src", tmp_path / "cc", "64x32", crop="center-crop", workers=0, progress=False)
    # NVlabs' center-crop: the centred 64x64 square of the wide image (red | blue halves), squeezed to 64x32
    wide = _stored(tmp_path / "cc")["wide.png"]
    assert wide.shape == (32, 64, 3) and wide[16, 10, 0] == 255 and wide[16, 54, 2] == 255

    card = pack(tmp_path / "src", tmp_path / "ccw", "64x32", crop="center-crop-wide", workers=0, progress=False)
    assert card.size == (64, 64) and card.width is None and card.count == 2  # NVlabs pads W x H onto W x W
    wide = _stored(tmp_path / "ccw")["wide.png"]
    assert wide.shape == (64, 64, 3) and wide[:16].max() == 0 and wide[48:].max() == 0 and wide[32, 10, 0] == 255


def test_pack_refuses_a_size_no_network_builds(tmp_path):
    _src(tmp_path / "src")
    with pytest.raises(PackError, match="64x24: no network builds it.*center-crop-wide"):
        pack(tmp_path / "src", tmp_path / "out", "64x24", workers=0, progress=False)
    with pytest.raises(PackError, match="needs W >= H"):
        pack(tmp_path / "src", tmp_path / "out", "32x64", crop="center-crop-wide", workers=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_stylegan2_at_wxh_keeps_nvlabs_keys():
    from sgtrain.models.stylegan2.networks import Discriminator, Generator

    kw = dict(channel_base=256, channel_max=16, num_fp16_res=0)
    G = Generator(16, 0, 16, 64, 3, init_res=[2, 4], **kw)
    D = Discriminator(0, 64, 3, init_res=[2, 4], **kw)
    img = G(torch.randn([2, 16]), None)
    assert tuple(img.shape) == (2, 3, 32, 64) and (G.img_width, G.img_height) == (64, 32)
    assert tuple(D(img, None).shape) == (2, 1)
    Gs, Ds = Generator(16, 0, 16, 64, 3, **kw), Discriminator(0, 64, 3, **kw)
    assert list(G.state_dict()) == list(Gs.state_dict()) and list(D.state_dict()) == list(Ds.state_dict())
    assert tuple(G.synthesis.b4.const.shape) == (16, 2, 4)
    assert tuple(G.synthesis.b64.conv1.noise_const.shape) == (32, 64)
    assert D.b4.fc.weight.shape[1] == 16 * 2 * 4
    assert G.init_kwargs["init_res"] == [2, 4] and "init_res" not in Gs.init_kwargs  # square: NVlabs' keywords
    assert Generator(**G.init_kwargs).synthesis.img_height == 32
    with pytest.raises(ValueError, match="init_res must be"):
        Generator(16, 0, 16, 64, 3, init_res=[3, 3], **kw)
    with pytest.raises(ValueError, match=r"\[N, 3, 32, 64\]|shape"):
        D(torch.zeros([2, 3, 64, 64]), None)


@pytest.fixture(scope="module")
def wxh_shards(tmp_path_factory) -> str:
    """16 images of 64x32 (a coloured box at a varying place on white), packed with --resolution 64x32."""
    root = tmp_path_factory.mktemp("wxh")
    (root / "src").mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        img = np.full([32, 64, 3], 255, np.uint8)
        x = 3 * i
        img[8:24, x:x + 16] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(root / "src" / f"{i}.png")
    from sgtrain.cli.data import main as data_main

    assert data_main(["pack", str(root / "src"), str(root / "shards"), "--resolution", "64x32", "--no-progress",
                      "--workers", "0"]) == 0
    return str(root / "shards")


def test_wxh_trains_stylegan2_small_and_generates_wxh_pngs(wxh_shards, tmp_path):
    from test_train_e2e import TINY

    from sgtrain.cli.generate import main as generate_main
    from sgtrain.io import load_network
    from sgtrain.training.config import compose
    from sgtrain.training.run import train

    run_dir = str(tmp_path / "run")
    args = [a for a in TINY if not a.startswith("model.resolution")]
    out = train(compose(args + [f"dataset.path={wxh_shards}", f"run.dir={run_dir}", "logger=none",
                                "train.kimg=0.008", "train.tick_kimg=0.004", "train.snap_kimg=0.008",
                                "train.swd=true", "train.swd_images=16"]))
    assert out["complete"] and all(np.isfinite(v) for v in out["swd"].values())
    net = load_network(run_dir)
    assert (net["G_ema"].img_width, net["G_ema"].img_height) == (64, 32) and net["D"].img_height == 32
    assert Image.open(os.path.join(run_dir, "samples", "reals.png")).size == (2 * 64, 2 * 32)
    generate_main(["--network", run_dir, "--seeds", "0-2", "--grid", "1x3", "--outdir", str(tmp_path / "gen"),
                   "--device", "cpu"])
    for s in range(3):
        assert Image.open(tmp_path / "gen" / f"seed{s:04d}.png").size == (64, 32)
    assert Image.open(tmp_path / "gen" / "grid.png").size == (3 * 64, 32)


@pytest.mark.parametrize("model", ["dcgan", "progan", "stylegan", "stylegan3_t"])
def test_square_families_refuse_wxh_data_at_compose_time(wxh_shards, model):
    from sgtrain.errors import ConfigError
    from sgtrain.training.config import compose, validate_config

    cfg = compose([f"model={model}", f"dataset.path={wxh_shards}", "train.batch=4", "logger=none"])
    with pytest.raises(ConfigError, match=r"cannot train the 64x32 data.*model=stylegan2.*center-crop-wide"):
        validate_config(cfg)


def test_nvlabs_pickle_export_refuses_a_wxh_network(tmp_path):
    from sgtrain.io.export_nvlabs import ExportError, export_nvlabs
    from sgtrain.models.stylegan2.networks import Generator

    G = Generator(16, 0, 16, 16, 3, init_res=[2, 4], channel_base=64, channel_max=8, num_fp16_res=0)
    with pytest.raises(ExportError, match="W x H network.*cannot build"):
        export_nvlabs({"G_ema": G}, tmp_path / "x.pkl", target="stylegan3")
    assert not (tmp_path / "x.pkl").exists()
