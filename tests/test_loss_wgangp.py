"""WGANGPLoss (ProGAN: WGAN-GP + drift + AC-GAN terms) against a direct computation of NVlabs' formulas.

NVlabs' TF losses (stylegan ``training/loss.py`` G_wgan / D_wgan_gp, progressive_growing_of_gans ``loss.py``
G_wgan_acgan / D_wgangp_acgan) are written out here term by term on tiny float64 networks; the loss class must give
the same values and gradients, and its gradient penalty must backpropagate into D correctly (finite differences).
"""

from __future__ import annotations

import pytest
import torch

from sgtrain.core.loss import PHASES
from sgtrain.models.progan import Discriminator, Generator
from sgtrain.models.progan.loss import WGANGPLoss

KW = dict(num_channels=3, resolution=8, fmap_base=16, fmap_max=8)
N = 4


def _nets(label_size: int = 3, aux: bool = True, seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    G = Generator(**KW, label_size=label_size).double()
    D = Discriminator(**KW, label_size=label_size, aux_labels=aux, mbstd_group_size=2).double()
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.3)
            net.lod.fill_(0.5)  # exercise the cross-fade path too
    return G, D


def _batch(label_size: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(label_size, dtype=torch.float64)
    return dict(
        real_img=torch.rand([N, 3, 8, 8], generator=g, dtype=torch.float64) * 2 - 1,
        real_c=eye[torch.randint(label_size, [N], generator=g)] if label_size else torch.zeros([N, 0]).double(),
        gen_z=torch.randn([N, 8], generator=g, dtype=torch.float64),
        gen_c=eye[torch.randint(label_size, [N], generator=g)] if label_size else torch.zeros([N, 0]).double(),
    )


def _augment(img: torch.Tensor) -> torch.Tensor:
    return img.flip(3) * 0.9


def _ce(c: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return -(c * torch.log_softmax(logits, 1)).sum(1)


def _grads(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]


def _run(loss: WGANGPLoss, phase: str, batch: dict[str, torch.Tensor], train: torch.nn.Module, seed: int = 5):
    for net in (loss.G, loss.D):
        net.requires_grad_(net is train)
        net.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    stats = loss.accumulate_gradients(phase, **batch, gain=1, cur_nimg=0)
    return stats, _grads(train)


def _direct_D_loss(G, D, batch, seed: int = 5, aug=_augment, lam=10.0, eps=0.001, target=1.0, cw=1.0):
    """D_wgan_gp / D_wgangp_acgan written out (u drawn with the same seed as the loss)."""
    real, c, z = batch["real_img"], batch["real_c"], batch["gen_z"]
    torch.manual_seed(seed)
    fake = G(z, c).detach()
    real_scores, real_logits = D(aug(real), c, return_labels=True)
    fake_scores, fake_logits = D(aug(fake), c, return_labels=True)
    u = torch.rand([N, 1, 1, 1], dtype=fake.dtype)
    mixed = (real + (fake - real) * u).requires_grad_(True)
    (g,) = torch.autograd.grad(D(aug(mixed), c, return_labels=True)[0].sum(), mixed, create_graph=True)
    gp = (g.square().sum([1, 2, 3]).sqrt() - target).square()
    loss = (fake_scores - real_scores).mean() + gp.mean() * lam / target**2 + real_scores.square().mean() * eps
    loss = loss + (_ce(c, real_logits).mean() + _ce(c, fake_logits).mean()) * cw
    return loss, gp


def test_phase_order_and_empty_phases() -> None:
    G, D = _nets()
    loss = WGANGPLoss(G, D)
    assert WGANGPLoss.phase_order == ("D", "G") and loss.phase_order == ("D", "G")
    assert not list(loss.parameters()) and not list(loss.state_dict())
    stats, grads = _run(loss, "Greg", _batch(), G)
    assert stats == {} and all(not g.any() for g in grads)
    stats, grads = _run(WGANGPLoss(G, D, wgan_lambda=0), "Dreg", _batch(), D)
    assert stats == {} and all(not g.any() for g in grads)
    with pytest.raises(ValueError, match="unknown phase"):
        loss.accumulate_gradients("Dfoo", **_batch(), gain=1, cur_nimg=0)
    assert set(PHASES) == {"Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth"}


def test_D_loss_and_gradients_equal_direct_computation() -> None:
    G, D = _nets()
    batch = _batch()
    loss = WGANGPLoss(G, D, augment_pipe=_augment, cond_weight=0.7)
    stats, grads = _run(loss, "Dboth", batch, D)
    for net in (G, D):
        net.requires_grad_(True)
    direct, gp = _direct_D_loss(G, D, batch, cw=0.7)
    expected = torch.autograd.grad(direct, list(D.parameters()))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    total = stats["Loss/D/loss"] + stats["Loss/D/reg"]
    assert float(total) == pytest.approx(float(direct.detach()), rel=1e-6)
    assert float(stats["Loss/gradient_penalty"]) == pytest.approx(float(gp.detach().mean()), rel=1e-6)
    for key in ("Loss/scores/real", "Loss/signs/real", "Loss/scores/fake", "Loss/signs/fake", "Loss/epsilon_penalty",
                "Loss/scores/mixed", "Loss/mixed_norms", "Loss/label_penalty_reals", "Loss/label_penalty_fakes"):
        assert key in stats and stats[key].ndim == 0
    assert any(g.abs().max() > 0 for g in grads)


def test_Dmain_plus_Dreg_equals_Dboth() -> None:
    G, D = _nets(label_size=0, aux=False)
    batch = _batch(label_size=0)
    loss = WGANGPLoss(G, D)
    s_main, g_main = _run(loss, "Dmain", batch, D)
    s_reg, g_reg = _run(loss, "Dreg", batch, D)
    s_both, g_both = _run(loss, "Dboth", batch, D)
    assert "Loss/gradient_penalty" not in s_main and "Loss/D/loss" in s_main
    assert "Loss/gradient_penalty" in s_reg and "Loss/D/loss" not in s_reg
    assert "Loss/label_penalty_reals" not in s_both  # no auxiliary classifier: no label terms
    for a, b, c in zip(g_main, g_reg, g_both):
        torch.testing.assert_close(a + b, c, rtol=1e-9, atol=1e-12)


def test_G_loss_equals_direct_computation() -> None:
    G, D = _nets()
    batch = _batch()
    loss = WGANGPLoss(G, D, augment_pipe=_augment)
    stats, grads = _run(loss, "Gboth", batch, G)
    for net in (G, D):
        net.requires_grad_(True)
    scores, logits = D(_augment(G(batch["gen_z"], batch["gen_c"])), batch["gen_c"], return_labels=True)
    direct = -scores.mean() + _ce(batch["gen_c"], logits).mean()
    for a, b in zip(grads, torch.autograd.grad(direct, list(G.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert float(stats["Loss/G/loss"]) == pytest.approx(float(direct.detach()), rel=1e-6)
    assert {"Loss/scores/fake", "Loss/signs/fake", "Loss/label_penalty"} <= set(stats)


def test_augment_pipe_sees_every_D_input() -> None:
    G, D = _nets()
    calls: list[tuple[int, ...]] = []

    def pipe(img: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(img.shape))
        return img

    loss = WGANGPLoss(G, D, augment_pipe=pipe)
    _run(loss, "Dboth", _batch(), D)
    assert len(calls) == 3  # reals, fakes, interpolates
    calls.clear()
    _run(loss, "Gmain", _batch(), G)
    assert len(calls) == 1


def test_gradient_penalty_backpropagates_correctly() -> None:
    """d(GP)/d(theta_D) from the double backward equals central finite differences of the GP value."""
    G, D = _nets(label_size=0, aux=False)
    batch = _batch(label_size=0)
    loss = WGANGPLoss(G, D, wgan_epsilon=0)
    _, grads = _run(loss, "Dreg", batch, D, seed=11)
    with torch.no_grad():
        fake = G(batch["gen_z"], batch["real_c"])

    def gp_value() -> float:
        torch.manual_seed(11)
        penalty, _, _ = loss.gradient_penalty(batch["real_img"], fake, batch["real_c"])
        return float(penalty.detach().mean() * loss.wgan_lambda)

    params = dict(D.named_parameters())
    index = {name: i for i, name in enumerate(params)}
    checked = 0
    gen = torch.Generator().manual_seed(3)
    for name in ("fromrgb_lod0.weight", "b8.conv1_down.weight", "b4.conv.weight", "fromrgb_lod1.bias"):
        p = params[name]
        for flat in torch.randint(p.numel(), [2], generator=gen).tolist():
            h = 1e-6
            with torch.no_grad():
                p.view(-1)[flat] += h
            up = gp_value()
            with torch.no_grad():
                p.view(-1)[flat] -= 2 * h
            down = gp_value()
            with torch.no_grad():
                p.view(-1)[flat] += h
            numeric = (up - down) / (2 * h)
            analytic = float(grads[index[name]].view(-1)[flat])
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, flat)
            checked += abs(numeric) > 1e-6
    assert checked >= 5  # most probes see a non-zero gradient
