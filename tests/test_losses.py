"""Tests of sgtrain.core.loss / regularizers and StyleGAN2Loss: R1 and path length (closed forms, finite differences,
double backward), style mixing, lazy regularization, pl_mean state, and StyleGAN2Loss against a direct
computation of every phase.

Networks are tiny sgtrain StyleGAN2 nets on CPU. The finite-difference tests build them with the smooth 'swish'
activation (lrelu makes R1 and path lengths piecewise constant in the parameters, which finite differences cannot
check) and without noise, clamping or style mixing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgtrain.core.loss import discriminator_logistic_loss, generator_logistic_loss, lazy_regularization
from sgtrain.core.regularizers import PathLengthRegularizer, blur_images, path_lengths, r1_penalty, style_mix
from sgtrain.models.stylegan2 import Discriminator, Generator
from sgtrain.models.stylegan2.loss import StyleGAN2Loss

RES = 8
Z_DIM = W_DIM = 8


def make_nets(activation: str = "lrelu", c_dim: int = 0, seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    G = Generator(z_dim=Z_DIM, c_dim=c_dim, w_dim=W_DIM, img_resolution=RES, img_channels=3,
                  mapping_kwargs=dict(num_layers=2, activation=activation), channel_base=64, channel_max=8,
                  num_fp16_res=0, conv_clamp=None, activation=activation)
    D = Discriminator(c_dim=c_dim, img_resolution=RES, img_channels=3, channel_base=64, channel_max=8, num_fp16_res=0,
                      conv_clamp=None, block_kwargs=dict(activation=activation),
                      epilogue_kwargs=dict(activation=activation, mbstd_group_size=2))
    with torch.no_grad():  # non-zero biases / noise strengths so that every parameter matters
        for p in list(G.parameters()) + list(D.parameters()):
            if p.ndim <= 1:
                p.add_(torch.randn_like(p) * 0.2)
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


def directional_fd_check(f, param: torch.nn.Parameter, grad: torch.Tensor, seed: int, rel_eps: float = 1e-2,
                         rtol: float = 3e-2) -> tuple[float, float]:
    """Compare grad . d with the central difference (f(p + h d) - f(p - h d)) / 2h along a random direction d."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(param.shape, generator=g)
    d = d / d.norm()
    h = rel_eps * max(param.detach().norm().item(), 1.0)
    orig = param.detach().clone()
    with torch.no_grad():
        param.copy_(orig + h * d)
    f_plus = f().item()
    with torch.no_grad():
        param.copy_(orig - h * d)
    f_minus = f().item()
    with torch.no_grad():
        param.copy_(orig)
    fd = (f_plus - f_minus) / (2 * h)
    analytic = (grad * d).sum().item()
    assert abs(analytic) > 1e-9, "direction gives a vanishing derivative; the check would be vacuous"
    assert fd == pytest.approx(analytic, rel=rtol, abs=0), (param.shape, fd, analytic)
    return fd, analytic


# ----------------------------------------------------------------------------------------------------------------------
# Adversarial losses.


def test_logistic_losses_match_log_sigmoid_forms():
    logits = torch.linspace(-20, 20, 81, dtype=torch.float64).view(-1, 1)
    sig = torch.sigmoid(logits)
    torch.testing.assert_close(generator_logistic_loss(logits)[30:50], -torch.log(sig)[30:50])
    fake, real = logits, logits.flip(0)
    expected = -torch.log1p(-torch.sigmoid(fake)) - torch.log(torch.sigmoid(real))
    torch.testing.assert_close(discriminator_logistic_loss(real, fake)[30:50], expected[30:50])
    # Saturated ends stay finite (softplus, not log(sigmoid)).
    assert torch.isfinite(discriminator_logistic_loss(real, fake)).all()
    with pytest.raises(ValueError, match="neither"):
        discriminator_logistic_loss(None, None)


# ----------------------------------------------------------------------------------------------------------------------
# R1.


def test_r1_penalty_closed_form():
    # D(x) = sum_i w_i x_i^2  =>  dD/dx = 2 w x, R1 = sum (2 w x)^2; its gradient w.r.t. w is sum 8 w x^2.
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    logits = (w * x.square()).sum(dim=[1, 2, 3]).unsqueeze(1)
    pen = r1_penalty(x, logits)
    assert pen.shape == (3,)
    torch.testing.assert_close(pen, (2 * w * x).square().sum(dim=[1, 2, 3]))
    pen.sum().backward()  # double backward through the gradient graph
    torch.testing.assert_close(w.grad, (8 * w * x.square()).sum(0).detach())


