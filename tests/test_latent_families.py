"""The latent tools and the equivariance metrics on every family (issues 11, 12, 13).

- z-only networks (ProGAN, DCGAN, R3GAN): seeds -> images and z interpolation videos work; every W tool refuses with one
  line naming the family (no traceback).
- StyleGAN (v1): truncation with cutoff, noise modes, the paper's coarse/middle/fine presets, mixing, blending,
  video and SeFa on an NVlabs TF file, a saved network and (slow) a tiny training run.
- StyleGAN3: --translate/--rotate through the input transform give the PNG bytes NVlabs' gen_images.py wrote; SeFa
  leaves out the input affine; eqt50k_int / eqt50k_frac / eqr50k by name, equal to NVlabs' numbers.

Fixtures: tests/fixtures/{progan,stylegan,stylegan3}/ (READMEs there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from sgtrain.cli import blend, directions, generate, mix, video
from sgtrain.cli import metrics as metrics_cli
from sgtrain.io import save_network
from sgtrain.latent import (
    generate_images,
    load_generator,
    load_ws,
    mix_ws,
    seeds_to_ws,
    seeds_to_z,
    sefa,
    slerp,
    style_layers,
    style_mixing_grid,
    synthesize,
    to_uint8,
)
from sgtrain.latent.directions import affine_layers, direction_sweep
from sgtrain.latent.interpolate import z_path
from sgtrain.latent.studio import capabilities, generate_z_images, make_transform, render_controls
from sgtrain.metrics.metric_main import compute_metric, compute_metric_between
from sgtrain.metrics.metric_names import parse_metric
from sgtrain.models import dcgan, progan, r3gan, stylegan, stylegan3
from sgtrain.models.stylegan2 import Generator as StyleGAN2Generator

FIX = Path(__file__).parent / "fixtures"
SG1_TF = FIX / "stylegan" / "tf_stylegan_uncond32.pkl"
SG3 = FIX / "stylegan3" / "t_uncond32.pkl"
PROGAN_COND = FIX / "progan" / "progan_sg_cond.pkl"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def png(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path))


def cli_error(capsys, main, argv) -> str:
    """Run a console script that must refuse: exit status 2 and one line on stderr (no traceback)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def gif_frames(path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    return [np.asarray(f)[..., :3].astype(float) for f in imageio.get_reader(str(path))]


# ----------------------------------------------------------------------------------------------------------------
# z-only networks: ProGAN, DCGAN.


@pytest.fixture(scope="module")
def znets(tmp_path_factory) -> dict[str, str]:
    """Tiny random ProGAN, DCGAN and R3GAN generators saved as portable files."""
    d = tmp_path_factory.mktemp("znets")
    torch.manual_seed(0)
    nets = {"ProGAN": progan.Generator(num_channels=3, resolution=16, fmap_base=32, fmap_max=16),
            "DCGAN": dcgan.Generator(z_dim=8, img_resolution=16, ngf=8),
            "R3GAN": r3gan.Generator(NoiseDimension=8, WidthPerStage=[16, 8, 8], CardinalityPerStage=[2, 2, 2],
                                     BlocksPerStage=[1, 1, 1], ExpansionFactor=2, img_resolution=16)}
    for name, G in nets.items():
        with torch.no_grad():  # DCGAN: weights and batch-norm statistics as after some training (visible images)
            for mod in G.modules():
                if isinstance(mod, (torch.nn.ConvTranspose2d, torch.nn.Conv2d)) and name == "R3GAN" or \
                        isinstance(mod, torch.nn.ConvTranspose2d):
                    mod.weight.normal_(0, 0.3)  # (R3GAN: its residual branches start at zero)
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.5, 0.5)
                    mod.running_var.uniform_(0.5, 2)
        save_network(d / name, G_ema=G.eval())
    return {name: str(d / name) + ".safetensors" for name in nets}


