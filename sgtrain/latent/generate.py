"""Sampling with the truncation trick (Karras et al. 2019, StyleGAN, sec. 3; NVlabs' gen_images.py).

Every family: style-based generators (StyleGAN, StyleGAN2, StyleGAN3) go through ``G.mapping`` and ``G.synthesis``;
z-only ones (ProGAN, DCGAN) are called as ``G(z, c)`` and refuse truncation (no W space, no w_avg).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sgtrain.latent.common import seeds_to_ws, seeds_to_z, synthesize, to_uint8
from sgtrain.latent.studio import capabilities, generate_z_images, require_w

__all__ = ["generate_images", "render_ws"]


@torch.no_grad()
def generate_images(
    G: torch.nn.Module,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> torch.Tensor:
    """Images for seeds: z as NVlabs draws it, mapping with truncation, synthesis (``G(z, c)`` for z-only networks).

    Args:
        G: generator with NVlabs' interface (``mapping``, ``synthesis``, ``z_dim``, ``c_dim``, ``num_ws``), or a
            z-only one (``G(z, c)``, ``z_dim``, ``c_dim``: ProGAN, DCGAN).
        seeds: one image per seed; the same seed gives the same z as NVlabs' gen_images.py.
        truncation_psi: psi of the truncation trick; 1 = off, 0 = every seed gives the w_avg image. Must be 1 for a
            z-only network.
        truncation_cutoff: truncate only the first this many of the num_ws layers; None = all. No effect at psi 1.
        class_idx: class for a conditional network; must be None for an unconditional one.
        noise_mode: ``'const'``, ``'random'`` or ``'none'`` (z-only networks have no noise inputs: ignored).
        batch_size: images per network call.

    Returns:
        uint8 tensor [len(seeds), H, W, C] on CPU.

    Raises:
        ValueError: class given to an unconditional network or missing for a conditional one; psi != 1 for a
            network without W space.
    """
    if truncation_psi != 1:
        require_w(G, "the truncation trick (psi != 1)")
    if not capabilities(G).w_space:
        return generate_z_images(G, seeds_to_z(seeds, G.z_dim), class_idx, batch_size)
    ws = seeds_to_ws(G, seeds, truncation_psi, truncation_cutoff, class_idx, batch_size)
    return render_ws(G, ws, noise_mode, batch_size)


@torch.no_grad()
def render_ws(G: torch.nn.Module, ws: torch.Tensor, noise_mode: str = "const", batch_size: int = 16) -> torch.Tensor:
    """Render latents ws float32 [N, num_ws, w_dim] to uint8 images [N, H, W, C] on CPU.

    Raises:
        ValueError: a network without W space (ProGAN, DCGAN), or ws of the wrong shape.
    """
    require_w(G, "rendering W latents")
    return to_uint8(synthesize(G, ws, noise_mode=noise_mode, batch_size=batch_size))
