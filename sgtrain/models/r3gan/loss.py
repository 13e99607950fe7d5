"""R3GAN's objective: the relativistic pairing loss (RpGAN) with zero-centred gradient penalties on reals and fakes.

Source: Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline", section 2 (eq. 3-5): for G
``softplus(-(D(fake) - D(real)))``, for D ``softplus(-(D(real) - D(fake))) + gamma / 2 * (R1 + R2)`` with R1 / R2 the
squared gradient norms of D's logits at the reals / fakes (Mescheder et al. 2018; Roth et al. 2017). Phase layout of
the authors' code (R3GAN/Trainer.py): the G phase runs D on the reals with no gradient to the reals, the D phase
computes both penalties from the same forward pass as the adversarial term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sgtrain.core.loss import GANLoss
from sgtrain.core.schedule import cosine_decay

__all__ = ["R3GANLoss", "zero_centered_gradient_penalty"]


def zero_centered_gradient_penalty(samples: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """||grad_x D(x)||^2 per sample: samples [N, C, H, W] (requires grad), logits [N, ...] -> [N] float32.

    Differentiable (``create_graph=True``): backpropagating it trains D (R1 at reals, R2 at fakes)."""
    (grad,) = torch.autograd.grad(outputs=logits.sum(), inputs=samples, create_graph=True)
    return grad.square().sum([1, 2, 3])


class R3GANLoss(GANLoss):
    """RpGAN + gamma / 2 * (R1 + R2) for R3GAN's ``G(z, c)`` and ``D(img, c) -> [N, 1]``.

    Phases: ``Gmain``/``Gboth``: the G phase; ``Dboth``: the D phase (adversarial + both penalties, as the authors);
    ``Dmain``: the adversarial term only, ``Dreg``: the penalties only (lazy regularization, not the paper's
    setting). As the authors, the fakes take the reals' labels (``real_c``): the relativistic pairs share a label;
    ``gen_c`` is not used. Reports ``Loss/scores/fake``, ``Loss/signs/fake``, ``Loss/G/loss`` (G phase),
    ``Loss/scores/real``, ``Loss/signs/real`` (the relativistic logits D(real) - D(fake), as the authors report them),
    ``Loss/D/loss``, ``Loss/r1_penalty``, ``Loss/r2_penalty``, ``Loss/D/reg``, ``Loss/gamma`` (D phase).

    Args:
        G, D, augment_pipe: as :class:`sgtrain.core.loss.GANLoss`.
        gamma: the penalty weight at the start (their ``--gamma``).
        gamma_final: the weight at ``decay_kimg`` (their ``final_value`` of gamma_scheduler); None = constant gamma.
        decay_kimg: length of the cosine decay in thousands of real images (their ``decay_nimg`` / 1000; the config
            passes ``${train.decay_kimg}``); needed with
            ``gamma_final``.

    Raises:
        ValueError: negative gamma, ``gamma_final`` without a positive ``decay_kimg``.
    """

    #: The authors' training loop: D's phase first, then G's, each on its own real batch, gradients averaged over
    #: the per-device passes (gain = pass / per-device batch), G_ema updated after both phases.
    phase_order = ("D", "G")
    separate_reals = True
    average_passes = True
    ema_with_D = False

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 gamma: float = 0.05, gamma_final: float | None = None, decay_kimg: float | None = None) -> None:
        super().__init__(G, D, augment_pipe)
        if gamma < 0 or (gamma_final is not None and gamma_final < 0):
            raise ValueError(f"R3GANLoss: gamma={gamma}, gamma_final={gamma_final} must be >= 0")
        if gamma_final is not None and not (decay_kimg and decay_kimg > 0):
            raise ValueError("R3GANLoss: gamma_final needs decay_kimg > 0 (the length of the cosine decay)")
        self.gamma = float(gamma)
        self.gamma_final = None if gamma_final is None else float(gamma_final)
        self.decay_kimg = None if decay_kimg is None else float(decay_kimg)

    def gamma_at(self, cur_nimg: int) -> float:
        """The penalty weight after ``cur_nimg`` real images (the authors' gamma_scheduler)."""
        if self.gamma_final is None:
            return self.gamma
        return cosine_decay(cur_nimg, self.gamma, self.decay_kimg * 1000, self.gamma_final)

    def regularizes(self, net: str) -> bool:
        """Only D has a regularizer (R1 + R2)."""
        return net == "D"

    def run_phase(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                  gen_c: torch.Tensor, gain: float, cur_nimg: int, backward: Callable[[torch.Tensor], Any],
                  report: Callable[[str, torch.Tensor], None]) -> None:
        """The authors' AccumulateGeneratorGradients / AccumulateDiscriminatorGradients (see the class)."""
        if phase in ("Gmain", "Gboth"):
            fake = self.G(gen_z, real_c)
            fake_logits = self.D(self.augment(fake), real_c)
            real_logits = self.D(self.augment(real_img.detach()), real_c)
            rel = fake_logits - real_logits
            loss_G = nn.functional.softplus(-rel)
            report("Loss/scores/fake", rel)
            report("Loss/signs/fake", rel.sign())
            report("Loss/G/loss", loss_G)
            backward(loss_G.mean().mul(gain))
        if phase in ("Dmain", "Dreg", "Dboth"):
            d_main = phase != "Dreg"
            d_reg = phase != "Dmain"
            real = real_img.detach().requires_grad_(d_reg)
            with torch.no_grad():
                fake_img = self.G(gen_z, real_c)
            fake = fake_img.detach().requires_grad_(d_reg)
            real_logits = self.D(self.augment(real), real_c)
            fake_logits = self.D(self.augment(fake), real_c)
            loss: torch.Tensor | float = 0.0
            rel = real_logits - fake_logits
            report("Loss/scores/real", rel)
            report("Loss/signs/real", rel.sign())
            if d_main:
                adv = nn.functional.softplus(-rel).flatten()
                report("Loss/D/loss", adv)
                loss = adv
            if d_reg:
                gamma = self.gamma_at(cur_nimg)
                r1 = zero_centered_gradient_penalty(real, real_logits)
                r2 = zero_centered_gradient_penalty(fake, fake_logits)
                report("Loss/r1_penalty", r1)
                report("Loss/r2_penalty", r2)
                report("Loss/D/reg", (gamma / 2) * (r1 + r2))
                report("Loss/gamma", torch.tensor(gamma))
                loss = loss + (gamma / 2) * (r1 + r2)
            backward(loss.mean().mul(gain))