@pytest.mark.parametrize("family", ["ProGAN", "DCGAN", "R3GAN"])
def test_z_only_generate_seeds(znets, family, tmp_path):
    G = load_generator(znets[family], "cpu")
    caps = capabilities(G)
    assert caps.family == family and not caps.w_space and not caps.transform
    generate.main(["--network", znets[family], "--seeds", "0-3", "--grid", "2x2", "--batch-size", "4",
                   "--outdir", str(tmp_path), "--device", "cpu"])
    with torch.no_grad():
        ref = to_uint8(G(seeds_to_z(range(4), G.z_dim), torch.zeros([4, 0]))).numpy()
    for s in range(4):
        np.testing.assert_array_equal(png(tmp_path / f"seed{s:04d}.png"), ref[s])
    assert np.array_equal(png(tmp_path / "grid.png")[16:, :16], ref[2])
    assert np.abs(ref[0].astype(int) - ref[1]).mean() > 1  # different seeds, different pictures
    np.testing.assert_array_equal(generate_images(G, [0, 1, 2, 3]).numpy(), ref)


def test_z_only_conditional_progan_tf_pickle(tmp_path, capsys):
    """NVlabs' TF ProGAN file (G_paper with 3 labels) through sgtrain-generate --class."""
    G = load_generator(PROGAN_COND, "cpu")
    assert capabilities(G).family == "ProGAN" and G.c_dim == 3
    generate.main(["--network", str(PROGAN_COND), "--seeds", "3,4", "--class", "2", "--batch-size", "2",
                   "--outdir", str(tmp_path), "--device", "cpu"])
    c = torch.zeros([2, 3])
    c[:, 2] = 1
    with torch.no_grad():
        ref = to_uint8(G(seeds_to_z([3, 4], G.z_dim), c)).numpy()
    np.testing.assert_array_equal(png(tmp_path / "seed0004.png"), ref[1])
    err = cli_error(capsys, generate.main, ["--network", str(PROGAN_COND), "--seeds", "0", "--outdir",
                                            str(tmp_path), "--device", "cpu"])
    assert "conditional" in err


REFUSALS = [
    (generate.main, ["--seeds", "0", "--trunc", "0.7"], "no W space ({}): the truncation trick"),
    (generate.main, ["--projected-w", "w.npz"], "no W space ({}): rendering W latents"),
    (generate.main, ["--seeds", "0", "--translate", "0.1,0"], "no input transform ({}): translate/rotate"),
    (generate.main, ["--seeds", "0", "--rotate", "10"], "no input transform ({}): translate/rotate"),
    (mix.main, ["--rows", "0", "--cols", "1"], "no W space ({}): style mixing"),
    (blend.main, ["--w", "0,1", "--mean"], "no W space ({}): blending"),
    (blend.main, ["--w", "0,1", "--layers", "coarse:a,middle:b,fine:a"], "no W space ({}): blending"),
    (directions.main, ["sefa"], "no W space ({}): SeFa"),
    (directions.main, ["fit", "--image-score", "brightness", "--seeds", "0-9", "--space", "w"], "no w space ({}"),
    (video.main, ["--seeds", "0-1", "--space", "w", "--output", "v.gif"], "no W space ({}): interpolation in W"),
    (video.main, ["--seeds", "0-1", "--trunc", "0.5", "--output", "v.gif"], "no W space ({}): the truncation"),
    (video.main, ["--seeds", "0-1", "--rotate", "5", "--output", "v.gif"], "no input transform ({})"),
]


@pytest.mark.parametrize("family", ["ProGAN", "DCGAN", "R3GAN"])
@pytest.mark.parametrize("main,args,expect", REFUSALS, ids=[f"{m.__module__.rsplit('.', 1)[1]}{i}"
                                                              for i, (m, _, _) in enumerate(REFUSALS)])
def test_z_only_refuses_w_tools_in_one_line(znets, family, main, args, expect, tmp_path, capsys):
    args = [str(tmp_path / a) if a.endswith((".npz", ".gif")) else a for a in args]
    if "--projected-w" in args:
        np.savez(args[args.index("--projected-w") + 1], w=np.zeros([1, 8, 8], np.float32))
    sub = [args[0]] if main is directions.main else []
    rest = args[1:] if sub else args
    outdir = [] if main is video.main else ["--outdir", str(tmp_path / "out")]
    err = cli_error(capsys, main, [*sub, "--network", znets[family], "--device", "cpu", *outdir, *rest])
    assert expect.format(family) in err, err
    if "W space" in expect:
        assert "style-based generator (StyleGAN, StyleGAN2, StyleGAN3)" in err or "use --space z" in err


