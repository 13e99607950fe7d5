"""The latent console scripts end to end on a portable network file of a tiny generator (CPU)."""

import numpy as np
import PIL.Image
import pytest
import torch
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.cli import blend, directions, generate, mix, project, video
from sgtrain.io import save_network
from sgtrain.latent import generate_images, load_ws, seeds_to_ws


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    G = tiny_generator()
    path = tmp_path_factory.mktemp("net") / "tiny"
    save_network(path, G_ema=G)
    return str(path) + ".safetensors", G


def png(path):
    return np.asarray(PIL.Image.open(path))


def close(a, b):
    """uint8 images rendered in different batches: CPU kernels may round differently, by at most one level."""
    d = np.abs(a.astype(int) - b.astype(int))
    return a.shape == b.shape and d.max() <= 1 and d.mean() < 0.05


def test_generate_seeds_grid_and_projected_w(net, tmp_path):
    path, G = net
    generate.main(["--network", path, "--seeds", "0-3", "--trunc", "0.7", "--grid", "2x2", "--outdir",
                   str(tmp_path / "g"), "--device", "cpu"])
    ref = generate_images(G, [0, 1, 2, 3], truncation_psi=0.7).numpy()
    assert close(png(tmp_path / "g" / "seed0002.png"), ref[2])
    grid = png(tmp_path / "g" / "grid.png")
    assert grid.shape == (32, 32, 3) and np.array_equal(grid[16:, :16], ref[2])
    np.savez(tmp_path / "w.npz", w=seeds_to_ws(G, [5, 6]).numpy())
    generate.main(["--network", path, "--projected-w", str(tmp_path / "w.npz"), "--outdir", str(tmp_path / "p")])
    assert close(png(tmp_path / "p" / "proj01.png"), generate_images(G, [6])[0].numpy())


def test_generate_reports_user_errors(net, tmp_path, capsys):
    path, _ = net
    with pytest.raises(SystemExit) as e:
        generate.main(["--network", path, "--seeds", "0", "--class", "1", "--outdir", str(tmp_path)])
    assert e.value.code == 2 and "unconditional" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        generate.main(["--network", str(tmp_path / "nope.pkl"), "--seeds", "0", "--outdir", str(tmp_path)])
    assert "not found" in capsys.readouterr().err


def test_mix_writes_the_grid(net, tmp_path, capsys):
    path, G = net
    mix.main(["--network", path, "--rows", "1,2", "--cols", "3,4,5", "--styles", "middle", "--outdir", str(tmp_path)])
    assert "layers [2, 3]" in capsys.readouterr().out
    assert png(tmp_path / "grid.png").shape == (48, 64, 3)
    assert close(png(tmp_path / "3-3.png"), generate_images(G, [3])[0].numpy())
    assert (tmp_path / "2-5.png").exists()


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_writes_frames(net, tmp_path, suffix):
    import imageio.v2 as imageio

    path, G = net
    out = tmp_path / f"walk{suffix}"
    video.main(["--network", path, "--seeds", "0-3", "--grid", "1x2", "--interp", "cubic", "--loop", "--fps", "5",
                "--seconds", "2", "--output", str(out)])
    frames = [np.asarray(f) for f in imageio.get_reader(str(out))]
    assert len(frames) == 10 and frames[0].shape[:2] == (16, 32)
    # The first frame shows seeds 0 and 2 side by side (lossy codecs: compare loosely, against a wrong pair too).
    ref = np.concatenate(list(generate_images(G, [0, 2]).numpy()), axis=1).astype(float)
    wrong = np.concatenate(list(generate_images(G, [1, 3]).numpy()), axis=1).astype(float)
    err = np.abs(frames[0][..., :3] - ref).mean()
    # H.264 halves chroma resolution, which costs much on 16x16 noise-like pictures; GIF only quantises colours.
    assert err < (12 if suffix == ".gif" else 35) and err < np.abs(frames[0][..., :3] - wrong).mean() / 2


