"""Supervised latent directions (InterFaceGAN SVM, logistic regression, conditional manipulation) on a tiny random
StyleGAN2 (CPU), with scores computed from the images themselves.

Acceptance: a brightness direction fitted in Z on 2,000 seeds moves held-out seeds' brightness up at +2 and down at
-2 for >= 90% of them. Conditioned on the left-right brightness difference (InterFaceGAN sec. 2.2), it still does,
and it keeps that second score within its spread: |change| < 1 standard deviation of the second score over the
2,000 seeds for >= 90% of the held-out seeds, and on average less than the unconditioned direction changes it.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.errors import UserError
from sgtrain.latent.directions import (
    Direction,
    condition_direction,
    edited_ws,
    fit_direction,
    image_scores,
    latents_to_ws,
    load_direction,
    load_directions,
    read_scores_csv,
    render_direction,
    render_latents,
    seed_classes,
    seed_latents,
    table_latents,
)

FIT_SEEDS = range(2000)
HELD_OUT = range(100000, 100200)


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def z_scores(G):
    """z of the 2,000 fitting seeds with their brightness and left-right scores."""
    z = seed_latents(G, FIT_SEEDS, "z")
    imgs = render_latents(G, z, "z", batch_size=250)
    return z, image_scores(imgs, "brightness"), image_scores(imgs, "left-right")


def _held_out_scores(G, record, name):
    """Score of each held-out seed's image at strengths -2, 0, +2: float [200, 3]."""
    z = seed_latents(G, HELD_OUT, "z")
    imgs = render_direction(G, record, [-2.0, 0.0, 2.0], z=z, batch_size=200)["images"]
    return image_scores(imgs.flatten(0, 1), name).reshape(len(HELD_OUT), 3)


def test_brightness_direction_moves_held_out_seeds(G, z_scores):
    z, bright, lr = z_scores
    fit = fit_direction(z, bright, method="svm", ratio=0.02)
    assert fit["direction"].shape == (G.z_dim,)
    assert abs(float(fit["direction"].norm()) - 1) < 1e-5
    assert fit["accuracy"] >= 0.8 and fit["num_train"] + fit["num_val"] == 80
    assert fit["score_slope"] > 0 and 0.5 < fit["latent_std"] < 2  # z ~ N(0, I): about 1 along any unit vector
    record = Direction(fit["direction"], "z", name="brightness", method="svm")
    s = _held_out_scores(G, record, "brightness")
    assert float((s[:, 2] > s[:, 1]).float().mean()) >= 0.9
    assert float((s[:, 0] < s[:, 1]).float().mean()) >= 0.9

    # Conditional manipulation: brightness without changing the left-right difference.
    other = fit_direction(z, lr, method="svm", ratio=0.02)["direction"]
    cond = condition_direction(fit["direction"], [other])
    assert abs(float(cond @ other)) < 1e-5 and abs(float(cond.norm()) - 1) < 1e-5
    cond_record = Direction(cond, "z", name="brightness", meta=dict(conditioned_on=["left-right"]))
    s = _held_out_scores(G, cond_record, "brightness")
    assert float((s[:, 2] > s[:, 1]).float().mean()) >= 0.9
    assert float((s[:, 0] < s[:, 1]).float().mean()) >= 0.9
    spread = float(lr.std())
    moved = _held_out_scores(G, cond_record, "left-right")
    plain = _held_out_scores(G, record, "left-right")
    change = torch.cat([moved[:, 2] - moved[:, 1], moved[:, 0] - moved[:, 1]]).abs()
    change_plain = torch.cat([plain[:, 2] - plain[:, 1], plain[:, 0] - plain[:, 1]]).abs()
    assert float((change < spread).float().mean()) >= 0.9, (float(change.mean()), spread)
    assert float(change.mean()) < float(change_plain.mean())


@pytest.mark.parametrize("space", ["w", "w+"])
def test_logistic_direction_in_w_and_w_plus(G, space):
    seeds = range(600)
    lat = seed_latents(G, seeds, space)
    bright = image_scores(render_latents(G, lat, space, batch_size=200), "brightness")
    fit = fit_direction(lat, bright, method="logistic", ratio=0.5)
    shape = (G.w_dim,) if space == "w" else (G.num_ws, G.w_dim)
    assert fit["direction"].shape == shape and fit["accuracy_all"] > 0.7
    record = Direction(fit["direction"], space, name="brightness", method="logistic")
    ws = latents_to_ws(G, seed_latents(G, HELD_OUT[:50], space), space)
    std = fit["latent_std"]
    imgs = render_direction(G, record, [-2 * std, 0, 2 * std], ws=ws)["images"]
    s = image_scores(imgs.flatten(0, 1), "brightness").reshape(50, 3)
    assert float((s[:, 2] > s[:, 1]).float().mean()) >= 0.9
    assert float((s[:, 0] < s[:, 1]).float().mean()) >= 0.9


