"""StyleGAN (v1)'s objective as NVlabs' TF code trains it (Karras et al. 2019, NVlabs/stylegan ``training/loss.py``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sgtrain.core.regularizers import style_mix

__all__ = ['StyleGANLoss']


from sgtrain.models.stylegan2.loss import StyleGAN2Loss


class StyleGANLoss(StyleGAN2Loss):
    """StyleGAN (v1) objective as NVlabs' TF code trains it (Karras et al. 2019, "A Style-Based Generator
    Architecture for GANs", section 2 and appendix C; NVlabs/stylegan ``training/loss.py``).

    ``G_logistic_nonsaturating`` and ``D_logistic_simplegp``: the non-saturating logistic loss with R1 on reals at
    every iteration (no lazy regularization: train with ``G_reg_interval``/``D_reg_interval`` null, so the phases are
    Dboth and Gboth, gain 1), no path length regularization. Where the TF code differs from StyleGAN2's PyTorch loop,
    this follows the TF code: D trains before G (``phase_order``); style mixing (probability ``G.style_mixing_prob``)
    draws its cutoff among the layers the current lod uses; every generator pass updates ``w_avg`` (dlatent_avg);
    in D's phases the fakes get the labels of the real minibatch.

    Args:
        G: ``sgtrain.models.stylegan.Generator`` (mapping, synthesis with a ``lod`` buffer, ``style_mixing_prob``).
        D: the discriminator. augment_pipe: applied to every image D sees, or None.
        r1_gamma: R1 weight (NVlabs 10).
    """

    phase_order = ("D", "G")

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 r1_gamma: float = 10.0) -> None:
        prob = getattr(G, "style_mixing_prob", None)
        super().__init__(G, D, augment_pipe, r1_gamma=r1_gamma, style_mixing_prob=float(prob or 0), pl_weight=0)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate with style mixing among the active layers; w_avg is updated in every pass (TF G_style)."""
        ws = self.G.mapping(z, c, update_emas=True)
        lod = float(getattr(self.G.synthesis, "lod", 0.0))
        active = max(1, ws.shape[1] - 2 * int(math.floor(lod)))
        ws = style_mix(self.G.mapping, z, c, prob=self.style_mixing_prob, ws=ws, max_layers=active)
        return self.G.synthesis(ws, update_emas=update_emas), ws

    def run_phase(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                  gen_c: torch.Tensor, gain: float, cur_nimg: int, backward: Callable[[torch.Tensor], Any],
                  report: Callable[[str, torch.Tensor], None]) -> None:
        """StyleGAN2Loss's phases; D's phases generate with ``real_c`` (TF's D loss)."""
        if phase.startswith("D"):
            gen_c = real_c
        super().run_phase(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg, backward, report)