@pytest.mark.parametrize("family", ["ProGAN", "DCGAN", "R3GAN"])
def test_z_only_interpolation_lerp_and_slerp(znets, family, tmp_path):
    G = load_generator(znets[family], "cpu")
    z = seeds_to_z([0, 1], G.z_dim)
    lin = z_path(G, [0, 1], 5, "lerp")[:, 0]
    sph = z_path(G, [0, 1], 5, "slerp")[:, 0]
    torch.testing.assert_close(lin[0], z[0], rtol=0, atol=0)
    torch.testing.assert_close(sph[-1], z[1], rtol=0, atol=0)
    torch.testing.assert_close(lin[2], (z[0] + z[1]) / 2)
    torch.testing.assert_close(sph[2], slerp(z[0], z[1], 0.5))
    assert float((lin[2] - sph[2]).abs().max()) > 1e-3
    out = tmp_path / "walk.gif"
    video.main(["--network", znets[family], "--seeds", "0,1", "--interp", "slerp", "--fps", "5", "--seconds", "1",
                "--output", str(out), "--device", "cpu"])
    frames = gif_frames(out)
    assert len(frames) == 5 and frames[0].shape == (16, 16, 3)
    imgs = generate_z_images(G, z_path(G, [0, 1], 5, "slerp")[:, 0]).numpy().astype(float)
    for k in (0, 2, 4):  # GIF only quantises colours: each frame is closest to its own image
        errs = [np.abs(frames[k] - img).mean() for img in imgs]
        assert int(np.argmin(errs)) == k and errs[k] < 12, errs


def test_z_only_video_of_progan_tf_pickle_with_grid(tmp_path):
    out = tmp_path / "grid.gif"
    video.main(["--network", str(PROGAN_COND), "--seeds", "0-5", "--grid", "1x2", "--interp", "lerp", "--loop",
                "--class", "1", "--fps", "4", "--seconds", "1", "--output", str(out), "--device", "cpu"])
    frames = gif_frames(out)
    assert len(frames) == 4 and frames[0].shape == (16, 32, 3)
    G = load_generator(PROGAN_COND, "cpu")
    first = generate_z_images(G, seeds_to_z([0, 3], G.z_dim), class_idx=1).numpy()
    wrong = generate_z_images(G, seeds_to_z([1, 4], G.z_dim), class_idx=1).numpy()
    ref, bad = np.concatenate(list(first), 1).astype(float), np.concatenate(list(wrong), 1).astype(float)
    assert np.abs(frames[0] - ref).mean() < np.abs(frames[0] - bad).mean() / 2


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN (v1).


@pytest.fixture(scope="module")
def sg1():
    return load_generator(SG1_TF, "cpu")


@pytest.fixture(scope="module")
def sg1_saved(tmp_path_factory) -> str:
    """A tiny random StyleGAN generator at lod 0.5 (mid-growth), saved as a portable file (as a run exports it)."""
    torch.manual_seed(3)
    G = stylegan.Generator(num_channels=3, resolution=16, latent_size=16, dlatent_size=16, mapping_layers=2,
                           mapping_fmaps=16, fmap_base=64, fmap_max=16).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(16) * 0.3)
        G.synthesis.lod.fill_(0.5)
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.4)
    path = tmp_path_factory.mktemp("sg1") / "sg1"
    save_network(path, G_ema=G)
    return str(path) + ".safetensors"


