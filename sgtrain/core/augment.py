"""Adaptive discriminator augmentation (ADA): the augment pipe and its probability controller.

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data" (ADA), section 2 (the pipeline:
18 transformations in a fixed order, each applied with probability ``p`` times its multiplier; appendix B lists them)
and section 3 (the adaptive heuristic r_t = E[sign(D_train)] that steers ``p``). Behaviour, keyword names, defaults,
buffers and the order of random draws follow NVlabs' PyTorch implementation (stylegan2-ada-pytorch and stylegan3,
``training/augment.py``; the named pipelines are ``train.py``'s ``augpipe_specs``; the p update is
``training/training_loop.py``), so that with the same torch seed and the same ``p`` a batch is augmented identically
(``tests/test_augment.py`` checks every named pipeline against outputs recorded from NVlabs' code).

- :class:`AugmentPipe`: the pipeline, a ``torch.nn.Module`` whose ``p`` is a buffer (it lands in checkpoints).
- :data:`AUGPIPE_SPECS` and :func:`augment_pipe`: the named pipelines blit, geom, color, filter, noise, cutout, bg,
  bgc, bgcf, bgcfn, bgcfnc.
- :class:`AdaController`: the p update from the sign of D's logits on reals, averaged over an interval and all ranks.

Differences from NVlabs, none of which changes an augmented image at ``p > 0``:

- At ``p == 0`` the output is exactly the input (NVlabs still resamples the image through the identity transform,
  which returns it up to ~1e-6). The random numbers are drawn all the same, so the RNG stream stays in step.
- ``F.grid_sample`` is used directly: PyTorch (checked with 2.13) differentiates ``grid_sampler_2d_backward`` itself
  (``grid_sampler_2d_double_backward``), so R1 through augmented reals needs no gradient fix; NVlabs' custom
  ``grid_sample_gradfix`` was a workaround for PyTorch 1.7 - 1.9, where that double backward did not exist.
- Images may be float32 (NVlabs) or float64; random parameters are always drawn in float32, as NVlabs draws them.
- :class:`AdaController` sums the statistic over ranks every iteration instead of every interval (the same sums, so
  the same p), which makes its state identical on every rank at any iteration boundary (safe to checkpoint from
  rank 0), and it leaves p unchanged until the first statistic arrives (NVlabs would set p to NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgtrain.ops.upfirdn2d import downsample2d, setup_filter, upsample2d

__all__ = ["AUGPIPE_SPECS", "AdaController", "AugmentPipe", "augment_pipe"]

# Low-pass filters of orthogonal wavelets (Daubechies 1992; the values PyWavelets tabulates). sym6 is the
# interpolation filter of the geometric transformations (ADA appendix B.2), sym2 builds the filter bank of the
# image-space filtering (appendix B.4).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)

# The named pipelines of NVlabs' train.py (--augpipe): b = pixel blitting, g = general geometric, c = color,
# f = image-space filtering, n = additive noise, c = cutout. 'bgc' is the paper's default.
_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
AUGPIPE_SPECS: dict[str, dict[str, float]] = {
    "blit": dict(_BLIT),
    "geom": dict(_GEOM),
    "color": dict(_COLOR),
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}


# ----------------------------------------------------------------------------------------------------------------------
# Homogeneous transformation matrices. Entries are Python numbers or tensors of one common shape S (per-sample
# parameters, shape [N] or [N, 1, 1]); the result is float32 [*S, rows, cols]. Inverse transforms are written as the
# forward transform of negated / reciprocal parameters, in the same arithmetic as NVlabs so that float32 results agree.


def _mat(*rows: tuple[Any, ...], device: torch.device | None = None) -> torch.Tensor:
    entries = [e for row in rows for e in row]
    tensors = [e for e in entries if isinstance(e, torch.Tensor)]
    if not tensors:
        return torch.tensor(np.asarray(rows, dtype=np.float64), dtype=torch.float32, device=device)
    ref = tensors[0]
    entries = [e if isinstance(e, torch.Tensor) else torch.full(ref.shape, e, dtype=torch.float32, device=ref.device)
               for e in entries]
    return torch.stack(entries, dim=-1).reshape(ref.shape + (len(rows), len(rows[0])))


def _translate2d(tx: Any, ty: Any, device: torch.device | None = None) -> torch.Tensor:
    return _mat((1, 0, tx), (0, 1, ty), (0, 0, 1), device=device)


def _scale2d(sx: Any, sy: Any, device: torch.device | None = None) -> torch.Tensor:
    return _mat((sx, 0, 0), (0, sy, 0), (0, 0, 1), device=device)


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    return _mat(
        (torch.cos(theta), torch.sin(-theta), 0),
        (torch.sin(theta), torch.cos(theta), 0),
        (0, 0, 1),
    )


def _translate3d(tx: Any, ty: Any, tz: Any) -> torch.Tensor:
    return _mat((1, 0, 0, tx), (0, 1, 0, ty), (0, 0, 1, tz), (0, 0, 0, 1))


def _scale3d(sx: Any, sy: Any, sz: Any) -> torch.Tensor:
    return _mat((sx, 0, 0, 0), (0, sy, 0, 0), (0, 0, sz, 0), (0, 0, 0, 1))


def _rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta`` about the unit ``axis`` [4] (Rodrigues' formula), homogeneous 4x4."""
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _mat(
        (x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0),
        (y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0),
        (z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0),
        (0, 0, 0, 1),
    )


