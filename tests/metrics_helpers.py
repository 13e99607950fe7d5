"""Shared pieces of the metric tests and of the out-of-repo script that recorded NVlabs' numbers.

- :class:`TinyDetector`: a small random network with NVlabs' feature-network calling convention (uint8 NCHW in,
  ``return_features`` / ``no_output_bias`` / ``resize_images`` / ``return_lpips`` keywords). The committed
  ``tests/fixtures/metrics/tiny_detector.pt`` is ``torch.jit.save(torch.jit.script(TinyDetector()))``; NVlabs'
  metric code ran with that same file (see tests/fixtures/metrics/README.md).
- :func:`fixture_images`: the two fixed image sets, from NumPy's legacy RandomState (stable across versions).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "metrics")
DETECTOR = os.path.join(FIXTURES, "tiny_detector.pt")


class TinyDetector(torch.nn.Module):
    """Random two-conv network: uint8 [N, 3, H, W] -> 32 features, 10 class probabilities, or LPIPS-style features.

    Weights are drawn from ``torch.Generator().manual_seed(seed)``.
    """

    def __init__(self, seed: int = 20240601, num_features: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16 * 4 * 4, num_features)
        self.output = torch.nn.Linear(num_features, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                fan_in = p[0].numel() if p.ndim > 1 else 4
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        x = img.to(torch.float32)
        if resize_images:
            x = F.interpolate(x, size=[16, 16], mode="bilinear", align_corners=False)
        x = x / 127.5 - 1
        h1 = F.leaky_relu(self.conv1(x), 0.2)
        h2 = F.leaky_relu(self.conv2(h1), 0.2)
        if return_lpips:
            f1 = h1 / (h1.square().sum(1, keepdim=True).sqrt() + 1e-10)
            f2 = h2 / (h2.square().sum(1, keepdim=True).sqrt() + 1e-10)
            s1 = math.sqrt(float(h1.shape[2] * h1.shape[3]))
            s2 = math.sqrt(float(h2.shape[2] * h2.shape[3]))
            return torch.cat([f1.flatten(1) / s1, f2.flatten(1) / s2], dim=1)
        f = self.fc(F.adaptive_avg_pool2d(h2, [4, 4]).flatten(1))
        if return_features:
            return f
        logits = F.linear(f, self.output.weight) if no_output_bias else self.output(f)
        return F.softmax(logits, dim=1)


def fixture_images(which: str) -> np.ndarray:
    """The fixed image sets, uint8 [N, 3, 16, 16]: 'A' (300 images) and 'B' (250 images, brighter, blockier)."""
    if which == "A":
        rs, n, lo, hi, block = np.random.RandomState(1), 300, 0, 256, 4
    elif which == "B":
        rs, n, lo, hi, block = np.random.RandomState(2), 250, 60, 256, 8
    else:
        raise ValueError(which)
    base = rs.randint(lo, hi, size=(n, 3, 16 // block, 16 // block))
    img = np.kron(base, np.ones((1, 1, block, block), dtype=np.int64))
    img = img + rs.randint(-24, 25, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png_folder(images: np.ndarray, path: str) -> str:
    """Write uint8 [N, C, H, W] as ``path/000000.png``...; returns ``path``."""
    from PIL import Image

    os.makedirs(path, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(os.path.join(path, f"{i:06d}.png"))
    return path
