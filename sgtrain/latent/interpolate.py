"""Latent interpolation and interpolation videos (NVlabs' gen_video.py; slerp after White 2016,
"Sampling Generative Networks"; Catmull-Rom splines after Catmull & Rom 1974).

Keyframes are the latents of seeds, in z (before the mapping network) or w (after it). With ``loop`` the path
returns to the first keyframe, and the video can repeat seamlessly. Networks without W space (ProGAN, DCGAN) walk z
only and render ``G(z, c)``; W paths and truncation need a style-based generator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from sgtrain.errors import InputError
from sgtrain.latent.common import make_grid, make_labels, map_z, seeds_to_ws, seeds_to_z, synthesize, to_uint8
from sgtrain.latent.studio import capabilities, generate_z_images, require_w
from sgtrain.latent.video import VideoWriter

__all__ = ["INTERPOLATIONS", "lerp", "slerp", "catmull_rom", "interpolate_keyframes", "z_path", "latent_path",
           "VideoWriter", "interpolation_video"]

INTERPOLATIONS = ("lerp", "slerp", "cubic")


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``a + t (b - a)`` written as ``(1-t) a + t b`` so that t=0 gives a and t=1 gives b."""
    return a * (1 - t) + b * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the last dimension (White 2016, after Shoemake 1985).

    ``sin((1-t) O) / sin O * a + sin(t O) / sin O * b`` with O the angle between a and b. The vectors need not have
    unit length (their lengths are interpolated too); t=0 gives a and t=1 gives b exactly. Falls back to
    :func:`lerp` where a and b are (anti)parallel.

    Args:
        a, b: float tensors [..., D].
        t: scalar or tensor broadcastable to [..., 1].

    Returns:
        float tensor [..., D].
    """
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim > 0:
        t = t.reshape(*t.shape, *([1] * max(0, a.ndim - t.ndim)))
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    safe = so.abs() > eps
    so_safe = torch.where(safe, so, torch.ones_like(so))
    out = torch.sin((1 - t) * omega) / so_safe * a + torch.sin(t * omega) / so_safe * b
    return torch.where(safe, out, lerp(a, b, t))


def catmull_rom(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor,
                t: float | torch.Tensor) -> torch.Tensor:
    """Uniform Catmull-Rom spline between p1 (t=0) and p2 (t=1), with neighbours p0 and p3.

    A C1 cubic through every keyframe; no scipy needed. Shapes broadcast.
    """
    t2 = t * t
    t3 = t2 * t
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (3 * p1 - p0 - 3 * p2 + p3) * t3)


def interpolate_keyframes(keys: torch.Tensor, num_frames: int, kind: str = "slerp", loop: bool = False) -> torch.Tensor:
    """Sample ``num_frames`` points on a path through keyframes.

    Without ``loop`` the first frame is keys[0] and the last is keys[-1], keyframes equally spaced in time. With
    ``loop`` the path runs keys[0] .. keys[-1] and back to keys[0]; the last frame stops one step before keys[0].

    Args:
        keys: float tensor [K, ...] (K >= 2 without loop, K >= 1 with loop; vectors on the last dimension).
        num_frames: number of frames >= 1 (>= 2 without loop).
        kind: ``'lerp'``, ``'slerp'`` or ``'cubic'`` (Catmull-Rom).
        loop: close the path.

    Returns:
        float tensor [num_frames, ...].

    Raises:
        ValueError: unknown kind, too few keyframes or frames.
    """
    if kind not in INTERPOLATIONS:
        raise InputError(f"interpolation '{kind}' unknown: use one of {', '.join(INTERPOLATIONS)}")
    K = keys.shape[0]
    if K < (1 if loop else 2):
        raise InputError(f"need at least {'1 seed' if loop else '2 seeds'} to interpolate, got {K}")
    if num_frames < (1 if loop else 2):
        raise InputError(f"need at least 2 frames, got {num_frames}; raise --fps or --seconds")
    segments = K if loop else K - 1
    frames = []
    for f in range(num_frames):
        span = num_frames if loop else num_frames - 1
        i, rem = divmod(f * segments, span)
        t = rem / span
        if not loop and i == segments:
            i, t = segments - 1, 1.0
        if loop:
            p0, p1, p2, p3 = (keys[(i + d) % K] for d in (-1, 0, 1, 2))
        else:
            p0, p1, p2, p3 = (keys[min(max(i + d, 0), K - 1)] for d in (-1, 0, 1, 2))
        if kind == "lerp":
            frames.append(lerp(p1, p2, t))
        elif kind == "slerp":
            frames.append(slerp(p1, p2, t))
        else:
            frames.append(catmull_rom(p0, p1, p2, p3, t))
    return torch.stack(frames)


def z_path(
    G: torch.nn.Module,
    seeds: Sequence[int],
    num_frames: int,
    kind: str = "slerp",
    loop: bool = False,
    cells: int = 1,
) -> torch.Tensor:
    """The z of every frame of an interpolation video (any family: z is what every generator takes).

    Args:
        seeds: keyframe seeds; with ``cells`` > 1 the list is cut into ``cells`` equal parts, one per grid cell
            (cell j gets seeds[j*K:(j+1)*K], as in NVlabs' gen_video.py).

    Returns:
        float32 [num_frames, cells, z_dim] on G's device.

    Raises:
        ValueError: seeds not divisible among the cells, unknown kind, too few seeds or frames.
    """
    if len(seeds) % cells != 0:
        raise InputError(f"{len(seeds)} seeds cannot be shared by {cells} grid cells; give a multiple of {cells}")
    K = len(seeds) // cells
    z = seeds_to_z(seeds, G.z_dim).to(next(G.parameters()).device).reshape(cells, K, G.z_dim).transpose(0, 1)
    return interpolate_keyframes(z, num_frames, kind, loop)


@torch.no_grad()
def latent_path(
    G: torch.nn.Module,
    seeds: Sequence[int],
    num_frames: int,
    space: str = "z",
    kind: str = "slerp",
    loop: bool = False,
    cells: int = 1,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """The ws of every frame of an interpolation video.

    Args:
        seeds: keyframe seeds; with ``cells`` > 1 the list is cut into ``cells`` equal parts, one per grid cell
            (cell j gets seeds[j*K:(j+1)*K], as in NVlabs' gen_video.py).
        space: ``'z'`` interpolates z and maps every frame (truncation per frame); ``'w'`` maps the keyframes and
            interpolates w.

    Returns:
        float32 [num_frames, cells, num_ws, w_dim] on G's device (z-only networks: see :func:`z_path`).

    Raises:
        ValueError: seeds not divisible among the cells, unknown space, a network without W space.
    """
    if space not in ("z", "w"):
        raise InputError(f"space '{space}' unknown: use z or w")
    require_w(G, "a path of W latents")
    if len(seeds) % cells != 0:
        raise InputError(f"{len(seeds)} seeds cannot be shared by {cells} grid cells; give a multiple of {cells}")
    K = len(seeds) // cells
    device = next(G.parameters()).device
    if space == "w":
        keys = seeds_to_ws(G, seeds, truncation_psi, truncation_cutoff, class_idx, batch_size)
        keys = keys.reshape(cells, K, G.num_ws, G.w_dim).transpose(0, 1)
        return interpolate_keyframes(keys, num_frames, kind, loop)
    zs = z_path(G, seeds, num_frames, kind, loop, cells).reshape(-1, G.z_dim)
    c = make_labels(G, zs.shape[0], class_idx, device)
    ws = map_z(G, zs, c, truncation_psi, truncation_cutoff, batch_size)
    return ws.reshape(num_frames, cells, G.num_ws, G.w_dim)


@torch.no_grad()
def interpolation_video(
    G: torch.nn.Module,
    seeds: Sequence[int],
    output: str | os.PathLike,
    space: str = "z",
    kind: str = "slerp",
    loop: bool = False,
    grid: tuple[int, int] = (1, 1),
    fps: float = 30,
    seconds: float = 5,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> int:
    """Render an interpolation video through the seeds' latents and write it to ``output`` (.mp4 or .gif).

    Args:
        grid: (rows, cols); each cell walks its own share of the seeds (see :func:`latent_path`).
        fps, seconds: frame rate and length; the video has ``round(fps * seconds)`` frames.

    A network without W space (ProGAN, DCGAN) walks z (``space='z'``, psi 1) and renders ``G(z, c)``.
    StyleGAN3's input transform (translate / rotate) applies as set on ``G.synthesis.input.transform``; see
    :func:`sgtrain.latent.studio.render_controls`.

    Returns:
        The number of frames written.

    Raises:
        ValueError: ``space='w'`` or psi != 1 for a network without W space, and the errors of :func:`latent_path`.
    """
    rows, cols = grid
    num_frames = max(2, int(round(fps * seconds)))
    if space not in ("z", "w"):
        raise InputError(f"space '{space}' unknown: use z or w")
    if space == "w":
        require_w(G, "interpolation in W (space w)")
    if truncation_psi != 1:
        require_w(G, "the truncation trick (psi != 1)")
    if capabilities(G).w_space:
        path = latent_path(G, seeds, num_frames, space, kind, loop, rows * cols, truncation_psi, truncation_cutoff,
                           class_idx, batch_size)
    else:
        path = z_path(G, seeds, num_frames, kind, loop, rows * cols)
    per_call = max(1, batch_size // (rows * cols))
    with VideoWriter(output, fps) as writer:
        for f in range(0, num_frames, per_call):
            chunk = path[f:f + per_call]
            if chunk.ndim == 3:  # z [frames, cells, z_dim]
                imgs = generate_z_images(G, chunk.reshape(-1, G.z_dim), class_idx, batch_size)
            else:
                imgs = to_uint8(synthesize(G, chunk.reshape(-1, G.num_ws, G.w_dim), noise_mode, batch_size))
            imgs = imgs.reshape(chunk.shape[0], rows * cols, *imgs.shape[1:]).numpy()
            for frame in imgs:
                writer.append(make_grid(frame, rows, cols))
    return num_frames
