"""Style mixing (Karras et al. 2019, StyleGAN, sec. 3.1 and fig. 3; NVlabs' style_mixing.py).

Each row image takes the column image's w in the chosen layers and keeps its own w elsewhere.

Presets. The paper's 1024x1024 network has num_ws = 18 and copies
``coarse`` = layers 0-3 (resolutions 4-8), ``middle`` = 4-7 (16-32), ``fine`` = 8-17 (64-1024).
Layer i of a StyleGAN2 synthesis network (num_ws = 2 * log2(resolution) - 2) belongs to resolution level
``i // 2`` (level 0 = 4x4, level k = 2^(k+2)). For networks of 64x64 and larger we keep the paper's resolution
bands (coarse 4-8, middle 16-32, fine 64 and up), so a 256x256 network (num_ws 14) mixes coarse 0-3, middle 4-7,
fine 8-13. Below 64x64 the paper's fine band is empty, so the resolution levels are split into three consecutive
groups as even as possible, larger groups first: 32x32 (num_ws 8) gives coarse 0-3, middle 4-5, fine 6-7;
16x16 (num_ws 6) gives 0-1, 2-3, 4-5. Networks whose num_ws does not follow the StyleGAN2 rule (e.g. StyleGAN3)
split the num_ws layers themselves into three such groups.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch

from sgtrain.errors import InputError
from sgtrain.latent.common import make_grid, seeds_to_ws, synthesize, to_uint8
from sgtrain.latent.studio import require_w

__all__ = ["STYLE_PRESETS", "style_layers", "mix_ws", "style_mixing_grid", "mixing_grid_ws"]

STYLE_PRESETS = ("coarse", "middle", "fine")


def _split3(n: int) -> list[range]:
    sizes = [len(a) for a in np.array_split(np.arange(n), 3)]
    starts = np.cumsum([0] + sizes)
    return [range(int(starts[k]), int(starts[k + 1])) for k in range(3)]


def style_layers(spec: str | Sequence[int], num_ws: int, img_resolution: int | None = None) -> list[int]:
    """Layer indices that a style preset or range selects.

    Args:
        spec: ``'coarse'``, ``'middle'``, ``'fine'``, a range/list like ``'0-6'`` / ``'0,2,4-5'`` (``'end'`` means
            num_ws - 1, e.g. ``'8-end'``), or a list of ints.
        num_ws: the network's number of intermediate latents.
        img_resolution: output resolution; needed for the presets (see the module docstring for the mapping).

    Returns:
        Sorted unique layer indices in [0, num_ws).

    Raises:
        ValueError: unknown preset, an index out of range, or a preset that is empty for this network.
    """
    if not isinstance(spec, str):
        layers = sorted({int(i) for i in spec})
    elif spec in STYLE_PRESETS:
        k = STYLE_PRESETS.index(spec)
        log2 = int(round(math.log2(img_resolution))) if img_resolution else 0
        levels = log2 - 1
        if img_resolution and num_ws == 2 * levels:
            if img_resolution >= 64:
                bands = [range(0, 2), range(2, 4), range(4, levels)]  # 4-8, 16-32, 64+
            else:
                bands = _split3(levels)
            layers = [i for i in range(num_ws) if i // 2 in bands[k]]
        else:
            layers = list(_split3(num_ws)[k])
        if not layers:
            raise InputError(f"style preset '{spec}' selects no layers of this network (num_ws={num_ws}); "
                             "give a layer range such as '0-3'")
    else:
        layers = []
        for part in spec.replace("end", str(num_ws - 1)).split(","):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not m:
                raise InputError(f"cannot parse styles '{spec}': use coarse, middle, fine or a range like '0-6'")
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
            if max(lo, hi) >= num_ws:  # checked before the range is built: '0-9999999' allocates nothing
                raise InputError(f"styles '{part.strip()}' out of range: this network has num_ws={num_ws} "
                                 f"(layers 0-{num_ws - 1})")
            layers.extend(range(lo, hi + 1))
        layers = sorted(set(layers))
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise InputError(f"layers {bad[:8]}{' ...' if len(bad) > 8 else ''} out of range: this network has "
                         f"num_ws={num_ws} (layers 0-{num_ws - 1})")
    return layers


def mix_ws(row_ws: torch.Tensor, col_ws: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """All row/column combinations: row w everywhere except the column's w in ``layers``.

    Args:
        row_ws: float32 [R, num_ws, w_dim].
        col_ws: float32 [C, num_ws, w_dim].
        layers: layer indices taken from the column.

    Returns:
        float32 [R, C, num_ws, w_dim].
    """
    R, C = row_ws.shape[0], col_ws.shape[0]
    out = row_ws[:, None].expand(R, C, *row_ws.shape[1:]).clone()
    idx = list(layers)
    out[:, :, idx] = col_ws[None, :, idx].expand(R, C, len(idx), row_ws.shape[2])
    return out


@torch.no_grad()
def style_mixing_grid(
    G: torch.nn.Module,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    styles: str | Sequence[int] = "coarse",
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> dict:
    """The style-mixing figure: seed images on the top row and left column, mixtures inside.

    Identical latents are rendered once, so a row seed equal to a column seed reproduces its unmixed image
    exactly, whatever the batch composition.

    Returns:
        dict with ``rows`` uint8 [R, H, W, C], ``cols`` uint8 [C, H, W, C], ``mixed`` uint8 [R, C, H, W, C],
        ``grid`` uint8 [(R+1)*H, (C+1)*W, C] (black top-left cell) and ``layers`` (the layer indices mixed).

    Raises:
        ValueError: a network without W space (ProGAN, DCGAN), and the errors of :func:`style_layers`.
    """
    require_w(G, "style mixing")
    layers = style_layers(styles, G.num_ws, G.img_resolution)
    row_ws = seeds_to_ws(G, row_seeds, truncation_psi, truncation_cutoff, class_idx, batch_size)
    col_ws = seeds_to_ws(G, col_seeds, truncation_psi, truncation_cutoff, class_idx, batch_size)
    return mixing_grid_ws(G, row_ws, col_ws, layers, noise_mode, batch_size)


@torch.no_grad()
def mixing_grid_ws(
    G: torch.nn.Module,
    row_ws: torch.Tensor,
    col_ws: torch.Tensor,
    layers: Sequence[int],
    noise_mode: str = "const",
    batch_size: int = 16,
) -> dict:
    """The style-mixing figure of any latents (seeds' ws, projected ws): :func:`style_mixing_grid` after the mapping.

    Args:
        row_ws: float32 [R, num_ws, w_dim]. col_ws: float32 [C, num_ws, w_dim]. layers: ws indices taken from the
            column (see :func:`style_layers`).

    Returns:
        The dict of :func:`style_mixing_grid`. The images depend only on the inputs and ``batch_size`` (identical
        latents are rendered once, in a fixed order), so the same call gives the same bytes as ``sgtrain-mix``.
    """
    require_w(G, "style mixing")
    R, C = row_ws.shape[0], col_ws.shape[0]
    mixed = mix_ws(row_ws, col_ws, layers).reshape(R * C, G.num_ws, G.w_dim)
    all_ws = torch.cat([row_ws, col_ws, mixed])
    uniq, inverse = torch.unique(all_ws.flatten(1), dim=0, return_inverse=True)
    images = to_uint8(synthesize(G, uniq.reshape(-1, G.num_ws, G.w_dim), noise_mode, batch_size))[inverse.cpu()]
    rows, cols, cells = images[:R], images[R:R + C], images[R + C:]
    blank = torch.zeros_like(images[:1])
    table = [blank, cols] + [torch.cat([rows[r:r + 1], cells[r * C:(r + 1) * C]]) for r in range(R)]
    grid = make_grid(torch.cat(table).numpy(), R + 1, C + 1)
    return dict(rows=rows, cols=cols, mixed=cells.reshape(R, C, *cells.shape[1:]), grid=grid, layers=layers)
