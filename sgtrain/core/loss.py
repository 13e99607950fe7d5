"""The GAN loss template: the contract between a family's loss and the training module, and the shared terms.

- :class:`GANLoss`: the base class every family's loss subclasses (phases, the augment hook, G/D referenced not
  registered); a family writes only its per-phase math (``sgtrain/models/<family>/loss.py``).
- the non-saturating logistic loss (Goodfellow et al. 2014, section 3; StyleGAN2 appendix B):
  :func:`generator_logistic_loss`, :func:`discriminator_logistic_loss`;
- lazy regularization (StyleGAN2 section 3.1, appendix B): :func:`lazy_regularization`.

The regularizers (R1, path length, style mixing, blur) are in :mod:`sgtrain.core.regularizers`. No Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PHASES", "GANLoss", "discriminator_logistic_loss", "generator_logistic_loss", "lazy_regularization"]

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


# ----------------------------------------------------------------------------------------------------------------------
# Adversarial loss.


def generator_logistic_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic generator loss, ``softplus(-D(G(z))) = -log(sigmoid(D(G(z))))``.

    Source: Goodfellow et al. 2014, section 3 (the "maximise log D(G(z))" variant); StyleGAN2 appendix B.

    Args:
        fake_logits: D's logits for generated images, float tensor of any shape (NVlabs: [N, 1]).

    Returns:
        Per-sample loss with the shape of ``fake_logits`` (not reduced), >= 0.
    """
    return F.softplus(-fake_logits)


def discriminator_logistic_loss(real_logits: torch.Tensor | None, fake_logits: torch.Tensor | None) -> torch.Tensor:
    """Logistic discriminator loss, ``softplus(D(fake)) + softplus(-D(real))``.

    ``softplus(D(x_fake)) = -log(1 - sigmoid(D(x_fake)))`` pushes fake logits down and ``softplus(-D(x_real)) =
    -log(sigmoid(D(x_real)))`` pushes real logits up. Source: Goodfellow et al. 2014, eq. 1; StyleGAN2 appendix B.

    Args:
        real_logits: D's logits for real images, float [N, 1], or None to leave the term out.
        fake_logits: D's logits for generated images, float [N, 1] (same shape), or None to leave the term out.

    Returns:
        Per-sample loss [N, 1], >= 0.

    Raises:
        ValueError: both arguments are None.
    """
    if real_logits is None and fake_logits is None:
        raise ValueError("discriminator_logistic_loss needs real_logits, fake_logits or both; got neither")
    loss = 0
    if fake_logits is not None:
        loss = loss + F.softplus(fake_logits)
    if real_logits is not None:
        loss = loss + F.softplus(-real_logits)
    return loss


def lazy_regularization(lr: float, betas: tuple[float, float], interval: int | None) -> tuple[float, tuple[float,
                                                                                                           float]]:
    """Adam settings for lazy regularization: ``lr * c`` and ``beta ** c`` with ``c = interval / (interval + 1)``.

    With the regularizer run every ``interval`` minibatches (its loss multiplied by ``interval``), the optimizer
    takes ``interval + 1`` steps where it took ``interval``; scaling lr and betas keeps the optimizer's time
    constants. Source: StyleGAN2 section 3.1 / appendix B; NVlabs ``training_loop`` (``mb_ratio``).

    Args:
        lr: Adam learning rate (> 0).
        betas: Adam (beta1, beta2), each in [0, 1).
        interval: regularization interval k >= 1 (NVlabs: G 4, D 16); None means no lazy regularization and
            returns the inputs unchanged.

    Returns:
        (lr, betas) adjusted.

    Raises:
        ValueError: ``interval`` < 1.
    """
    if interval is None:
        return lr, tuple(betas)
    if interval < 1:
        raise ValueError(f"lazy_regularization: interval must be >= 1 (or None to disable), got {interval}")
    c = interval / (interval + 1)
    return lr * c, tuple(beta**c for beta in betas)


# ----------------------------------------------------------------------------------------------------------------------
# The training loss.