def _filter_bank(lowpass: tuple[float, ...], num_bands: int = 4) -> np.ndarray:
    """Filters [num_bands, taps] that split an image into octave bands and sum to a unit impulse (ADA appendix B.4).

    Band 0 is the lowest; band i is the high-pass half of the (i-1)-times dilated low-pass chain. Built from the
    power-complementary pair H(z) H(1/z) / 2 and H(-z) H(-1/z) / 2 of an orthogonal wavelet's low-pass ``lowpass``.
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    hi = lo * ((-1.0) ** np.arange(lo.size))
    lo2 = np.convolve(lo, lo[::-1]) / 2
    hi2 = np.convolve(hi, hi[::-1]) / 2
    bank = np.eye(num_bands, 1)
    for band in range(1, num_bands):
        dilated = np.zeros([num_bands, bank.shape[1] * 2 - 1])
        dilated[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in dilated])
        start = (bank.shape[1] - hi2.size) // 2
        bank[band, start:(bank.shape[1] + hi2.size) // 2] += hi2
    return bank


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline.


class AugmentPipe(nn.Module):
    """The ADA augmentation pipeline: images [N, C, H, W] in, the same shape out, differentiable (twice).

    Every transformation is off by default (multiplier 0); a transformation with multiplier m is applied to each image
    independently with probability ``m * p``. The stages run in NVlabs' order: pixel blitting (xflip, rotate90, xint)
    and general geometric transformations (scale, rotate, aniso, xfrac) compose into one inverse affine map that is
    executed once (reflect padding, 2x upsampling with the sym6 filter, bilinear ``grid_sample``, 2x downsampling);
    then color (brightness, contrast, lumaflip, hue, saturation) as one 4x4 matrix per image; then image-space
    filtering (imgfilter, 4 octave bands); then additive RGB noise and cutout. Rotation is split into a pre- and a
    post-rotation around the anisotropic scaling, each with probability ``1 - sqrt(1 - rotate * p)``.

    Buffers (NVlabs' state_dict keys): ``p`` (0-dim float32, the overall probability; 1 at construction, as NVlabs),
    ``Hz_geom`` [12] (normalised sym6 low-pass), ``Hz_fbank`` [4, 43] (image-space filter bank).

    Source: Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", section 2 and appendix
    B; NVlabs stylegan2-ada-pytorch / stylegan3 ``training/augment.py``.
    """

    def __init__(
        self,
        # Pixel blitting.
        xflip: float = 0,  # Probability multiplier for x-flip.
        rotate90: float = 0,  # Probability multiplier for rotations by a multiple of 90 degrees.
        xint: float = 0,  # Probability multiplier for integer translation.
        xint_max: float = 0.125,  # Range of integer translation, relative to the image size.
        # General geometric transformations.
        scale: float = 0,  # Probability multiplier for isotropic scaling.
        rotate: float = 0,  # Probability multiplier for arbitrary rotation.
        aniso: float = 0,  # Probability multiplier for anisotropic scaling.
        xfrac: float = 0,  # Probability multiplier for fractional translation.
        scale_std: float = 0.2,  # Log2 standard deviation of isotropic scaling.
        rotate_max: float = 1,  # Range of arbitrary rotation, 1 = full circle.
        aniso_std: float = 0.2,  # Log2 standard deviation of anisotropic scaling.
        xfrac_std: float = 0.125,  # Standard deviation of fractional translation, relative to the image size.
        # Color transformations.
        brightness: float = 0,  # Probability multiplier for brightness.
        contrast: float = 0,  # Probability multiplier for contrast.
        lumaflip: float = 0,  # Probability multiplier for luma flip.
        hue: float = 0,  # Probability multiplier for hue rotation (RGB only).
        saturation: float = 0,  # Probability multiplier for saturation (RGB only).
        brightness_std: float = 0.2,  # Standard deviation of brightness (an offset on the [-1, 1] scale).
        contrast_std: float = 0.5,  # Log2 standard deviation of contrast.
        hue_max: float = 1,  # Range of hue rotation, 1 = full circle.
        saturation_std: float = 1,  # Log2 standard deviation of saturation.
        # Image-space filtering.
        imgfilter: float = 0,  # Probability multiplier for image-space filtering.
        imgfilter_bands: tuple[float, ...] | list[float] = (1, 1, 1, 1),  # Multipliers for the 4 frequency bands.
        imgfilter_std: float = 1,  # Log2 standard deviation of the amplification of a band.
        # Image-space corruptions.
        noise: float = 0,  # Probability multiplier for additive RGB noise.
        cutout: float = 0,  # Probability multiplier for cutout.
        noise_std: float = 0.1,  # Standard deviation of additive RGB noise.
        cutout_size: float = 0.5,  # Side of the cutout rectangle, relative to the image size.
    ) -> None:
        super().__init__()
        self.register_buffer("p", torch.ones([]))
        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.xint = float(xint)
        self.xint_max = float(xint_max)
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.aniso = float(aniso)
        self.xfrac = float(xfrac)
        self.scale_std = float(scale_std)
        self.rotate_max = float(rotate_max)
        self.aniso_std = float(aniso_std)
        self.xfrac_std = float(xfrac_std)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.lumaflip = float(lumaflip)
        self.hue = float(hue)
        self.saturation = float(saturation)
        self.brightness_std = float(brightness_std)
        self.contrast_std = float(contrast_std)
        self.hue_max = float(hue_max)
        self.saturation_std = float(saturation_std)
        self.imgfilter = float(imgfilter)
        self.imgfilter_bands = [float(b) for b in imgfilter_bands]
        self.imgfilter_std = float(imgfilter_std)
        self.noise = float(noise)
        self.cutout = float(cutout)
        self.noise_std = float(noise_std)
        self.cutout_size = float(cutout_size)
        fbank = _filter_bank(SYM2)
        if len(self.imgfilter_bands) != fbank.shape[0]:
            raise ValueError(f"AugmentPipe: imgfilter_bands needs {fbank.shape[0]} multipliers (one per frequency "
                             f"band, lowest first), got {len(self.imgfilter_bands)}")
        self.register_buffer("Hz_geom", setup_filter(SYM6))
        self.register_buffer("Hz_fbank", torch.as_tensor(fbank, dtype=torch.float32))
        self.init_kwargs = {
            k: getattr(self, k) for k in (
                "xflip", "rotate90", "xint", "xint_max", "scale", "rotate", "aniso", "xfrac", "scale_std",
                "rotate_max", "aniso_std", "xfrac_std", "brightness", "contrast", "lumaflip", "hue", "saturation",
                "brightness_std", "contrast_std", "hue_max", "saturation_std", "imgfilter", "imgfilter_bands",
                "imgfilter_std", "noise", "cutout", "noise_std", "cutout_size",
            )
        }

    def forward(self, images: torch.Tensor, debug_percentile: float | None = None) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: float32 (or float64) [N, C, H, W], nominally in [-1, 1]; C must be 1 or 3 when a color
                transformation is on; H and W must exceed 21 px when imgfilter is on.
            debug_percentile: None for training. A number in [0, 1] applies every enabled transformation to every
                image with the parameter at that percentile of its distribution, ignoring ``p`` (for visualising a
                pipeline; NVlabs' argument of the same name).

        Returns:
            Augmented images, same shape and dtype. At ``p == 0`` (and no debug_percentile) exactly ``images``.

        Raises:
            ValueError: not a 4-D floating tensor; color on images that are neither L nor RGB; images too small for
                the image-space filter.
        """
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(f"AugmentPipe: expected images [N, C, H, W], got {getattr(images, 'shape', type(images))}")
        if images.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"AugmentPipe: expected float32 or float64 images in [-1, 1], got {images.dtype}; "
                             "convert uint8 with img.float() / 127.5 - 1")
        dp = None if debug_percentile is None else torch.as_tensor(debug_percentile, dtype=torch.float32,
                                                                   device=images.device)
        out = self._geometric(images, dp)
        out = self._color(out, dp)
        out = self._filter(out, dp)
        out = self._corrupt(out, dp)
        if dp is None and out is not images:
            out = torch.where(self.p == 0, images, out)
        return out

    # The helpers below draw their random numbers in NVlabs' order: for each transformation, first its parameter,
    # then the uniform number that decides whether it applies.

    def _gate(self, value: torch.Tensor, prob: torch.Tensor, shape: list[int], off: torch.Tensor) -> torch.Tensor:
        """``value`` where a fresh uniform draw of ``shape`` is below ``prob``, else ``off``."""
        return torch.where(torch.rand(shape, device=value.device) < prob, value, off)

    def _geometric(self, images: torch.Tensor, dp: torch.Tensor | None) -> torch.Tensor:
        n, c, h, w = images.shape
        dev = images.device
        eye = torch.eye(3, device=dev)
        G_inv = eye  # maps output pixel -> input pixel, homogeneous [N, 3, 3] once anything is composed

        if self.xflip > 0:
            i = torch.floor(torch.rand([n], device=dev) * 2)
            i = self._gate(i, self.xflip * self.p, [n], torch.zeros_like(i))
            if dp is not None:
                i = torch.full_like(i, torch.floor(dp * 2))
            G_inv = G_inv @ _scale2d(1 / (1 - 2 * i), 1 / 1)

        if self.rotate90 > 0:
            i = torch.floor(torch.rand([n], device=dev) * 4)
            i = self._gate(i, self.rotate90 * self.p, [n], torch.zeros_like(i))
            if dp is not None:
                i = torch.full_like(i, torch.floor(dp * 4))
            G_inv = G_inv @ _rotate2d(np.pi / 2 * i)

        if self.xint > 0:
            t = (torch.rand([n, 2], device=dev) * 2 - 1) * self.xint_max
            t = self._gate(t, self.xint * self.p, [n, 1], torch.zeros_like(t))
            if dp is not None:
                t = torch.full_like(t, (dp * 2 - 1) * self.xint_max)
            G_inv = G_inv @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))

        if self.scale > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.scale_std)
            s = self._gate(s, self.scale * self.p, [n], torch.ones_like(s))
            if dp is not None:
                s = torch.full_like(s, torch.exp2(torch.erfinv(dp * 2 - 1) * self.scale_std))
            G_inv = G_inv @ _scale2d(1 / s, 1 / s)

        # Pre- and post-rotation each with probability p_rot, so that P(pre or post) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * np.pi * self.rotate_max
            theta = self._gate(theta, p_rot, [n], torch.zeros_like(theta))
            if dp is not None:
                theta = torch.full_like(theta, (dp * 2 - 1) * np.pi * self.rotate_max)
            G_inv = G_inv @ _rotate2d(theta)

        if self.aniso > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.aniso_std)
            s = self._gate(s, self.aniso * self.p, [n], torch.ones_like(s))
            if dp is not None:
                s = torch.full_like(s, torch.exp2(torch.erfinv(dp * 2 - 1) * self.aniso_std))
            G_inv = G_inv @ _scale2d(1 / s, 1 / (1 / s))

        if self.rotate > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * np.pi * self.rotate_max
            theta = self._gate(theta, p_rot, [n], torch.zeros_like(theta))
            if dp is not None:
                theta = torch.zeros_like(theta)
            G_inv = G_inv @ _rotate2d(theta)

        if self.xfrac > 0:
            t = torch.randn([n, 2], device=dev) * self.xfrac_std
            t = self._gate(t, self.xfrac * self.p, [n, 1], torch.zeros_like(t))
            if dp is not None:
                t = torch.full_like(t, torch.erfinv(dp * 2 - 1) * self.xfrac_std)
            G_inv = G_inv @ _translate2d(-(t[:, 0] * w), -(t[:, 1] * h))

        if G_inv is eye:
            return images
        return self._resample(images, G_inv)

    def _resample(self, images: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
        """Execute the inverse affine map G_inv [N, 3, 3] (pixel coordinates, origin at the image centre)."""
        n, c, h, w = images.shape
        dev = images.device
        pad = self.Hz_geom.shape[0] // 4

        # Reflect-pad just enough to cover where the corners of the output land (plus the filter's support).
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = _mat((-cx, -cy, 1), (cx, -cy, 1), (cx, cy, 1), (-cx, cy, 1), device=dev)  # [4, xyz]
        corners = G_inv @ corners.t()  # [N, xyz, 4]
        reach = corners[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, N * 4]
        margin = torch.cat([-reach, reach]).max(dim=1).values  # [x0, y0, x1, y1]
        margin = margin + torch.tensor([pad * 2 - cx, pad * 2 - cy] * 2, dtype=torch.float32, device=dev)
        margin = margin.max(torch.zeros(4, device=dev))
        margin = margin.min(torch.tensor([w - 1, h - 1] * 2, dtype=torch.float32, device=dev))
        mx0, my0, mx1, my1 = margin.ceil().to(torch.int32).tolist()
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        G_inv = _translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, device=dev) @ G_inv

        # Upsample 2x with the orthogonal low-pass, move the map to the upsampled pixel grid.
        images = upsample2d(images, self.Hz_geom, up=2)
        G_inv = _scale2d(2, 2, device=dev) @ G_inv @ _scale2d(1 / 2, 1 / 2, device=dev)
        G_inv = _translate2d(-0.5, -0.5, device=dev) @ G_inv @ _translate2d(0.5, 0.5, device=dev)

        # Sample bilinearly in normalised coordinates: output grid of the padded, upsampled size.
        shape = [n, c, (h + pad * 2) * 2, (w + pad * 2) * 2]
        G_inv = (_scale2d(2 / images.shape[3], 2 / images.shape[2], device=dev) @ G_inv
                 @ _scale2d(1 / (2 / shape[3]), 1 / (2 / shape[2]), device=dev))
        grid = F.affine_grid(G_inv[:, :2, :].to(images.dtype), shape, align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Downsample 2x with the same filter and crop the padding.
        return downsample2d(images, self.Hz_geom, down=2, padding=-pad * 2, flip_filter=True)

    def _color(self, images: torch.Tensor, dp: torch.Tensor | None) -> torch.Tensor:
        n, c, h, w = images.shape
        dev = images.device
        eye = torch.eye(4, device=dev)
        C = eye  # color_out = C @ color_in, homogeneous [N, 4, 4] once anything is composed

        if self.brightness > 0:
            b = torch.randn([n], device=dev) * self.brightness_std
            b = self._gate(b, self.brightness * self.p, [n], torch.zeros_like(b))
            if dp is not None:
                b = torch.full_like(b, torch.erfinv(dp * 2 - 1) * self.brightness_std)
            C = _translate3d(b, b, b) @ C

        if self.contrast > 0:
            k = torch.exp2(torch.randn([n], device=dev) * self.contrast_std)
            k = self._gate(k, self.contrast * self.p, [n], torch.ones_like(k))
            if dp is not None:
                k = torch.full_like(k, torch.exp2(torch.erfinv(dp * 2 - 1) * self.contrast_std))
            C = _scale3d(k, k, k) @ C

        luma = torch.tensor(np.asarray([1, 1, 1, 0]) / np.sqrt(3), dtype=torch.float32, device=dev)  # luma axis
        luma_proj = torch.outer(luma, luma)
        if self.lumaflip > 0:
            i = torch.floor(torch.rand([n, 1, 1], device=dev) * 2)
            i = self._gate(i, self.lumaflip * self.p, [n, 1, 1], torch.zeros_like(i))
            if dp is not None:
                i = torch.full_like(i, torch.floor(dp * 2))
            C = (eye - 2 * luma_proj * i) @ C  # Householder reflection of the luma axis

        if self.hue > 0 and c > 1:
            theta = (torch.rand([n], device=dev) * 2 - 1) * np.pi * self.hue_max
            theta = self._gate(theta, self.hue * self.p, [n], torch.zeros_like(theta))
            if dp is not None:
                theta = torch.full_like(theta, (dp * 2 - 1) * np.pi * self.hue_max)
            C = _rotate3d(luma, theta) @ C

        if self.saturation > 0 and c > 1:
            s = torch.exp2(torch.randn([n, 1, 1], device=dev) * self.saturation_std)
            s = self._gate(s, self.saturation * self.p, [n, 1, 1], torch.ones_like(s))
            if dp is not None:
                s = torch.full_like(s, torch.exp2(torch.erfinv(dp * 2 - 1) * self.saturation_std))
            C = (luma_proj + (eye - luma_proj) * s) @ C

        if C is eye:
            return images
        C = C.to(images.dtype)
        flat = images.reshape([n, c, h * w])
        if c == 3:
            flat = C[:, :3, :3] @ flat + C[:, :3, 3:]
        elif c == 4:  # RGBA: colour transforms move R, G, B; alpha is left as it is
            flat = torch.cat([C[:, :3, :3] @ flat[:, :3] + C[:, :3, 3:], flat[:, 3:]], dim=1)
        elif c == 1:
            C = C[:, :3, :].mean(dim=1, keepdim=True)  # L = mean of the transformed R, G, B
            flat = flat * C[:, :, :3].sum(dim=2, keepdim=True) + C[:, :, 3:]
        else:
            raise ValueError(f"AugmentPipe: color transformations need RGB, RGBA or L (3, 4 or 1 channel) images, "
                             f"got {c} channels; turn off brightness/contrast/lumaflip/hue/saturation")
        return flat.reshape([n, c, h, w])

    def _filter(self, images: torch.Tensor, dp: torch.Tensor | None) -> torch.Tensor:
        if self.imgfilter <= 0:
            return images
        n, c, h, w = images.shape
        dev = images.device
        bands, taps = self.Hz_fbank.shape
        half = taps // 2
        if h <= half or w <= half:
            raise ValueError(f"AugmentPipe: imgfilter needs images larger than {half}x{half} px (reflect padding of "
                             f"its {taps}-tap filters), got {h}x{w}; turn imgfilter off for small images")
        expected_power = torch.tensor(np.array([10, 1, 1, 1]) / 13, dtype=torch.float32, device=dev)  # ~1/f spectrum

        # Amplify each band by 2^N(0, std) with probability imgfilter * p * band multiplier, renormalising the
        # expected power after every band.
        gain = torch.ones([n, bands], device=dev)
        for band, strength in enumerate(self.imgfilter_bands):
            g = torch.exp2(torch.randn([n], device=dev) * self.imgfilter_std)
            g = self._gate(g, self.imgfilter * self.p * strength, [n], torch.ones_like(g))
            if dp is not None:
                g = (torch.full_like(g, torch.exp2(torch.erfinv(dp * 2 - 1) * self.imgfilter_std)) if strength > 0
                     else torch.ones_like(g))
            step = torch.ones([n, bands], device=dev)
            step[:, band] = g
            step = step / (expected_power * step.square()).sum(dim=-1, keepdim=True).sqrt()
            gain = gain * step

        # One separable filter per image: [N * C, 1, taps], applied as a grouped conv along x, then along y.
        kernel = (gain @ self.Hz_fbank).unsqueeze(1).repeat([1, c, 1]).reshape([n * c, 1, -1]).to(images.dtype)
        x = images.reshape([1, n * c, h, w])
        x = F.pad(x, [half] * 4, mode="reflect")
        x = F.conv2d(x, kernel.unsqueeze(2), groups=n * c)
        x = F.conv2d(x, kernel.unsqueeze(3), groups=n * c)
        return x.reshape([n, c, h, w])

    def _corrupt(self, images: torch.Tensor, dp: torch.Tensor | None) -> torch.Tensor:
        n, c, h, w = images.shape
        dev = images.device

        if self.noise > 0:
            sigma = torch.randn([n, 1, 1, 1], device=dev).abs() * self.noise_std
            sigma = self._gate(sigma, self.noise * self.p, [n, 1, 1, 1], torch.zeros_like(sigma))
            if dp is not None:
                sigma = torch.full_like(sigma, torch.erfinv(dp) * self.noise_std)
            images = images + (torch.randn([n, c, h, w], device=dev) * sigma).to(images.dtype)

        if self.cutout > 0:
            size = torch.full([n, 2, 1, 1, 1], self.cutout_size, device=dev)
            size = self._gate(size, self.cutout * self.p, [n, 1, 1, 1, 1], torch.zeros_like(size))
            center = torch.rand([n, 2, 1, 1, 1], device=dev)
            if dp is not None:
                size = torch.full_like(size, self.cutout_size)
                center = torch.full_like(center, dp)
            x = torch.arange(w, device=dev).reshape([1, 1, 1, -1])
            y = torch.arange(h, device=dev).reshape([1, 1, -1, 1])
            outside_x = ((x + 0.5) / w - center[:, 0]).abs() >= size[:, 0] / 2
            outside_y = ((y + 0.5) / h - center[:, 1]).abs() >= size[:, 1] / 2
            images = images * torch.logical_or(outside_x, outside_y).to(images.dtype)

        return images

    def extra_repr(self) -> str:
        on = [k for k in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                          "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout") if getattr(self, k) != 0]
        return f"p={float(self.p):g}, " + ", ".join(f"{k}={getattr(self, k):g}" for k in on)


