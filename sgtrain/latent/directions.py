"""Latent directions: closed-form (SeFa) and supervised (InterFaceGAN's SVM boundary, logistic regression).

SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs", sec. 2.2 and eq. 5). Every
synthesis layer turns w into styles through an affine map ``y = A w + b``. Moving w by ``n`` changes the styles by
``A n``; the unit directions that change the styles most are the leading eigenvectors of ``A^T A``, where A stacks
the affine weights of the chosen layers (each output row normalised to unit length, as in the authors' code).
Editing adds ``strength * n`` to the ws of those layers only.

Supervised directions (Shen et al. 2020, "Interpreting the Latent Space of GANs for Semantic Face Editing",
InterFaceGAN, sec. 2.1-2.2 and 3.1). Latents of many samples get an attribute score (from a classifier, a CSV, the
image itself or the class label of a conditional network). A linear boundary separates the samples with the highest
scores from those with the lowest (a linear SVM on the top and bottom ``ratio`` of the samples, as the authors do;
or logistic regression on all of them, as in Puzer's stylegan-encoder notebook); its unit normal ``n`` is the
direction, and ``latent + strength * n`` moves a sample across the attribute. Conditional manipulation (sec. 2.2):
to change one attribute without another, remove from ``n`` its component along the other attributes' normals,
``n - (n . m) m`` for one of them, the projection onto the orthogonal complement of their span for several.
Fitting works in Z (before the mapping network; every network has it), W (one w) or W+ (num_ws ws, flattened).

A direction is one :class:`Direction` (vector, space, layers, name, method, accuracy, meta): :func:`load_directions`
reads every direction file sgtrain writes or wrote (a fitted direction, or the K rows of a SeFa file),
:meth:`Direction.save` writes one, :meth:`Direction.apply` is the one place a direction moves latents.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sgtrain.core.batches import in_batches
from sgtrain.errors import FileContentError, InputError, MissingFileError
from sgtrain.latent.common import load_ws, make_grid, map_z, seeds_to_ws, seeds_to_z, synthesize, to_uint8

__all__ = [
    "Direction", "load_directions", "load_direction", "sefa_directions", "save_directions",
    "affine_layers", "sefa", "direction_sweep",
    "SPACES", "IMAGE_SCORES", "DIRECTION_FORMAT", "latent_spaces", "image_scores", "seed_classes", "seed_latents",
    "latents_to_ws", "render_latents", "read_scores_csv", "table_latents", "fit_direction", "condition_direction",
    "edited_ws", "render_direction", "direction_video",
]


def affine_layers(G: torch.nn.Module) -> list[tuple[int, str, torch.Tensor]]:
    """The style (modulation) affine weights of the synthesis network with the ws index that feeds each.

    StyleGAN2 naming (NVlabs, sgtrain): ``b{res}.conv0.affine`` takes ws[2k-5], ``b{res}.conv1.affine`` ws[2k-4],
    ``b{res}.torgb.affine`` ws[2k-3] with k = log2(res). Other synthesis networks (StyleGAN, StyleGAN3): every module
    named ``*affine`` in registration order takes ws[0], ws[1], ... StyleGAN3's ``input.affine`` (ws[0]) is left
    out: it maps w to the 4 parameters of the Fourier features' rotation and translation, not to a style, so the
    list starts at ws[1] there.

    Returns:
        [(ws index, module name, weight float32 [out_features, w_dim])], sorted by ws index.

    Raises:
        ValueError: no affine layers found (e.g. a network without W space: ProGAN, DCGAN).
    """
    if not hasattr(G, "synthesis"):
        from sgtrain.latent.common import require_w

        require_w(G, "SeFa (closed-form directions of the style affine layers)")
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
    layers = found if len(found) == len(generic) else generic
    layers = [item for item in layers if item[1] != "input.affine"]  # StyleGAN3: the input transform, not a style
    if not layers:
        raise InputError("found no modulation affine layers (modules named '*affine') in G.synthesis")
    return sorted(layers, key=lambda x: (x[0], x[1]))


def sefa(G: torch.nn.Module, layers: Sequence[int] | None = None) -> dict:
    """Closed-form factorization of the modulation weights of the given ws layers.

    Args:
        G: generator (NVlabs interface).
        layers: ws indices whose affine weights to factorize; None = every ws index that feeds a style (all of them
            for StyleGAN and StyleGAN2; 1 to num_ws - 1 for StyleGAN3, whose ws[0] drives the input transform).

    Returns:
        dict with ``directions`` float32 [w_dim, w_dim] (row k = k-th unit direction, strongest first),
        ``eigenvalues`` float32 [w_dim] (descending) and ``layers`` (the chosen ws indices that feed a style, to
        edit with).

    Raises:
        ValueError: the chosen layers have no affine weights; a network without W space.
    """
    all_layers = affine_layers(G)
    styled = sorted({idx for idx, _, _ in all_layers})
    chosen = [i for i in (styled if layers is None else sorted(set(layers))) if i in styled]
    weights = [w for idx, _, w in all_layers if idx in chosen]
    if not weights:
        raise InputError(f"no modulation layers feed ws {sorted(set(layers or []))}; this network's styles take ws "
                         f"{styled}")
    A = torch.cat(weights).double()  # [sum out_features, w_dim]
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)
    evals, evecs = torch.linalg.eigh(A.T @ A)
    order = torch.argsort(evals, descending=True)
    return dict(directions=evecs[:, order].T.float().contiguous(), eigenvalues=evals[order].float(), layers=chosen)


def save_directions(path: str | os.PathLike, result: dict) -> None:
    """Write a :func:`sefa` result as a SeFa direction file (``.npz``, atomically; no pickles).

    Keys: ``directions`` float32 [K, w_dim] (row k = k-th unit direction, strongest first), ``eigenvalues`` float32
    [K], ``layers`` int64 [L] (the ws indices the factorized affines feed). :func:`load_directions` reads it back as
    K :class:`Direction` objects in W.
    """
    if not str(path).endswith(".npz"):  # where np.savez(path) put it before
        path = f"{path}.npz"
    _write_npz(path, dict(directions=result["directions"].cpu().numpy(),
                          eigenvalues=result["eigenvalues"].cpu().numpy(),
                          layers=np.asarray(result["layers"], dtype=np.int64)))


def _write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """The one writer of direction files: ``np.savez`` through :func:`sgtrain.io.atomic.atomic_write`."""
    from sgtrain.io.atomic import atomic_write

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


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
    rows = [Direction(directions[d], "w", layers) for d in range(D)]
    edited = torch.stack([torch.stack([row.apply(ws, s) for s in strengths], dim=1)
                          for row in rows])  # [D, N, S, num_ws, w_dim]
    imgs = to_uint8(synthesize(G, edited.reshape(-1, G.num_ws, G.w_dim), noise_mode, batch_size))
    imgs = imgs.reshape(D, len(seeds), S, *imgs.shape[1:])
    grids = [make_grid(imgs[d].reshape(-1, *imgs.shape[3:]).numpy(), len(seeds), S) for d in range(D)]
    return dict(images=imgs, grids=grids)


# ----------------------------------------------------------------------------------------------------------------
# Supervised directions (InterFaceGAN, logistic regression) and direction files.

SPACES = ("z", "w", "w+")
IMAGE_SCORES = ("brightness", "redness", "left-right", "contrast")
DIRECTION_FORMAT = "sgtrain-direction"
DIRECTION_FORMAT_VERSION = 1


def latent_spaces(G: torch.nn.Module) -> tuple[str, ...]:
    """The latent spaces a generator exposes: ``('z', 'w', 'w+')`` with ``G.mapping``, ``G.synthesis`` and
    ``G.num_ws`` (StyleGAN 1/2/3), ``('z',)`` otherwise (ProGAN, DCGAN: the image is ``G(z, c)``)."""
    if all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws", "w_dim")):
        return SPACES
    return ("z",)


def _check_space(G: torch.nn.Module, space: str) -> None:
    if space not in SPACES:
        raise InputError(f"space '{space}' unknown: use z, w or w+")
    if space not in latent_spaces(G):
        from sgtrain.latent.common import family_name

        raise InputError(f"this network ({family_name(G)}) has no mapping network, so no W / W+ space: "
                         "use space z")


def image_scores(images: torch.Tensor, name: str) -> torch.Tensor:
    """Attribute scores computed from the images themselves (for demos and tests; no classifier needed).

    Args:
        images: float [N, C, H, W] in [-1, 1] (network output).
        name: ``'brightness'`` (mean of all pixels, mapped to [0, 1]), ``'redness'`` (mean red minus the mean of
            green and blue, in [-1, 1]; RGB only), ``'left-right'`` (brightness of the left half minus the right half,
            in [-1, 1]) or ``'contrast'`` (standard deviation of the grey image, in [0, 1]).

    Returns:
        float32 [N].

    Raises:
        ValueError: unknown name, or redness of a non-RGB image.
    """
    x = (images.detach().float() + 1) / 2
    if name == "brightness":
        return x.mean([1, 2, 3])
    if name == "redness":
        if x.shape[1] != 3:
            raise InputError(f"redness needs RGB images; these have {x.shape[1]} channel(s)")
        return x[:, 0].mean([1, 2]) - 0.5 * (x[:, 1] + x[:, 2]).mean([1, 2])
    if name == "left-right":
        half = x.shape[3] // 2
        return x[..., :half].mean([1, 2, 3]) - x[..., x.shape[3] - half:].mean([1, 2, 3])
    if name == "contrast":
        return x.mean(1).flatten(1).std(1)
    raise InputError(f"image score '{name}' unknown: use one of {', '.join(IMAGE_SCORES)}")


def seed_classes(seeds: Sequence[int], c_dim: int) -> list[int]:
    """The class of each seed when sampling a conditional network over all classes: ``seed % c_dim``."""
    if c_dim < 1:
        raise InputError("this network is unconditional (c_dim=0): it has no class labels to fit")
    return [int(s) % c_dim for s in seeds]


def _labels(G: torch.nn.Module, n: int, class_idx: int | None, classes: Sequence[int] | None,
            device: torch.device) -> torch.Tensor:
    from sgtrain.latent.common import make_labels

    if classes is None:
        return make_labels(G, n, class_idx, device)
    if G.c_dim == 0:
        raise InputError("classes given for an unconditional network (c_dim=0)")
    c = torch.zeros([n, G.c_dim], device=device)
    c[torch.arange(n), torch.as_tensor(list(classes), dtype=torch.long)] = 1
    return c


@torch.no_grad()
def seed_latents(
    G: torch.nn.Module,
    seeds: Sequence[int],
    space: str,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    classes: Sequence[int] | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Latents of seeds in the space where a direction is fitted or applied.

    Args:
        space: ``'z'`` (z as NVlabs draws it), ``'w'`` (ws[:, 0] after the mapping with truncation) or ``'w+'``.
        class_idx: one class for all seeds (conditional networks). classes: one class per seed instead (see
            :func:`seed_classes`); it wins over class_idx.

    Returns:
        float32 [N, z_dim], [N, w_dim] or [N, num_ws, w_dim], on G's device (z on CPU).

    Raises:
        ValueError: unknown space, W for a network without a mapping network, class errors.
    """
    _check_space(G, space)
    if space == "z":
        if classes is None:
            _labels(G, 1, class_idx, None, torch.device("cpu"))  # class errors now, not at render time
        return seeds_to_z(seeds, G.z_dim)
    device = next(G.parameters()).device
    z = seeds_to_z(seeds, G.z_dim).to(device)
    c = _labels(G, len(seeds), class_idx, classes, device)
    ws = map_z(G, z, c, truncation_psi, truncation_cutoff, batch_size)
    return ws[:, 0] if space == "w" else ws