def test_stylegan_generate_truncation_cutoff_and_noise_modes(sg1, tmp_path):
    generate.main(["--network", str(SG1_TF), "--seeds", "0-1", "--trunc", "0.7", "--trunc-cutoff", "4",
                   "--noise-mode", "const", "--batch-size", "2", "--outdir", str(tmp_path), "--device", "cpu"])
    z = seeds_to_z([0, 1], sg1.z_dim)
    with torch.no_grad():
        ws = sg1.mapping(z, torch.zeros([2, 0]), truncation_psi=0.7, truncation_cutoff=4)
        ref = to_uint8(sg1.synthesis(ws, noise_mode="const")).numpy()
        w_plain = sg1.mapping(z, torch.zeros([2, 0]))
    np.testing.assert_array_equal(png(tmp_path / "seed0001.png"), ref[1])
    # The cutoff truncates the first 4 of the 8 layers only.
    w_avg = sg1.mapping.w_avg
    torch.testing.assert_close(ws[:, :4], w_avg + 0.7 * (w_plain[:, :4] - w_avg))
    torch.testing.assert_close(ws[:, 4:], w_plain[:, 4:])
    const = generate_images(sg1, [0], noise_mode="const")
    assert torch.equal(const, generate_images(sg1, [0], noise_mode="const"))
    torch.manual_seed(0)
    r1 = generate_images(sg1, [0], noise_mode="random")
    r2 = generate_images(sg1, [0], noise_mode="random")
    none = generate_images(sg1, [0], noise_mode="none")
    assert not torch.equal(r1, r2) and not torch.equal(none, const)
    assert capabilities(sg1).noise_layers[:2] == ["b4.input", "b4.conv"]


def test_style_presets_are_the_papers_for_18_layers():
    assert style_layers("coarse", 18, 1024) == [0, 1, 2, 3]
    assert style_layers("middle", 18, 1024) == [4, 5, 6, 7]
    assert style_layers("fine", 18, 1024) == list(range(8, 18))
    assert style_layers("fine", 8, 32) == [6, 7] and style_layers("coarse", 8, 32) == [0, 1, 2, 3]
    for n in (1, 5, 16):  # any num_ws: three consecutive groups covering every layer
        got = [style_layers(p, n, None) for p in ("coarse", "middle", "fine") if n >= 3 or p == "coarse"]
        assert sum(got, []) == list(range(n)) or n < 3


def test_stylegan_mix_blend_and_video_on_tf_file(sg1, tmp_path, capsys):
    mix.main(["--network", str(SG1_TF), "--rows", "0,1", "--cols", "2", "--styles", "fine", "--batch-size", "16",
              "--outdir", str(tmp_path / "mix"), "--device", "cpu"])
    assert "'fine' = layers [6, 7] of num_ws=8" in capsys.readouterr().out
    out = style_mixing_grid(sg1, [0, 1], [2], "fine")
    np.testing.assert_array_equal(png(tmp_path / "mix" / "1-2.png"), out["mixed"][1, 0].numpy())
    ws_rows, ws_cols = seeds_to_ws(sg1, [0, 1]), seeds_to_ws(sg1, [2])
    direct = to_uint8(synthesize(sg1, mix_ws(ws_rows, ws_cols, [6, 7])[1])).numpy()[0]
    assert np.abs(direct.astype(int) - out["mixed"][1, 0].numpy()).max() <= 1

    blend.main(["--network", str(SG1_TF), "--w", "0,1", "--layers", "coarse:a,middle:b,fine:a",
                "--outdir", str(tmp_path / "blend"), "--device", "cpu"])
    assert "4:b, 5:b, 6:a" in capsys.readouterr().out
    got = load_ws(tmp_path / "blend" / "blend_w.npz")[0]
    a, b = seeds_to_ws(sg1, [0])[0], seeds_to_ws(sg1, [1])[0]
    torch.testing.assert_close(got, torch.cat([a[:4], b[4:6], a[6:]]))

    video.main(["--network", str(SG1_TF), "--seeds", "0,1", "--space", "w", "--interp", "lerp", "--fps", "3",
                "--seconds", "1", "--output", str(tmp_path / "w.gif"), "--device", "cpu"])
    frames = gif_frames(tmp_path / "w.gif")
    assert len(frames) == 3
    ends = generate_images(sg1, [0, 1]).numpy().astype(float)
    assert np.abs(frames[2] - ends[1]).mean() < np.abs(frames[2] - ends[0]).mean() / 2


