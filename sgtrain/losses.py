"""StyleGAN2 losses and regularizers.

The objective of Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2), as NVlabs
trains it (stylegan3 / stylegan2-ada-pytorch ``training/loss.py``, ``StyleGAN2Loss``), rewritten for sgtrain:

- non-saturating logistic loss (Goodfellow et al. 2014, section 3; StyleGAN2 appendix B):
  :func:`generator_logistic_loss`, :func:`discriminator_logistic_loss`;
- R1 regularization on reals (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
  eq. 9): :func:`r1_penalty`;
- path length regularization (StyleGAN2 section 3.2, eq. 4): :func:`path_lengths`, :class:`PathLengthRegularizer`;
- style mixing regularization (Karras et al. 2019, "A Style-Based Generator Architecture", section 3.1):
  :func:`style_mix`;
- lazy regularization (StyleGAN2 section 3.1, appendix B): :func:`lazy_regularization`.

:class:`StyleGAN2Loss` runs one training phase (Gmain, Greg, Gboth, Dmain, Dreg, Dboth) and calls ``backward``
like NVlabs' ``accumulate_gradients``; it draws random numbers in the same order, so with the same weights and the
same seed it produces the same losses and gradients. It does not depend on Lightning.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PHASES",
    "GANLoss",
    "LogisticLoss",
    "PathLengthRegularizer",
    "StyleGAN2Loss",
    "StyleGANLoss",
    "WGANGPLoss",
    "blur_images",
    "discriminator_logistic_loss",
    "generator_logistic_loss",
    "lazy_regularization",
    "path_lengths",
    "r1_penalty",
    "style_mix",
]

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


@functools.cache
def _fused_no_weight_gradients() -> Callable[[bool], contextlib.AbstractContextManager] | None:
    try:
        from sgtrain.ops.conv2d_gradfix import no_weight_gradients  # type: ignore[import-not-found]
    except ImportError:
        return None
    return no_weight_gradients


def _no_weight_gradients(disable: bool = True) -> contextlib.AbstractContextManager:
    """Context in which sgtrain's conv2d op (``sgtrain.ops.conv2d_gradfix``) skips gradients w.r.t. conv weights.

    NVlabs wraps the R1 and path-length gradient computations in ``conv2d_gradfix.no_weight_gradients``: the
    weight gradients of that inner backward are never used, so skipping them changes no number (a speed-up only, on
    every device, for the networks whose convolutions go through that op: StyleGAN2 and StyleGAN3's D).
    """
    switch = _fused_no_weight_gradients() if disable else None
    return switch(disable) if switch is not None else contextlib.nullcontext()


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


# ----------------------------------------------------------------------------------------------------------------------
# R1.


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor, no_weight_grad: bool = True) -> torch.Tensor:
    """R1 gradient penalty: squared norm of the gradient of D's logits w.r.t. the real images.

    ``r1 = || d sum(D(x)) / dx ||^2`` per sample; the training loss adds ``r1 * (gamma / 2)``. The gradient graph is
    kept (``create_graph=True``) so that the penalty backpropagates into D's parameters (double backward).
    Source: Mescheder et al. 2018, eq. 9; StyleGAN2 appendix B (gamma = 10 for FFHQ 1024).

    Args:
        real_img: the images D saw, float [N, C, H, W], a leaf with ``requires_grad=True`` (or part of a graph).
        real_logits: ``D(real_img, c)``, float [N, 1].
        no_weight_grad: skip the unused conv weight gradients (``sgtrain.ops.conv2d_gradfix``; speed only).

    Returns:
        Per-sample penalty [N], float, >= 0, differentiable w.r.t. D's parameters.

    Raises:
        ValueError: ``real_img`` does not require grad (then the penalty would be zero and R1 silently off).
    """
    if not real_img.requires_grad:
        raise ValueError(
            "r1_penalty: real_img does not require grad; pass real_img.detach().requires_grad_(True) to D "
            "and give that same tensor here"
        )
    with torch.autograd.profiler.record_function("r1_grads"), _no_weight_gradients(no_weight_grad):
        (grads,) = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img], create_graph=True,
                                       only_inputs=True)
    return grads.square().sum(dim=[1, 2, 3])


# ----------------------------------------------------------------------------------------------------------------------
# Path length.


def path_lengths(img: torch.Tensor, ws: torch.Tensor, pl_noise: torch.Tensor | None = None,
                 no_weight_grad: bool = False) -> torch.Tensor:
    """Path lengths ``|| J_w^T y ||`` of the generator at ``ws`` (StyleGAN2 section 3.2, eq. 4).

    ``y`` is Gaussian image noise scaled by ``1/sqrt(H*W)`` so that the length does not depend on resolution. As in
    NVlabs, the Jacobian-vector product is the gradient of ``sum(img * y)`` w.r.t. ``ws`` [N, num_ws, w_dim]; the
    length is ``sqrt(mean over ws of sum over w_dim of grad^2)``. The graph is kept for double backward.

    Args:
        img: generated images ``G.synthesis(ws)``, float [N, C, H, W].
        ws: the per-layer latents that produced ``img``, float [N, num_ws, w_dim], part of the graph.
        pl_noise: the noise ``y`` [N, C, H, W]; None draws ``torch.randn_like(img) / sqrt(H * W)`` from the global
            RNG (NVlabs' draw).
        no_weight_grad: skip the unused weight gradients of the fused conv op (speed only; NVlabs' pl_no_weight_grad).

    Returns:
        Path lengths [N], float, >= 0, differentiable w.r.t. G's parameters.
    """
    if pl_noise is None:
        pl_noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    with torch.autograd.profiler.record_function("pl_grads"), _no_weight_gradients(no_weight_grad):
        (grads,) = torch.autograd.grad(outputs=[(img * pl_noise).sum()], inputs=[ws], create_graph=True,
                                       only_inputs=True)
    return grads.square().sum(2).mean(1).sqrt()


class PathLengthRegularizer(nn.Module):
    """Path length penalty ``(|| J_w^T y || - a)^2`` with ``a`` a running mean of the lengths (StyleGAN2 eq. 4).

    ``pl_mean`` is a registered buffer (a 0-dim float32 tensor, initially 0), so it lands in ``state_dict()`` and
    in any checkpoint of a module that owns this one. Each call moves it toward the batch's mean length,
    ``pl_mean <- pl_mean + pl_decay * (mean(lengths) - pl_mean)``, exactly as NVlabs (no averaging across DDP ranks).

    Args:
        pl_decay: decay of the running mean per call (NVlabs 0.01).
        pl_no_weight_grad: skip the unused conv weight gradients inside the Jacobian computation (speed only).
    """

    pl_mean: torch.Tensor

    def __init__(self, pl_decay: float = 0.01, pl_no_weight_grad: bool = False) -> None:
        super().__init__()
        self.pl_decay = float(pl_decay)
        self.pl_no_weight_grad = bool(pl_no_weight_grad)
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, img: torch.Tensor, ws: torch.Tensor, pl_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Penalty per sample and update of ``pl_mean``.

        Args:
            img: generated images [N, C, H, W] from ``ws``.
            ws: latents [N, num_ws, w_dim] in the graph of ``img``.
            pl_noise: optional fixed noise (see :func:`path_lengths`).

        Returns:
            Penalty [N] (multiply by pl_weight for the loss), differentiable w.r.t. G's parameters.
        """
        lengths = path_lengths(img, ws, pl_noise=pl_noise, no_weight_grad=self.pl_no_weight_grad)
        pl_mean = self.pl_mean.lerp(lengths.mean().to(self.pl_mean.dtype), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        return (lengths - pl_mean).square()

    def extra_repr(self) -> str:
        return f"pl_decay={self.pl_decay}, pl_no_weight_grad={self.pl_no_weight_grad}"


# ----------------------------------------------------------------------------------------------------------------------
# Style mixing, blur, lazy regularization.


def style_mix(mapping: Callable[..., torch.Tensor], z: torch.Tensor, c: torch.Tensor | None, prob: float = 0.9,
              update_emas: bool = False, ws: torch.Tensor | None = None,
              max_layers: int | None = None) -> torch.Tensor:
    """Style mixing regularization: with probability ``prob`` the layers from a random cutoff on take a second z.

    The cutoff is one integer for the whole batch, drawn uniformly from [1, num_ws) (``random_(1, num_ws)``); with
    probability ``1 - prob`` it is ``num_ws`` (no mixing). The second latent is ``randn_like(z)`` mapped with
    ``update_emas=False``. Random numbers are drawn in NVlabs' order (cutoff, coin, second z), and, as in NVlabs, all
    three are drawn (and the second mapping run) even when the coin says no mixing, so the RNG stream matches.
    ``prob <= 0`` draws nothing and returns the unmixed ws. Source: Karras et al. 2019 (StyleGAN), section 3.1.

    Args:
        mapping: ``mapping(z, c, update_emas=...) -> ws`` [N, num_ws, w_dim], e.g. ``G.mapping``.
        z: latents, float [N, z_dim].
        c: labels, float [N, c_dim] (or None / [N, 0] for unconditional).
        prob: mixing probability in [0, 1] (NVlabs StyleGAN2 config: 0.9).
        update_emas: passed to the first mapping call (updates w_avg when True).
        ws: the unmixed ``mapping(z, c)`` if already computed; None computes it.
        max_layers: the cutoff is drawn from [1, max_layers) and is max_layers without mixing; None = num_ws.
            StyleGAN (v1) trains progressively and mixes among the layers the current lod uses only
            (``num_ws - 2 * floor(lod)``, NVlabs' TF G_style).

    Returns:
        ws [N, num_ws, w_dim]; rows ``[:, cutoff:]`` come from the second latent.
    """
    if ws is None:
        ws = mapping(z, c, update_emas=update_emas)
    if prob > 0:
        with torch.autograd.profiler.record_function("style_mixing"):
            num_ws = ws.shape[1] if max_layers is None else int(max_layers)
            cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, max(num_ws, 2))
            cutoff = torch.where(torch.rand([], device=ws.device) < prob, cutoff, torch.full_like(cutoff, num_ws))
            ws2 = mapping(torch.randn_like(z), c, update_emas=False)
            ws = ws.clone()
            ws[:, cutoff:] = ws2[:, cutoff:]
    return ws


def blur_images(img: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    """Gaussian blur applied to D's inputs early in training (StyleGAN3 section 3.2/appendix; off for StyleGAN2).

    The separable kernel has taps ``2^(-(x/sigma)^2)`` for integer x in [-floor(3 sigma), floor(3 sigma)], normalised
    to sum 1, with zero padding so that the output has the input's size (NVlabs ``upfirdn2d.filter2d``).

    Args:
        img: float [N, C, H, W].
        blur_sigma: standard deviation-like width in pixels; ``floor(3 * sigma) == 0`` returns ``img`` unchanged.

    Returns:
        Blurred images [N, C, H, W], differentiable (also twice).
    """
    blur_size = math.floor(blur_sigma * 3)
    if blur_size <= 0:
        return img
    taps = torch.arange(-blur_size, blur_size + 1, device=img.device, dtype=torch.float32)
    f = taps.div(blur_sigma).square().neg().exp2()
    f = (f / f.sum()).to(img.dtype)
    channels = img.shape[1]
    x = F.conv2d(img, f.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), padding=(0, blur_size), groups=channels)
    return F.conv2d(x, f.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), padding=(blur_size, 0), groups=channels)


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

    Args:
        G: the generator being trained.
        D: the discriminator being trained.
        augment_pipe: callable applied to every image D sees (ADA: ``sgtrain.augment.AugmentPipe``), or None.
    """

    phase_order: tuple[str, str] = ("G", "D")

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

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int,
                             backward: Callable[[torch.Tensor], Any] | None = None) -> dict[str, torch.Tensor]:
        """Run ``phase`` on one chunk and accumulate gradients; see :meth:`StyleGAN2Loss.accumulate_gradients`.

        Returns detached 0-dim batch means keyed like NVlabs' training stats; every family reports at least
        ``'Loss/G/loss'``, ``'Loss/D/loss'``, ``'Loss/scores/real'`` and ``'Loss/signs/real'`` (the ADA
        heuristic r_t reads the last one).
        """
        raise NotImplementedError


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

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int,
                             backward: Callable[[torch.Tensor], Any] | None = None) -> dict[str, torch.Tensor]:
        """Run one phase on one minibatch and accumulate gradients into the parameters that require grad.

        Args:
            phase: one of ``PHASES``: 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth'.
            real_img: real images, float32 [N, C, H, W] in [-1, 1] (uint8 / 127.5 - 1).
            real_c: real labels, float32 [N, c_dim].
            gen_z: latents for generated images, float32 [N, z_dim].
            gen_c: labels for generated images, float32 [N, c_dim].
            gain: loss multiplier: the lazy regularization interval for Greg / Dreg, 1 for the other phases.
            cur_nimg: real images shown to D so far (for the blur schedule).
            backward: called with each scalar loss instead of ``loss.backward()`` (e.g. Lightning's
                ``manual_backward``); None uses ``loss.backward()``.

        Returns:
            Detached 0-dim tensors, batch means, keyed like NVlabs' training stats: 'Loss/scores/fake',
            'Loss/signs/fake', 'Loss/G/loss' (Gmain), 'Loss/pl_penalty', 'Loss/G/reg' (Greg), 'Loss/scores/real',
            'Loss/signs/real', 'Loss/D/loss' (Dmain), 'Loss/r1_penalty', 'Loss/D/reg' (Dreg); only the phase's
            terms; empty when the phase is disabled (e.g. Greg with pl_weight 0).

        Raises:
            ValueError: unknown phase.
        """
        if phase not in PHASES:
            raise ValueError(f"StyleGAN2Loss: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        if backward is None:
            def backward(loss: torch.Tensor) -> None:
                loss.backward()
        if self.pl_weight == 0:
            phase = {"Greg": "none", "Gboth": "Gmain"}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {"Dreg": "none", "Dboth": "Dmain"}.get(phase, phase)
        blur_sigma = self.blur_sigma(cur_nimg)
        stats: dict[str, torch.Tensor] = {}

        def report(name: str, value: torch.Tensor) -> None:
            stats[name] = value.detach().float().mean()

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

        return stats

    def extra_repr(self) -> str:
        return (f"r1_gamma={self.r1_gamma}, style_mixing_prob={self.style_mixing_prob}, pl_weight={self.pl_weight}, "
                f"pl_batch_shrink={self.pl_batch_shrink}, blur_init_sigma={self.blur_init_sigma}, "
                f"blur_fade_kimg={self.blur_fade_kimg}")


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

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int,
                             backward: Callable[[torch.Tensor], Any] | None = None) -> dict[str, torch.Tensor]:
        """As :meth:`StyleGAN2Loss.accumulate_gradients`; D phases generate with ``real_c`` (TF's D loss)."""
        if phase.startswith("D"):
            gen_c = real_c
        return super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg, backward)


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

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int,
                             backward: Callable[[torch.Tensor], Any] | None = None) -> dict[str, torch.Tensor]:
        """One phase on one chunk; see :meth:`GANLoss.accumulate_gradients` (same arguments and stats keys).

        Raises:
            ValueError: unknown phase.
        """
        if phase not in PHASES:
            raise ValueError(f"LogisticLoss: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        backward = backward or (lambda loss: loss.backward())
        stats: dict[str, torch.Tensor] = {}

        def report(name: str, value: torch.Tensor) -> None:
            stats[name] = value.detach().float().mean()

        if phase in ("Gmain", "Gboth"):
            gen_logits = self.D(self.augment(self.G(gen_z, gen_c)), gen_c)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())
            loss_G = generator_logistic_loss(gen_logits)
            report("Loss/G/loss", loss_G)
            backward(loss_G.mean().mul(gain))
        d_main = phase in ("Dmain", "Dboth")
        d_reg = phase in ("Dreg", "Dboth") and self.r1_gamma > 0
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
        return stats

    def extra_repr(self) -> str:
        return f"r1_gamma={self.r1_gamma}"


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
        with torch.autograd.profiler.record_function("gp_grads"), _no_weight_gradients(True):
            (grads,) = torch.autograd.grad(outputs=[mixed_scores.sum()], inputs=[mixed], create_graph=True,
                                           only_inputs=True)
        norms = self._fp32(grads).square().sum(dim=[1, 2, 3]).sqrt()
        return (norms - self.wgan_target).square(), norms, mixed_scores

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: int,
                             backward: Callable[[torch.Tensor], Any] | None = None) -> dict[str, torch.Tensor]:
        """Run one phase on one minibatch and accumulate gradients into the parameters that require grad.

        Args:
            phase: one of ``PHASES``: 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth'.
            real_img: real images, float32 [N, C, H, W] in [-1, 1] (already faded to the current lod).
            real_c: real labels, float32 [N, c_dim] (also the labels of the fakes in the D phases).
            gen_z: latents, float32 [N, z_dim].
            gen_c: labels of the generated images in the G phases, float32 [N, c_dim].
            gain: loss multiplier (1, or the regularization interval for Dreg).
            cur_nimg: unused (no schedule inside this loss).
            backward: called with the scalar loss instead of ``loss.backward()``; None uses ``loss.backward()``.

        Returns:
            Detached 0-dim batch means: 'Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss' (G phases);
            'Loss/scores/real', 'Loss/signs/real', 'Loss/scores/fake', 'Loss/signs/fake', 'Loss/epsilon_penalty',
            'Loss/D/loss' (Dmain: everything but the gradient penalty); 'Loss/scores/mixed', 'Loss/mixed_norms',
            'Loss/gradient_penalty', 'Loss/D/reg' (Dreg: the weighted penalty); with the auxiliary classifier also
            'Loss/label_penalty' (G), 'Loss/label_penalty_reals', 'Loss/label_penalty_fakes' (D). Empty for
            Greg, and for Dreg with wgan_lambda 0.

        Raises:
            ValueError: unknown phase.
        """
        del cur_nimg
        if phase not in PHASES:
            raise ValueError(f"WGANGPLoss: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        if backward is None:
            def backward(loss: torch.Tensor) -> None:
                loss.backward()
        phase = {"Greg": "none", "Gboth": "Gmain"}.get(phase, phase)
        if self.wgan_lambda == 0:
            phase = {"Dreg": "none", "Dboth": "Dmain"}.get(phase, phase)
        stats: dict[str, torch.Tensor] = {}

        def report(name: str, value: torch.Tensor) -> None:
            stats[name] = value.detach().float().mean()

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

        return stats

    def extra_repr(self) -> str:
        return (f"wgan_lambda={self.wgan_lambda}, wgan_epsilon={self.wgan_epsilon}, wgan_target={self.wgan_target}, "
                f"cond_weight={self.cond_weight}")