def test_fit_uses_the_top_and_bottom_ratio_and_reports_accuracy():
    rng = np.random.RandomState(0)
    x = rng.randn(1000, 8)
    truth = np.zeros(8)
    truth[3] = 1
    scores = x @ truth + 0.01 * rng.randn(1000)
    scores[:10] = np.nan  # missing scores are left out
    fit = fit_direction(torch.from_numpy(x), torch.from_numpy(scores), ratio=0.1)
    assert fit["num_train"] + fit["num_val"] == 2 * round(0.1 * 990)
    assert float(fit["direction"][3]) > 0.99 and fit["accuracy"] == 1.0
    fit_l = fit_direction(torch.from_numpy(x), torch.from_numpy(scores), method="logistic", ratio=0.5)
    assert float(fit_l["direction"][3]) > 0.95 and fit_l["score_slope"] > 0.5
    with pytest.raises(ValueError, match="ratio"):
        fit_direction(torch.from_numpy(x), torch.from_numpy(scores), ratio=0.7)
    with pytest.raises(ValueError, match="nothing to separate"):
        fit_direction(torch.from_numpy(x), torch.ones(1000))
    with pytest.raises(ValueError, match="method"):
        fit_direction(torch.from_numpy(x), torch.from_numpy(scores), method="pca")


def test_condition_on_several_directions_is_orthogonal_to_all():
    torch.manual_seed(0)
    n, m1, m2 = torch.randn(3, 2, 16).unbind(0)
    out = condition_direction(n, [m1 / m1.norm(), m2 / m2.norm()])
    assert out.shape == (2, 16) and abs(float(out.norm()) - 1) < 1e-5
    assert abs(float((out * m1).sum())) < 1e-5 and abs(float((out * m2).sum())) < 1e-5
    single = condition_direction(n, [m1 / m1.norm()])  # n - (n.m) m for one unit normal
    u = (m1 / m1.norm()).flatten()
    expect = n.flatten() - (n.flatten() @ u) * u
    torch.testing.assert_close(single.flatten(), expect / expect.norm())
    with pytest.raises(ValueError, match="span"):
        condition_direction(m1, [m1])
    with pytest.raises(ValueError, match="same space"):
        condition_direction(n, [torch.randn(16)])


def test_class_labels_of_a_conditional_network_give_class_directions():
    G = tiny_generator(c_dim=3)
    seeds = range(300)
    classes = seed_classes(seeds, G.c_dim)
    ws = seed_latents(G, seeds, "w", classes=classes)
    labels = (np.asarray(classes) == 1).astype(np.float64)
    fit = fit_direction(ws, labels, method="svm")
    assert fit["num_train"] + fit["num_val"] == 300  # binary labels: every sample, no top/bottom selection
    assert fit["accuracy_all"] > 0.9  # c enters the mapping: W separates the classes
    record = Direction(fit["direction"], "w")
    proj = ws.double() @ fit["direction"].double()
    assert float(proj[torch.as_tensor(labels) == 1].mean()) > float(proj[torch.as_tensor(labels) == 0].mean())
    with pytest.raises(ValueError, match="unconditional"):
        seed_classes(seeds, 0)
    out = edited_ws(G, record, [0.0, 1.0], ws=latents_to_ws(G, ws[:2], "w"))
    torch.testing.assert_close(out[:, 1] - out[:, 0], fit["direction"].expand(2, G.num_ws, G.w_dim))


def test_direction_file_round_trip_and_sefa_rows(G, tmp_path):
    d = torch.randn(G.num_ws, G.w_dim)
    d = d / d.norm()
    rec = Direction(d, "w+", [0, 1, 2], name="age", method="svm", accuracy=0.93,
                    meta=dict(latent_std=1.5, conditioned_on=["glasses", "smile"], num_train=56))
    rec.save(tmp_path / "age.npz")
    raw = np.load(tmp_path / "age.npz", allow_pickle=False)  # readable without pickles
    assert str(raw["format"]) == "sgtrain-direction" and int(raw["format_version"]) == 1
    assert raw["direction"].shape == (G.num_ws, G.w_dim) and str(raw["space"]) == "w+"
    back = load_direction(tmp_path / "age.npz")
    torch.testing.assert_close(back.vector, d)
    assert back.layers == [0, 1, 2] and back.name == "age" and back.method == "svm"
    assert back.accuracy == pytest.approx(0.93) and back.meta["latent_std"] == pytest.approx(1.5)
    assert back.meta["conditioned_on"] == ["glasses", "smile"] and back.meta["num_train"] == 56
    assert math.isnan(load_direction(_saved(tmp_path, Direction(d[0], "w"))).accuracy)
    from sgtrain.latent import save_directions, sefa

    save_directions(tmp_path / "sefa.npz", sefa(G))
    row = load_direction(tmp_path / "sefa.npz", index=2)
    assert row.space == "w" and row.method == "sefa" and row.layers == list(range(G.num_ws))
    with pytest.raises(ValueError, match="out of range"):
        load_direction(tmp_path / "sefa.npz", index=G.w_dim)
    np.savez(tmp_path / "other.npz", w=np.zeros(3))
    with pytest.raises(KeyError, match="not a direction file"):
        load_direction(tmp_path / "other.npz")


