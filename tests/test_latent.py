"""sgtrain.latent on a tiny random StyleGAN2 generator (CPU): truncation, mixing, interpolation, blending, SeFa."""

import math

import numpy as np
import pytest
import torch

from sgtrain.latent import (
    Direction,
    blend_ws,
    direction_sweep,
    generate_images,
    interpolate_keyframes,
    latent_path,
    load_ws,
    make_grid,
    make_labels,
    mean_ws,
    mix_ws,
    parse_grid,
    parse_layer_spec,
    parse_range,
    render_ws,
    save_ws,
    seeds_to_ws,
    seeds_to_z,
    sefa,
    slerp,
    style_layers,
    style_mixing_grid,
    synthesize,
)
from sgtrain.latent.directions import affine_layers
from sgtrain.latent.mixing import STYLE_PRESETS
from sgtrain.models.stylegan2 import Generator


def tiny_generator(res: int = 16, c_dim: int = 0, seed: int = 0, init_res: list[int] | None = None) -> Generator:
    """A random 16x16 StyleGAN2 generator with visible noise and a realistic w_avg; ``init_res=[2, 4]``: 16x8."""
    torch.manual_seed(seed)
    wxh = {} if init_res is None else dict(init_res=init_res)
    G = Generator(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=res * 32, channel_max=32, num_fp16_res=0,
                  **wxh).eval()
    G.requires_grad_(False)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
        z = seeds_to_z(range(500), G.z_dim)
        c = torch.zeros([500, c_dim])
        if c_dim:
            c[:, 0] = 1
        G.mapping.w_avg.copy_(G.mapping(z, c)[:, 0].mean(0))
    return G


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and much faster on a busy machine (no spinning OpenMP workers)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def same_image(a: torch.Tensor, b: torch.Tensor) -> bool:
    """uint8 images of the same latents rendered in different batches: CPU kernels may round one level apart."""
    return a.shape == b.shape and int((a.int() - b.int()).abs().max()) <= 1


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


def test_parse_range_and_grid():
    assert parse_range("0-3") == [0, 1, 2, 3]
    assert parse_range("1,5,7-9") == [1, 5, 7, 8, 9]
    assert parse_range([3, 4]) == [3, 4]
    with pytest.raises(ValueError, match="backwards"):
        parse_range("5-2")
    with pytest.raises(ValueError, match="cannot parse"):
        parse_range("a-b")
    assert parse_grid("4x8") == (4, 8)
    assert parse_grid(None) is None
    with pytest.raises(ValueError):
        parse_grid("4by8")


def test_seeds_match_numpy_randomstate(G):
    z = seeds_to_z([0, 42], G.z_dim)
    assert torch.equal(z[1], torch.from_numpy(np.random.RandomState(42).randn(G.z_dim).astype(np.float32)))


def test_style_presets_follow_the_paper_and_scale_down():
    # StyleGAN paper, 1024x1024 (num_ws 18): coarse 0-3, middle 4-7, fine 8-17.
    assert style_layers("coarse", 18, 1024) == [0, 1, 2, 3]
    assert style_layers("middle", 18, 1024) == [4, 5, 6, 7]
    assert style_layers("fine", 18, 1024) == list(range(8, 18))
    assert style_layers("fine", 14, 256) == list(range(8, 14))
    assert [style_layers(p, 8, 32) for p in STYLE_PRESETS] == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert [style_layers(p, 6, 16) for p in STYLE_PRESETS] == [[0, 1], [2, 3], [4, 5]]
    for num_ws, res in [(6, 16), (8, 32), (10, 64), (18, 1024), (16, 512)]:  # 16 ws at 512: StyleGAN3-like split
        parts = [style_layers(p, num_ws, res) for p in STYLE_PRESETS]
        assert sum(parts, []) == list(range(num_ws)) and all(parts)
    assert style_layers("0-2,5-end", 8, 32) == [0, 1, 2, 5, 6, 7]
    with pytest.raises(ValueError, match="out of range"):
        style_layers("0-9", 8, 32)
    with pytest.raises(ValueError, match="selects no layers"):
        style_layers("fine", 4, 8)


