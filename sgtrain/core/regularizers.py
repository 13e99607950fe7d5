"""Regularizers shared by the families' losses: R1, path length, style mixing, D's input blur.

- R1 regularization on reals (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
  eq. 9): :func:`r1_penalty` (and R2 on fakes by the same function, Roth et al. 2017; Huang et al. 2024, R3GAN);
- path length regularization (StyleGAN2 section 3.2, eq. 4): :func:`path_lengths`, :class:`PathLengthRegularizer`;
- style mixing regularization (Karras et al. 2019, "A Style-Based Generator Architecture", section 3.1):
  :func:`style_mix`;
- the blur of D's inputs at the start of training (NVlabs stylegan3 ``blur_init_sigma``): :func:`blur_images`.

Random numbers are drawn in NVlabs' order (stylegan3 / stylegan2-ada-pytorch ``training/loss.py``). No Lightning.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PathLengthRegularizer", "blur_images", "no_weight_gradients", "path_lengths", "r1_penalty", "style_mix"]


@functools.cache
def _fused_no_weight_gradients() -> Callable[[bool], contextlib.AbstractContextManager] | None:
    try:
        from sgtrain.ops.conv2d_gradfix import no_weight_gradients  # type: ignore[import-not-found]
    except ImportError:
        return None
    return no_weight_gradients


def no_weight_gradients(disable: bool = True) -> contextlib.AbstractContextManager:
    """Context in which sgtrain's conv2d op (``sgtrain.ops.conv2d_gradfix``) skips gradients w.r.t. conv weights.

    NVlabs wraps the R1 and path-length gradient computations in ``conv2d_gradfix.no_weight_gradients``: the
    weight gradients of that inner backward are never used, so skipping them changes no number (a speed-up only, on
    every device, for the networks whose convolutions go through that op: StyleGAN2 and StyleGAN3's D).
    """
    switch = _fused_no_weight_gradients() if disable else None
    return switch(disable) if switch is not None else contextlib.nullcontext()


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
    with torch.autograd.profiler.record_function("r1_grads"), no_weight_gradients(no_weight_grad):
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
    with torch.autograd.profiler.record_function("pl_grads"), no_weight_gradients(no_weight_grad):
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