def test_project_cli_writes_nvlabs_layout(net, tmp_path, capsys):
    path, G = net
    img = generate_images(G, [1], truncation_psi=0.5)[0].numpy()
    PIL.Image.fromarray(img).save(tmp_path / "t.png")
    PIL.Image.fromarray(img[:, ::-1]).save(tmp_path / "u.png")
    with pytest.raises(SystemExit):
        project.main(["--network", path, "--target", str(tmp_path / "t.png"), "--outdir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert "vgg16.pt" in err and "nvlabs-fi-cdn" in err
    project.main(["--network", path, "--target", str(tmp_path / "t.png"), "--loss", "mse", "--steps", "40",
                  "--w-avg-samples", "500", "--fixed-noise", "--outdir", str(tmp_path / "one")])
    w = np.load(tmp_path / "one" / "projected_w.npz")["w"]
    assert w.shape == (1, G.num_ws, G.w_dim)
    for name in ("proj.png", "target.png", "proj.mp4"):
        assert (tmp_path / "one" / name).exists()
    assert np.array_equal(png(tmp_path / "one" / "target.png"), img)
    project.main(["--network", path, "--target", str(tmp_path / "t.png"), str(tmp_path / "u.png"), "--loss", "mse",
                  "--steps", "5", "--w-avg-samples", "500", "--space", "w+", "--batch-size", "1", "--outdir",
                  str(tmp_path / "two")])
    assert load_ws(tmp_path / "two" / "projected_w.npz").shape == (2, G.num_ws, G.w_dim)
    assert (tmp_path / "two" / "u" / "proj.png").exists()
    import imageio.v2 as imageio

    frames = [np.asarray(f) for f in imageio.get_reader(str(tmp_path / "two" / "proj.mp4"))]
    assert len(frames) == 5 and frames[0].shape[:2] == (32, 32)  # rows: targets; columns: target | projection


def test_blend_cli(net, tmp_path, capsys):
    path, G = net
    np.savez(tmp_path / "a.npz", w=seeds_to_ws(G, [7]).numpy())
    blend.main(["--network", path, "--w", f"{tmp_path / 'a.npz'},8", "--layers", f"0-{G.num_ws - 1}:a",
                "--outdir", str(tmp_path / "b1")])
    assert close(png(tmp_path / "b1" / "blend.png"), generate_images(G, [7])[0].numpy())
    blend.main(["--network", path, "--w", "7,8", "--mean", "--outdir", str(tmp_path / "b2")])
    torch.testing.assert_close(load_ws(tmp_path / "b2" / "blend_w.npz"), seeds_to_ws(G, [7, 8]).mean(0, True))
    assert png(tmp_path / "b2" / "sources.png").shape == (16, 48, 3)
    with pytest.raises(SystemExit):
        blend.main(["--network", path, "--w", "7,8", "--layers", "0-1:a", "--outdir", str(tmp_path / "b3")])
    assert "without a source" in capsys.readouterr().err


def test_directions_cli(net, tmp_path, capsys):
    path, G = net
    directions.main(["--network", path, "--indices", "0,1", "--seeds", "1,2", "--strengths=-4,4",
                     "--num-strengths", "5", "--outdir", str(tmp_path)])
    data = np.load(tmp_path / "directions.npz")
    assert data["directions"].shape == (G.w_dim, G.w_dim) and list(data["layers"]) == list(range(G.num_ws))
    assert png(tmp_path / "dir001.png").shape == (32, 80, 3)
    directions.main(["--network", path, "--directions", str(tmp_path / "directions.npz"), "--indices", "3",
                     "--outdir", str(tmp_path / "again")])
    assert (tmp_path / "again" / "dir003.png").exists()
    directions.main(["--network", path, "--layers", "coarse", "--indices", "0", "--outdir", str(tmp_path / "c")])
    assert list(np.load(tmp_path / "c" / "directions.npz")["layers"]) == [0, 1]


def test_cli_runner_catches_user_errors_only(capsys):
    """A user error (sgtrain.errors.UserError) is one line and exit 2; a bug (a plain ValueError/KeyError from
    anywhere) keeps its traceback."""
    import argparse

    from sgtrain.errors import FileContentError, InputError
    from sgtrain.latent._cli import run

    parser = argparse.ArgumentParser(prog="sgtrain-x")

    def raising(err):
        def main(args):
            raise err
        return main

    for err in (InputError("--psi 3: must be in [0, 1]"), FileContentError("'w.npz' has no array 'w'")):
        with pytest.raises(SystemExit) as e:
            run(raising(err), parser, [])
        assert e.value.code == 2
        assert capsys.readouterr().err == f"sgtrain-x: error: {err.args[0]}\n"
    for bug in (ValueError("operands could not be broadcast"), KeyError("G_ema")):
        with pytest.raises(type(bug)):
            run(raising(bug), parser, [])
