"""Blending latents layer range by layer range, or averaging them.

Taking some layers' ws from one image and the rest from another is style mixing (Karras et al. 2019, sec. 3.1)
applied to any latents, e.g. projected ones (Abdal et al. 2019, Image2StyleGAN, sec. 6 "style transfer"):
coarse layers carry pose and shape, fine layers colour and texture.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence

import torch

from sgtrain.errors import InputError
from sgtrain.latent.common import load_ws, seeds_to_ws
from sgtrain.latent.mixing import STYLE_PRESETS, style_layers
from sgtrain.latent.studio import require_w

__all__ = ["source_names", "load_sources", "parse_layer_spec", "blend_ws", "mean_ws"]


def source_names(n: int) -> list[str]:
    """Names of ``n`` sources in the order given: a, b, c, ... z, then s26, s27, ..."""
    return [string.ascii_lowercase[i] if i < 26 else f"s{i}" for i in range(n)]


def load_sources(
    G: torch.nn.Module,
    items: str | Sequence[str],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
) -> dict[str, torch.Tensor]:
    """Latents of the sources named in ``items``: each is an ``.npz``/``.npy`` file of ws or an integer seed.

    Args:
        items: ``'a.npz,b.npz'``, ``'85,100'``, ``'proj/projected_w.npz,42'`` or a list of such strings.

    Returns:
        {name: float32 [N, num_ws, w_dim]} with names a, b, c ... in order, on G's device. A seed gives N = 1.

    Raises:
        ValueError: an item is neither an existing file nor an integer; a network without W space (ProGAN, DCGAN).
        FileNotFoundError: a missing file.
    """
    require_w(G, "blending latents")
    if isinstance(items, str):
        items = [s.strip() for s in items.split(",") if s.strip()]
    device = next(G.parameters()).device
    out = {}
    for name, item in zip(source_names(len(items)), items):
        if re.fullmatch(r"\d+", item) and not os.path.exists(item):
            out[name] = seeds_to_ws(G, [int(item)], truncation_psi, truncation_cutoff, class_idx)
        elif os.path.splitext(item)[1].lower() in (".npz", ".npy") or os.path.exists(item):
            out[name] = load_ws(item, G.num_ws, G.w_dim).to(device)
        else:
            raise InputError(f"source '{item}' is neither a seed nor a .npz/.npy latent file")
    return out


def parse_layer_spec(spec: str, names: Sequence[str], num_ws: int, img_resolution: int | None = None) -> list[str]:
    """Which source each layer takes, from ``'0-6:a,7-15:b'`` (``end`` = num_ws - 1; single layers allowed) or the
    style-mixing presets ``'coarse:a,middle:b,fine:c'`` (mixed with ranges as needed; the layers of each preset are
    those of :func:`sgtrain.latent.mixing.style_layers` for ``num_ws`` and ``img_resolution``).

    Returns:
        A list of num_ws source names, one per layer.

    Raises:
        ValueError: unparsable item, unknown source name, layer out of range, a layer named twice or a layer that
            no item covers (the message lists them).
    """
    owner: list[str | None] = [None] * num_ws
    presets = "|".join(STYLE_PRESETS)
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(rf"(?:({presets})|(\d+|end)\s*(?:-\s*(\d+|end))?)\s*:\s*(\w+)", part)
        if not m:
            raise InputError(f"cannot parse '{part}' in --layers '{spec}': write ranges like '0-6:a,7-end:b' or "
                             "presets like 'coarse:a,middle:b,fine:c'")
        name = m.group(4)
        if name not in names:
            raise InputError(f"--layers names source '{name}' but the sources are {', '.join(names)}")
        if m.group(1):
            layers = style_layers(m.group(1), num_ws, img_resolution)
        else:
            lo = num_ws - 1 if m.group(2) == "end" else int(m.group(2))
            hi = lo if m.group(3) is None else (num_ws - 1 if m.group(3) == "end" else int(m.group(3)))
            if lo > hi or hi >= num_ws:
                raise InputError(f"layers {lo}-{hi} are not a range within 0-{num_ws - 1} (num_ws={num_ws})")
            layers = list(range(lo, hi + 1))
        for i in layers:
            if owner[i] is not None:
                raise InputError(f"layer {i} is given twice in --layers '{spec}'")
            owner[i] = name
    missing = [i for i, o in enumerate(owner) if o is None]
    if missing:
        raise InputError(f"--layers '{spec}' leaves layers {missing} without a source; cover 0-{num_ws - 1}")
    return owner  # type: ignore[return-value]


def _broadcast(sources: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = max(v.shape[0] for v in sources.values())
    for k, v in sources.items():
        if v.shape[0] not in (1, n):
            raise InputError(f"source {k} holds {v.shape[0]} latents and another holds {n}; give 1 or {n} each")
    return {k: v.expand(n, *v.shape[1:]) for k, v in sources.items()}


def blend_ws(sources: dict[str, torch.Tensor], owner: Sequence[str]) -> torch.Tensor:
    """Take layer i from source ``owner[i]``.

    Args:
        sources: {name: float32 [N or 1, num_ws, w_dim]}.
        owner: source name per layer (see :func:`parse_layer_spec`).

    Returns:
        float32 [N, num_ws, w_dim].
    """
    sources = _broadcast(sources)
    return torch.stack([sources[name][:, i] for i, name in enumerate(owner)], dim=1)


def mean_ws(sources: dict[str, torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """(Weighted) average of the sources in W+, layer by layer; weights are normalised to sum 1.

    Returns:
        float32 [N, num_ws, w_dim].
    """
    sources = _broadcast(sources)
    stack = torch.stack(list(sources.values()))
    wt = torch.ones(len(sources)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if wt.numel() != len(sources):
        raise InputError(f"{wt.numel()} weights for {len(sources)} sources")
    wt = (wt / wt.sum()).to(stack)
    return (stack * wt.view(-1, 1, 1, 1)).sum(0)