@torch.no_grad()
def latents_to_ws(
    G: torch.nn.Module,
    latents: torch.Tensor,
    space: str,
    c: torch.Tensor | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Latents of a space to the ws [N, num_ws, w_dim] that ``G.synthesis`` takes (z through the mapping with
    truncation and labels c [N, c_dim]; w broadcast to every layer; w+ as is)."""
    _check_space(G, space)
    device = next(G.parameters()).device
    latents = latents.to(device)
    if space == "w+":
        return latents
    if space == "w":
        return latents[:, None].repeat(1, G.num_ws, 1)
    c = torch.zeros([latents.shape[0], G.c_dim], device=device) if c is None else c.to(device)
    return map_z(G, latents, c, truncation_psi, truncation_cutoff, batch_size)


@torch.no_grad()
def render_latents(
    G: torch.nn.Module,
    latents: torch.Tensor,
    space: str,
    c: torch.Tensor | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> torch.Tensor:
    """Images of latents of any space: float32 [N, C, H, W] in about [-1, 1] on G's device.

    Networks without a mapping network (z only) render ``G(z, c)``; c [N, c_dim] defaults to zeros.
    """
    if space == "z" and "w" not in latent_spaces(G):
        device = next(G.parameters()).device
        c = torch.zeros([latents.shape[0], G.c_dim], device=device) if c is None else c.to(device)
        return in_batches(G, latents, c, batch_size=batch_size, device=device)
    ws = latents_to_ws(G, latents, space, c, truncation_psi, truncation_cutoff, batch_size)
    return synthesize(G, ws, noise_mode, batch_size)


def read_scores_csv(path: str | os.PathLike) -> dict:
    """Read attribute scores keyed by seed or by latent file.

    The first row names the columns. The key column is ``seed`` (integer seeds) or ``file`` (a latent ``.npz`` /
    ``.npy`` as ``sgtrain-project`` writes; relative paths are relative to the CSV's folder), optionally with
    ``index`` (which latent of a file holding several, default 0). Every other column is an attribute; an empty
    cell, ``nan`` or ``na`` marks a missing score (that sample is left out of that attribute's fit).

    Returns:
        dict with ``key`` ('seed' or 'file'), ``keys`` (ints or absolute paths), ``index`` (list of int),
        ``scores`` {attribute: float64 array [N] with NaN for missing}.

    Raises:
        FileNotFoundError; ValueError: no key column, no attribute column, or a cell that is not a number.
    """
    if not os.path.exists(path):
        raise MissingFileError(f"scores file '{path}' not found")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise InputError(f"'{path}' is empty: write a header row such as 'seed,age'")
    header = [h.strip() for h in rows[0]]
    key = next((k for k in ("seed", "file") if k in header), None)
    if key is None:
        raise InputError(f"'{path}' has columns {header}; the first row must name a 'seed' or a 'file' column")
    attrs = [h for h in header if h not in ("seed", "file", "index") and h]
    if not attrs:
        raise InputError(f"'{path}' has no attribute column besides '{key}': add one, e.g. 'seed,age'")
    base = os.path.dirname(os.path.abspath(path))
    keys, index, scores = [], [], {a: [] for a in attrs}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (cell.strip() for cell in row)))
        try:
            if key == "seed":
                keys.append(int(cells["seed"]))
            else:
                keys.append(os.path.normpath(os.path.join(base, cells["file"])))
            index.append(int(cells.get("index") or 0))
            for a in attrs:
                v = cells.get(a, "")
                scores[a].append(float("nan") if v.lower() in ("", "nan", "na") else float(v))
        except (ValueError, KeyError) as e:
            raise InputError(f"'{path}' line {line}: cannot read {row}: {e}") from e
    return dict(key=key, keys=keys, index=index, scores={a: np.asarray(v, dtype=np.float64) for a, v in scores.items()})


def table_latents(
    G: torch.nn.Module,
    table: dict,
    space: str,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """The latents of the rows of a :func:`read_scores_csv` table in ``space``.

    Seeds go through :func:`seed_latents`. Latent files hold ws: W+ takes them as they are; W takes the mean over
    the layers (exact for a W projection, whose layers are equal); Z cannot be recovered from ws.

    Returns:
        float32 [N, ...] as :func:`seed_latents`.

    Raises:
        ValueError: Z asked for with latent files, an index beyond a file's latents; file errors of ``load_ws``.
    """
    if table["key"] == "seed":
        return seed_latents(G, table["keys"], space, truncation_psi, truncation_cutoff, class_idx,
                            batch_size=batch_size)
    _check_space(G, space)
    if space == "z":
        raise InputError("latent files hold ws, not z: fit these scores in --space w or w+")
    cache: dict[str, torch.Tensor] = {}
    out = []
    for path, i in zip(table["keys"], table["index"]):
        if path not in cache:
            cache[path] = load_ws(path, G.num_ws, G.w_dim)
        ws = cache[path]
        if not 0 <= i < ws.shape[0]:
            raise InputError(f"'{path}' holds {ws.shape[0]} latent(s); index {i} is out of range")
        out.append(ws[i])
    ws = torch.stack(out).to(next(G.parameters()).device)
    return ws.mean(1) if space == "w" else ws


def fit_direction(
    latents: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    method: str = "svm",
    ratio: float = 0.02,
    split_ratio: float = 0.7,
    C: float = 1.0,
    seed: int = 0,
) -> dict:
    """Fit a linear boundary between high and low scores and return its unit normal.

    Continuous scores: the samples are sorted by score and the top and bottom ``ratio`` of them (each; InterFaceGAN's
    ``chosen_num_or_ratio``, 0.02 of 500k samples in the paper; 0.5 = all samples, split at the median) become the
    positives and negatives. Binary scores (exactly two distinct values, e.g. "is class k") use every sample with its
    label, classes weighted to balance. Of the chosen samples a random ``split_ratio`` trains the classifier and the
    rest measures its accuracy.

    Methods: ``'svm'``, InterFaceGAN's linear SVM (scikit-learn ``SVC(kernel='linear', C)`` as the authors use, or
    ``LinearSVC`` above 10000 training samples, where SVC's quadratic cost shows); ``'logistic'``, logistic
    regression (scikit-learn ``LogisticRegression(C, class_weight='balanced')``, as Puzer's stylegan-encoder).

    Args:
        latents: float [N, D] or [N, num_ws, w_dim] (flattened for the fit); NaN scores are left out.
        scores: float [N], higher = more of the attribute.
        seed: seed of the train/validation split.

    Returns:
        dict with ``direction`` float32 of the latents' per-sample shape, unit L2 norm, pointing to higher scores;
        ``offset`` (signed distance of a latent x to the boundary: ``x . n + offset``); ``accuracy`` (validation
        accuracy on the held-out chosen samples, NaN when there are none); ``accuracy_all`` (accuracy over every
        sample against ``score > median``, or the binary labels); ``latent_std`` (std of ``x . n`` over all samples:
        the latents' spread along the direction, in latent units); ``score_slope`` (least-squares slope of score
        against ``x . n``: the score change per unit of strength, as far as it is linear); ``num_train``,
        ``num_val``, ``method``, ``ratio``.

    Raises:
        ValueError: unknown method, fewer than 4 usable samples, ratio outside (0, 0.5], a single score value.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC, LinearSVC

    if method not in ("svm", "logistic"):
        raise InputError(f"method '{method}' unknown: use svm or logistic")
    if not 0 < ratio <= 0.5:
        raise InputError(f"ratio {ratio} must lie in (0, 0.5]: the fraction of samples taken from each end")
    x_all = torch.as_tensor(latents).detach().cpu().double()
    shape = tuple(x_all.shape[1:])
    x_all = x_all.reshape(x_all.shape[0], -1).numpy()
    s_all = torch.as_tensor(scores).detach().cpu().double().reshape(-1).numpy()
    if s_all.shape[0] != x_all.shape[0]:
        raise InputError(f"{x_all.shape[0]} latents but {s_all.shape[0]} scores")
    valid = np.isfinite(s_all)
    x, s = x_all[valid], s_all[valid]
    if x.shape[0] < 4:
        raise InputError(f"only {x.shape[0]} samples have a score; a direction needs many (thousands is usual)")
    values = np.unique(s)
    if values.size < 2:
        raise InputError(f"every score is {values[0] if values.size else 'missing'}: nothing to separate")
    binary = values.size == 2
    if binary:
        chosen = np.arange(x.shape[0])
        labels = (s == values[1]).astype(np.int64)
    else:
        order = np.argsort(s, kind="stable")
        k = max(2, int(round(ratio * x.shape[0])))
        chosen = np.concatenate([order[:k], order[-k:]])
        labels = np.concatenate([np.zeros(k, np.int64), np.ones(k, np.int64)])
    perm = np.random.RandomState(seed).permutation(chosen.size)
    n_train = max(2, int(round(split_ratio * chosen.size)))
    train, val = perm[:n_train], perm[n_train:]
    if np.unique(labels[train]).size < 2:
        raise InputError("the training split holds one class only; raise ratio or split_ratio, or give more samples")
    xt, yt = x[chosen[train]], labels[train]
    if method == "svm":
        clf = SVC(kernel="linear", C=C) if len(train) <= 10000 else LinearSVC(C=C, dual="auto", max_iter=10000)
    else:
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    clf.fit(xt, yt)
    coef = np.asarray(clf.coef_, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(coef))
    if norm == 0:
        raise InputError("the fitted boundary is degenerate (zero normal): the scores do not depend on the latents")
    direction = coef / norm
    offset = float(np.asarray(clf.intercept_).reshape(-1)[0]) / norm
    accuracy = float((clf.predict(x[chosen[val]]) == labels[val]).mean()) if len(val) else float("nan")
    proj = x @ direction
    if binary:
        accuracy_all = float(((proj + offset > 0).astype(np.int64) == (s == values[1])).mean())
    else:
        accuracy_all = float(((proj + offset > 0) == (s > np.median(s))).mean())
    var = float(proj.var())
    slope = float(((proj - proj.mean()) * (s - s.mean())).mean() / var) if var > 0 else 0.0
    return dict(direction=torch.from_numpy(direction.reshape(shape)).float(), offset=offset, accuracy=accuracy,
                accuracy_all=accuracy_all, latent_std=float(np.sqrt(var)), score_slope=slope,
                num_train=int(len(train)), num_val=int(len(val)), method=method, ratio=float(ratio))


def condition_direction(direction: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """Conditional manipulation (InterFaceGAN sec. 2.2): the part of ``direction`` orthogonal to every other one.

    For one other unit normal m this is ``n - (n . m) m``; for several, ``n - M^T (M M^T)^+ M n`` with M stacking
    them (the projection onto the orthogonal complement of their span, which InterFaceGAN solves for two), then
    normalised. Moving along the result leaves every other attribute's signed distance unchanged.

    Args:
        direction: float [D] or [num_ws, w_dim]. others: tensors of the same shape (any length).

    Returns:
        float32 of the same shape, unit norm.

    Raises:
        ValueError: shapes differ, or the direction lies (almost) in the span of the others.
    """
    n = direction.detach().double().reshape(-1).cpu()
    if not others:
        return (n / n.norm()).reshape(direction.shape).float()
    for m in others:
        if tuple(m.shape) != tuple(direction.shape):
            raise InputError(f"cannot condition a direction of shape {list(direction.shape)} on one of shape "
                             f"{list(m.shape)}: fit both in the same space")
    M = torch.stack([m.detach().double().reshape(-1).cpu() for m in others])
    out = n - M.T @ (torch.linalg.pinv(M @ M.T) @ (M @ n))
    if float(out.norm()) < 1e-6 * float(n.norm()):
        raise InputError("the direction lies in the span of the conditions: nothing is left to move along")
    return (out / out.norm()).reshape(direction.shape).float()


@dataclass(frozen=True, eq=False)
class Direction:
    """One latent direction and where it applies: what every direction file holds and every editor applies.

    Made by :func:`fit_direction` + this constructor (``sgtrain-directions fit``), by :func:`sefa_directions` (SeFa)
    or read by :func:`load_directions`; written by :meth:`save`; applied by :meth:`apply` (the only place a
    direction is added to latents: the directions commands, the explorer's sliders, recipes and SeFa sweeps).

    Attributes:
        vector: float32 on CPU: [z_dim] (space 'z'), [w_dim] (space 'w': the same step in every edited layer) or
            [num_ws, w_dim] (space 'w+': a step per layer). Fitted and SeFa directions have unit L2 norm.
        space: 'z' (moves z before the mapping), 'w' or 'w+' (moves ws [N, num_ws, w_dim]).
        layers: ws indices an edit touches by default; None = every layer (an empty list is read as None).
        name: the attribute (``'age'``), or a file's stem / ``stem[k]`` for the rows of a SeFa file.
        method: how it was found (``'svm'``, ``'logistic'``, ``'sefa'``; ``''`` unknown).
        accuracy: validation accuracy of the fitted boundary in [0, 1]; NaN if unknown.
        meta: further scalars and strings kept in the file (``offset``, ``latent_std`` = the samples' spread along
            the direction in latent units, ``score_slope``, ``num_train``, ``eigenvalue`` of a SeFa row ...) and
            ``conditioned_on`` (list of attribute names, InterFaceGAN sec. 2.2).

    Raises:
        ValueError: an unknown space, or a vector whose rank does not fit the space.
    """

    vector: torch.Tensor
    space: str
    layers: list[int] | None = None
    name: str = ""
    method: str = ""
    accuracy: float = float("nan")
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise InputError(f"space '{self.space}' unknown: use z, w or w+")
        vector = torch.as_tensor(self.vector).detach().float().cpu()
        want = 2 if self.space == "w+" else 1
        if vector.ndim != want:
            raise InputError(f"a {self.space} direction has {want} dimension(s); got shape {list(vector.shape)}")
        object.__setattr__(self, "vector", vector)
        layers = None if self.layers is None else [int(i) for i in self.layers]
        object.__setattr__(self, "layers", layers or None)
        object.__setattr__(self, "accuracy", float(self.accuracy))
        object.__setattr__(self, "meta", dict(self.meta))

    def check(self, G: torch.nn.Module) -> None:
        """Raise ValueError, naming both shapes, when this direction does not fit ``G`` (or its space is missing)."""
        _check_space(G, self.space)
        want = {"z": (G.z_dim,), "w": (getattr(G, "w_dim", 0),),
                "w+": (getattr(G, "num_ws", 0), getattr(G, "w_dim", 0))}[self.space]
        if tuple(self.vector.shape) != want:
            raise InputError(f"the {self.space} direction has shape {list(self.vector.shape)} but this network's "
                             f"{self.space} is {list(want)}: it was fitted on another network")
        if self.layers and self.space != "z" and max(self.layers) >= G.num_ws:
            raise InputError(f"the direction's layers {self.layers} go beyond this network's num_ws={G.num_ws}")

    def apply(self, latents: torch.Tensor, strength: float, layers: Sequence[int] | None = None) -> torch.Tensor:
        """Latents moved by ``strength * vector`` in the direction's own space.

        Args:
            latents: z float [N, z_dim] for a z direction; ws float [N, num_ws, w_dim] for w and w+ directions.
            strength: distance in latent units (``2 * meta['latent_std']`` is "two standard deviations").
            layers: ws indices to edit (None: :attr:`layers`, else all). A w direction is added to each chosen
                layer, a w+ direction adds its own rows of the chosen layers; ignored for z (see :func:`edited_ws`).

        Returns:
            a new tensor of the input's shape, dtype and device.

        Raises:
            ValueError: latents of the wrong rank or size for this direction; a layer out of range.
        """
        d = self.vector.to(latents)
        if self.space == "z":
            if latents.ndim != 2 or latents.shape[1] != d.shape[0]:
                raise InputError(f"a z direction of z_dim {d.shape[0]} moves z [N, {d.shape[0]}]; got "
                                 f"{list(latents.shape)}")
            return latents + strength * d
        if latents.ndim != 3:
            raise InputError(f"a {self.space} direction moves ws [N, num_ws, w_dim]; got {list(latents.shape)}")
        num_ws, w_dim = latents.shape[1], latents.shape[2]
        sel = layers if layers is not None else self.layers
        idx = list(range(num_ws)) if sel is None else [int(i) for i in sel]
        bad = [i for i in idx if not 0 <= i < num_ws]
        if bad:
            raise InputError(f"direction layers {bad} out of range: the latents have num_ws={num_ws}")
        if self.space == "w" and d.shape[0] != w_dim:
            raise InputError(f"direction has w_dim {d.shape[0]}, the latents have w_dim {w_dim}")
        if self.space == "w+" and tuple(d.shape) != (num_ws, w_dim):
            raise InputError(f"direction has shape {list(d.shape)}, the latents need [num_ws={num_ws}, "
                             f"w_dim={w_dim}] or a w direction [w_dim]")
        out = latents.clone()
        out[:, idx] += strength * (d if self.space == "w" else d[idx])
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write this direction as ``.npz`` (format ``sgtrain-direction`` version 1; atomically; no pickles).

        Keys: ``direction`` float32 [z_dim] | [w_dim] | [num_ws, w_dim]; ``space`` 'z' | 'w' | 'w+'; ``layers``
        int64 [L] (ws indices the edit applies to; empty = all layers); ``attribute`` (:attr:`name`), ``name``
        (:attr:`name`, else the file's stem), ``method`` strings; ``accuracy`` float (NaN if unknown);
        ``conditioned_on`` string array; ``format``, ``format_version``; and every scalar or string of :attr:`meta`.
        """
        arrays = dict(
            format=np.array(DIRECTION_FORMAT), format_version=np.array(DIRECTION_FORMAT_VERSION, dtype=np.int64),
            direction=self.vector.numpy().astype(np.float32), space=np.array(self.space),
            layers=np.asarray([] if self.layers is None else self.layers, dtype=np.int64),
            attribute=np.array(self.name), method=np.array(self.method),
            name=np.array(self.name or os.path.splitext(os.path.basename(str(path)))[0]),
            accuracy=np.array(self.accuracy, dtype=np.float64),
            conditioned_on=np.asarray([str(a) for a in self.meta.get("conditioned_on", [])], dtype=np.str_),
        )
        for k, v in self.meta.items():
            if k in arrays:
                continue
            if isinstance(v, (bool, int, float, str, np.integer, np.floating)):
                arrays[k] = np.array(v)
        _write_npz(path, arrays)


def sefa_directions(result: dict, name: str = "sefa") -> list[Direction]:
    """The rows of a :func:`sefa` result (or a SeFa file's arrays) as W directions ``name[k]``, strongest first,
    each with its ``meta['eigenvalue']`` when the result has eigenvalues."""
    vectors = torch.as_tensor(result["directions"]).float()
    eig = result.get("eigenvalues")
    return [Direction(vectors[k], "w", list(result["layers"]), name=f"{name}[{k}]", method="sefa",
                      meta={} if eig is None else dict(eigenvalue=float(eig[k])))
            for k in range(vectors.shape[0])]


_RECORD_KEYS = {"format", "format_version", "direction", "space", "layers", "attribute", "method", "accuracy",
                "conditioned_on", "name"}


def load_directions(path: str | os.PathLike, *, need_w: bool = False) -> list[Direction]:
    """Read every direction of a file sgtrain writes or wrote: a :meth:`Direction.save` file (``sgtrain-direction``
    version 1; also one without ``format`` / ``space`` keys: a [w_dim] vector is then a w, [num_ws, w_dim] a w+
    direction) gives one, a SeFa file (:func:`save_directions`) K, strongest first.

    Args:
        need_w: the caller adds directions to ws (the explorer, recipes): a z direction is refused, with its fix.

    Returns:
        [Direction] with tensors on CPU.

    Raises:
        FileNotFoundError: no file. KeyError: a bare array, or neither ``direction`` nor ``directions`` in it.
        ValueError: an array of the wrong rank, an unknown space, a newer format version, a z direction with need_w.
    """
    if not os.path.exists(path):
        raise MissingFileError(f"direction file '{path}' not found; write one with sgtrain-directions fit (or sefa)")
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise FileContentError(f"'{path}' is a bare array; a direction file is an .npz with 'direction' or "
                               "'directions'")
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    with data:
        if "direction" in data:
            found = [_read_record(path, data, stem)]
        elif "directions" in data:
            d = np.asarray(data["directions"], dtype=np.float32)
            if d.ndim != 2:
                raise InputError(f"'{path}': 'directions' has shape {list(d.shape)}; expected [K, w_dim]")
            layers = [int(i) for i in np.atleast_1d(data["layers"])] if "layers" in data else []
            eig = data["eigenvalues"] if "eigenvalues" in data else None
            found = sefa_directions(dict(directions=torch.from_numpy(d), eigenvalues=eig, layers=layers), stem)
        else:
            raise FileContentError(f"'{path}' is not a direction file: it holds {sorted(data.files)}, not 'direction'"
                                   " ([z_dim], [w_dim] or [num_ws, w_dim], from sgtrain-directions fit) or "
                                   "'directions' ([K, w_dim], from sgtrain-directions sefa)")
    if need_w and any(d.space == "z" for d in found):
        raise InputError(f"'{path}' holds a direction in Z (space 'z'): it moves z before the mapping, so it cannot "
                         "be added to w; apply it with `sgtrain-directions apply` (or refit it in W with "
                         "`sgtrain-directions fit --space w`)")
    return found


def _read_record(path: str | os.PathLike, data: np.lib.npyio.NpzFile, stem: str) -> Direction:
    version = int(data["format_version"]) if "format_version" in data else 1
    if version > DIRECTION_FORMAT_VERSION:
        raise InputError(f"'{path}' has direction format version {version}; this sgtrain reads up to "
                         f"{DIRECTION_FORMAT_VERSION}: update sgtrain")
    vector = np.asarray(data["direction"], dtype=np.float32)
    space = str(data["space"]) if "space" in data else ("w+" if vector.ndim == 2 else "w")
    if space in SPACES and vector.ndim != (2 if space == "w+" else 1):
        raise InputError(f"'{path}': 'direction' has shape {list(vector.shape)}; a {space} direction is "
                         f"{'[num_ws, w_dim]' if space == 'w+' else '[z_dim]' if space == 'z' else '[w_dim]'}")
    attribute = str(data["attribute"]) if "attribute" in data else ""
    meta = {k: data[k].item() for k in data.files if k not in _RECORD_KEYS and data[k].ndim == 0}
    meta["conditioned_on"] = [str(a) for a in data["conditioned_on"]] if "conditioned_on" in data else []
    return Direction(torch.from_numpy(vector), space,
                     [int(i) for i in np.atleast_1d(data["layers"])] if "layers" in data else None,
                     name=attribute or (str(data["name"]) if "name" in data else stem),
                     method=str(data["method"]) if "method" in data else "",
                     accuracy=float(data["accuracy"]) if "accuracy" in data else float("nan"), meta=meta)


def load_direction(path: str | os.PathLike, index: int | None = None, *, need_w: bool = False) -> Direction:
    """Direction ``index`` (default 0) of a file read by :func:`load_directions`: a fit file holds one, a SeFa file
    K (``sgtrain-directions apply --index``, a recipe's ``index``).

    Raises:
        ValueError: index out of range; the errors of :func:`load_directions`.
    """
    found = load_directions(path, need_w=need_w)
    k = 0 if index is None else int(index)
    if not 0 <= k < len(found):
        raise InputError(f"index {k} is out of range: '{path}' holds direction(s) 0-{len(found) - 1}")
    return found[k]


@torch.no_grad()
def edited_ws(
    G: torch.nn.Module,
    direction: Direction,
    strengths: Sequence[float],
    *,
    z: torch.Tensor | None = None,
    ws: torch.Tensor | None = None,
    c: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """ws of latents moved along a direction by each strength (networks with W).

    Give z [N, z_dim] (e.g. from seeds) or ws [N, num_ws, w_dim] (e.g. projected). A z direction needs z: the
    moved z are mapped (with truncation, labels c), and only the chosen layers take the moved ws (the others keep
    the unmoved ones, as in style mixing). A w / w+ direction moves ws (mapped from z when ws is not given).

    Returns:
        float32 [N, S, num_ws, w_dim] on G's device.

    Raises:
        ValueError: the direction does not fit G, a z direction without z, or neither z nor ws given.
    """
    direction.check(G)
    if (z is None) == (ws is None):
        raise InputError("give either z (seeds) or ws (latent files)")
    sel = layers if layers is not None else direction.layers
    if direction.space == "z":
        if z is None:
            raise InputError("a z direction moves z, which latent files do not hold: give seeds, or fit in w / w+")
        base = latents_to_ws(G, z, "z", c, truncation_psi, truncation_cutoff, batch_size)
        out = []
        for s in strengths:
            moved = latents_to_ws(G, direction.apply(z, s), "z", c, truncation_psi, truncation_cutoff, batch_size)
            if sel is not None:
                mixed = base.clone()
                mixed[:, list(sel)] = moved[:, list(sel)]
                moved = mixed
            out.append(moved)
        return torch.stack(out, dim=1)
    if ws is None:
        ws = latents_to_ws(G, z, "z", c, truncation_psi, truncation_cutoff, batch_size)
    ws = ws.to(next(G.parameters()).device)
    return torch.stack([direction.apply(ws, s, sel) for s in strengths], dim=1)


@torch.no_grad()
def render_direction(
    G: torch.nn.Module,
    direction: Direction,
    strengths: Sequence[float],
    *,
    z: torch.Tensor | None = None,
    ws: torch.Tensor | None = None,
    c: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> dict:
    """Images of latents moved along a direction by each strength.

    Networks without W (z only) take z directions and render ``G(z + s n, c)``; see :func:`edited_ws` otherwise.

    Returns:
        dict with ``images`` float32 [N, S, C, H, W] in about [-1, 1], ``ws`` [N, S, num_ws, w_dim] (None for z-only
        networks) and ``grid`` uint8 [N*H, S*W, C] (rows = latents, columns = strengths).
    """
    if "w" not in latent_spaces(G):
        direction.check(G)
        if z is None:
            raise InputError("this network takes z only: give z (seeds)")
        moved = torch.stack([direction.apply(z, s) for s in strengths], dim=1)
        imgs = render_latents(G, moved.reshape(-1, moved.shape[-1]), "z", None if c is None else
                              c.repeat_interleave(len(strengths), 0), batch_size=batch_size)
        ws_out = None
    else:
        ws_out = edited_ws(G, direction, strengths, z=z, ws=ws, c=c, layers=layers, truncation_psi=truncation_psi,
                           truncation_cutoff=truncation_cutoff, batch_size=batch_size)
        imgs = synthesize(G, ws_out.reshape(-1, G.num_ws, G.w_dim), noise_mode, batch_size)
    n, s = imgs.shape[0] // len(strengths), len(strengths)
    imgs = imgs.reshape(n, s, *imgs.shape[1:])
    grid = make_grid(to_uint8(imgs.reshape(n * s, *imgs.shape[2:])).numpy(), n, s)
    return dict(images=imgs, ws=ws_out, grid=grid)


@torch.no_grad()
def direction_video(
    G: torch.nn.Module,
    direction: Direction,
    output: str | os.PathLike,
    *,
    z: torch.Tensor | None = None,
    ws: torch.Tensor | None = None,
    c: torch.Tensor | None = None,
    strengths: tuple[float, float] = (-3.0, 3.0),
    layers: Sequence[int] | None = None,
    grid: tuple[int, int] | None = None,
    loop: bool = True,
    fps: float = 30,
    seconds: float = 4,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 16,
) -> int:
    """A walk along a direction (InterFaceGAN's "age animation") written to ``.mp4`` or ``.gif``.

    With ``loop`` the strength goes 0 -> last -> first -> 0 along a sine (seamless); without, linearly from the first
    to the last strength. Several latents are shown side by side in ``grid`` (rows, cols; default one row).

    Returns:
        The number of frames written.
    """
    from sgtrain.latent.video import VideoWriter

    n = (z if z is not None else ws).shape[0]
    rows, cols = grid or (1, n)
    if rows * cols < n:
        raise InputError(f"{n} latents do not fit a {rows}x{cols} grid")
    frames = max(2, int(round(fps * seconds)))
    lo, hi = float(strengths[0]), float(strengths[1])
    if loop:
        t = np.sin(2 * np.pi * np.arange(frames) / frames)
        values = np.where(t >= 0, t * hi, -t * lo)
    else:
        values = np.linspace(lo, hi, frames)
    per_call = max(1, batch_size // n)
    with VideoWriter(output, fps) as writer:
        for f in range(0, frames, per_call):
            chunk = [float(v) for v in values[f:f + per_call]]
            imgs = render_direction(G, direction, chunk, z=z, ws=ws, c=c, layers=layers, truncation_psi=truncation_psi,
                                    truncation_cutoff=truncation_cutoff, noise_mode=noise_mode,
                                    batch_size=batch_size)["images"]
            imgs = to_uint8(imgs.transpose(0, 1).reshape(-1, *imgs.shape[2:])).numpy()
            for k in range(len(chunk)):
                writer.append(make_grid(imgs[k * n:(k + 1) * n], rows, cols))
    return frames
