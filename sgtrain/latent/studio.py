"""What the latent studio (``sgtrain-explore``, ``sgtrain-recipe``) needs beyond the single commands: what a
network can do, temporary render controls (noise per layer, StyleGAN3's input transform), z-only rendering and
direction files.

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
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sgtrain.errors import FileContentError, InputError, MissingFileError
from sgtrain.latent.common import family_name, image_size, make_labels, require_w, seeds_to_z, to_uint8
from sgtrain.latent.directions import edit_ws, load_directions

__all__ = [
    "NetworkCaps",
    "capabilities",
    "family_name",
    "require_w",
    "layer_groups",
    "render_controls",
    "make_transform",
    "generate_z_images",
    "read_directions",
    "apply_direction",
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
    z = z.to(device)
    return torch.cat([to_uint8(G(z[i:i + batch_size], c[i:i + batch_size])) for i in range(0, z.shape[0], batch_size)])


def seed_z(seeds: Sequence[int], G: torch.nn.Module) -> torch.Tensor:
    """z of seeds for ``G`` on its device (NVlabs' RandomState convention, :func:`sgtrain.latent.seeds_to_z`)."""
    return seeds_to_z(seeds, G.z_dim).to(next(G.parameters()).device)


def read_directions(path: str | os.PathLike) -> dict:
    """Read a latent-direction file of either kind sgtrain writes.

    - a supervised direction (``sgtrain-directions fit``): ``.npz`` with ``direction`` float [w_dim] (every layer)
      or [num_ws, w_dim] (per layer), optionally ``layers`` (int ws indices to edit), ``name`` (str) and any other
      metadata (kept in ``meta``);
    - closed-form directions (``sgtrain-directions``, SeFa): ``directions`` [K, w_dim], ``eigenvalues``, ``layers``.

    Returns:
        dict with ``directions`` float32 [K, w_dim] or [K, num_ws, w_dim] on CPU, ``names`` (K strings),
        ``layers`` (list of ws indices, or None = all) and ``meta`` (the file's other arrays).

    Raises:
        FileNotFoundError: no file. KeyError: neither ``direction`` nor ``directions`` in it.
        ValueError: an array of the wrong rank, or a direction in Z (``space == 'z'``), which cannot be added to w.
    """
    if not os.path.exists(path):
        raise MissingFileError(f"direction file '{path}' not found")
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise FileContentError(f"'{path}' is a bare array; a direction file is an .npz with 'direction' or "
                               "'directions'")
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    if "direction" in data:
        d = torch.from_numpy(np.asarray(data["direction"], dtype=np.float32))
        if d.ndim not in (1, 2):
            raise InputError(f"'{path}': 'direction' has shape {list(d.shape)}; expected [w_dim] or [num_ws, w_dim]")
        name = str(data["name"]) if "name" in data else stem
        space = str(data["space"]) if "space" in data else "w"
        if space == "z":
            raise InputError(f"'{path}' holds a direction in Z (space 'z'): it moves z before the mapping, so it "
                             "cannot be added to w; apply it with `sgtrain-directions apply` (or refit it in W with "
                             "`sgtrain-directions fit --space w`)")
        layers = [int(i) for i in np.atleast_1d(data["layers"])] if "layers" in data else None
        layers = layers or None  # an empty list means every layer (sgtrain-directions fit's format)
        meta = {k: data[k] for k in data.files if k not in ("direction", "name", "layers")}
        return dict(directions=d[None], names=[name], layers=layers, meta=meta)
    if "directions" in data:
        res = load_directions(path)
        d = res["directions"].float()
        if d.ndim != 2:
            raise InputError(f"'{path}': 'directions' has shape {list(d.shape)}; expected [K, w_dim]")
        return dict(directions=d, names=[f"{stem}[{k}]" for k in range(d.shape[0])], layers=res["layers"],
                    meta=dict(eigenvalues=res["eigenvalues"].numpy()))
    raise FileContentError(f"'{path}' holds {sorted(data.files)}: a direction file needs 'direction' ([w_dim] or "
                   "[num_ws, w_dim], from sgtrain-directions fit) or 'directions' ([K, w_dim], from "
                   "sgtrain-directions)")


def apply_direction(
    ws: torch.Tensor,
    direction: torch.Tensor,
    strength: float,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """``ws`` moved by ``strength * direction`` in the given layers (all when None).

    Args:
        ws: float32 [N, num_ws, w_dim].
        direction: float32 [w_dim] (the same step in every chosen layer, :func:`sgtrain.latent.edit_ws`) or
            [num_ws, w_dim] (a step per layer).

    Returns:
        float32 [N, num_ws, w_dim] (a new tensor).

    Raises:
        ValueError: the direction's shape does not fit ``ws``; a layer out of range.
    """
    num_ws, w_dim = ws.shape[1], ws.shape[2]
    idx = list(range(num_ws)) if layers is None else [int(i) for i in layers]
    bad = [i for i in idx if not 0 <= i < num_ws]
    if bad:
        raise InputError(f"direction layers {bad} out of range: the latents have num_ws={num_ws}")
    if direction.ndim == 1:
        if direction.shape[0] != w_dim:
            raise InputError(f"direction has w_dim {direction.shape[0]}, the latents have w_dim {w_dim}")
        return edit_ws(ws, direction, strength, idx)
    if tuple(direction.shape) != (num_ws, w_dim):
        raise InputError(f"direction has shape {list(direction.shape)}, the latents need [num_ws={num_ws}, "
                         f"w_dim={w_dim}] or [w_dim]")
    out = ws.clone()
    out[:, idx] += strength * direction.to(ws)[idx]
    return out
