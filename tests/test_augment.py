"""ADA: AugmentPipe against NVlabs' outputs, identity at p = 0, R1 through the pipe, the p controller."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgtrain.core.augment import AUGPIPE_SPECS, AdaController, AugmentPipe, augment_pipe

FIXTURES = Path(__file__).parent / "fixtures" / "augment"
META = json.loads((FIXTURES / "cases.json").read_text())
INPUTS = np.load(FIXTURES / "inputs.npz")


def _reals(channels: int = 3) -> torch.Tensor:
    x = torch.from_numpy(INPUTS["images"]).to(torch.float32) / 127.5 - 1
    return x if channels == 3 else x.mean(dim=1, keepdim=True)


def _pipe_for(case: dict) -> AugmentPipe:
    if "kwargs" in case:
        pipe = AugmentPipe(**case["kwargs"])
        if case["p"] is not None:
            pipe.p.fill_(case["p"])
        return pipe
    return augment_pipe(case["pipeline"], p=case["p"])


# ----------------------------------------------------------------------------------------------------------------------
# The pipe against NVlabs.


def test_named_pipelines_are_nvlabs_augpipe_specs():
    nv_groups = {"b": ["xflip", "rotate90", "xint"], "g": ["scale", "rotate", "aniso", "xfrac"],
                 "c": ["brightness", "contrast", "lumaflip", "hue", "saturation"], "f": ["imgfilter"],
                 "n": ["noise"], "c2": ["cutout"]}
    expected = {"blit": nv_groups["b"], "geom": nv_groups["g"], "color": nv_groups["c"], "filter": ["imgfilter"],
                "noise": ["noise"], "cutout": ["cutout"]}
    order = ["b", "g", "c", "f", "n", "c2"]
    for name in ("bg", "bgc", "bgcf", "bgcfn", "bgcfnc"):
        expected[name] = [k for g in order[:len(name)] for k in nv_groups[g]]
    assert set(AUGPIPE_SPECS) == set(expected)
    for name, keys in expected.items():
        assert AUGPIPE_SPECS[name] == dict.fromkeys(keys, 1), name


def test_buffers_and_defaults_match_nvlabs():
    pipe = AugmentPipe()
    assert list(pipe.state_dict()) == ["p", "Hz_geom", "Hz_fbank"]
    assert float(pipe.p) == 1.0  # NVlabs' initial value (training sets augment_p)
    # recorded on another CPU: float32 filters built by float arithmetic; entries near 1e-16 differ in the last digits
    np.testing.assert_allclose(pipe.Hz_geom.numpy(), INPUTS["Hz_geom"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pipe.Hz_fbank.numpy(), INPUTS["Hz_fbank"], rtol=1e-6, atol=1e-7)
    assert pipe.xint_max == 0.125 and pipe.scale_std == 0.2 and pipe.rotate_max == 1 and pipe.aniso_std == 0.2
    assert pipe.xfrac_std == 0.125 and pipe.brightness_std == 0.2 and pipe.contrast_std == 0.5 and pipe.hue_max == 1
    assert pipe.saturation_std == 1 and pipe.imgfilter_bands == [1, 1, 1, 1] and pipe.imgfilter_std == 1
    assert pipe.noise_std == 0.1 and pipe.cutout_size == 0.5
    assert type(pipe)(**pipe.init_kwargs).init_kwargs == pipe.init_kwargs
    json.dumps(pipe.init_kwargs)


@pytest.mark.parametrize("case", META["cases"], ids=[f"{c['file'][:-4]}-{c['key']}" for c in META["cases"]])
def test_matches_nvlabs(case):
    """Same seed, same p: the same augmented images as NVlabs' AugmentPipe, and the same number of random draws."""
    ref = np.load(FIXTURES / case["file"])
    pipe = _pipe_for(case)
    torch.manual_seed(case["seed"])
    out = pipe(_reals(case["channels"]), debug_percentile=case.get("debug_percentile"))
    next_rand = torch.rand([])
    expected = torch.from_numpy(ref[case["key"]])
    assert out.shape == expected.shape and out.dtype == torch.float32
    err = float((out - expected).abs().max())
    assert err <= 1e-4, f"max |sgtrain - NVlabs| = {err:.3g}"
    assert float(next_rand) == float(ref[case["key"] + "_next_rand"]), "random draws out of step with NVlabs"
    if case.get("debug_percentile") is None and case["p"] >= 0.3:
        assert float((out - _reals(case["channels"])).abs().max()) > 0.01  # the case does augment


