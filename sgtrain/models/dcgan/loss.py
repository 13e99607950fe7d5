"""DCGAN's objective: the original non-saturating logistic GAN loss (Goodfellow et al. 2014), optional R1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sgtrain.core.loss import GANLoss, discriminator_logistic_loss, generator_logistic_loss
from sgtrain.core.regularizers import r1_penalty

__all__ = ['LogisticLoss']


class LogisticLoss(GANLoss):
    """The original GAN objective for any generator ``G(z, c)``: non-saturating logistic loss, optional R1.

    Source: Goodfellow et al. 2014, section 3 (non-saturating G loss); as DCGAN trains (Radford et al. 2016), plus
    an optional R1 penalty (Mescheder et al. 2018, eq. 9) with weight ``r1_gamma / 2`` on reals.

    Phases: ``Gmain``/``Gboth``: ``softplus(-D(G(z)))``; ``Dmain``: ``softplus(D(G(z))) + softplus(-D(x))``;
    ``Dreg``: R1; ``Dboth``: both; ``Greg`` does nothing (no G regularizer). Every term is a batch mean times ``gain``.

    Args:
        G: generator ``G(z [N, z_dim], c [N, c_dim]) -> img [N, C, H, W]``.
        D: discriminator ``D(img, c) -> logits [N, 1]``.
        augment_pipe: applied to every image D sees, or None.
        r1_gamma: R1 weight; 0 = no R1 (DCGAN).
    """

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 r1_gamma: float = 0.0) -> None:
        super().__init__(G, D, augment_pipe)
        self.r1_gamma = float(r1_gamma)

    def regularizes(self, net: str) -> bool:
        """Only D is regularized, by R1, and only with ``r1_gamma > 0``."""
        return net == "D" and self.r1_gamma > 0

    def run_phase(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                  gen_c: torch.Tensor, gain: float, cur_nimg: int, backward: Callable[[torch.Tensor], Any],
                  report: Callable[[str, torch.Tensor], None]) -> None:
        """Gmain: non-saturating logistic; Dmain: logistic on fakes and reals; Dreg: R1 on reals (stats keys as
        :meth:`sgtrain.core.loss.GANLoss.accumulate_gradients`)."""
        if phase in ("Gmain", "Gboth"):
            gen_logits = self.D(self.augment(self.G(gen_z, gen_c)), gen_c)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())
            loss_G = generator_logistic_loss(gen_logits)
            report("Loss/G/loss", loss_G)
            backward(loss_G.mean().mul(gain))
        d_main = phase in ("Dmain", "Dboth")
        d_reg = phase in ("Dreg", "Dboth")
        loss_Dgen: torch.Tensor | int = 0
        if d_main:
            with torch.no_grad():
                gen_img = self.G(gen_z, gen_c)
            gen_logits = self.D(self.augment(gen_img), gen_c)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())
            loss_Dgen = discriminator_logistic_loss(None, gen_logits)
            backward(loss_Dgen.mean().mul(gain))
        if d_main or d_reg:
            real_tmp = real_img.detach().requires_grad_(d_reg)
            real_logits = self.D(self.augment(real_tmp), real_c)
            report("Loss/scores/real", real_logits)
            report("Loss/signs/real", real_logits.sign())
            loss: torch.Tensor | int = 0
            if d_main:
                loss = discriminator_logistic_loss(real_logits, None)
                report("Loss/D/loss", loss_Dgen + loss)
            if d_reg:
                penalty = r1_penalty(real_tmp, real_logits)
                report("Loss/r1_penalty", penalty)
                report("Loss/D/reg", penalty * (self.r1_gamma / 2))
                loss = loss + penalty * (self.r1_gamma / 2)
            backward(loss.mean().mul(gain))

    def extra_repr(self) -> str:
        return f"r1_gamma={self.r1_gamma}"