def augment_pipe(name: str = "bgc", p: float = 0.0, **overrides: Any) -> AugmentPipe:
    """An :class:`AugmentPipe` for one of NVlabs' named pipelines (``--augpipe``), with ``p`` set.

    Args:
        name: a key of :data:`AUGPIPE_SPECS`: blit, geom, color, filter, noise, cutout, bg, bgc (the paper's default),
            bgcf, bgcfn, bgcfnc.
        p: initial augmentation probability in [0, 1] (NVlabs' ``augment_p``; 0 = ADA starts from no augmentation).
        **overrides: :class:`AugmentPipe` keywords that replace or extend the named set (e.g. ``xflip=0``,
            ``noise_std=0.05``).

    Raises:
        ValueError: unknown name, p outside [0, 1]; TypeError: an unknown keyword.
    """
    if name not in AUGPIPE_SPECS:
        raise ValueError(f"augment_pipe: unknown pipeline {name!r}; expected one of {', '.join(AUGPIPE_SPECS)}")
    if not 0 <= p <= 1:
        raise ValueError(f"augment_pipe: p must be in [0, 1], got {p}")
    pipe = AugmentPipe(**{**AUGPIPE_SPECS[name], **overrides})
    pipe.p.fill_(float(p))
    return pipe


# ----------------------------------------------------------------------------------------------------------------------
# The p controller.