def test_stylegan_sefa_uses_every_style_layer(sg1, tmp_path):
    layers = affine_layers(sg1)
    assert [i for i, _, _ in layers] == list(range(8))
    assert [n for _, n, _ in layers][:3] == ["b4.input.affine", "b4.conv.affine", "b8.conv_up.affine"]
    res = sefa(sg1)
    assert res["layers"] == list(range(8))
    d = res["directions"].double()
    torch.testing.assert_close(d @ d.T, torch.eye(sg1.w_dim, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(res["eigenvalues"].sum()) == pytest.approx(sum(w.shape[0] for _, _, w in layers), rel=1e-4)
    directions.main(["sefa", "--network", str(SG1_TF), "--layers", "coarse", "--indices", "0", "--seeds", "0",
                     "--outdir", str(tmp_path), "--device", "cpu"])
    with np.load(tmp_path / "directions.npz") as f:
        assert list(f["layers"]) == [0, 1, 2, 3]
    assert png(tmp_path / "dir000.png").shape == (32, 7 * 32, 3)


def test_stylegan_tools_on_a_saved_network(sg1_saved, tmp_path, capsys):
    """What a training run exports (portable file, lod mid-growth): every W tool runs and agrees with the API."""
    G = load_generator(sg1_saved, "cpu")
    assert capabilities(G).family == "StyleGAN" and float(G.synthesis.lod) == 0.5
    generate.main(["--network", sg1_saved, "--seeds", "5", "--trunc", "0.5", "--trunc-cutoff", "2",
                   "--outdir", str(tmp_path / "g"), "--device", "cpu"])
    np.testing.assert_array_equal(png(tmp_path / "g" / "seed0005.png"),
                                  generate_images(G, [5], 0.5, 2)[0].numpy())
    mix.main(["--network", sg1_saved, "--rows", "1", "--cols", "2", "--styles", "middle", "--outdir",
              str(tmp_path / "m"), "--device", "cpu"])
    assert "layers [2, 3] of num_ws=6" in capsys.readouterr().out
    blend.main(["--network", sg1_saved, "--w", "1,2", "--layers", "coarse:b,middle:a,fine:b", "--outdir",
                str(tmp_path / "b"), "--device", "cpu"])
    assert "0:b, 1:b, 2:a, 3:a, 4:b, 5:b" in capsys.readouterr().out
    directions.main(["sefa", "--network", sg1_saved, "--indices", "0-1", "--seeds", "0", "--num-strengths", "3",
                     "--outdir", str(tmp_path / "d"), "--device", "cpu"])
    assert (tmp_path / "d" / "dir001.png").exists()
    video.main(["--network", sg1_saved, "--seeds", "0-2", "--loop", "--interp", "cubic", "--fps", "4",
                "--seconds", "1", "--output", str(tmp_path / "v.gif"), "--device", "cpu"])
    assert len(gif_frames(tmp_path / "v.gif")) == 4


@pytest.mark.slow
def test_stylegan_tools_on_a_tiny_training_run(tmp_path, capsys):
    """sgtrain-train model=stylegan for a few steps, then every latent tool on the run directory."""
    import subprocess

    from _tiny_run import env_for_tests, make_shards, train_cmd

    shards = make_shards(tmp_path, n=16, res=16)
    run_dir = tmp_path / "run"
    cmd = [*train_cmd(), "model=stylegan", f"dataset.path={shards}", f"run.dir={run_dir}", "model.latent_size=16",
           "model.dlatent_size=16", "model.mapping_layers=2", "model.fmap_base=64", "model.fmap_max=16",
           "model.D.mbstd_group_size=2", "train.kimg=0.032", "train.batch=4", "train.tick_kimg=0.016",
           "train.snap_kimg=1000", "train.swd=false", "train.grid=[2,2]", "logger=none", "trainer.progress_bar=false",
           "dataset.num_workers=0", "run.print_config=false", "trainer.threads=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env_for_tests())
    assert proc.returncode == 0, proc.stderr[-3000:]
    net = str(run_dir)
    G = load_generator(net, "cpu")
    assert capabilities(G).family == "StyleGAN"
    generate.main(["--network", net, "--seeds", "0-1", "--trunc", "0.7", "--outdir", str(tmp_path / "g"),
                   "--device", "cpu"])
    np.testing.assert_array_equal(png(tmp_path / "g" / "seed0001.png"), generate_images(G, [0, 1], 0.7)[1].numpy())
    mix.main(["--network", net, "--rows", "0", "--cols", "1", "--styles", "fine", "--outdir", str(tmp_path / "m"),
              "--device", "cpu"])
    blend.main(["--network", net, "--w", "0,1", "--layers", "coarse:a,middle:b,fine:b", "--outdir",
                str(tmp_path / "b"), "--device", "cpu"])
    directions.main(["sefa", "--network", net, "--indices", "0", "--seeds", "0", "--outdir", str(tmp_path / "d"),
                     "--device", "cpu"])
    video.main(["--network", net, "--seeds", "0,1", "--fps", "2", "--seconds", "1", "--output",
                str(tmp_path / "v.gif"), "--device", "cpu"])
    for f in ("m/grid.png", "b/blend.png", "d/dir000.png", "v.gif"):
        assert (tmp_path / f).exists(), f


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN3.


@pytest.fixture(scope="module")
def sg3():
    return load_generator(SG3, "cpu")


def test_sg3_generate_writes_the_png_bytes_of_gen_images(tmp_path):
    """sgtrain-generate --translate/--rotate on NVlabs' pickle = the files NVlabs' gen_images.py wrote."""
    meta = json.loads((FIX / "stylegan3" / "gen_images.json").read_text())
    assert meta["network"] == SG3.name
    with np.load(FIX / "stylegan3" / "gen_images.npz") as d:
        ref = {k: d[k] for k in d.files}
    for run, args in meta["runs"].items():
        out = tmp_path / run
        seeds = ",".join(str(s) for s in meta["seeds"])
        generate.main(["--network", str(SG3), "--seeds", seeds, *args, "--batch-size", "1", "--outdir", str(out),
                       "--device", "cpu"])
        for seed in meta["seeds"]:
            key = f"{run}/seed{seed:04d}"
            assert (out / f"seed{seed:04d}.png").read_bytes() == ref[key + "_png"].tobytes(), key
    moved, plain = ref["translate_rotate/seed0000"].astype(int), ref["plain/seed0000"].astype(int)
    assert np.abs(moved - plain).mean() > 5  # the transform did move the picture


def test_sg3_video_with_translate_rotate(sg3, tmp_path):
    with np.load(FIX / "stylegan3" / "gen_images.npz") as d:
        moved, plain = d["translate_rotate/seed0000"].astype(float), d["plain/seed0000"].astype(float)
    before = sg3.synthesis.input.transform.clone()
    out = tmp_path / "moved.gif"
    video.main(["--network", str(SG3), "--seeds", "0,5", "--trunc", "0.7", "--translate", "0.1,-0.25", "--rotate",
                "30", "--fps", "2", "--seconds", "1", "--output", str(out), "--device", "cpu"])
    frames = gif_frames(out)
    assert len(frames) == 2
    err = np.abs(frames[0] - moved).mean()
    assert err < 8 and err < np.abs(frames[0] - plain).mean() / 2
    assert torch.equal(sg3.synthesis.input.transform, before)


def test_studio_make_transform_translates_in_image_widths(sg3):
    np.testing.assert_array_equal(make_transform((0.1, -0.25), 30), stylegan3.make_transform((0.1, -0.25), 30))
    z = seeds_to_z([0], sg3.z_dim)
    with torch.no_grad():
        orig = sg3(z, torch.zeros([1, 0]))
        shifted = {}
        for px in (4, 8):
            with render_controls(sg3, translate=(px / 32, 0.0)):
                shifted[px] = sg3(z, torch.zeros([1, 0]))
    assert torch.equal(sg3.synthesis.input.transform, torch.eye(3))
    # translate x = 8/32 of the width moves the content 8 pixels to the right (config T is translation-equivariant).
    err8 = float((shifted[8][..., 8:] - orig[..., :-8]).abs().mean())
    err4 = float((shifted[4][..., 8:] - orig[..., :-8]).abs().mean())
    assert err8 < 0.1 * err4, (err8, err4)


def test_sg3_mixing_blending_and_directions(sg3, tmp_path, capsys):
    assert capabilities(sg3).transform and capabilities(sg3).noise_layers == []
    out = style_mixing_grid(sg3, [0], [5], [0, 1, 2])
    ws = mix_ws(seeds_to_ws(sg3, [0]), seeds_to_ws(sg3, [5]), [0, 1, 2])[0]
    direct = to_uint8(synthesize(sg3, ws)).numpy()[0]
    assert np.abs(direct.astype(int) - out["mixed"][0, 0].numpy()).max() <= 1
    blend.main(["--network", str(SG3), "--w", "0,5", "--layers", "0-2:b,3-end:a", "--outdir", str(tmp_path / "b"),
                "--device", "cpu"])
    np.testing.assert_array_equal(png(tmp_path / "b" / "blend.png"), out["mixed"][0, 0].numpy())

    # SeFa: the input affine (w -> rotation and translation of the Fourier features) is not a style.
    layers = affine_layers(sg3)
    assert "input.affine" not in [n for _, n, _ in layers]
    assert [i for i, _, _ in layers] == list(range(1, sg3.num_ws))
    assert layers[0][1].startswith("L0_")
    res = sefa(sg3)
    assert res["layers"] == list(range(1, sg3.num_ws))
    assert float(res["eigenvalues"].sum()) == pytest.approx(sum(w.shape[0] for _, _, w in layers), rel=1e-4)
    assert sefa(sg3, [0, 1, 2])["layers"] == [1, 2]
    sweep = direction_sweep(sg3, [0], res["directions"][:1], res["layers"], [-3.0, 3.0], truncation_psi=1)
    assert sweep["images"].shape[:3] == (1, 1, 2)
    directions.main(["sefa", "--network", str(SG3), "--indices", "0", "--seeds", "0", "--num-strengths", "3",
                     "--outdir", str(tmp_path / "d"), "--device", "cpu"])
    assert f"layers {list(range(1, sg3.num_ws))}" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# Equivariance metrics by name.


def test_equivariance_metric_names():
    for name, flag in (("eqt50k_int", "eqt_int"), ("eqt50k_frac", "eqt_frac"), ("eqr50k", "eqr")):
        spec = parse_metric(name)
        assert (spec.kind, spec.detector, spec.num_gen, spec.needs_real) == ("eq", None, 50000, False)
        assert spec.params == {flag: True, "batch_size": 4}
    for bad in ("eqt10k_int", "eqr50k_int", "eqt50k"):
        with pytest.raises(ValueError, match="eqt50k_int"):
            parse_metric(bad)
    import sgtrain.metrics as m

    assert m.eqt50k_int.__module__ == "sgtrain.metrics.equivariance" and callable(m.compute_equivariance)


def test_sgtrain_metrics_eqt50k_int_equals_nvlabs(capsys):
    ref = json.loads((FIX / "stylegan3" / "equivariance.json").read_text())
    assert ref["num_samples"] == 8 and ref["batch_size"] == 4
    assert metrics_cli.main(["eqt50k_int", "--network", str(SG3), "--num-gen", "8", "--device", "cpu",
                             "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert last[0] == "eqt50k_int"
    assert abs(float(last[1]) - ref["psnr_db"]["t_uncond32"]["0"]["eqt50k_int"]) <= 0.5


def test_compute_metric_equivariance_api_and_errors(sg3, capsys):
    from sgtrain.metrics.equivariance import compute_equivariance

    out = compute_metric("eqt50k_frac", sg3, num_gen=4, device="cpu", seed=5)
    assert out["metric"] == "eqt50k_frac" and out["num_gen"] == 4
    want = compute_equivariance(sg3, 4, batch_size=4, seed=5, eqt_frac=True, device="cpu")["eqt50k_frac"]
    assert out["results"]["eqt50k_frac"] == pytest.approx(want, abs=1e-9) and np.isfinite(want)
    torch.manual_seed(0)
    sg2 = StyleGAN2Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channel_base=64,
                             channel_max=8, num_fp16_res=0)
    pg = progan.Generator(num_channels=3, resolution=8, fmap_base=16, fmap_max=8)
    for G in (sg2, pg):
        with pytest.raises(ValueError, match=r"eqr50k .*input transform \(StyleGAN3"):
            compute_metric("eqr50k", G, num_gen=4, device="cpu")
    with pytest.raises(ValueError, match="without truncation"):
        compute_metric("eqt50k_int", sg3, num_gen=4, device="cpu", G_kwargs=dict(truncation_psi=0.7))
    with pytest.raises(ValueError, match="cannot compare two image sets"):
        compute_metric_between("eqr50k", "a", "b")
    assert metrics_cli.main(["eqr50k", "--real", "a", "--fake", "b"]) == 2
    assert "pass --network" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# Projection: StyleGAN3 with the stabilised start (stylegan3-fun), z-only networks refused.


@pytest.mark.parametrize("space", ["w", "w+"])
def test_sg3_projection_improves_psnr_with_the_input_anchored(sg3, space):
    from sgtrain.latent import project

    ws = seeds_to_ws(sg3, [7], truncation_psi=0.7)
    with torch.no_grad():
        target = ((synthesize(sg3, ws) + 1) * 127.5).clamp(0, 255).round().to(torch.uint8)
    start = project(sg3, target, space=space, num_steps=0, loss="mse", w_avg_samples=1000)
    out = project(sg3, target, space=space, num_steps=60, loss="mse", w_avg_samples=1000)
    assert out["noise"] == {}  # StyleGAN3 has no noise inputs to optimise or regularise
    assert float(out["psnr"][0]) > float(start["psnr"][0]) + 6, (out["psnr"], start["psnr"])
    # The input layer's w stays at the start (w_avg): the picture's placement is not optimised.
    torch.testing.assert_close(out["ws"][:, 0], start["ws"][:, 0], rtol=0, atol=0)
    assert float((out["ws"][:, 1:] - start["ws"][:, 1:]).abs().max()) > 1e-3
    if space == "w":
        torch.testing.assert_close(out["ws"][:, 1:], out["ws"][:, 1:2].expand_as(out["ws"][:, 1:]))
    else:
        assert float((out["ws"][:, 1] - out["ws"][:, -1]).abs().max()) > 1e-4
    with torch.no_grad():  # the saved ws give the projected image with any tool (no weights were changed)
        torch.testing.assert_close(synthesize(sg3, out["ws"]), out["images"], rtol=0, atol=1e-5)
    free = project(sg3, target, space=space, num_steps=5, loss="mse", w_avg_samples=1000, anchor_input=False)
    assert float((free["ws"][:, 0] - start["ws"][:, 0]).abs().max()) > 0


def test_projection_refuses_networks_without_w_or_input_transform(znets, tmp_path, capsys):
    from sgtrain.cli import project as project_cli
    from sgtrain.latent import project

    for family, path in znets.items():
        G = load_generator(path, "cpu")
        PIL.Image.fromarray(generate_images(G, [0])[0].numpy()).save(tmp_path / f"{family}.png")
        err = cli_error(capsys, project_cli.main, ["--network", path, "--target", str(tmp_path / f"{family}.png"),
                                                   "--outdir", str(tmp_path / "p"), "--device", "cpu"])
        assert f"no W space ({family}): projection needs a style-based generator" in err
    torch.manual_seed(0)
    sg2 = StyleGAN2Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channel_base=64,
                             channel_max=8, num_fp16_res=0)
    with pytest.raises(ValueError, match="no input transform"):
        project(sg2, torch.zeros([1, 3, 8, 8]), num_steps=1, loss="mse", w_avg_samples=10, anchor_input=True)


def test_sgtrain_project_on_sg3_writes_reproducible_ws(sg3, tmp_path, capsys):
    from sgtrain.cli import project as project_cli

    generate.main(["--network", str(SG3), "--seeds", "3", "--trunc", "0.6", "--outdir", str(tmp_path), "--device",
                   "cpu"])
    project_cli.main(["--network", str(SG3), "--target", str(tmp_path / "seed0003.png"), "--space", "w+", "--loss",
                      "mse", "--steps", "20", "--w-avg-samples", "500", "--no-video", "--outdir",
                      str(tmp_path / "p"), "--device", "cpu"])
    assert "PSNR" in capsys.readouterr().out
    ws = load_ws(tmp_path / "p" / "projected_w.npz")
    assert ws.shape == (1, sg3.num_ws, sg3.w_dim)
    generate.main(["--network", str(SG3), "--projected-w", str(tmp_path / "p" / "projected_w.npz"), "--outdir",
                   str(tmp_path / "r"), "--device", "cpu"])
    diff = png(tmp_path / "r" / "proj00.png").astype(int) - png(tmp_path / "p" / "proj.png")
    assert np.abs(diff).max() <= 1
