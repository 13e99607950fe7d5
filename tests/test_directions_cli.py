"""sgtrain-directions subcommands (sefa, fit, apply, video) end to end on a portable file of a tiny generator."""

import numpy as np
import PIL.Image
import pytest
import torch
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.cli import directions
from sgtrain.io import save_network
from sgtrain.latent import load_ws, seeds_to_ws
from sgtrain.latent.directions import image_scores, load_direction, render_latents, seed_latents


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    G = tiny_generator()
    path = tmp_path_factory.mktemp("net") / "tiny"
    save_network(path, G_ema=G)
    return str(path) + ".safetensors", G


def test_old_invocation_still_runs_sefa_and_says_the_new_form(net, tmp_path, capsys):
    path, G = net
    directions.main(["--network", path, "--indices", "0", "--seeds", "1", "--outdir", str(tmp_path / "old")])
    assert "sgtrain-directions sefa" in capsys.readouterr().err
    directions.main(["sefa", "--network", path, "--indices", "0", "--seeds", "1", "--outdir", str(tmp_path / "new")])
    a, b = (np.load(tmp_path / d / "directions.npz")["directions"] for d in ("old", "new"))
    assert np.array_equal(a, b) and a.shape == (G.w_dim, G.w_dim)
    with pytest.raises(SystemExit):
        directions.main(["frobnicate", "--network", path])
    assert "invalid choice" in capsys.readouterr().err


def test_fit_with_image_scores_and_a_condition(net, tmp_path, capsys):
    path, G = net
    out = tmp_path / "dirs"
    directions.main(["fit", "--network", path, "--image-score", "brightness,left-right", "--condition", "left-right",
                     "--seeds", "0-999", "--space", "z", "--ratio", "0.05", "--outdir", str(out)])
    text = capsys.readouterr().out
    assert "brightness: accuracy" in text and "conditioned on left-right" in text
    bright = load_direction(out / "brightness.npz")
    lr = load_direction(out / "left-right.npz")
    assert bright.space == "z" and bright.vector.shape == (G.z_dim,) and bright.method == "svm"
    assert bright.meta["conditioned_on"] == ["left-right"] and lr.meta["conditioned_on"] == []
    assert abs(float(bright.vector @ lr.vector)) < 1e-5
    assert 0.5 <= bright.accuracy <= 1 and bright.meta["num_train"] + bright.meta["num_val"] == 100
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0] == "seed,brightness,left-right" and len(rows) == 1001
    s = float(rows[6].split(",")[1])
    expect = image_scores(render_latents(G, seed_latents(G, [5], "z"), "z"), "brightness")
    assert abs(s - float(expect)) < 1e-4


def test_fit_from_a_csv_in_w_plus_with_logistic_regression(net, tmp_path):
    path, G = net
    seeds = list(range(300))
    bright = image_scores(render_latents(G, seed_latents(G, seeds, "w"), "w"), "brightness")
    lines = ["seed,brightness"] + [f"{s},{float(b):.6f}" for s, b in zip(seeds, bright)]
    (tmp_path / "scores.csv").write_text("\n".join(lines) + "\n")
    directions.main(["fit", "--network", path, "--scores", str(tmp_path / "scores.csv"), "--space", "w+",
                     "--method", "logistic", "--layers", "0-3", "--outdir", str(tmp_path / "d")])
    rec = load_direction(tmp_path / "d" / "brightness.npz")
    assert rec.space == "w+" and rec.vector.shape == (G.num_ws, G.w_dim) and rec.layers == [0, 1, 2, 3]
    assert rec.method == "logistic" and rec.meta["ratio"] == 0.5


def test_apply_and_video(net, tmp_path, capsys):
    path, G = net
    d = torch.randn(G.w_dim)
    from sgtrain.latent.directions import Direction

    Direction(d / d.norm(), "w", name="demo").save(tmp_path / "d.npz")
    directions.main(["apply", "--network", path, "--direction", str(tmp_path / "d.npz"), "--seeds", "1,2",
                     "--strengths=-2,0,2", "--outdir", str(tmp_path / "a")])
    grid = np.asarray(PIL.Image.open(tmp_path / "a" / "grid.png"))
    assert grid.shape == (2 * 16, 3 * 16, 3)
    ws = load_ws(tmp_path / "a" / "edited_w.npz")
    assert ws.shape == (6, G.num_ws, G.w_dim)
    torch.testing.assert_close(ws[1], seeds_to_ws(G, [1])[0])  # strength 0 is the seed itself
    torch.testing.assert_close(ws[2] - ws[1], (2 * d / d.norm()).expand(G.num_ws, G.w_dim))
    np.savez(tmp_path / "w.npz", w=ws[:1].numpy())
    directions.main(["video", "--network", path, "--direction", str(tmp_path / "d.npz"), "--w",
                     str(tmp_path / "w.npz"), "--fps", "5", "--seconds", "1", "--output", str(tmp_path / "v.gif")])
    frames = PIL.Image.open(tmp_path / "v.gif")
    assert frames.n_frames == 5 and frames.size == (16, 16)
    directions.main(["video", "--network", path, "--direction", str(tmp_path / "d.npz"), "--seeds", "1-4",
                     "--grid", "2x2", "--fps", "4", "--seconds", "1", "--layers", "coarse",
                     "--output", str(tmp_path / "v.mp4")])
    assert (tmp_path / "v.mp4").stat().st_size > 0
    with pytest.raises(SystemExit):
        directions.main(["apply", "--network", path, "--direction", str(tmp_path / "missing.npz"), "--seeds", "1",
                         "--outdir", str(tmp_path / "x")])
    assert "not found" in capsys.readouterr().err


def test_fit_class_labels_of_a_conditional_network(tmp_path, capsys):
    G = tiny_generator(c_dim=3)
    save_network(tmp_path / "cond", G_ema=G)
    net = str(tmp_path / "cond.safetensors")
    directions.main(["fit", "--network", net, "--class-labels", "--seeds", "0-299", "--outdir", str(tmp_path / "c")])
    for k in range(3):
        rec = load_direction(tmp_path / "c" / f"class{k}.npz")
        assert rec.space == "w" and rec.name == f"class{k}" and rec.meta["accuracy_all"] > 0.9
        assert rec.layers == list(range(G.num_ws))  # written out, not left empty
    with pytest.raises(SystemExit):
        directions.main(["fit", "--network", net, "--class-labels", "--space", "z", "--outdir", str(tmp_path / "z")])
    assert "does not depend on the class" in capsys.readouterr().err
