"""ProGAN's objective: WGAN-GP with the drift term and AC-GAN label terms (Karras et al. 2018, appendix A.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sgtrain.core.loss import GANLoss
from sgtrain.core.regularizers import no_weight_gradients

__all__ = ['WGANGPLoss']


class WGANGPLoss(GANLoss):
    """ProGAN objective: WGAN-GP with the drift term, plus AC-GAN label terms when D has an auxiliary classifier.

    Wasserstein GAN (Arjovsky et al. 2017) with gradient penalty (Gulrajani et al. 2017, "Improved Training of
    Wasserstein GANs", algorithm 1) and ProGAN's drift term (Karras et al. 2018, section A.1: ``eps_drift *
    D(x)^2``, eps_drift = 0.001), as NVlabs trains it (stylegan ``training/loss.py`` ``G_wgan`` / ``D_wgan_gp``;
    progressive_growing_of_gans ``loss.py`` ``G_wgan_acgan`` / ``D_wgangp_acgan``; AC-GAN: Odena et al. 2017,
    "Conditional Image Synthesis with Auxiliary Classifier GANs", eq. 2-3):

    - ``Gmain``: ``-D(G(z, c))``, plus ``cond_weight * CE(c, label logits of the fake)`` with the auxiliary
      classifier;
    - ``Dmain``: ``D(G(z, c_real)) - D(x) + wgan_epsilon * D(x)^2``, plus ``cond_weight * (CE(c_real, logits of x)
      + CE(c_real, logits of the fake))`` with the auxiliary classifier;
    - ``Dreg``: gradient penalty ``(|grad_x^ D(x^)| - wgan_target)^2 * wgan_lambda / wgan_target^2`` at
      ``x^ = x + (G(z, c_real) - x) * u``, u ~ U[0, 1) per sample;
    - ``Dboth``: Dmain and Dreg in one backward (what NVlabs' TF loop computes: ProGAN has no lazy regularization);
      ``Greg`` does nothing and ``Gboth`` is ``Gmain`` (no generator regularizer).

    As in NVlabs' D loss, the fakes D sees are generated with the labels of the real minibatch (``real_c``; ``gen_c``
    is unused in the D phases). The only random draw inside the loss is the mixing factor u (``torch.rand`` [N, 1, 1,
    1] after D has scored reals and fakes, NVlabs' order); z comes from the caller. CE is softmax cross-entropy
    against the (one-hot) labels. The auxiliary terms are used when ``D.aux_labels`` is true and ``D.c_dim > 0``
    (NVlabs: ``D.output_shapes[1][1] > 0``); D is then called with ``return_labels=True``. Each term is averaged
    over the batch, summed, multiplied by ``gain`` and backpropagated; the caller decides which parameters train
    (D phases: D only). Class attribute ``phase_order = ("D", "G")``: NVlabs' TF loops train D first.

    Args:
        G: generator, ``G(z, c) -> images [N, C, H, W]``.
        D: discriminator, ``D(img, c) -> scores [N, 1]`` (``D(img, c, return_labels=True) -> (scores, logits)``
            with ``aux_labels``).
        augment_pipe: optional callable applied to every image D sees (ADA), None = no augmentation.
        wgan_lambda: weight of the gradient penalty (NVlabs 10); 0 disables it (Dreg does nothing).
        wgan_epsilon: weight of the drift term ``D(x)^2`` on real scores (NVlabs 0.001).
        wgan_target: target gradient norm (NVlabs 1; the penalty is divided by its square).
        cond_weight: weight of the AC-GAN label terms (progressive_growing_of_gans 1).
    """

    phase_order: tuple[str, str] = ("D", "G")

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 wgan_lambda: float = 10.0, wgan_epsilon: float = 0.001, wgan_target: float = 1.0,
                 cond_weight: float = 1.0) -> None:
        super().__init__(G, D, augment_pipe)
        if wgan_target <= 0:
            raise ValueError(f"WGANGPLoss: wgan_target must be > 0, got {wgan_target}")
        self.wgan_lambda = float(wgan_lambda)
        self.wgan_epsilon = float(wgan_epsilon)
        self.wgan_target = float(wgan_target)
        self.cond_weight = float(cond_weight)

    @property
    def aux_labels(self) -> bool:
        """True when D has the auxiliary label output (AC-GAN terms on)."""
        return bool(getattr(self.D, "aux_labels", False)) and int(getattr(self.D, "c_dim", 0)) > 0

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment (if a pipe is set) and score images: (scores [N, 1], label logits [N, c_dim] or None), at least
        float32."""
        img = self.augment(img)
        if self.aux_labels:
            scores, logits = self.D(img, c, return_labels=True)
            return self._fp32(scores), self._fp32(logits)
        return self._fp32(self.D(img, c)), None

    @staticmethod
    def _fp32(x: torch.Tensor) -> torch.Tensor:
        """NVlabs' ``fp32()``: half-precision outputs to float32 (float64 stays float64)."""
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x

    @staticmethod
    def label_penalty(c: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy ``-sum(c * log_softmax(logits), 1)`` per sample [N] (TF's
        ``softmax_cross_entropy_with_logits_v2``)."""
        return -(c.to(logits.dtype) * torch.log_softmax(logits, dim=1)).sum(dim=1)

    def gradient_penalty(self, real_img: torch.Tensor, fake_img: torch.Tensor,
                         c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """WGAN-GP at random interpolates of reals and fakes (Gulrajani et al. 2017, algorithm 1, lines 6-7).

        Draws u ~ U[0, 1) [N, 1, 1, 1] (``torch.rand``), forms ``x^ = x + (fake - x) * u`` and differentiates
        ``sum(D(x^))`` w.r.t. ``x^`` with the graph kept (double backward into D's parameters).

        Returns:
            (penalty [N] = (|grad| - wgan_target)^2, gradient norms [N], mixed scores [N, 1]).
        """
        u = torch.rand([real_img.shape[0], 1, 1, 1], device=real_img.device, dtype=fake_img.dtype)
        real_img = real_img.to(fake_img.dtype)
        mixed = (real_img + (fake_img - real_img) * u).detach().requires_grad_(True)  # NVlabs' lerp formula
        mixed_scores, _ = self.run_D(mixed, c)
        with torch.autograd.profiler.record_function("gp_grads"), no_weight_gradients(True):
            (grads,) = torch.autograd.grad(outputs=[mixed_scores.sum()], inputs=[mixed], create_graph=True,
                                           only_inputs=True)
        norms = self._fp32(grads).square().sum(dim=[1, 2, 3]).sqrt()
        return (norms - self.wgan_target).square(), norms, mixed_scores

    def regularizes(self, net: str) -> bool:
        """Only D is regularized, by the gradient penalty, and only with ``wgan_lambda > 0``."""
        return net == "D" and self.wgan_lambda != 0

    def run_phase(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                  gen_c: torch.Tensor, gain: float, cur_nimg: int, backward: Callable[[torch.Tensor], Any],
                  report: Callable[[str, torch.Tensor], None]) -> None:
        """NVlabs' TF ``G_wgan`` / ``D_wgan_gp`` as phases. ``real_img`` is already faded to the current lod;
        ``real_c`` also labels the fakes in D's phases; ``cur_nimg`` is unused (no schedule inside this loss).

        Reports 'Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss' (G phases); 'Loss/scores/real',
        'Loss/signs/real', 'Loss/scores/fake', 'Loss/signs/fake', 'Loss/epsilon_penalty', 'Loss/D/loss' (Dmain:
        everything but the gradient penalty); 'Loss/scores/mixed', 'Loss/mixed_norms', 'Loss/gradient_penalty',
        'Loss/D/reg' (Dreg: the weighted penalty); with the auxiliary classifier also 'Loss/label_penalty' (G),
        'Loss/label_penalty_reals', 'Loss/label_penalty_fakes' (D).
        """
        del cur_nimg
        if phase == "Gmain":
            with torch.autograd.profiler.record_function("Gmain_forward"):
                fake_img = self.G(gen_z, gen_c)
                fake_scores, fake_logits = self.run_D(fake_img, gen_c)
                report("Loss/scores/fake", fake_scores)
                report("Loss/signs/fake", fake_scores.sign())
                loss = (-fake_scores).mean()
                if fake_logits is not None:
                    penalty = self.label_penalty(gen_c, fake_logits)
                    report("Loss/label_penalty", penalty)
                    loss = loss + penalty.mean() * self.cond_weight
                report("Loss/G/loss", loss)
            with torch.autograd.profiler.record_function("Gmain_backward"):
                backward(loss.mul(gain))

        if phase in ("Dmain", "Dreg", "Dboth"):
            with torch.autograd.profiler.record_function(phase + "_forward"):
                with torch.no_grad():
                    fake_img = self.G(gen_z, real_c)
                real_img = real_img.detach()
                loss = real_img.new_zeros([])
                if phase in ("Dmain", "Dboth"):
                    real_scores, real_logits = self.run_D(real_img, real_c)
                    fake_scores, fake_logits = self.run_D(fake_img, real_c)
                    report("Loss/scores/real", real_scores)
                    report("Loss/signs/real", real_scores.sign())
                    report("Loss/scores/fake", fake_scores)
                    report("Loss/signs/fake", fake_scores.sign())
                    epsilon_penalty = real_scores.square()
                    report("Loss/epsilon_penalty", epsilon_penalty)
                    loss = (fake_scores - real_scores).mean() + epsilon_penalty.mean() * self.wgan_epsilon
                    if real_logits is not None and fake_logits is not None:
                        penalty_reals = self.label_penalty(real_c, real_logits)
                        penalty_fakes = self.label_penalty(real_c, fake_logits)
                        report("Loss/label_penalty_reals", penalty_reals)
                        report("Loss/label_penalty_fakes", penalty_fakes)
                        loss = loss + (penalty_reals.mean() + penalty_fakes.mean()) * self.cond_weight
                    report("Loss/D/loss", loss)
                if phase in ("Dreg", "Dboth"):
                    penalty, norms, mixed_scores = self.gradient_penalty(real_img, fake_img, real_c)
                    report("Loss/scores/mixed", mixed_scores)
                    report("Loss/mixed_norms", norms)
                    report("Loss/gradient_penalty", penalty)
                    loss_gp = penalty.mean() * (self.wgan_lambda / self.wgan_target**2)
                    report("Loss/D/reg", loss_gp)
                    loss = loss + loss_gp
            with torch.autograd.profiler.record_function(phase + "_backward"):
                backward(loss.mul(gain))


    def extra_repr(self) -> str:
        return (f"wgan_lambda={self.wgan_lambda}, wgan_epsilon={self.wgan_epsilon}, wgan_target={self.wgan_target}, "
                f"cond_weight={self.cond_weight}")