def test_r1_penalty_needs_grad_input():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(x, x.sum(dim=[1, 2, 3]).unsqueeze(1))


def test_r1_gradient_matches_finite_differences():
    _, D = make_nets("swish")
    D.requires_grad_(True)
    torch.manual_seed(1)
    real = torch.rand(4, 3, RES, RES) * 2 - 1
    c = torch.zeros(4, 0)

    def f() -> torch.Tensor:
        x = real.detach().requires_grad_(True)
        return r1_penalty(x, D(x, c)).mean()

    D.zero_grad(set_to_none=True)
    loss = f()
    assert loss.item() > 0
    loss.backward()
    params = dict(D.named_parameters())
    names = ["b8.conv0.weight", "b8.fromrgb.bias", "b4.conv.weight", "b4.fc.weight"]
    for i, name in enumerate(names):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
        directional_fd_check(f, params[name], params[name].grad, seed=i)


# ----------------------------------------------------------------------------------------------------------------------
# Path length.


def test_path_lengths_closed_form():
    # img = reshape(sum_i ws[:, i] @ A): J^T y is y_flat @ A^T for every ws row, so the length is |A y_flat|.
    torch.manual_seed(0)
    n, num_ws, w_dim, shape = 3, 4, 5, (2, 3, 3)
    A = torch.randn(w_dim, int(np.prod(shape)), dtype=torch.float64)
    ws = torch.randn(n, num_ws, w_dim, dtype=torch.float64, requires_grad=True)
    img = (ws.sum(1) @ A).view(n, *shape)
    y = torch.randn(n, *shape, dtype=torch.float64)
    lengths = path_lengths(img, ws, pl_noise=y)
    torch.testing.assert_close(lengths, (y.view(n, -1) @ A.T).norm(dim=1))


def test_path_length_noise_scale():
    # Default pl_noise is N(0, 1) / sqrt(H W): for img = ws-independent identity map the mean squared length ~ C.
    torch.manual_seed(0)
    n, hw = 256, 16
    ws = torch.randn(n, 1, 3 * hw * hw, requires_grad=True)
    img = ws.view(n, 3, hw, hw)
    lengths = path_lengths(img, ws)
    assert lengths.square().mean().item() == pytest.approx(3.0, rel=0.05)


def test_path_length_gradient_matches_finite_differences():
    G, _ = make_nets("swish")
    G.requires_grad_(True)
    torch.manual_seed(2)
    z = torch.randn(4, Z_DIM)
    c = torch.zeros(4, 0)
    y = torch.randn(4, 3, RES, RES) / RES
    target = 0.3

    def f() -> torch.Tensor:
        ws = G.mapping(z, c)
        img = G.synthesis(ws, noise_mode="const")
        return (path_lengths(img, ws, pl_noise=y) - target).square().mean()

    G.zero_grad(set_to_none=True)
    f().backward()
    params = dict(G.named_parameters())
    names = ["synthesis.b8.conv0.weight", "synthesis.b8.conv1.affine.weight", "synthesis.b4.conv1.bias",
             "mapping.fc0.weight"]
    for i, name in enumerate(names):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
        directional_fd_check(f, params[name], params[name].grad, seed=10 + i)


def test_pl_mean_running_average_and_state():
    reg = PathLengthRegularizer(pl_decay=0.01)
    assert "pl_mean" in reg.state_dict() and reg.pl_mean.item() == 0
    torch.manual_seed(0)
    n, shape = 4, (1, 2, 2)
    A = torch.randn(3, 4)
    expected = 0.0
    for _ in range(3):
        ws = torch.randn(n, 2, 3, requires_grad=True)
        img = (ws.sum(1) @ A).view(n, *shape)
        y = torch.randn(n, *shape)
        lengths = (y.view(n, -1) @ A.T).norm(dim=1)
        penalty = reg(img, ws, pl_noise=y)
        expected = expected + 0.01 * (lengths.mean().item() - expected)
        assert reg.pl_mean.item() == pytest.approx(expected, rel=1e-5)
        torch.testing.assert_close(penalty.detach(), (lengths - expected).square(), rtol=1e-4, atol=1e-6)
    # It round-trips through state_dict, also as part of StyleGAN2Loss (key pl.pl_mean).
    G, D = make_nets()
    loss = StyleGAN2Loss(G, D)
    loss.load_state_dict({"pl.pl_mean": reg.pl_mean.clone()})
    assert set(loss.state_dict()) == {"pl.pl_mean"}
    assert loss.pl_mean.item() == pytest.approx(expected, rel=1e-6)
    assert len(list(loss.parameters())) == 0  # G and D are referenced, not owned


