"""Shared pieces of the latent-space tools: parsing, seeds to z/w, rendering, image and latent files.

Conventions follow NVlabs' gen_images.py / style_mixing.py (stylegan2-ada-pytorch, stylegan3) so that the same
seed gives the same z as there: ``z = np.random.RandomState(seed).randn(z_dim)``; images leave the network in
[-1, 1] and become uint8 through ``(img * 127.5 + 128).clamp(0, 255)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import torch

from sgtrain.core.batches import in_batches
from sgtrain.errors import FileContentError, InputError, MissingFileError

__all__ = [
    "family_name",
    "parse_range",
    "require_w",
    "parse_grid",
    "resolve_device",
    "load_generator",
    "seeds_to_z",
    "image_size",
    "make_labels",
    "map_z",
    "seeds_to_ws",
    "synthesize",
    "to_uint8",
    "make_grid",
    "save_image",
    "load_ws",
    "save_ws",
]


def parse_range(spec: str | Sequence[int]) -> list[int]:
    """Parse a list of integers written as ``'0-99'``, ``'1,5,7-9'`` (ranges inclusive).

    Args:
        spec: comma-separated integers or inclusive ranges ``a-b``; a list of ints is returned as is.

    Returns:
        The integers in the order written (duplicates kept).

    Raises:
        ValueError: an item is neither an integer nor a range ``a-b`` with ``a <= b``.
    """
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise InputError(f"range '{part}' runs backwards; write it as '{hi}-{lo}'")
            out.extend(range(lo, hi + 1))
        elif re.fullmatch(r"-?\d+", part):
            out.append(int(part))
        else:
            raise InputError(f"cannot parse '{part}' in '{spec}': expected integers or ranges like '0-99,120'")
    if not out:
        raise InputError(f"'{spec}' names no integers; write e.g. '0-7' or '1,5,9'")
    return out


def parse_grid(spec: str | None) -> tuple[int, int] | None:
    """Parse a grid size ``'RxC'`` (rows x columns), e.g. ``'4x8'``; None stays None.

    Raises:
        ValueError: not of the form ``RxC`` with positive integers.
    """
    if spec is None or spec == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", spec)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise InputError(f"cannot parse grid '{spec}': write rows x columns, e.g. '4x8'")
    return int(m.group(1)), int(m.group(2))


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device``, or CUDA when available and ``device`` is None or ``'auto'``, else CPU.

    Raises:
        ValueError: CUDA was asked for but is not available.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device} asked for CUDA but torch sees no GPU; use --device cpu")
    return dev


def load_generator(path: str | os.PathLike, device: str | torch.device | None = None) -> torch.nn.Module:
    """Open a network with ``sgtrain.io.load_network`` and return its ``G_ema`` ready for inference.

    Args:
        path: anything ``sgtrain.io.load_network`` opens (run directory, checkpoint, portable file, NVlabs pickle).
        device: target device; None picks CUDA when available.

    Returns:
        The generator in eval mode, without gradients, on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist; ``sgtrain.io`` errors for files it cannot read.
    """
    from sgtrain.io import load_network

    dev = resolve_device(device)
    G = load_network(path, device=dev)["G_ema"]
    return G.eval().requires_grad_(False).to(dev)


def image_size(G: torch.nn.Module) -> tuple[int, int]:
    """``(width, height)`` of a generator's images: ``img_width`` / ``img_height`` of a W x H network, else
    ``img_resolution`` square."""
    res = int(G.img_resolution)
    return int(getattr(G, "img_width", res)), int(getattr(G, "img_height", res))


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """Latents z for seeds, as NVlabs does: ``np.random.RandomState(seed).randn(z_dim)``.

    Returns:
        float32 tensor [len(seeds), z_dim] on CPU, standard normal.
    """
    return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32))


def make_labels(G: torch.nn.Module, n: int, class_idx: int | None, device: torch.device | str = "cpu") -> torch.Tensor:
    """One-hot labels c for ``n`` samples of class ``class_idx``.

    Returns:
        float32 tensor [n, c_dim]; [n, 0] for an unconditional network.

    Raises:
        ValueError: conditional network without ``class_idx``, unconditional network with one, or a class out of
            range [0, c_dim).
    """
    c = torch.zeros([n, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            raise InputError("this network is unconditional (c_dim=0): drop --class")
        return c
    if class_idx is None:
        raise InputError(f"this network is conditional (c_dim={G.c_dim}): pass --class K with 0 <= K < {G.c_dim}")
    if not 0 <= class_idx < G.c_dim:
        raise InputError(f"--class {class_idx} is out of range: this network has classes 0..{G.c_dim - 1}")
    c[:, class_idx] = 1
    return c


@torch.no_grad()
def map_z(
    G: torch.nn.Module,
    z: torch.Tensor,
    c: torch.Tensor,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """``G.mapping(z, c)`` with the truncation trick (see :func:`seeds_to_ws`), ``batch_size`` rows per call
    (:func:`sgtrain.core.batches.in_batches`).

    Args:
        z: float32 [N, z_dim]; c: float32 [N, c_dim] ([N, 0] for an unconditional network); any device.

    Returns:
        float32 ws [N, num_ws, w_dim] on G's device.
    """
    device = next(G.parameters()).device
    return in_batches(lambda zz, cc: G.mapping(zz, cc, truncation_psi=truncation_psi,
                                               truncation_cutoff=truncation_cutoff), z, c,
                      batch_size=batch_size, device=device)


@torch.no_grad()
def seeds_to_ws(
    G: torch.nn.Module,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Map seeds to intermediate latents: z from :func:`seeds_to_z`, then ``G.mapping`` with truncation.

    Truncation trick (Karras et al. 2019, StyleGAN, sec. 3): ``w = w_avg + psi * (w - w_avg)`` for the first
    ``truncation_cutoff`` layers (all when None).

    Returns:
        float32 tensor [len(seeds), num_ws, w_dim] on G's device.
    """
    device = next(G.parameters()).device
    z = seeds_to_z(seeds, G.z_dim).to(device)
    c = make_labels(G, len(seeds), class_idx, device)
    return map_z(G, z, c, truncation_psi, truncation_cutoff, batch_size)