def test_psi_zero_gives_the_w_avg_image_for_every_seed(G):
    ws = seeds_to_ws(G, [0, 1, 7, 123], truncation_psi=0)
    assert torch.equal(ws, G.mapping.w_avg.expand_as(ws))
    imgs = generate_images(G, [0, 1, 7, 123], truncation_psi=0)
    ref = render_ws(G, G.mapping.w_avg[None, None].repeat(1, G.num_ws, 1))
    for img in imgs:
        assert same_image(img, ref[0])
    other = generate_images(G, [0, 1], truncation_psi=1)
    assert not torch.equal(other[0], other[1])
    assert (other[0].float() - ref[0].float()).abs().mean() > 5


def test_truncation_cutoff_only_touches_the_first_layers(G):
    full = seeds_to_ws(G, [3], truncation_psi=1)
    cut = seeds_to_ws(G, [3], truncation_psi=0.5, truncation_cutoff=2)
    w_avg = G.mapping.w_avg
    torch.testing.assert_close(cut[:, :2], w_avg + 0.5 * (full[:, :2] - w_avg))
    assert torch.equal(cut[:, 2:], full[:, 2:])


def test_class_label_errors():
    Gc = tiny_generator(c_dim=3)
    with pytest.raises(ValueError, match="conditional"):
        make_labels(Gc, 2, None)
    with pytest.raises(ValueError, match="out of range"):
        make_labels(Gc, 2, 3)
    assert make_labels(Gc, 2, 1)[:, 1].tolist() == [1, 1]
    imgs = generate_images(Gc, [5], class_idx=0), generate_images(Gc, [5], class_idx=2)
    assert not torch.equal(*imgs)
    with pytest.raises(ValueError, match="unconditional"):
        make_labels(tiny_generator(), 1, 0)


def test_mixing_identical_seeds_reproduces_unmixed_images(G):
    seeds = [4, 9, 11]
    out = style_mixing_grid(G, seeds, seeds, "coarse")
    alone = generate_images(G, seeds)  # rendered separately, in another batch
    for i in range(len(seeds)):
        assert torch.equal(out["mixed"][i, i], out["rows"][i])
        assert torch.equal(out["cols"][i], out["rows"][i])
        # Against images rendered in another batch: CPU kernels may round differently by one level at most.
        assert same_image(out["mixed"][i, i], alone[i])
    # Off-diagonal cells are real mixtures: unlike both parents.
    assert not torch.equal(out["mixed"][0, 1], out["rows"][0])
    assert not torch.equal(out["mixed"][0, 1], out["cols"][1])
    H = G.img_resolution
    assert out["grid"].shape == (4 * H, 4 * H, 3)
    assert out["grid"][:H, :H].max() == 0  # blank corner
    assert np.array_equal(out["grid"][H:2 * H, :H], out["rows"][0].numpy())
    assert np.array_equal(out["grid"][:H, 2 * H:3 * H], out["cols"][1].numpy())
    assert np.array_equal(out["grid"][2 * H:3 * H, 3 * H:], out["mixed"][1, 2].numpy())