def _saved(tmp_path, rec):
    path = tmp_path / "plain.npz"
    rec.save(path)
    return path


def test_layer_ranges_only_touch_the_chosen_layers(G):
    ws = seed_latents(G, [1, 2], "w+")
    d = torch.zeros(G.w_dim)
    d[0] = 1
    moved = Direction(d, "w").apply(ws, 3.0, layers=[1, 2])
    assert torch.equal(moved[:, 0], ws[:, 0]) and torch.equal(moved[:, 3:], ws[:, 3:])
    torch.testing.assert_close(moved[:, 1:3, 0], ws[:, 1:3, 0] + 3)
    dz = torch.zeros(G.z_dim)
    dz[0] = 1
    z = seed_latents(G, [1, 2], "z")
    out = edited_ws(G, Direction(dz, "z", layers=[0, 1]), [0.0, 5.0], z=z)
    assert torch.equal(out[:, 1, 2:], out[:, 0, 2:])  # a z edit mixed into layers 0-1 only
    assert not torch.equal(out[:, 1, :2], out[:, 0, :2])
    with pytest.raises(ValueError, match="give seeds"):
        edited_ws(G, Direction(dz, "z"), [1.0], ws=ws)
    with pytest.raises(ValueError, match="another network"):
        edited_ws(G, Direction(torch.ones(7), "w"), [1.0], ws=ws)


def test_scores_csv_by_seed_and_by_latent_file(G, tmp_path):
    (tmp_path / "s.csv").write_text("seed,age,smile\n3,20,1\n4,,0\n5,60,1\n")
    t = read_scores_csv(tmp_path / "s.csv")
    assert t["key"] == "seed" and t["keys"] == [3, 4, 5] and np.isnan(t["scores"]["age"][1])
    torch.testing.assert_close(table_latents(G, t, "w"), seed_latents(G, [3, 4, 5], "w"))
    ws = seed_latents(G, [7, 8], "w+")
    np.savez(tmp_path / "two.npz", w=ws.numpy())
    (tmp_path / "f.csv").write_text("file,index,age\ntwo.npz,1,30\ntwo.npz,0,40\n")
    t = read_scores_csv(tmp_path / "f.csv")
    torch.testing.assert_close(table_latents(G, t, "w+"), ws[[1, 0]])
    with pytest.raises(ValueError, match="latent files hold ws"):
        table_latents(G, t, "z")
    (tmp_path / "bad.csv").write_text("name,age\nx,1\n")
    with pytest.raises(ValueError, match="'seed' or a 'file'"):
        read_scores_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("seed,age\n1,old\n")
    with pytest.raises(ValueError, match="line 2"):
        read_scores_csv(tmp_path / "bad2.csv")