def synthesize(
    G: torch.nn.Module,
    ws: torch.Tensor,
    noise_mode: str = "const",
    batch_size: int = 16,
    grad: bool = False,
) -> torch.Tensor:
    """Render intermediate latents with ``G.synthesis`` in batches.

    Args:
        ws: float32 [N, num_ws, w_dim].
        noise_mode: ``'const'`` (the network's fixed noise buffers), ``'random'`` or ``'none'``.
        batch_size: images per synthesis call.
        grad: keep the autograd graph (for projection).

    Returns:
        float32 images [N, C, H, W] in about [-1, 1] on G's device.

    Raises:
        ValueError: ``ws`` is not [N, num_ws, w_dim] for this network, or an unknown noise_mode.
    """
    if noise_mode not in ("const", "random", "none"):
        raise InputError(f"noise_mode '{noise_mode}' unknown: use const, random or none")
    if ws.ndim != 3 or ws.shape[1] != G.num_ws or ws.shape[2] != G.w_dim:
        raise InputError(f"ws has shape {list(ws.shape)}; this network takes [N, num_ws={G.num_ws}, w_dim={G.w_dim}]")
    device = next(G.parameters()).device
    with torch.set_grad_enabled(grad):
        return in_batches(lambda w: G.synthesis(w, noise_mode=noise_mode), ws, batch_size=batch_size, device=device)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Network images [N, C, H, W] in [-1, 1] to uint8 [N, H, W, C] on CPU: ``(x * 127.5 + 128).clamp(0, 255)``."""
    return (images.detach().permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()


def make_grid(images: np.ndarray | torch.Tensor, rows: int, cols: int) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] row by row into one image [rows*H, cols*W, C]; missing cells stay black.

    Raises:
        ValueError: more images than ``rows * cols`` cells.
    """
    images = np.asarray(images)
    n, h, w, c = images.shape
    if n > rows * cols:
        raise InputError(f"{n} images do not fit a {rows}x{cols} grid; choose a larger --grid")
    grid = np.zeros([rows * cols, h, w, c], dtype=images.dtype)
    grid[:n] = images
    return grid.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_image(image: np.ndarray | torch.Tensor, path: str | os.PathLike) -> None:
    """Write one uint8 image [H, W, C] as PNG (or any format Pillow knows from the suffix): C = 1 gives an L, 3 an
    RGB and 4 an RGBA image (alpha kept)."""
    import PIL.Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    PIL.Image.fromarray(image).save(path)


