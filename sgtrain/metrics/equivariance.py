"""Equivariance metrics EQ-T, EQ-T_frac and EQ-R of a generator with an input transform (StyleGAN3).

Karras et al. 2021, "Alias-Free Generative Adversarial Networks", section 4 and appendix E; the procedure and the
numbers are those of NVlabs' ``stylegan3/metrics/equivariance.py`` (metric names ``eqt50k_int``, ``eqt50k_frac``,
``eqr50k``), the code is sgtrain's own. For each sample, the synthesis network renders an image with the identity
input transform and one with the input translated (or rotated); the second is compared with the first transformed
the same way in image space, inside the region where both are defined:

- EQ-T (``eqt50k_int``): a random translation of up to ``translate_max`` (1/8) of the image per axis, rounded to
  whole pixels; the reference is the image shifted by those pixels (appendix E.1).
- EQ-T_frac (``eqt50k_frac``): a random sub-pixel translation; the reference is shifted with a separable Lanczos
  (a = 3) filter (appendix E.2).
- EQ-R (``eqr50k``): a random rotation of up to ``rotate_max`` * 180 degrees; the reference is the image rotated
  through a 4x upsampled, band-limited (oriented sinc x Lanczos) resampling, and both images are low-pass filtered
  as a rotation would (the pseudo-rotation R* of appendix E.3).

The result is the peak signal-to-noise ratio in dB over all samples: 20 log10(2) - 10 log10(MSE), with the MSE summed
over the masked pixels of every sample (images in [-1, 1], so the peak-to-peak range is 2). Higher is more
equivariant; an exactly equivariant generator gives infinity.

All random numbers come from a ``torch.Generator`` seeded with ``seed`` in NVlabs' order (z, then the translation or
angle, per batch), so on the CPU a call gives the number NVlabs' code gives after ``torch.manual_seed(seed)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch

from sgtrain.errors import InputError
from sgtrain.ops.upfirdn2d import filter2d, upsample2d

__all__ = [
    "apply_affine_transformation",
    "apply_fractional_pseudo_rotation",
    "apply_fractional_rotation",
    "apply_fractional_translation",
    "apply_integer_translation",
    "compute_equivariance",
    "construct_affine_bandlimit_filter",
    "eqr50k",
    "eqt50k_frac",
    "eqt50k_int",
    "lanczos_window",
    "rotation_matrix",
    "sinc",
]

Labels = torch.Tensor | Callable[[int, torch.Generator], torch.Tensor] | None

# ----------------------------------------------------------------------------------------------------------------
# Image-space operators of appendix E.


def sinc(x: torch.Tensor) -> torch.Tensor:
    """Normalised sinc sin(pi x) / (pi x), 1 at 0; elementwise, x's dtype."""
    y = (x * np.pi).abs()
    z = torch.sin(y) / y.clamp(1e-30, float("inf"))
    return torch.where(y < 1e-30, torch.ones_like(x), z)


def lanczos_window(x: torch.Tensor, a: float) -> torch.Tensor:
    """Lanczos window sinc(x / a) for |x| < a, else 0."""
    x = x.abs() / a
    return torch.where(x < 1, sinc(x), torch.zeros_like(x))


def rotation_matrix(angle: float | torch.Tensor) -> torch.Tensor:
    """float32 [3, 3] matrix [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]] for ``angle`` in radians."""
    angle = torch.as_tensor(angle).to(torch.float32)
    mat = torch.eye(3, device=angle.device)
    mat[0, 0] = angle.cos()
    mat[0, 1] = angle.sin()
    mat[1, 0] = -angle.sin()
    mat[1, 1] = angle.cos()
    return mat