# ----------------------------------------------------------------------------------------------------------------------
# Style mixing.


class BroadcastMapping:
    """Stand-in mapping network: ws[:, i] = z for every i; records the z of every call."""

    def __init__(self, num_ws: int) -> None:
        self.num_ws = num_ws
        self.calls: list[torch.Tensor] = []

    def __call__(self, z: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False) -> torch.Tensor:
        self.calls.append(z)
        return z.unsqueeze(1).repeat(1, self.num_ws, 1)


def test_style_mix_prob_zero_returns_unmixed_ws():
    G, _ = make_nets()
    torch.manual_seed(0)
    z, c = torch.randn(5, Z_DIM), torch.zeros(5, 0)
    unmixed = G.mapping(z, c)
    state = torch.get_rng_state()
    ws = style_mix(G.mapping, z, c, prob=0.0)
    torch.testing.assert_close(ws, unmixed, rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), state)  # like NVlabs, no random numbers drawn when mixing is off
    for i in range(ws.shape[1]):
        torch.testing.assert_close(ws[:, i], unmixed[:, 0], rtol=0, atol=0)


def test_style_mix_prob_one_takes_second_z_after_cutoff():
    num_ws = 6
    cutoffs = []
    torch.manual_seed(0)
    for _ in range(200):
        mapping = BroadcastMapping(num_ws)
        z = torch.randn(3, 4)
        ws = style_mix(mapping, z, None, prob=1.0)
        assert len(mapping.calls) == 2
        z2 = mapping.calls[1]
        assert z2.shape == z.shape and not torch.equal(z2, z)
        first = (ws == z.unsqueeze(1)).all(dim=2).all(dim=0)  # [num_ws]: rows equal to the first z
        second = (ws == z2.unsqueeze(1)).all(dim=2).all(dim=0)
        assert torch.equal(first | second, torch.ones(num_ws, dtype=torch.bool))
        cutoff = int(first.sum())
        assert first[:cutoff].all() and second[cutoff:].all()
        cutoffs.append(cutoff)
    assert set(cutoffs) == set(range(1, num_ws))  # uniform over [1, num_ws): every value appears in 200 draws
    counts = np.bincount(cutoffs, minlength=num_ws)[1:]
    assert counts.min() > 200 / (num_ws - 1) / 2


def test_style_mix_probability():
    num_ws, n = 4, 1000
    torch.manual_seed(1)
    mixed = 0
    for _ in range(n):
        z = torch.randn(2, 3)
        ws = style_mix(BroadcastMapping(num_ws), z, None, prob=0.9)
        mixed += int(not torch.equal(ws[:, -1], z))
    assert abs(mixed / n - 0.9) < 0.04  # 4 standard deviations of a binomial(1000, 0.9)


def test_style_mix_with_generator_mapping_changes_late_layers_only():
    G, _ = make_nets()
    torch.manual_seed(3)
    z, c = torch.randn(4, Z_DIM), torch.zeros(4, 0)
    unmixed = G.mapping(z, c)
    ws = style_mix(G.mapping, z, c, prob=1.0, ws=unmixed)
    same = torch.isclose(ws, unmixed).all(dim=2).all(dim=0)
    cutoff = int(same.sum())
    assert 1 <= cutoff < G.num_ws
    assert same[:cutoff].all() and not same[cutoff:].any()


# ----------------------------------------------------------------------------------------------------------------------
# Lazy regularization and blur.


@pytest.mark.parametrize("interval", [4, 16])
def test_lazy_regularization(interval):
    lr, betas = 0.0025, (0.0, 0.99)
    new_lr, new_betas = lazy_regularization(lr, betas, interval)
    # k + 1 adjusted steps cover the same learning-rate budget and moment decay as k plain ones.
    assert new_lr * (interval + 1) == pytest.approx(lr * interval)
    assert new_betas[0] == 0.0
    assert new_betas[1] ** (interval + 1) == pytest.approx(betas[1] ** interval)
    assert lazy_regularization(lr, betas, None) == (lr, betas)
    with pytest.raises(ValueError, match="interval"):
        lazy_regularization(lr, betas, 0)