def load_ws(path: str | os.PathLike, num_ws: int | None = None, w_dim: int | None = None) -> torch.Tensor:
    """Read latents from an ``.npz`` (key ``'w'``, as NVlabs' projector writes) or ``.npy`` file.

    Accepts [w_dim] and [num_ws, w_dim] and [N, 1, w_dim] (broadcast to every layer) as well as [N, num_ws, w_dim].

    Returns:
        float32 tensor [N, num_ws, w_dim] on CPU.

    Raises:
        FileNotFoundError, KeyError (no ``'w'`` in the npz), ValueError (shape does not fit the network).
    """
    if not os.path.exists(path):
        raise MissingFileError(f"latent file '{path}' not found")
    data = np.load(path)
    if isinstance(data, np.lib.npyio.NpzFile):
        if "w" not in data:
            raise FileContentError(f"'{path}' has no array 'w' (it has {sorted(data.keys())}); write ws with save_ws")
        data = data["w"]
    w = torch.from_numpy(np.asarray(data, dtype=np.float32))
    if w.ndim == 1:
        w = w[None, None]
    elif w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise InputError(f"'{path}' holds an array of shape {list(w.shape)}; expected [N, num_ws, w_dim]")
    if w_dim is not None and w.shape[2] != w_dim:
        raise InputError(f"'{path}' has w_dim {w.shape[2]} but the network has w_dim {w_dim}: wrong network?")
    if num_ws is not None and w.shape[1] != num_ws:
        if w.shape[1] != 1:
            raise InputError(f"'{path}' has {w.shape[1]} ws per image but the network takes num_ws={num_ws}")
        w = w.repeat(1, num_ws, 1)
    return w


def save_ws(path: str | os.PathLike, ws: torch.Tensor, **extra: np.ndarray) -> None:
    """Write latents [N, num_ws, w_dim] to ``path`` as ``.npz`` with key ``'w'`` (NVlabs' projected_w layout)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, w=ws.detach().cpu().numpy().astype(np.float32), **extra)


def family_name(G: torch.nn.Module) -> str:
    """A readable name of the generator's family for messages: 'StyleGAN2', 'ProGAN', ... (its descriptor's
    ``display_name``; else the class name)."""
    from sgtrain.models.family import family_of

    family = family_of(G)
    return family.display_name if family is not None else type(G).__name__


def require_w(G: torch.nn.Module, what: str) -> None:
    """Raise a clear ValueError when ``G`` has no W space (``mapping``, ``synthesis``, ``num_ws``, ``w_dim``), e.g.
    ``"this network has no W space (ProGAN): style mixing needs a style-based generator (StyleGAN, ...)"``."""
    if all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws", "w_dim")):
        return
    from sgtrain.models.family import registered

    with_w = ", ".join(f.display_name for f in registered().values() if f.w_space)
    raise InputError(f"this network has no W space ({family_name(G)}): {what} needs a style-based generator "
                     f"({with_w})")