def apply_integer_translation(
    x: torch.Tensor, tx: float | torch.Tensor, ty: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift images [N, C, H, W] by (tx * W, ty * H) rounded to whole pixels, zeros coming in (operator T_x, E.1).

    Returns:
        (shifted images, mask of the pixels that came from the image: 1 there, 0 elsewhere), both x's shape.
    """
    _, _, h, w = x.shape
    ix = int(torch.as_tensor(tx * w).to(dtype=torch.float32).round())
    iy = int(torch.as_tensor(ty * h).to(dtype=torch.float32).round())
    z = torch.zeros_like(x)
    m = torch.zeros_like(x)
    if abs(ix) < w and abs(iy) < h:
        y = x[:, :, max(-iy, 0) : h + min(-iy, 0), max(-ix, 0) : w + min(-ix, 0)]
        z[:, :, max(iy, 0) : h + min(iy, 0), max(ix, 0) : w + min(ix, 0)] = y
        m[:, :, max(iy, 0) : h + min(iy, 0), max(ix, 0) : w + min(ix, 0)] = 1
    return z, m


def apply_fractional_translation(
    x: torch.Tensor, tx: float | torch.Tensor, ty: float | torch.Tensor, a: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift images [N, C, H, W] by (tx * W, ty * H) pixels, sub-pixel parts through a Lanczos-``a`` filter (E.2).

    Returns:
        (shifted images, mask of the pixels whose whole filter footprint lay inside the image).
    """
    _, _, h, w = x.shape
    tx = torch.as_tensor(tx * w).to(dtype=torch.float32, device=x.device)
    ty = torch.as_tensor(ty * h).to(dtype=torch.float32, device=x.device)
    ix = int(tx.floor())
    iy = int(ty.floor())
    fx = tx - ix
    fy = ty - iy
    b = a - 1

    z = torch.zeros_like(x)
    zx0, zy0 = max(ix - b, 0), max(iy - b, 0)
    zx1, zy1 = min(ix + a, 0) + w, min(iy + a, 0) + h
    if zx0 < zx1 and zy0 < zy1:
        taps = torch.arange(a * 2, device=x.device) - b
        filter_x = (sinc(taps - fx) * sinc((taps - fx) / a)).unsqueeze(0)
        filter_y = (sinc(taps - fy) * sinc((taps - fy) / a)).unsqueeze(1)
        y = filter2d(x, filter_x / filter_x.sum(), padding=[b, a, 0, 0])
        y = filter2d(y, filter_y / filter_y.sum(), padding=[0, 0, b, a])
        y = y[:, :, max(b - iy, 0) : h + b + a + min(-iy - a, 0), max(b - ix, 0) : w + b + a + min(-ix - a, 0)]
        z[:, :, zy0:zy1, zx0:zx1] = y

    m = torch.zeros_like(x)
    mx0, my0 = max(ix + a, 0), max(iy + a, 0)
    mx1, my1 = min(ix - b, 0) + w, min(iy - b, 0) + h
    if mx0 < mx1 and my0 < my1:
        m[:, :, my0:my1, mx0:mx1] = 1
    return z, m


def construct_affine_bandlimit_filter(
    mat: torch.Tensor,
    a: int = 3,
    amax: int = 16,
    aflt: int = 64,
    up: int = 4,
    cutoff_in: float = 1,
    cutoff_out: float = 1,
) -> torch.Tensor:
    """2-D FIR filter that band-limits to the input's and to the affinely transformed output's Nyquist band.

    The convolution of two oriented separable sincs (input axes, and axes transformed by ``mat[:2, :2]``), windowed
    by the convolution of the matching Lanczos-``a`` windows, sampled at ``up`` times the pixel rate on a grid of
    2 ``aflt`` pixels, cropped to 2 ``amax`` pixels and normalised per polyphase component (appendix E.3).

    Returns:
        float32 [2 amax up - 1, 2 amax up - 1] on mat's device.
    """
    if not a <= amax < aflt:
        raise InputError(f"construct_affine_bandlimit_filter: need a <= amax < aflt, got {a}, {amax}, {aflt}")
    mat = torch.as_tensor(mat).to(torch.float32)
    taps = ((torch.arange(aflt * up * 2 - 1, device=mat.device) + 1) / up - aflt).roll(1 - aflt * up)
    yi, xi = torch.meshgrid(taps, taps, indexing="ij")
    xo, yo = (torch.stack([xi, yi], dim=2) @ mat[:2, :2].t()).unbind(2)

    fi = sinc(xi * cutoff_in) * sinc(yi * cutoff_in)
    fo = sinc(xo * cutoff_out) * sinc(yo * cutoff_out)
    f = torch.fft.ifftn(torch.fft.fftn(fi) * torch.fft.fftn(fo)).real

    wi = lanczos_window(xi, a) * lanczos_window(yi, a)
    wo = lanczos_window(xo, a) * lanczos_window(yo, a)
    win = torch.fft.ifftn(torch.fft.fftn(wi) * torch.fft.fftn(wo)).real

    f = f * win
    c = (aflt - amax) * up
    f = f.roll([aflt * up - 1] * 2, dims=[0, 1])[c:-c, c:-c]
    f = torch.nn.functional.pad(f, [0, 1, 0, 1]).reshape(amax * 2, up, amax * 2, up)
    f = f / f.sum([0, 2], keepdim=True) / (up**2)
    return f.reshape(amax * 2 * up, amax * 2 * up)[:-1, :-1]


def apply_affine_transformation(
    x: torch.Tensor, mat: torch.Tensor, up: int = 4, **filter_kwargs: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample images [N, C, H, W] under the affine map ``mat`` [3, 3] (image coordinates in [-1, 1]).

    Upsamples ``up`` times with :func:`construct_affine_bandlimit_filter`, then samples bilinearly at the mapped
    positions. Returns (images, mask of the pixels whose footprint lay inside the image: nearest-sampled).
    """
    _, _, h, w = x.shape
    mat = torch.as_tensor(mat).to(dtype=torch.float32, device=x.device)
    f = construct_affine_bandlimit_filter(mat, up=up, **filter_kwargs)
    p = f.shape[0] // 2

    theta = mat.inverse()
    theta[:2, 2] *= 2
    theta[0, 2] += 1 / up / w
    theta[1, 2] += 1 / up / h
    theta[0, :] *= w / (w + p / up * 2)
    theta[1, :] *= h / (h + p / up * 2)
    theta = theta[:2, :3].unsqueeze(0).repeat([x.shape[0], 1, 1])
    g = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)

    y = upsample2d(x, f, up=up, padding=p)
    z = torch.nn.functional.grid_sample(y, g, mode="bilinear", padding_mode="zeros", align_corners=False)

    m = torch.zeros_like(y)
    c = p * 2 + 1
    m[:, :, c:-c, c:-c] = 1
    m = torch.nn.functional.grid_sample(m, g, mode="nearest", padding_mode="zeros", align_corners=False)
    return z, m


def apply_fractional_rotation(
    x: torch.Tensor, angle: float | torch.Tensor, a: int = 3, **filter_kwargs: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate images by ``angle`` radians with the band-limited resampling of appendix E.3 (operator R_alpha)."""
    angle = torch.as_tensor(angle).to(dtype=torch.float32, device=x.device)
    return apply_affine_transformation(x, rotation_matrix(angle), a=a, amax=a * 2, **filter_kwargs)


def apply_fractional_pseudo_rotation(
    x: torch.Tensor, angle: float | torch.Tensor, a: int = 3, **filter_kwargs: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Filter images as a rotation by ``angle`` would, without rotating them (operator R*_alpha, E.3).

    Returns (filtered images, mask of the pixels whose filter footprint lay inside the image).
    """
    angle = torch.as_tensor(angle).to(dtype=torch.float32, device=x.device)
    f = construct_affine_bandlimit_filter(rotation_matrix(-angle), a=a, amax=a * 2, up=1, **filter_kwargs)
    y = filter2d(x, f)
    m = torch.zeros_like(y)
    c = f.shape[0] // 2
    m[:, :, c:-c, c:-c] = 1
    return y, m


# ----------------------------------------------------------------------------------------------------------------
# The metrics.


def _label_batch(
    G: torch.nn.Module, labels: Labels, n: int, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    if G.c_dim == 0:
        return torch.zeros([n, 0], device=device)
    if labels is None:  # uniform random classes
        idx = torch.randint(0, G.c_dim, [n], generator=gen)
        return torch.nn.functional.one_hot(idx, G.c_dim).to(torch.float32).to(device)
    if callable(labels):
        c = labels(n, gen)
    else:
        table = torch.as_tensor(labels, dtype=torch.float32)
        c = table[torch.randint(0, table.shape[0], [n], generator=gen)]
    c = torch.as_tensor(c, dtype=torch.float32).to(device)
    if tuple(c.shape) != (n, G.c_dim):
        raise InputError(f"compute_equivariance: labels gave shape {tuple(c.shape)}, expected {(n, G.c_dim)}")
    return c


def compute_equivariance(
    G: torch.nn.Module,
    num_samples: int = 50000,
    batch_size: int = 4,
    seed: int = 0,
    *,
    eqt_int: bool = False,
    eqt_frac: bool = False,
    eqr: bool = False,
    translate_max: float = 0.125,
    rotate_max: float = 1.0,
    labels: Labels = None,
    device: torch.device | str | None = None,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """EQ-T, EQ-T_frac and/or EQ-R of a generator, in dB (StyleGAN3, section 4 and appendix E).

    Args:
        G: Generator with ``mapping(z, c)``, ``synthesis(ws, noise_mode=..., force_fp32=...)``, ``z_dim``,
            ``c_dim``, ``img_resolution`` and the input transform buffer ``synthesis.input.transform`` [3, 3]
            (sgtrain's StyleGAN3). It is not modified (a copy is evaluated, in eval mode, in float32).
        num_samples: Number of generated samples (rounded up to whole batches), 50000 for the paper's numbers.
        batch_size: Samples per batch (NVlabs: 4; the random draws depend on it).
        seed: Seed of the z, translation and angle draws (a ``torch.Generator`` on ``device``).
        eqt_int, eqt_frac, eqr: Which metrics to compute (at least one). Computing several in one call draws their
            random numbers interleaved, as NVlabs does; its metric_main computes each in its own call.
        translate_max: Largest translation per axis, in image widths/heights.
        rotate_max: Largest rotation, in units of pi radians (1 = +-180 degrees).
        labels: For a conditional G: a tensor [M, c_dim] of labels drawn uniformly per sample, or a callable
            ``labels(n, generator) -> [n, c_dim]``; None = uniform random one-hot classes. Labels are drawn from
            their own generator (seed + 1), so the z/translation sequence is that of an unconditional run.
        device: Where to run; None = the device of G's parameters.
        all_reduce: Sums the [2 * metrics] float64 tensor of (masked squared error, mask) sums over processes
            (e.g. an in-place ``torch.distributed.all_reduce`` wrapper) before the PSNR; each process should then
            use its own seed. None = single process.

    Returns:
        {'eqt50k_int': psnr, 'eqt50k_frac': psnr, 'eqr50k': psnr} for the metrics asked (NVlabs' names, whatever
        num_samples), floats in dB.

    Raises:
        ValueError: no metric asked, or G has no input transform (e.g. a StyleGAN2 generator).
    """
    if not (eqt_int or eqt_frac or eqr):
        raise InputError("compute_equivariance: ask for at least one of eqt_int, eqt_frac, eqr")
    transform = getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None)
    if not isinstance(transform, torch.Tensor):
        raise InputError(
            "compute_equivariance: the generator has no input transform (synthesis.input.transform); the "
            "equivariance metrics need a StyleGAN3 generator"
        )
    if device is None:
        device = next(iter(G.parameters())).device
    device = torch.device(device)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    M = G.synthesis.input.transform
    eye = torch.eye(3, device=device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    label_gen = torch.Generator().manual_seed(int(seed) + 1)
    res = G.img_resolution

    def render(ws: torch.Tensor) -> torch.Tensor:
        return G.synthesis(ws, noise_mode="const", force_fp32=True)

    sums = None
    with torch.no_grad():
        for _ in range(0, num_samples, batch_size):
            terms: list[torch.Tensor] = []
            for name, buf in G.named_buffers():  # generators with noise buffers get fresh noise per batch
                if name.endswith(".noise_const"):
                    buf.copy_(torch.randn(buf.shape, generator=gen, device=device))
            z = torch.randn([batch_size, G.z_dim], generator=gen, device=device)
            c = _label_batch(G, labels, batch_size, label_gen, device)
            ws = G.mapping(z, c)
            M.copy_(eye)
            orig = render(ws)

            if eqt_int:
                t = (torch.rand(2, generator=gen, device=device) * 2 - 1) * translate_max
                t = (t * res).round() / res
                M.copy_(eye)
                M[:2, 2] = -t
                img = render(ws)
                ref, mask = apply_integer_translation(orig, t[0], t[1])
                terms += [(ref - img).square() * mask, mask]

            if eqt_frac:
                t = (torch.rand(2, generator=gen, device=device) * 2 - 1) * translate_max
                M.copy_(eye)
                M[:2, 2] = -t
                img = render(ws)
                ref, mask = apply_fractional_translation(orig, t[0], t[1])
                terms += [(ref - img).square() * mask, mask]

            if eqr:
                angle = (torch.rand([], generator=gen, device=device) * 2 - 1) * (rotate_max * math.pi)
                M.copy_(rotation_matrix(-angle))
                img = render(ws)
                ref, ref_mask = apply_fractional_rotation(orig, angle)
                pseudo, pseudo_mask = apply_fractional_pseudo_rotation(img, angle)
                mask = ref_mask * pseudo_mask
                terms += [(ref - pseudo).square() * mask, mask]

            s = torch.stack([term.to(torch.float64).sum() for term in terms])
            sums = s if sums is None else sums + s

    if all_reduce is not None:
        sums = all_reduce(sums)
    sums = sums.cpu()
    mses = sums[0::2] / sums[1::2]
    psnrs = (np.log10(2) * 20 - mses.log10() * 10).tolist()
    names = [n for n, on in (("eqt50k_int", eqt_int), ("eqt50k_frac", eqt_frac), ("eqr50k", eqr)) if on]
    return dict(zip(names, (float(p) for p in psnrs)))


def eqt50k_int(G: torch.nn.Module, num_samples: int = 50000, seed: int = 0, **kwargs) -> float:
    """EQ-T in dB: integer translations (NVlabs' ``eqt50k_int``). kwargs: see :func:`compute_equivariance`."""
    return compute_equivariance(G, num_samples, seed=seed, eqt_int=True, **kwargs)["eqt50k_int"]


def eqt50k_frac(G: torch.nn.Module, num_samples: int = 50000, seed: int = 0, **kwargs) -> float:
    """EQ-T_frac in dB: sub-pixel translations (NVlabs' ``eqt50k_frac``). kwargs: see :func:`compute_equivariance`."""
    return compute_equivariance(G, num_samples, seed=seed, eqt_frac=True, **kwargs)["eqt50k_frac"]


def eqr50k(G: torch.nn.Module, num_samples: int = 50000, seed: int = 0, **kwargs) -> float:
    """EQ-R in dB: rotations (NVlabs' ``eqr50k``). kwargs: see :func:`compute_equivariance`."""
    return compute_equivariance(G, num_samples, seed=seed, eqr=True, **kwargs)["eqr50k"]