def test_blur_images_matches_scipy():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    torch.manual_seed(0)
    img = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    assert blur_images(img, 0.2) is img  # floor(3 sigma) == 0: off
    sigma = 1.0
    taps = np.arange(-3, 4)
    f = 2.0 ** (-((taps / sigma) ** 2))
    f = f / f.sum()
    expected = scipy_ndimage.convolve(img.numpy(), np.outer(f, f)[None, None], mode="constant")
    np.testing.assert_allclose(blur_images(img, sigma).numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# StyleGAN2Loss against a direct computation.


def grads_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def run_phase(loss: StyleGAN2Loss, module: torch.nn.Module, phase: str, seed: int, **batch):
    for p in list(loss.G.parameters()) + list(loss.D.parameters()):
        p.grad = None
    module.requires_grad_(True)
    torch.manual_seed(seed)
    stats = loss.accumulate_gradients(phase=phase, cur_nimg=0, **batch)
    module.requires_grad_(False)
    return stats, grads_of(module)


def direct_phase(module: torch.nn.Module, seed: int, compute) -> dict[str, torch.Tensor]:
    for p in module.parameters():
        p.grad = None
    module.requires_grad_(True)
    torch.manual_seed(seed)
    compute().backward()
    module.requires_grad_(False)
    return grads_of(module)


def assert_grads_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(5)
    n = 4
    return dict(real_img=torch.rand(n, 3, RES, RES) * 2 - 1, real_c=torch.zeros(n, 0), gen_z=torch.randn(n, Z_DIM),
                gen_c=torch.zeros(n, 0))


def test_stylegan2loss_gmain_and_dmain_match_direct(batch):
    G, D = make_nets()
    loss = StyleGAN2Loss(G, D, style_mixing_prob=0)
    z, c, x = batch["gen_z"], batch["gen_c"], batch["real_img"]

    stats, got = run_phase(loss, G, "Gmain", seed=11, gain=1, **batch)
    want = direct_phase(G, 11, lambda: F.softplus(-D(G(z, c), c)).mean())
    assert_grads_close(got, want)
    torch.manual_seed(11)
    with torch.no_grad():
        fake_logits = D(G(z, c), c)
    assert stats["Loss/G/loss"].item() == pytest.approx(F.softplus(-fake_logits).mean().item(), rel=1e-5)
    assert stats["Loss/scores/fake"].item() == pytest.approx(fake_logits.mean().item(), rel=1e-5, abs=1e-7)

    stats, got = run_phase(loss, D, "Dmain", seed=12, gain=1, **batch)
    w_avg_after_loss = G.mapping.w_avg.clone()
    want = direct_phase(D, 12, lambda: F.softplus(D(G(z, c, update_emas=True), c)).mean()
                        + F.softplus(-D(x, c)).mean())
    assert_grads_close(got, want)
    # Dmain updates G's w_avg (NVlabs update_emas=True); the direct run did the same update once more.
    assert not torch.equal(w_avg_after_loss, G.mapping.w_avg)
    assert set(stats) == {"Loss/scores/fake", "Loss/signs/fake", "Loss/scores/real", "Loss/signs/real", "Loss/D/loss"}


def test_stylegan2loss_greg_matches_direct(batch):
    G, D = make_nets()
    loss = StyleGAN2Loss(G, D, style_mixing_prob=0, pl_weight=2, pl_batch_shrink=2)
    z, c = batch["gen_z"][:2], batch["gen_c"][:2]
    stats, got = run_phase(loss, G, "Greg", seed=21, gain=4, **batch)
    pl_mean_loss = loss.pl_mean.item()

    def compute() -> torch.Tensor:
        ws = G.mapping(z, c)
        state = torch.get_rng_state()
        img = G.synthesis(ws)  # draws the layer noise
        y = torch.randn_like(img) / math.sqrt(RES * RES)
        torch.set_rng_state(state)  # same noise again inside the vector-Jacobian product
        _, jvp = torch.autograd.functional.vjp(lambda w: G.synthesis(w), ws, y, create_graph=True)
        lengths = jvp.square().sum(2).mean(1).sqrt()
        a = 0.01 * lengths.mean()  # pl_mean starts at 0
        compute.pl_mean = a.item()
        return (lengths - a).square().mean() * 2 * 4

    want = direct_phase(G, 21, compute)
    assert_grads_close(got, want)
    assert pl_mean_loss == pytest.approx(compute.pl_mean, rel=1e-5)
    assert stats["Loss/G/reg"].item() == pytest.approx(2 * stats["Loss/pl_penalty"].item(), rel=1e-6)
    # Mapping weights get path-length gradients, so the regularizer reaches all of G.
    assert "mapping.fc0.weight" in got


def test_stylegan2loss_dreg_matches_direct(batch):
    G, D = make_nets()
    loss = StyleGAN2Loss(G, D, r1_gamma=10)
    x, c = batch["real_img"], batch["real_c"]
    stats, got = run_phase(loss, D, "Dreg", seed=31, gain=16, **batch)

    def compute() -> torch.Tensor:
        _, grads = torch.autograd.functional.vjp(lambda img: D(img, c), x, torch.ones(x.shape[0], 1),
                                                 create_graph=True)
        compute.r1 = grads.square().sum(dim=[1, 2, 3]).mean().item()
        return grads.square().sum(dim=[1, 2, 3]).mul(10 / 2).mean() * 16

    want = direct_phase(D, 31, compute)
    assert_grads_close(got, want)
    assert stats["Loss/r1_penalty"].item() == pytest.approx(compute.r1, rel=1e-5)
    assert stats["Loss/D/reg"].item() == pytest.approx(5 * compute.r1, rel=1e-5)


def test_stylegan2loss_both_phases_sum_main_and_reg(batch):
    G, D = make_nets()
    loss = StyleGAN2Loss(G, D, style_mixing_prob=0.9)
    _, main = run_phase(loss, D, "Dmain", seed=41, gain=1, **batch)
    _, reg = run_phase(loss, D, "Dreg", seed=41, gain=1, **batch)
    # Dboth = Dgen + (Dreal + R1) in one pass; with the same seed the fake batch is the same as in Dmain.
    _, both = run_phase(loss, D, "Dboth", seed=41, gain=1, **batch)
    assert "b4.out.bias" not in reg  # R1 does not depend on the output bias
    assert_grads_close(both, {k: main[k] + reg.get(k, 0) for k in both})


def test_stylegan2loss_disabled_terms_and_custom_backward(batch):
    G, D = make_nets()
    loss = StyleGAN2Loss(G, D, pl_weight=0, r1_gamma=0)
    assert loss.accumulate_gradients("Greg", gain=4, cur_nimg=0, **batch) == {}
    assert loss.accumulate_gradients("Dreg", gain=16, cur_nimg=0, **batch) == {}
    seen = []
    G.requires_grad_(True)
    stats = loss.accumulate_gradients("Gboth", gain=1, cur_nimg=0, backward=lambda t: seen.append(t.item()), **batch)
    G.requires_grad_(False)
    assert len(seen) == 1 and "Loss/pl_penalty" not in stats  # Gboth falls back to Gmain
    assert all(p.grad is None for p in G.parameters())  # the custom backward replaced .backward()
    assert seen[0] == pytest.approx(stats["Loss/G/loss"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown phase"):
        loss.accumulate_gradients("Gpl", gain=1, cur_nimg=0, **batch)


def test_stylegan2loss_conditional_with_blur():
    G, D = make_nets(c_dim=3)
    loss = StyleGAN2Loss(G, D, blur_init_sigma=2, blur_fade_kimg=1)
    assert loss.blur_sigma(0) == 2 and loss.blur_sigma(500) == 1 and loss.blur_sigma(2000) == 0
    torch.manual_seed(0)
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    b = dict(real_img=torch.rand(4, 3, RES, RES) * 2 - 1, real_c=c, gen_z=torch.randn(4, Z_DIM), gen_c=c)
    for phase, module in [("Gboth", G), ("Dboth", D)]:
        stats, grads = run_phase(loss, module, phase, seed=1, gain=1, **b)
        assert grads and all(torch.isfinite(g).all() for g in grads.values())
        assert all(torch.isfinite(v) for v in stats.values())
    assert "mapping.embed.weight" in grads  # D's label mapping trains