class GANLoss(nn.Module):
    """Base class of every family's training loss: the contract between a family and the training module.

    A loss runs one phase (:data:`PHASES`) of one minibatch chunk per :meth:`accumulate_gradients` call and
    backpropagates into whichever parameters require grad (the training module turns on the phase's network only).
    ``G``, ``D`` and ``augment_pipe`` are referenced, not registered: they are not in the loss's ``parameters()`` or
    ``state_dict()``. Buffers a loss registers (e.g. StyleGAN2's ``pl_mean``) are training state: the training module
    checkpoints them, per rank, and restores them on resume.

    Attributes:
        phase_order: which network's phases run first in an iteration: ``("G", "D")`` (NVlabs' PyTorch loops) or
            ``("D", "G")`` (NVlabs' TensorFlow loops: ProGAN, StyleGAN).

        separate_reals: each network's phases get their own batch of reals (R3GAN's loop draws one for D and one for
            G per iteration; the iteration then reads twice ``train.batch`` images and counts ``train.batch``);
            False = one batch of reals for every phase (NVlabs).
        average_passes: the gradient of a phase is the mean over its per-device passes (``gain`` multiplied by
            ``pass / per-device batch``, R3GAN); False = the sum of the passes' means (NVlabs: ``gain = interval``).
        ema_with_D: G_ema is updated right after D's phases when D trains first (NVlabs' TF loops run the Gs update
            with D's); None = when ``phase_order`` starts with D; False = after every phase (NVlabs' PyTorch loops).

    Args:
        G: the generator being trained.
        D: the discriminator being trained.
        augment_pipe: callable applied to every image D sees (ADA: ``sgtrain.core.augment.AugmentPipe``), or None.
    """

    phase_order: tuple[str, str] = ("G", "D")
    separate_reals: bool = False
    average_passes: bool = False
    ema_with_D: bool | None = None

    def __init__(self, G: nn.Module, D: nn.Module,
                 augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("G", "D", "augment_pipe"):  # keep them referenced, never registered as submodules
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def augment(self, img: torch.Tensor) -> torch.Tensor:
        """Images [N, C, H, W] through the augment pipe (identity without one)."""
        return img if self.augment_pipe is None else self.augment_pipe(img)

    def regularizes(self, net: str) -> bool:
        """Whether network ``net`` (``'G'`` or ``'D'``) has a regularization term: without one its ``<net>reg``
        phase is skipped and ``<net>both`` runs as ``<net>main`` (NVlabs' ``accumulate_gradients``). Override."""
        return True

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int,
                             backward: Callable[[torch.Tensor], Any] | None = None) -> dict[str, torch.Tensor]:
        """Run ``phase`` on one chunk and accumulate gradients into the parameters that require grad.

        The phase scaffolding every family shares (NVlabs' ``accumulate_gradients``; MMagic's ``train_step`` hooks):
        the phase is checked, a disabled regularization phase is skipped or folded into the main one
        (:meth:`regularizes`), and :meth:`run_phase` does the family's math, reporting its terms.

        Args:
            phase: one of ``PHASES``: 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth'.
            real_img: real images, float32 [N, C, H, W] in [-1, 1] (uint8 / 127.5 - 1).
            real_c: real labels, float32 [N, c_dim].
            gen_z: latents for generated images, float32 [N, z_dim].
            gen_c: labels for generated images, float32 [N, c_dim].
            gain: loss multiplier: the lazy regularization interval for Greg / Dreg, 1 for the other phases.
            cur_nimg: real images shown to D so far (for schedules inside the loss, e.g. StyleGAN2's blur).
            backward: called with each scalar loss instead of ``loss.backward()`` (e.g. Lightning's
                ``manual_backward``); None uses ``loss.backward()``.

        Returns:
            Detached 0-dim batch means keyed like NVlabs' training stats, only the phase's terms (empty when the
            phase is skipped); every family reports at least ``'Loss/G/loss'``, ``'Loss/D/loss'``,
            ``'Loss/scores/real'`` and ``'Loss/signs/real'`` (the ADA heuristic r_t reads the last one).

        Raises:
            ValueError: unknown phase.
        """
        if phase not in PHASES:
            raise ValueError(f"{type(self).__name__}: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        if backward is None:
            def backward(loss: torch.Tensor) -> None:
                loss.backward()
        for net in ("G", "D"):
            if not self.regularizes(net):
                phase = {f"{net}reg": "none", f"{net}both": f"{net}main"}.get(phase, phase)
        stats: dict[str, torch.Tensor] = {}

        def report(name: str, value: torch.Tensor) -> None:
            stats[name] = value.detach().float().mean()

        if phase != "none":
            self.run_phase(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg, backward, report)
        return stats

    def run_phase(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                  gen_c: torch.Tensor, gain: float, cur_nimg: int, backward: Callable[[torch.Tensor], Any],
                  report: Callable[[str, torch.Tensor], None]) -> None:
        """The family's math for one phase (arguments as :meth:`accumulate_gradients`; ``phase`` is never a skipped
        one): compute the losses, ``report(name, tensor)`` each term, ``backward(loss.mean() * gain)``."""
        raise NotImplementedError
