"""What the latent studio (``sgtrain-explore``, ``sgtrain-recipe``) needs beyond the single commands: what a
network can do, temporary render controls (noise per layer, StyleGAN3's input transform) and z-only rendering
(direction files: :mod:`sgtrain.latent.directions`).

The studio is written against capabilities, not family names:

- W tools (truncation, style mixing, directions, projection, W+ latents) need ``G.mapping``, ``G.synthesis``,
  ``G.num_ws`` and ``G.w_dim`` (StyleGAN, StyleGAN2, StyleGAN3);
- per-layer noise controls need modules of ``G.synthesis`` holding a ``noise_const`` buffer;
- translate / rotate needs ``G.synthesis.input.transform`` (a [3, 3] buffer: StyleGAN3, Karras et al. 2021, sec. 3.2
  and NVlabs' gen_images.py, which writes the inverse of the user's transform there);
- a network with none of these (ProGAN, DCGAN) is called as ``G(z, c)``: seed grids and z interpolation only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sgtrain.core.batches import in_batches
from sgtrain.errors import InputError
from sgtrain.latent.common import family_name, image_size, make_labels, require_w, seeds_to_z, to_uint8

__all__ = [
    "NetworkCaps",
    "capabilities",
    "family_name",
    "require_w",
    "layer_groups",
    "render_controls",
    "make_transform",
    "generate_z_images",
]

@dataclass
class NetworkCaps:
    """What a generator offers to the latent tools (see the module docstring).

    ``w_space``: mapping + synthesis + num_ws + w_dim; ``noise_layers``: names (in ``G.synthesis``) of the modules
    with a ``noise_const`` buffer, in registration order; ``transform``: StyleGAN3's input transform is present;
    ``img_width`` x ``img_height``: the images' size in pixels (img_resolution square unless a W x H network; 0 =
    not given, read as img_resolution).
    """

    family: str
    z_dim: int
    c_dim: int
    img_resolution: int
    img_channels: int
    w_space: bool
    num_ws: int = 0
    w_dim: int = 0
    noise_layers: list[str] = field(default_factory=list)
    transform: bool = False
    img_width: int = 0
    img_height: int = 0

    def __post_init__(self) -> None:
        self.img_width = self.img_width or self.img_resolution
        self.img_height = self.img_height or self.img_resolution

    def as_dict(self) -> dict:
        return dict(family=self.family, z_dim=self.z_dim, c_dim=self.c_dim, img_resolution=self.img_resolution,
                    img_channels=self.img_channels, w_space=self.w_space, num_ws=self.num_ws, w_dim=self.w_dim,
                    noise_layers=list(self.noise_layers), transform=self.transform, img_width=self.img_width,
                    img_height=self.img_height)


def capabilities(G: torch.nn.Module) -> NetworkCaps:
    """Inspect a generator (any family ``sgtrain.io.load_network`` opens) and say what it can do.

    Raises:
        ValueError: the module lacks ``z_dim`` or ``img_resolution`` (not a generator).
    """
    for attr in ("z_dim", "img_resolution"):
        if not hasattr(G, attr):
            raise InputError(f"{type(G).__name__} has no '{attr}': not a generator sgtrain's latent tools know")
    w_space = all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws", "w_dim"))
    noise_layers: list[str] = []
    transform = False
    if w_space:
        noise_layers = [name for name, m in G.synthesis.named_modules()
                        if isinstance(getattr(m, "noise_const", None), torch.Tensor)]
        inp = getattr(G.synthesis, "input", None)
        transform = isinstance(getattr(inp, "transform", None), torch.Tensor)
    return NetworkCaps(family=family_name(G), z_dim=int(G.z_dim), c_dim=int(getattr(G, "c_dim", 0)),
                       img_resolution=int(G.img_resolution), img_channels=int(getattr(G, "img_channels", 3)),
                       w_space=w_space, num_ws=int(getattr(G, "num_ws", 0) or 0) if w_space else 0,
                       w_dim=int(getattr(G, "w_dim", 0) or 0) if w_space else 0,
                       noise_layers=noise_layers, transform=transform, img_width=image_size(G)[0],
                       img_height=image_size(G)[1])


def layer_groups(num_ws: int, img_resolution: int) -> list[tuple[str, list[int]]]:
    """The ws layers grouped by the resolution they act on, for a per-layer view.

    A StyleGAN2-rule network (num_ws = 2 log2(res) - 2) has level k = layers 2k, 2k+1 at 2^(k+2) px (as in
    :mod:`sgtrain.latent.mixing`); any other num_ws gives one group per layer.

    Returns:
        [(label, layer indices)], e.g. [('4px', [0, 1]), ('8px', [2, 3]), ...] or [('layer 0', [0]), ...].
    """
    levels = int(round(math.log2(img_resolution))) - 1 if img_resolution > 0 else 0
    if num_ws == 2 * levels:
        return [(f"{2 ** (k + 2)}px", [2 * k, 2 * k + 1]) for k in range(levels)]
    return [(f"layer {i}", [i]) for i in range(num_ws)]


def make_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """The 2D affine transform [3, 3] float64 that rotates by ``angle`` degrees and translates by ``translate`` =
    (tx, ty) in image widths / heights (StyleGAN3's input coordinates: the output image spans one unit, so tx = 0.25
    moves the picture by a quarter of its width, tx = 8 / 32 by 8 pixels of a 32x32 image). Write its inverse into
    ``G.synthesis.input.transform`` (as NVlabs' gen_images.py does) to move the picture by this transform; it is
    :func:`sgtrain.models.stylegan3.make_transform`, and :func:`sgtrain.models.stylegan3.input_transform` is the
    inverse."""
    from sgtrain.nn.misc import make_transform as _make_transform

    return _make_transform(translate, angle)


@contextlib.contextmanager
def render_controls(
    G: torch.nn.Module,
    noise_off: Sequence[str] = (),
    translate: Sequence[float] | None = None,
    rotate: float | None = None,
) -> Iterator[None]:
    """Temporarily switch off the noise of some layers and set StyleGAN3's input transform; restore on exit.

    Args:
        noise_off: names from :attr:`NetworkCaps.noise_layers`; their ``noise_const`` (and ``noise_strength`` when the
            module has one, which also silences noise_mode='random') are zeroed inside the block.
        translate: (x, y) for StyleGAN3's input transform; None or (0, 0) with rotate None or 0 leaves it untouched.
        rotate: degrees.

    The generator is modified in place inside the block: hold a lock if other threads render with it.

    Raises:
        ValueError: an unknown noise layer, or translate/rotate asked of a network without an input transform.
    """
    caps = capabilities(G)
    unknown = [n for n in noise_off if n not in caps.noise_layers]
    if unknown:
        raise InputError(f"no noise layers {unknown} in this network ({caps.family}); it has "
                         f"{caps.noise_layers or 'none'}")
    moving = bool(translate is not None and any(float(t) != 0 for t in translate)) or bool(rotate)
    if moving and not caps.transform:
        raise InputError(f"this network has no input transform ({caps.family}): translate/rotate need a StyleGAN3 "
                         "generator (G.synthesis.input.transform)")
    saved: list[tuple[torch.nn.Module, str, torch.Tensor]] = []
    modules = dict(G.synthesis.named_modules()) if caps.w_space else {}
    try:
        with torch.no_grad():
            for name in noise_off:
                m = modules[name]
                saved.append((m, "noise_const", m.noise_const.clone()))
                m.noise_const.zero_()
                strength = getattr(m, "noise_strength", None)
                if isinstance(strength, torch.Tensor):
                    saved.append((m, "noise_strength", strength.detach().clone()))
                    strength.zero_()
            if moving:
                tf = G.synthesis.input.transform
                saved.append((G.synthesis.input, "transform", tf.clone()))
                m = np.linalg.inv(make_transform(translate or (0.0, 0.0), float(rotate or 0.0)))
                tf.copy_(torch.from_numpy(m).to(tf))
        yield
    finally:
        with torch.no_grad():
            for m, attr, value in reversed(saved):
                getattr(m, attr).copy_(value)


@torch.no_grad()
def generate_z_images(
    G: torch.nn.Module,
    z: torch.Tensor,
    class_idx: int | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """Images of a network called as ``G(z, c)`` (every family; the only way for z-only ones: ProGAN, DCGAN).

    Args:
        z: float32 [N, z_dim] (e.g. :func:`sgtrain.latent.seeds_to_z`).

    Returns:
        uint8 [N, H, W, C] on CPU.
    """
    device = next(G.parameters()).device
    c = make_labels(G, z.shape[0], class_idx, device)
    return in_batches(lambda zz, cc: to_uint8(G(zz, cc)), z, c, batch_size=batch_size, device=device)


def seed_z(seeds: Sequence[int], G: torch.nn.Module) -> torch.Tensor:
    """z of seeds for ``G`` on its device (NVlabs' RandomState convention, :func:`sgtrain.latent.seeds_to_z`)."""
    return seeds_to_z(seeds, G.z_dim).to(next(G.parameters()).device)
