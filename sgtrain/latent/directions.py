"""Latent directions by closed-form factorization (SeFa; Shen & Zhou 2021, "Closed-Form Factorization of Latent
Semantics in GANs", sec. 2.2 and eq. 5).

Every synthesis layer turns w into styles through an affine map ``y = A w + b``. Moving w by ``n`` changes the
styles by ``A n``; the unit directions that change the styles most are the leading eigenvectors of ``A^T A``,
where A stacks the affine weights of the chosen layers (each output row normalised to unit length, as in the
authors' code). Editing adds ``strength * n`` to the ws of those layers only.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

import numpy as np
import torch

from sgtrain.latent.common import make_grid, seeds_to_ws, synthesize, to_uint8

__all__ = ["affine_layers", "sefa", "save_directions", "load_directions", "edit_ws", "direction_sweep"]


def affine_layers(G: torch.nn.Module) -> list[tuple[int, str, torch.Tensor]]:
    """The style (modulation) affine weights of the synthesis network with the ws index that feeds each.

    StyleGAN2 naming (NVlabs, sgtrain): ``b{res}.conv0.affine`` takes ws[2k-5], ``b{res}.conv1.affine`` ws[2k-4],
    ``b{res}.torgb.affine`` ws[2k-3] with k = log2(res). Other synthesis networks: every module named
    ``*affine`` in registration order takes ws[0], ws[1], ...

    Returns:
        [(ws index, module name, weight float32 [out_features, w_dim])], sorted by ws index.

    Raises:
        ValueError: no affine layers found.
    """
    found = []
    generic = []
    for name, module in G.synthesis.named_modules():
        if not name.endswith("affine") or not isinstance(getattr(module, "weight", None), torch.Tensor):
            continue
        weight = module.weight.detach().float()
        generic.append((len(generic), name, weight))
        m = re.fullmatch(r"b(\d+)\.(conv0|conv1|torgb)\.affine", name)
        if m:
            k = int(round(math.log2(int(m.group(1)))))
            found.append(({"conv0": 2 * k - 5, "conv1": 2 * k - 4, "torgb": 2 * k - 3}[m.group(2)], name, weight))
    if not generic:
        raise ValueError("found no modulation affine layers (modules named '*affine') in G.synthesis")
    layers = found if len(found) == len(generic) else generic
    return sorted(layers, key=lambda x: (x[0], x[1]))


def sefa(G: torch.nn.Module, layers: Sequence[int] | None = None) -> dict:
    """Closed-form factorization of the modulation weights of the given ws layers.

    Args:
        G: generator (NVlabs interface).
        layers: ws indices whose affine weights to factorize; None = all.

    Returns:
        dict with ``directions`` float32 [w_dim, w_dim] (row k = k-th unit direction, strongest first),
        ``eigenvalues`` float32 [w_dim] (descending) and ``layers`` (the ws indices, to edit with).

    Raises:
        ValueError: the chosen layers have no affine weights.
    """
    all_layers = affine_layers(G)
    chosen = sorted(set(range(G.num_ws) if layers is None else layers))
    weights = [w for idx, _, w in all_layers if idx in chosen]
    if not weights:
        raise ValueError(f"no modulation layers feed ws {chosen}; this network has ws 0-{G.num_ws - 1}")
    A = torch.cat(weights).double()  # [sum out_features, w_dim]
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)
    evals, evecs = torch.linalg.eigh(A.T @ A)
    order = torch.argsort(evals, descending=True)
    return dict(directions=evecs[:, order].T.float().contiguous(), eigenvalues=evals[order].float(), layers=chosen)


def save_directions(path: str | os.PathLike, result: dict) -> None:
    """Write a :func:`sefa` result to ``.npz`` (keys directions, eigenvalues, layers)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, directions=result["directions"].cpu().numpy(), eigenvalues=result["eigenvalues"].cpu().numpy(),
             layers=np.asarray(result["layers"], dtype=np.int64))


def load_directions(path: str | os.PathLike) -> dict:
    """Read directions written by :func:`save_directions` (tensors on CPU).

    Raises:
        FileNotFoundError, KeyError (not a directions file).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"directions file '{path}' not found; write one with sgtrain-directions")
    data = np.load(path)
    if "directions" not in data:
        raise KeyError(f"'{path}' has no 'directions' array; it is not a file written by sgtrain-directions")
    return dict(directions=torch.from_numpy(data["directions"]), eigenvalues=torch.from_numpy(data["eigenvalues"]),
                layers=[int(i) for i in data["layers"]])


def edit_ws(ws: torch.Tensor, direction: torch.Tensor, strength: float, layers: Sequence[int]) -> torch.Tensor:
    """``ws`` with ``strength * direction`` added to the given layers.

    Args:
        ws: float32 [N, num_ws, w_dim]. direction: float32 [w_dim] (unit length from :func:`sefa`).

    Returns:
        float32 [N, num_ws, w_dim] (a new tensor).
    """
    out = ws.clone()
    idx = list(layers)
    out[:, idx] += strength * direction.to(ws)
    return out


@torch.no_grad()
def direction_sweep(
    G: torch.nn.Module,
    seeds: Sequence[int],
    directions: torch.Tensor,
    layers: Sequence[int],
    strengths: Sequence[float],
    truncation_psi: float = 0.7,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> dict:
    """Render each seed moved along each direction at each strength.

    Args:
        directions: float32 [D, w_dim].
        strengths: S values (units of w; SeFa's directions have unit length).

    Returns:
        dict with ``images`` uint8 [D, len(seeds), S, H, W, C] and ``grids``: one uint8 image per direction,
        rows = seeds, columns = strengths.
    """
    ws = seeds_to_ws(G, seeds, truncation_psi, truncation_cutoff, class_idx, batch_size)
    D, S = directions.shape[0], len(strengths)
    edited = torch.stack([torch.stack([edit_ws(ws, directions[d], s, layers) for s in strengths], dim=1)
                          for d in range(D)])  # [D, N, S, num_ws, w_dim]
    imgs = to_uint8(synthesize(G, edited.reshape(-1, G.num_ws, G.w_dim), noise_mode, batch_size))
    imgs = imgs.reshape(D, len(seeds), S, *imgs.shape[1:])
    grids = [make_grid(imgs[d].reshape(-1, *imgs.shape[3:]).numpy(), len(seeds), S) for d in range(D)]
    return dict(images=imgs, grids=grids)
