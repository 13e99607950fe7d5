"""StyleGAN2's objective (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), as NVlabs
trains it (stylegan3 / stylegan2-ada-pytorch ``training/loss.py``, ``StyleGAN2Loss``); StyleGAN3 trains with it too.

:class:`StyleGAN2Loss` runs one training phase (Gmain, Greg, Gboth, Dmain, Dreg, Dboth) and calls ``backward``
like NVlabs' ``accumulate_gradients``; it draws random numbers in the same order, so with the same weights and the
same seed it produces the same losses and gradients. It does not depend on Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sgtrain.core.loss import GANLoss, discriminator_logistic_loss, generator_logistic_loss
from sgtrain.core.regularizers import PathLengthRegularizer, blur_images, r1_penalty, style_mix

__all__ = ['StyleGAN2Loss']


class StyleGAN2Loss(GANLoss):
    """StyleGAN2 objective: one call runs one phase of one minibatch and accumulates its gradients.

    Behaviour, random-number order and per-phase terms follow NVlabs' ``StyleGAN2Loss.accumulate_gradients``:

    - ``Gmain``: ``softplus(-D(G(z)))`` (G with style mixing);
    - ``Greg``: path length penalty ``(|J_w^T y| - pl_mean)^2 * pl_weight`` on the first ``N // pl_batch_shrink``
      samples;
    - ``Dmain``: ``softplus(D(G(z)))`` (G and D with ``update_emas=True``) and ``softplus(-D(x))``;
    - ``Dreg``: R1 ``|grad_x D(x)|^2 * gamma / 2``;
    - ``Gboth`` / ``Dboth``: main and regularization together (no lazy regularization).

    Each term is averaged over the batch, multiplied by ``gain`` (the lazy regularization interval for reg phases,
    1 otherwise) and backpropagated. With ``pl_weight == 0`` Greg does nothing and Gboth is Gmain; with
    ``r1_gamma == 0`` likewise for Dreg / Dboth.

    The caller sets which parameters train (NVlabs: ``phase.module.requires_grad_(True)`` for the phase's network
    only, all others ``False``); this class only accumulates ``.grad``. G, D and augment_pipe are referenced, not
    owned: they are not in this module's ``parameters()`` or ``state_dict()``. Its only state is ``pl.pl_mean``
    (the path length running mean), so register the loss as a submodule of the training module to checkpoint it.

    Args:
        G: generator with ``mapping(z, c, update_emas=...)`` and ``synthesis(ws, update_emas=...)``.
        D: discriminator, ``D(img, c, update_emas=...) -> logits [N, 1]``.
        augment_pipe: optional callable applied to every image D sees (ADA), None = no augmentation.
        r1_gamma: R1 weight gamma (penalty multiplied by gamma / 2); 0 disables R1.
        style_mixing_prob: style mixing probability; 0 disables it.
        pl_weight: path length weight; 0 disables path length regularization.
        pl_batch_shrink: the path length batch is ``N // pl_batch_shrink``.
        pl_decay: decay of the running mean ``pl_mean``.
        pl_no_weight_grad: skip unused conv weight gradients in the path length Jacobian (speed only).
        blur_init_sigma: initial blur of D's inputs in pixels; 0 disables it.
        blur_fade_kimg: kimg over which the blur fades to 0 linearly; 0 disables blur.
    """

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 r1_gamma: float = 10, style_mixing_prob: float = 0.9, pl_weight: float = 2, pl_batch_shrink: int = 2,
                 pl_decay: float = 0.01, pl_no_weight_grad: bool = False, blur_init_sigma: float = 0,
                 blur_fade_kimg: float = 0) -> None:
        super().__init__(G, D, augment_pipe)
        if pl_batch_shrink < 1:
            raise ValueError(f"StyleGAN2Loss: pl_batch_shrink must be >= 1, got {pl_batch_shrink}")
        self.r1_gamma = float(r1_gamma)
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight = float(pl_weight)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.blur_init_sigma = float(blur_init_sigma)
        self.blur_fade_kimg = float(blur_fade_kimg)
        self.pl = PathLengthRegularizer(pl_decay=pl_decay, pl_no_weight_grad=pl_no_weight_grad)

    @property
    def pl_mean(self) -> torch.Tensor:
        """Running mean of the path lengths, 0-dim float32 (the buffer ``pl.pl_mean``)."""
        return self.pl.pl_mean

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate images with style mixing: returns (img [N, C, H, W], ws [N, num_ws, w_dim])."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        ws = style_mix(self.G.mapping, z, c, prob=self.style_mixing_prob, ws=ws)
        img = self.G.synthesis(ws, update_emas=update_emas)
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, blur_sigma: float = 0,
              update_emas: bool = False) -> torch.Tensor:
        """Blur (if on), augment (if a pipe is set) and score images: returns logits [N, 1]."""
        if math.floor(blur_sigma * 3) > 0:
            with torch.autograd.profiler.record_function("blur"):
                img = blur_images(img, blur_sigma)
        return self.D(self.augment(img), c, update_emas=update_emas)

    def blur_sigma(self, cur_nimg: int) -> float:
        """Blur sigma of D's inputs after ``cur_nimg`` real images: fades linearly from blur_init_sigma to 0."""
        if self.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0) * self.blur_init_sigma

    def regularizes(self, net: str) -> bool:
        """G is regularized by path length (``pl_weight > 0``), D by R1 (``r1_gamma > 0``)."""
        return self.pl_weight != 0 if net == "G" else self.r1_gamma != 0

    def run_phase(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                  gen_c: torch.Tensor, gain: float, cur_nimg: int, backward: Callable[[torch.Tensor], Any],
                  report: Callable[[str, torch.Tensor], None]) -> None:
        """NVlabs' StyleGAN2Loss phases: Gmain (non-saturating logistic), Greg (path length on a batch shrunk by
        ``pl_batch_shrink``), Dmain (logistic on fakes and reals), Dreg (R1 on reals); the ``*both`` phases run the
        two together. Reports 'Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss' (Gmain), 'Loss/pl_penalty',
        'Loss/G/reg' (Greg), 'Loss/scores/real', 'Loss/signs/real', 'Loss/D/loss' (Dmain), 'Loss/r1_penalty',
        'Loss/D/reg' (Dreg).

        Raises:
            ValueError: a batch smaller than ``pl_batch_shrink`` in Greg.
        """
        blur_sigma = self.blur_sigma(cur_nimg)

        # Gmain: raise D's logits for generated images.
        if phase in ("Gmain", "Gboth"):
            with torch.autograd.profiler.record_function("Gmain_forward"):
                gen_img, _ = self.run_G(gen_z, gen_c)
                gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma)
                report("Loss/scores/fake", gen_logits)
                report("Loss/signs/fake", gen_logits.sign())
                loss_Gmain = generator_logistic_loss(gen_logits)
                report("Loss/G/loss", loss_Gmain)
            with torch.autograd.profiler.record_function("Gmain_backward"):
                backward(loss_Gmain.mean().mul(gain))

        # Gpl: path length regularization on a shrunk batch.
        if phase in ("Greg", "Gboth"):
            with torch.autograd.profiler.record_function("Gpl_forward"):
                batch_size = gen_z.shape[0] // self.pl_batch_shrink
                if batch_size < 1:
                    raise ValueError(
                        f"StyleGAN2Loss: batch of {gen_z.shape[0]} is too small for pl_batch_shrink "
                        f"{self.pl_batch_shrink}; use a per-device batch >= {self.pl_batch_shrink}"
                    )
                gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
                pl_penalty = self.pl(gen_img, gen_ws)
                report("Loss/pl_penalty", pl_penalty)
                loss_Gpl = pl_penalty * self.pl_weight
                report("Loss/G/reg", loss_Gpl)
            with torch.autograd.profiler.record_function("Gpl_backward"):
                backward(loss_Gpl.mean().mul(gain))

        # Dmain: lower D's logits for generated images.
        loss_Dgen: torch.Tensor | int = 0
        if phase in ("Dmain", "Dboth"):
            with torch.autograd.profiler.record_function("Dgen_forward"):
                gen_img, _ = self.run_G(gen_z, gen_c, update_emas=True)
                gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma, update_emas=True)
                report("Loss/scores/fake", gen_logits)
                report("Loss/signs/fake", gen_logits.sign())
                loss_Dgen = discriminator_logistic_loss(None, gen_logits)
            with torch.autograd.profiler.record_function("Dgen_backward"):
                backward(loss_Dgen.mean().mul(gain))

        # Dmain: raise D's logits for reals. Dr1: R1 on reals.
        if phase in ("Dmain", "Dreg", "Dboth"):
            name = {"Dmain": "Dreal", "Dreg": "Dr1", "Dboth": "Dreal_Dr1"}[phase]
            with torch.autograd.profiler.record_function(name + "_forward"):
                real_img_tmp = real_img.detach().requires_grad_(phase in ("Dreg", "Dboth"))
                real_logits = self.run_D(real_img_tmp, real_c, blur_sigma=blur_sigma)
                report("Loss/scores/real", real_logits)
                report("Loss/signs/real", real_logits.sign())

                loss_Dreal: torch.Tensor | int = 0
                if phase in ("Dmain", "Dboth"):
                    loss_Dreal = discriminator_logistic_loss(real_logits, None)
                    report("Loss/D/loss", loss_Dgen + loss_Dreal)

                loss_Dr1: torch.Tensor | int = 0
                if phase in ("Dreg", "Dboth"):
                    penalty = r1_penalty(real_img_tmp, real_logits)
                    loss_Dr1 = penalty * (self.r1_gamma / 2)
                    report("Loss/r1_penalty", penalty)
                    report("Loss/D/reg", loss_Dr1)

            with torch.autograd.profiler.record_function(name + "_backward"):
                backward((loss_Dreal + loss_Dr1).mean().mul(gain))


    def extra_repr(self) -> str:
        return (f"r1_gamma={self.r1_gamma}, style_mixing_prob={self.style_mixing_prob}, pl_weight={self.pl_weight}, "
                f"pl_batch_shrink={self.pl_batch_shrink}, blur_init_sigma={self.blur_init_sigma}, "
                f"blur_fade_kimg={self.blur_fade_kimg}")