@pytest.mark.parametrize("name", list(AUGPIPE_SPECS))
def test_p0_is_exact_identity_with_the_same_draws(name):
    x = _reals().clone().requires_grad_(True)
    pipe = augment_pipe(name, p=0.0)
    torch.manual_seed(5)
    out = pipe(x)
    after_p0 = torch.rand([])
    assert torch.equal(out, x)
    w = torch.randn_like(x)
    (g,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.equal(g, w)
    pipe.p.fill_(0.3)
    torch.manual_seed(5)
    augmented = pipe(x)
    assert float(torch.rand([])) == float(after_p0)  # p changes no random draw, so seeded runs stay in step
    assert not torch.equal(augmented, x)


def test_batch_sizes_channels_and_errors():
    pipe = augment_pipe("bgcfnc", p=1.0)
    for n, c in [(1, 3), (5, 3), (3, 1)]:
        x = torch.rand(n, c, 32, 32) * 2 - 1
        y = pipe(x)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    y64 = pipe(torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1)
    assert y64.dtype == torch.float64
    assert augment_pipe("bg", p=1.0)(torch.rand(2, 5, 16, 16)).shape == (2, 5, 16, 16)  # geometry: any C
    with pytest.raises(ValueError, match="RGB, RGBA or L"):
        augment_pipe("color", p=1.0)(torch.rand(2, 5, 16, 16))
    with pytest.raises(ValueError, match="imgfilter needs images larger than 21x21"):
        augment_pipe("filter", p=1.0)(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="uint8"):
        pipe(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown pipeline 'bgx'"):
        augment_pipe("bgx")
    with pytest.raises(ValueError, match="p must be in"):
        augment_pipe("bgc", p=1.5)
    with pytest.raises(ValueError, match="imgfilter_bands"):
        AugmentPipe(imgfilter=1, imgfilter_bands=[1, 1])
    assert augment_pipe("bgc", xflip=0, noise=1).noise == 1 and augment_pipe("bgc", xflip=0).xflip == 0


# ----------------------------------------------------------------------------------------------------------------------
# Gradients: R1 through augmented reals.


def test_grid_sample_has_native_double_backward():
    """PyTorch differentiates grid_sample's backward itself, so no grid_sample_gradfix is needed (checked: 2.13)."""
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(2, 5, 4, 2, dtype=torch.float64) * 2.2 - 1.1
    assert torch.autograd.gradgradcheck(
        lambda t: F.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False), (x,))


def test_pipe_gradgradcheck():
    x = (torch.rand(1, 3, 24, 24, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    pipe = augment_pipe("bgcfnc", p=1.0)

    def f(t):
        torch.manual_seed(3)
        return pipe(t)

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)


class _TinyD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4 * 32 * 32, 1, bias=False)  # R1 ignores a last bias

    def forward(self, img):
        return self.fc(torch.tanh(self.conv(img)).flatten(1))  # smooth, so finite differences hold


def _r1(D: torch.nn.Module, pipe: AugmentPipe, real: torch.Tensor, seed: int, create_graph: bool) -> torch.Tensor:
    """R1 (Mescheder et al. 2018, eq. 9) through the augmented reals, summed over the batch."""
    real = real.detach().requires_grad_(True)
    torch.manual_seed(seed)
    logits = D(pipe(real))
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=create_graph)
    return grad.square().sum()


def test_r1_through_augmented_reals_matches_finite_differences():
    """Double backward through bgcfnc at p = 1 (every transformation on) gives the gradient finite differences do."""
    torch.manual_seed(0)
    D = _TinyD().double()
    real = _reals().double()
    pipe = augment_pipe("bgcfnc", p=1.0)
    params = list(D.parameters())
    grads = torch.autograd.grad(_r1(D, pipe, real, seed=7, create_graph=True), params)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    gen = torch.Generator().manual_seed(1)
    eps = 1e-6
    for _ in range(3):
        dirs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, dirs))
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                for p, d in zip(params, dirs):
                    p.add_(d, alpha=sign * eps)
            values.append(float(_r1(D, pipe, real, seed=7, create_graph=False)))
            with torch.no_grad():
                for p, d in zip(params, dirs):
                    p.sub_(d, alpha=sign * eps)
        numeric = (values[0] - values[1]) / (2 * eps)
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


# ----------------------------------------------------------------------------------------------------------------------
# The p controller.