class AdaController(nn.Module):
    """Adjusts ``augment_pipe.p`` from D's overfitting heuristic r_t = E[sign(D(x_real))] (ADA section 3).

    Every ``ada_interval`` iterations, r_t is the mean over all ranks and all reals D scored since the last
    adjustment; then ``p <- max(p + sign(r_t - ada_target) * batch_size * ada_interval / (ada_kimg * 1000), 0)``, so
    p can rise from 0 to 1 in ``ada_kimg`` thousand images (NVlabs' ``training_loop.py``). An interval without any
    statistic keeps the previous r_t (NVlabs' collector does the same). ``ada_target=None`` is the fixed-p mode:
    nothing is accumulated and p never changes.

    Use, in the training step::

        ada.accumulate(stats["Loss/signs/real"], num=real_img.shape[0])  # after each D phase chunk (Dmain, Dreg)
        ada.update(batch_idx, batch_size)  # once per iteration, after batch_idx += 1, on every rank

    State: buffers ``signs`` (float64 [2]: count and sum of the signs accumulated since the last adjustment, summed
    over ranks) and ``r_t`` (float64, NaN before the first adjustment); ``state_dict()`` also holds ``p`` (the pipe's,
    which ``load_state_dict`` restores into the pipe). At an iteration boundary (after :meth:`update`) the state is
    the same on every rank. The pipe is referenced, not registered as a submodule: register it where it is owned.

    Args:
        augment_pipe: the pipe whose ``p`` buffer is adjusted (an :class:`AugmentPipe` or any module with ``p``).
        ada_target: target value of r_t (NVlabs 0.6), None = fixed p.
        ada_interval: iterations between adjustments (NVlabs 4).
        ada_kimg: thousands of images over which p may change by 1 (NVlabs 500).

    Raises:
        ValueError: a pipe without a ``p`` buffer, ada_interval < 1, ada_kimg <= 0.
    """

    def __init__(
        self,
        augment_pipe: nn.Module,
        ada_target: float | None = 0.6,  # Target value of r_t = E[sign(D(reals))], None = fixed p.
        ada_interval: int = 4,  # Iterations between adjustments of p.
        ada_kimg: float = 500,  # Adjustment speed: kimg for p to change by one unit.
    ) -> None:
        super().__init__()
        if not isinstance(getattr(augment_pipe, "p", None), torch.Tensor):
            raise ValueError("AdaController: augment_pipe must have a tensor buffer 'p' (e.g. sgtrain.core.augment."
                             "AugmentPipe)")
        if int(ada_interval) < 1:
            raise ValueError(f"AdaController: ada_interval must be >= 1 iteration, got {ada_interval}")
        if not ada_kimg > 0:
            raise ValueError(f"AdaController: ada_kimg must be > 0, got {ada_kimg}")
        self.augment_pipe = augment_pipe
        self.ada_target = None if ada_target is None else float(ada_target)
        self.ada_interval = int(ada_interval)
        self.ada_kimg = float(ada_kimg)
        self.register_buffer("signs", torch.zeros([2], dtype=torch.float64))  # [count, sum], all ranks
        self.register_buffer("r_t", torch.full([], math.nan, dtype=torch.float64))
        self.register_buffer("_local", torch.zeros([2], dtype=torch.float64), persistent=False)  # this rank's

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "augment_pipe":  # referenced, never registered (its owner checkpoints it)
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def p(self) -> float:
        """The current augmentation probability (reads the pipe's buffer: a device sync on GPU)."""
        return float(self.augment_pipe.p)

    @property
    def adaptive(self) -> bool:
        """False in the fixed-p mode (``ada_target=None``)."""
        return self.ada_target is not None

    @torch.no_grad()
    def accumulate(self, signs: torch.Tensor, num: int | None = None) -> None:
        """Add D's real-logit signs of this rank (no device sync; a no-op in the fixed-p mode).

        Args:
            signs: ``sign(D(x_real))`` of any shape, each element counting once; or, with ``num``, their mean over
                ``num`` elements (what ``GANLoss.accumulate_gradients`` reports as ``'Loss/signs/real'``). A sum of
                signs is an integer, so ``mean * num`` is rounded to recover it exactly.
            num: number of elements averaged in ``signs``; None = ``signs`` holds the elements themselves.
        """
        if self.ada_target is None:
            return
        signs = signs.detach().to(device=self._local.device, dtype=torch.float64)
        if num is None:
            count, total = float(signs.numel()), signs.sum()
        else:
            count, total = float(num), torch.round(signs.reshape([]) * num)
        self._local[0] += count
        self._local[1] += total

    @torch.no_grad()
    def update(self, batch_idx: int, batch_size: int) -> bool:
        """Fold this iteration's statistic in and, every ``ada_interval`` iterations, adjust p.

        Call once per iteration on every rank: under an initialised ``torch.distributed`` with more than one process
        it all-reduces the accumulator (a collective).

        Args:
            batch_idx: iterations done, counting this one (NVlabs' ``batch_idx`` after ``batch_idx += 1``); p is
                adjusted when it is a multiple of ``ada_interval``.
            batch_size: images per iteration over all ranks (the global minibatch, NVlabs' ``batch_size``).

        Returns:
            True if p was adjusted.
        """
        if self.ada_target is None:
            return False
        local = self._local
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            local = local.clone()
            torch.distributed.all_reduce(local)
        self.signs += local
        self._local.zero_()
        if batch_idx % self.ada_interval != 0:
            return False
        count, total = self.signs.tolist()
        self.signs.zero_()
        if count > 0:
            self.r_t.fill_(total / count)
        r_t = float(self.r_t)
        if math.isnan(r_t):
            return False
        adjust = float(np.sign(r_t - self.ada_target)) * (batch_size * self.ada_interval) / (self.ada_kimg * 1000)
        p = self.augment_pipe.p
        p.copy_((p + adjust).clamp(min=0))
        return True

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        p = self.augment_pipe.p
        destination[prefix + "p"] = p if keep_vars else p.detach()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        key = prefix + "p"
        if key in state_dict:
            with torch.no_grad():
                self.augment_pipe.p.copy_(torch.as_tensor(state_dict[key]))
            state_dict = {k: v for k, v in state_dict.items() if k != key}
        elif strict:
            missing_keys.append(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f"ada_target={self.ada_target}, ada_interval={self.ada_interval}, ada_kimg={self.ada_kimg:g}"