def test_mix_ws_copies_the_chosen_layers_from_the_column(G):
    rows, cols = seeds_to_ws(G, [1, 2]), seeds_to_ws(G, [3, 4, 5])
    mixed = mix_ws(rows, cols, [0, 1])
    assert mixed.shape == (2, 3, G.num_ws, G.w_dim)
    assert torch.equal(mixed[1, 2, :2], cols[2, :2])
    assert torch.equal(mixed[1, 2, 2:], rows[1, 2:])


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(5, 32), torch.randn(5, 32)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.equal(slerp(a, b, 1.0), b)
    u, v = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    mid = slerp(u, v, 0.5)
    torch.testing.assert_close(mid.norm(dim=1), torch.ones(5))  # stays on the sphere, unlike lerp
    omega = torch.acos((u * v).sum(1))
    torch.testing.assert_close(torch.acos((u * mid).sum(1).clamp(-1, 1)), omega / 2, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(slerp(a, a, 0.3), a)  # parallel: falls back to lerp


@pytest.mark.parametrize("kind", ["lerp", "slerp", "cubic"])
def test_keyframes_are_hit(kind):
    keys = torch.randn(4, 2, 8)
    path = interpolate_keyframes(keys, 13, kind, loop=False)  # keyframes at frames 0, 4, 8, 12
    for k in range(4):
        torch.testing.assert_close(path[4 * k], keys[k], atol=1e-5, rtol=0)
    loop = interpolate_keyframes(keys, 8, kind, loop=True)  # keyframes at frames 0, 2, 4, 6
    for k in range(4):
        torch.testing.assert_close(loop[2 * k], keys[k], atol=1e-5, rtol=0)
    # The loop closes: the step from the last frame back to the first is like the steps inside the path.
    steps = (torch.roll(loop, -1, 0) - loop).flatten(1).norm(dim=1)
    assert steps[-1] < 3 * steps[:-1].max()
    with pytest.raises(ValueError):
        interpolate_keyframes(keys[:1], 5, kind)


def test_slerp_video_endpoints_equal_the_seed_images(G):
    seeds = [10, 20, 30]
    ws = latent_path(G, seeds, 9, space="z", kind="slerp")
    keys = seeds_to_ws(G, seeds)
    for frame, k in [(0, 0), (4, 1), (8, 2)]:  # same z (slerp is exact there); mapped in another batch
        torch.testing.assert_close(ws[frame, 0], keys[k], atol=1e-5, rtol=1e-5)
    frames = render_ws(G, ws[:, 0])
    alone = generate_images(G, seeds)
    assert same_image(frames[0], alone[0])
    assert same_image(frames[4], alone[1])
    assert same_image(frames[-1], alone[2])
    assert not same_image(frames[2], alone[0]) and not same_image(frames[2], alone[1])
    wpath = latent_path(G, seeds, 5, space="w", kind="cubic", loop=True)
    torch.testing.assert_close(wpath[0, 0], seeds_to_ws(G, [10])[0])


def test_blend_all_layers_from_a_equals_a(G, tmp_path):
    a, b = seeds_to_ws(G, [1]), seeds_to_ws(G, [2])
    owner = parse_layer_spec(f"0-{G.num_ws - 1}:a", ["a", "b"], G.num_ws)
    assert torch.equal(blend_ws({"a": a, "b": b}, owner), a)
    assert torch.equal(render_ws(G, blend_ws({"a": a, "b": b}, owner)), render_ws(G, a))  # same batch shape
    owner = parse_layer_spec("0-1:a,2-end:b", ["a", "b"], G.num_ws)
    mixed = blend_ws({"a": a, "b": b}, owner)
    assert torch.equal(mixed[:, :2], a[:, :2]) and torch.equal(mixed[:, 2:], b[:, 2:])
    torch.testing.assert_close(mean_ws({"a": a, "b": b}), (a + b) / 2)
    with pytest.raises(ValueError, match="without a source"):
        parse_layer_spec("0-2:a", ["a", "b"], G.num_ws)
    with pytest.raises(ValueError, match="twice"):
        parse_layer_spec("0-3:a,3-end:b", ["a", "b"], G.num_ws)
    with pytest.raises(ValueError, match="sources are"):
        parse_layer_spec("0-end:c", ["a", "b"], G.num_ws)
    # Latent files round-trip, NVlabs' layout [N, num_ws, w_dim]; a single w broadcasts to every layer.
    save_ws(tmp_path / "a.npz", a)
    assert torch.equal(load_ws(tmp_path / "a.npz", G.num_ws, G.w_dim), a)
    np.save(tmp_path / "w.npy", a[0, 0].numpy())
    assert load_ws(tmp_path / "w.npy", G.num_ws, G.w_dim).shape == (1, G.num_ws, G.w_dim)
    with pytest.raises(ValueError, match="w_dim"):
        load_ws(tmp_path / "a.npz", G.num_ws, 64)


def test_sefa_directions_are_the_top_eigenvectors(G):
    res = sefa(G)
    d, ev = res["directions"].double(), res["eigenvalues"].double()
    assert d.shape == (G.w_dim, G.w_dim) and res["layers"] == list(range(G.num_ws))
    torch.testing.assert_close(d @ d.T, torch.eye(G.w_dim, dtype=torch.float64), atol=1e-5, rtol=0)
    assert bool((ev[:-1] >= ev[1:] - 1e-6).all())
    # Independent check: ||A n||^2 for the row-normalised stacked affine weights A.
    layers = affine_layers(G)
    assert sorted(i for i, _, _ in layers) == sorted([0, 1, 1, 2, 3, 3, 4, 5])  # 16x16: b4 conv1/torgb, b8, b16
    A = torch.cat([w for _, _, w in layers]).double()
    A = A / A.norm(dim=1, keepdim=True)
    gain = lambda n: float((A @ n).square().sum())  # noqa: E731
    assert math.isclose(gain(d[0]), float(ev[0]), rel_tol=1e-4)
    rand = torch.randn(200, G.w_dim, dtype=torch.float64)
    assert all(gain(r / r.norm()) <= gain(d[0]) + 1e-9 for r in rand)
    coarse = sefa(G, [0, 1])
    assert coarse["layers"] == [0, 1] and not torch.allclose(coarse["directions"][0].abs(), d[0].float().abs())
    # Editing touches only the chosen layers; strength 0 changes nothing.
    ws = seeds_to_ws(G, [1])
    assert torch.equal(Direction(d[0], "w", [0, 1]).apply(ws, 0.0), ws)
    edited = Direction(d[0], "w", [0, 1]).apply(ws, 3.0)
    assert torch.equal(edited[:, 2:], ws[:, 2:])
    torch.testing.assert_close((edited - ws)[:, :2].norm(dim=-1), torch.full((1, 2), 3.0))
    sweep = direction_sweep(G, [1, 2], res["directions"][:2], res["layers"], [-3, 0, 3], truncation_psi=1)
    assert sweep["images"].shape == (2, 2, 3, 16, 16, 3) and sweep["grids"][0].shape == (32, 48, 3)
    assert same_image(sweep["images"][0, :, 1], generate_images(G, [1, 2]))
    assert not torch.equal(sweep["images"][0, 0, 0], sweep["images"][0, 0, 2])


def test_synthesize_rejects_wrong_shapes(G):
    with pytest.raises(ValueError, match="num_ws"):
        synthesize(G, torch.zeros(1, G.num_ws + 1, G.w_dim))
    with pytest.raises(ValueError, match="noise_mode"):
        synthesize(G, torch.zeros(1, G.num_ws, G.w_dim), noise_mode="fixed")
    grid = make_grid(np.ones([3, 2, 2, 3], np.uint8), 2, 2)
    assert grid.shape == (4, 4, 3) and grid[2:, 2:].max() == 0


def test_in_batches_gives_the_rows_of_one_call():
    from sgtrain.core.batches import in_batches

    x, y = torch.randn(7, 3), torch.randn(7, 2)
    calls = []

    def fn(a, b):
        calls.append(a.shape[0])
        return torch.cat([a, b], 1) * 2

    out = in_batches(fn, x, y, batch_size=3)
    assert calls == [3, 3, 1] and torch.equal(out, torch.cat([x, y], 1) * 2)
    assert torch.equal(in_batches(fn, x, y, batch_size=100), out) and calls[-1] == 7
    with pytest.raises(ValueError, match="batch_size=0"):
        in_batches(fn, x, y, batch_size=0)
    with pytest.raises(ValueError, match="one row per sample"):
        in_batches(fn, x, y[:3], batch_size=2)
    with pytest.raises(ValueError, match="no rows"):
        in_batches(fn, x[:0], y[:0], batch_size=2)