def _nvlabs_p(p: float, r_t: float, target: float, batch: int, interval: int, kimg: float) -> float:
    adjust = np.sign(r_t - target) * (batch * interval) / (kimg * 1000)
    return float(torch.clamp(torch.tensor(p, dtype=torch.float32) + adjust, min=0))


def test_controller_rises_above_target_and_falls_to_zero_below():
    pipe = augment_pipe("bgc", p=0.0)
    ada = AdaController(pipe, ada_target=0.6, ada_interval=4, ada_kimg=500)
    step = 64 * 4 / 500e3
    for it in range(1, 9):
        ada.accumulate(torch.ones(64, 1))  # r_t = 1 > 0.6: D overfits, augment more
        adjusted = ada.update(it, 64)
        assert adjusted == (it % 4 == 0)
    assert float(ada.r_t) == 1.0
    assert ada.p == pytest.approx(2 * step, rel=1e-6) and ada.p > 0
    for it in range(9, 41):
        ada.accumulate(-torch.ones(64, 1))  # r_t = -1 < 0.6
        ada.update(it, 64)
    assert ada.p == 0.0  # clamped, never negative
    assert float(ada.r_t) == -1.0


def test_controller_matches_nvlabs_formula():
    gen = torch.Generator().manual_seed(0)
    pipe = augment_pipe("bgc", p=0.05)
    ada = AdaController(pipe, ada_target=0.6, ada_interval=3, ada_kimg=2)
    p, window, r_t, history = float(pipe.p), [], float("nan"), []
    for it in range(1, 52):
        for chunk in range(2):
            logits = torch.randn(8, 1, generator=gen) + (1.5 if (it // 9) % 2 else -0.2)
            if it % 5 == 0:
                continue  # an iteration without D phases
            window.append(logits.sign())
            if chunk == 0:
                ada.accumulate(logits.sign())
            else:
                ada.accumulate(logits.sign().mean(), num=8)  # the form GANLoss reports
        adjusted = ada.update(it, 16)
        if it % 3 == 0:
            if window:
                r_t = float(torch.cat(window).double().mean())
            window = []
            p = _nvlabs_p(p, r_t, 0.6, 16, 3, 2)
            assert adjusted
        assert ada.p == p, it  # bitwise: the same float32 update
        history.append(ada.p)
    assert max(history) > 0.05 and history.count(0.0) > 1 and history[-1] > 0  # rose, fell to the clamp, rose


def test_controller_edge_cases_and_fixed_p():
    pipe = augment_pipe("bgc", p=0.2)
    ada = AdaController(pipe, ada_target=0.6, ada_interval=1, ada_kimg=1)
    assert not ada.update(1, 100) and ada.p == pytest.approx(0.2)  # no statistic yet: p unchanged
    ada.accumulate(torch.tensor([1.0, 1.0, 1.0, -1.0, 0.0]))  # r_t = 0.4 < 0.6
    assert ada.update(2, 100) and ada.p == pytest.approx(0.1)
    assert ada.update(3, 100) and ada.p == pytest.approx(0.0)  # an empty interval keeps the previous r_t
    ada.accumulate(torch.tensor([1.0, 1.0, 1.0, -1.0, 1.0]))  # r_t = 0.6 == target: sign 0, no change
    assert ada.update(4, 100) and ada.p == 0.0 and float(ada.r_t) == pytest.approx(0.6)

    fixed = AdaController(augment_pipe("bgc", p=0.3), ada_target=None)
    assert not fixed.adaptive
    for it in range(1, 9):
        fixed.accumulate(torch.ones(4))
        assert not fixed.update(it, 64)
    assert fixed.p == pytest.approx(0.3) and float(fixed.signs.sum()) == 0

    with pytest.raises(ValueError, match="ada_interval"):
        AdaController(pipe, ada_interval=0)
    with pytest.raises(ValueError, match="ada_kimg"):
        AdaController(pipe, ada_kimg=0)
    with pytest.raises(ValueError, match="buffer 'p'"):
        AdaController(torch.nn.Identity())


def test_controller_state_dict_round_trip():
    def make(p):
        pipe = augment_pipe("bgc", p=p)
        return pipe, AdaController(pipe, ada_target=0.6, ada_interval=4, ada_kimg=1)

    pipe_a, ada_a = make(0.0)
    for it in range(1, 7):  # one adjustment (up), then two iterations into the next interval
        ada_a.accumulate(torch.tensor([1.0, 1.0, 1.0] if it < 5 else [-1.0, -1.0, 1.0]))
        ada_a.update(it, 32)
    state = ada_a.state_dict()
    assert set(state) == {"signs", "r_t", "p"}
    assert state["signs"].tolist() == [6.0, -2.0]
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    pipe_b, ada_b = make(0.9)
    ada_b.load_state_dict(torch.load(buf, weights_only=True))
    assert ada_b.p == ada_a.p and float(pipe_b.p) == float(pipe_a.p) > 0
    assert torch.equal(ada_b.signs, ada_a.signs) and torch.equal(ada_b.r_t, ada_a.r_t)
    for it in range(7, 17):
        for ada in (ada_a, ada_b):
            ada.accumulate(torch.tensor([-1.0, -1.0, 1.0]))
            ada.update(it, 32)
        assert ada_b.p == ada_a.p
    # Owner and controller side by side (the pipe registered once, the controller referencing it).
    owner = torch.nn.Module()
    owner.augment_pipe = pipe_a
    owner.ada = ada_a
    assert "ada.augment_pipe.p" not in owner.state_dict() and "augment_pipe.p" in owner.state_dict()
    fresh_pipe, fresh_ada = make(0.5)
    fresh = torch.nn.Module()
    fresh.augment_pipe = fresh_pipe
    fresh.ada = fresh_ada
    fresh.load_state_dict(owner.state_dict())
    assert fresh_ada.p == ada_a.p
    with pytest.raises(RuntimeError, match="Missing key"):
        make(0.1)[1].load_state_dict({"signs": torch.zeros(2, dtype=torch.float64), "r_t": torch.zeros([])})


def _ada_rank(rank: int, world: int, init_file: str, result_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        pipe = augment_pipe("bgc", p=0.1)
        ada = AdaController(pipe, ada_target=0.6, ada_interval=2, ada_kimg=1)
        # Rank 0 sees only positive logits (alone it would raise p), rank 1 three times as many negative ones.
        for it in range(1, 5):
            if rank == 0:
                ada.accumulate(torch.ones(4, 1))
            else:
                ada.accumulate(-torch.ones(12, 1).mean(), num=12)
            ada.update(it, 16)
        torch.save({"p": ada.p, "r_t": float(ada.r_t), "state": ada.state_dict()},
                   os.path.join(result_dir, f"r{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_controller_averages_over_ranks(tmp_path):
    """2 gloo processes: r_t is the mean over both ranks' signs, and p stays identical on both."""
    os.environ.pop("RANK", None)
    os.environ.pop("WORLD_SIZE", None)
    torch.multiprocessing.start_processes(_ada_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                                          join=True, start_method="spawn")
    res = [torch.load(tmp_path / f"r{r}.pt", weights_only=True) for r in range(2)]
    assert res[0]["r_t"] == res[1]["r_t"] == pytest.approx((4 - 12) / 16)  # the pooled mean, -0.5 < 0.6
    expected = 0.1
    for _ in range(2):  # two adjustments down by 16 * 2 / 1000
        expected = _nvlabs_p(expected, -0.5, 0.6, 16, 2, 1)
    assert res[0]["p"] == res[1]["p"] == expected
    for k in ("signs", "r_t", "p"):
        assert torch.equal(res[0]["state"][k], res[1]["state"][k])


class _FactoryCallsWithoutDevice(torch.overrides.TorchFunctionMode):
    """Records calls of tensor factories that name no device (such a tensor lands on the CPU whatever the images)."""

    FACTORIES = {torch.tensor, torch.as_tensor, torch.full, torch.zeros, torch.ones, torch.empty, torch.eye,
                 torch.arange, torch.linspace, torch.rand, torch.randn, torch.randint, torch.normal}

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FACTORIES and kwargs.get("device") is None:
            self.calls.append(func.__name__)
        return func(*args, **kwargs)


@pytest.mark.parametrize("name", ["bgcfnc"])
def test_every_tensor_follows_the_images_device(name):
    """The pipe makes its matrices, constants and random draws on the images' device: on a GPU one translation
    matrix was made on the CPU and the first ADA step failed. Without a GPU this watches every tensor factory the
    forward pass calls for one that names no device."""
    pipe = augment_pipe(name)
    pipe.p.fill_(1.0)
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    with _FactoryCallsWithoutDevice() as mode:
        out = pipe(img)
    assert mode.calls == [], f"tensor factories without device=: {mode.calls}"
    assert out.shape == img.shape and torch.isfinite(out).all()