class _ZOnly(torch.nn.Module):
    """A generator without a mapping network (ProGAN / DCGAN style): image = G(z, c)."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 0, 4, 3
        self.fc = torch.nn.Linear(8, 48)

    def forward(self, z, c):
        return torch.tanh(self.fc(z)).reshape(-1, 3, 4, 4)


def test_z_only_networks_fit_and_render_in_z():
    torch.manual_seed(0)
    G = _ZOnly().eval()
    with pytest.raises(ValueError, match="use space z"):
        seed_latents(G, [0], "w")
    z = seed_latents(G, range(400), "z")
    bright = image_scores(render_latents(G, z, "z"), "brightness")
    fit = fit_direction(z, bright, ratio=0.1)
    out = render_direction(G, Direction(fit["direction"], "z"), [-2, 0, 2], z=z[:20])
    s = image_scores(out["images"].flatten(0, 1), "brightness").reshape(20, 3)
    assert out["ws"] is None and out["grid"].shape == (20 * 4, 3 * 4, 3)
    assert bool((s[:, 2] > s[:, 0]).all())


FIXTURES = Path(__file__).parent / "fixtures" / "directions"


def test_direction_files_written_before_read_and_apply_the_same():
    """Files written by sgtrain before the Direction type (fixtures/directions/README.md) read with their metadata, and
    the one applier gives the edits the old appliers recorded, bit for bit."""
    want = {k: torch.from_numpy(v) for k, v in np.load(FIXTURES / "expected_edits.npz").items()}
    ws, z = want["ws"], want["z"]
    age = load_direction(FIXTURES / "age_wplus.npz")
    assert age.space == "w+" and age.vector.shape == (6, 8) and age.layers == [1, 2, 4]
    assert age.name == "age" and age.method == "svm" and age.accuracy == 0.875
    assert age.meta == dict(latent_std=1.25, offset=-0.5, num_train=56, conditioned_on=["glasses"])
    assert torch.equal(age.apply(ws, 1.5), want["age"])
    assert torch.equal(age.apply(ws, -0.75, layers=[0, 5]), want["age_layers"])
    bright = load_direction(FIXTURES / "bright_z.npz")
    assert bright.space == "z" and bright.layers is None and bright.method == "logistic" and bright.name == "bright_z"
    assert math.isnan(bright.accuracy)
    assert torch.equal(bright.apply(z, 2.0), want["bright"])
    rows = load_directions(FIXTURES / "sefa.npz")
    assert [d.name for d in rows] == [f"sefa[{k}]" for k in range(8)] and {d.method for d in rows} == {"sefa"}
    assert rows[2].layers == [0, 1, 2] and rows[2].meta["eigenvalue"] == pytest.approx(4 - 2 * 3 / 7)
    assert load_direction(FIXTURES / "sefa.npz", index=2).vector.equal(rows[2].vector)
    assert torch.equal(rows[2].apply(ws, 3.0), want["sefa2"])
    (plain,) = load_directions(FIXTURES / "plain_w.npz", need_w=True)
    assert plain.space == "w" and plain.name == "smile" and plain.layers == [3, 5] and plain.method == ""
    assert torch.equal(plain.apply(ws, -2.5), want["plain"])


def test_a_saved_direction_reads_back_and_keeps_the_file_format(tmp_path):
    """Direction.save writes what the v1 writer wrote: the same keys and values as the fixture of the old code."""
    old = np.load(FIXTURES / "age_wplus.npz")
    age = load_direction(FIXTURES / "age_wplus.npz")
    age.save(tmp_path / "age_wplus.npz")
    new = np.load(tmp_path / "age_wplus.npz")
    assert sorted(new.files) == sorted(old.files)
    for k in old.files:
        assert new[k].dtype == old[k].dtype and np.array_equal(new[k], old[k]), k
    again = load_direction(tmp_path / "age_wplus.npz")
    assert again.vector.equal(age.vector) and again.meta == age.meta and again.layers == age.layers


def _one_line_error(kind, match, fn, *args, **kwargs):
    with pytest.raises(kind, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value) and isinstance(e.value, UserError)


def test_direction_errors_name_the_problem_and_the_fix(tmp_path):
    _one_line_error(FileNotFoundError, "not found; write one with sgtrain-directions", load_directions,
                    tmp_path / "none.npz")
    np.save(tmp_path / "bare.npy", np.zeros(3, np.float32))
    _one_line_error(KeyError, "bare array", load_directions, tmp_path / "bare.npy")
    Direction(torch.ones(4), "w").save(tmp_path / "v.npz")
    newer = dict(np.load(tmp_path / "v.npz"))
    newer["format_version"] = np.array(2)
    np.savez(tmp_path / "v2.npz", **newer)
    _one_line_error(ValueError, "format version 2.*update sgtrain", load_directions, tmp_path / "v2.npz")
    _one_line_error(ValueError, "index 1 is out of range", load_direction, tmp_path / "v.npz", index=1)
    Direction(torch.ones(5), "z").save(tmp_path / "z.npz")
    _one_line_error(ValueError, "direction in Z.*fit --space w", load_directions, tmp_path / "z.npz", need_w=True)
    np.savez(tmp_path / "rank.npz", direction=np.ones([2, 3, 4], np.float32))
    _one_line_error(ValueError, "has shape \\[2, 3, 4\\]", load_directions, tmp_path / "rank.npz")
    _one_line_error(ValueError, "space 'q' unknown", Direction, torch.ones(4), "q")
    _one_line_error(ValueError, "2 dimension", Direction, torch.ones(4), "w+")
    ws = torch.zeros(2, 6, 4)
    _one_line_error(ValueError, "layers \\[7\\] out of range", Direction(torch.ones(4), "w", [7]).apply, ws, 1.0)
    _one_line_error(ValueError, "w_dim 3", Direction(torch.ones(3), "w").apply, ws, 1.0)
    _one_line_error(ValueError, "num_ws=6", Direction(torch.ones(5, 4), "w+").apply, ws, 1.0)
    _one_line_error(ValueError, "moves ws", Direction(torch.ones(4), "w").apply, torch.zeros(2, 4), 1.0)
    _one_line_error(ValueError, "moves z", Direction(torch.ones(4), "z").apply, torch.zeros(2, 5), 1.0)
