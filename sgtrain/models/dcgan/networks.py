"""DCGAN: the all-convolutional GAN of Radford et al. 2016 (the smallest family of sgtrain).

Source: Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks", section 3 (architecture guidelines) and section 4 (details): strided convolutions instead of
pooling, fractionally-strided (transposed) convolutions in G, batch normalization in both networks except G's output
and D's input layers, ReLU in G with tanh output, leaky ReLU (slope 0.2) in D, weights from N(0, 0.02). The
channel layout follows PyTorch's DCGAN example (``ngf * 8`` channels at 4x4 for 64x64 images), generalised to any
power-of-two resolution >= 8. Labels (``c_dim > 0``): G concatenates c to z; D concatenates c, broadcast to constant
feature maps, to its input (Mirza & Osindero 2014, "Conditional GANs").

G takes z only: there is no W space, so truncation, style mixing and W projection do not apply to it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["Discriminator", "Generator"]


def _check_resolution(img_resolution: int) -> int:
    log2 = int(math.log2(img_resolution)) if img_resolution > 0 else 0
    if img_resolution < 8 or 2**log2 != img_resolution:
        raise ValueError(f"DCGAN: img_resolution={img_resolution} must be a power of two >= 8")
    return log2


def _init_weights(module: nn.Module) -> None:
    """Radford et al. 2016, section 4: conv weights N(0, 0.02); batch-norm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """DCGAN generator: z [N, z_dim] (and c [N, c_dim]) -> images [N, img_channels, R, R] float32 in (-1, 1).

    Layers: a 4x4 transposed convolution from the (z, c) vector to ``ngf * R / 8`` channels, then one stride-2
    transposed convolution per doubling of the resolution (channels halve), each followed by batch norm and ReLU; the
    last one maps to ``img_channels`` with tanh.

    Attributes: z_dim, c_dim, img_resolution, img_channels, init_kwargs (the constructor's keywords as a JSON dict:
    ``Generator(**G.init_kwargs)`` rebuilds it).
    """

    def __init__(
        self,
        z_dim: int = 100,  # Input latent (Z) dimensionality (Radford et al.: 100).
        c_dim: int = 0,  # Conditioning label (C) dimensionality, 0 = unconditional.
        img_resolution: int = 64,  # Output resolution, a power of two >= 8.
        img_channels: int = 3,  # Number of output color channels.
        ngf: int = 64,  # Channels of the last hidden layer; doubled at each lower resolution.
    ) -> None:
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.z_dim, self.c_dim = int(z_dim), int(c_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.init_kwargs: dict[str, Any] = dict(z_dim=self.z_dim, c_dim=self.c_dim, img_resolution=self.img_resolution,
                                                img_channels=self.img_channels, ngf=int(ngf))
        ch = int(ngf) * 2 ** (log2 - 3)
        layers: list[nn.Module] = [nn.ConvTranspose2d(self.z_dim + self.c_dim, ch, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(log2 - 3):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, self.img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                **_unused: Any) -> torch.Tensor:
        """Generate images.

        Args:
            z: latents, float32 [N, z_dim].
            c: labels, float32 [N, c_dim] (one-hot for classes); ignored when c_dim == 0.
            truncation_psi: must be 1: DCGAN has no W space to truncate in.
            **_unused: keywords of the style-based generators (``noise_mode``, ``update_emas``...), ignored.

        Returns:
            float32 [N, img_channels, img_resolution, img_resolution] in (-1, 1).

        Raises:
            ValueError: ``truncation_psi != 1``, or z / c of the wrong shape.
        """
        if truncation_psi != 1:
            raise ValueError("DCGAN has no W space: the truncation trick (truncation_psi != 1) needs a style-based "
                             "generator (StyleGAN, StyleGAN2, StyleGAN3)")
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z has shape {list(z.shape)}; this generator takes [N, z_dim={self.z_dim}]")
        x = z
        if self.c_dim:
            if c is None or c.shape != (z.shape[0], self.c_dim):
                raise ValueError(f"c must be [N, c_dim={self.c_dim}] for this conditional generator")
            x = torch.cat([z, c.to(z.dtype)], dim=1)
        return self.main(x[:, :, None, None])


class Discriminator(nn.Module):
    """DCGAN discriminator: images [N, img_channels, R, R] (and c) -> logits [N, 1] float32.

    Layers: stride-2 4x4 convolutions halving the resolution down to 4x4 (channels ``ndf``, doubling), batch norm on
    all but the first, leaky ReLU 0.2; a 4x4 valid convolution to one logit.

    Attributes: c_dim, img_resolution, img_channels, init_kwargs.
    """

    def __init__(
        self,
        c_dim: int = 0,  # Conditioning label (C) dimensionality, 0 = unconditional.
        img_resolution: int = 64,  # Input resolution, a power of two >= 8.
        img_channels: int = 3,  # Number of input color channels.
        ndf: int = 64,  # Channels of the first layer; doubled at each lower resolution.
    ) -> None:
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.c_dim = int(c_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.init_kwargs: dict[str, Any] = dict(c_dim=self.c_dim, img_resolution=self.img_resolution,
                                                img_channels=self.img_channels, ndf=int(ndf))
        ch = int(ndf)
        layers: list[nn.Module] = [nn.Conv2d(self.img_channels + self.c_dim, ch, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]
        for _ in range(log2 - 3):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **_unused: Any) -> torch.Tensor:
        """Score images.

        Args:
            img: float32 [N, img_channels, img_resolution, img_resolution] in [-1, 1].
            c: labels, float32 [N, c_dim]; ignored when c_dim == 0.
            **_unused: keywords of the other families' discriminators (``update_emas``), ignored.

        Returns:
            logits float32 [N, 1] (higher = more real).

        Raises:
            ValueError: images of the wrong shape.
        """
        want = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != want:
            raise ValueError(f"images have shape {list(img.shape)}; this discriminator takes [N, {want[0]}, "
                             f"{want[1]}, {want[2]}]")
        x = img
        if self.c_dim:
            if c is None or c.shape != (img.shape[0], self.c_dim):
                raise ValueError(f"c must be [N, c_dim={self.c_dim}] for this conditional discriminator")
            x = torch.cat([img, c.to(img.dtype)[:, :, None, None].expand(-1, -1, *img.shape[2:])], dim=1)
        return self.main(x).reshape(img.shape[0], 1)
