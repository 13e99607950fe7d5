"""VGG16 features for the perceptual distances of projection (LPIPS, Zhang et al. 2018) and PPL, from local files.

NVlabs' TorchScript ``vgg16.pt`` (stylegan2-ada-pytorch's metrics file) or a torchvision-format VGG16 state dict;
sgtrain never downloads it. The projector (:mod:`sgtrain.latent.project`) takes its VGG16 from here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch

from sgtrain.errors import InputError, MissingFileError

__all__ = ["VGG16_URL", "VGG16Features", "load_vgg16"]

VGG16_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt"
_NO_VGG = ("the lpips-vgg loss needs VGG16 weights from a local file: pass --vgg PATH (vgg= in the API) with "
           f"NVlabs' TorchScript vgg16.pt, published at {VGG16_URL}, or a torchvision-format VGG16 state dict "
           "(keys features.0.weight ... features.28.bias); sgtrain never downloads it. Or use --loss mse, which "
           "needs no file.")

# torchvision's VGG16 'features' layout: conv widths, 'M' = 2x2 max-pool.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_LPIPS_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's indexing.


class VGG16Features(torch.nn.Module):
    """VGG16 convolutional trunk (Simonyan & Zisserman 2015) with torchvision's parameter names
    (``features.0.weight`` ... ``features.28.bias``), returning LPIPS-style features.

    The output is the concatenation over relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of the channel-normalised
    activations divided by sqrt(H_l W_l), so ``(f(x) - f(y)).square().sum(1)`` is LPIPS with unit layer weights
    (Zhang et al. 2018, eq. 1, the "baseline" variant without the learned linear heads).

    Input: float32 [N, 3, H, W] in [0, 255] (RGB); normalised with ImageNet mean/std as torchvision expects.
    Output: float32 [N, F].
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG[:-1]:  # the last pool feeds only the classifier
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(in_ch, v, 3, padding=1), torch.nn.ReLU(inplace=False)]
                in_ch = v
        self.features = torch.nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _LPIPS_TAPS:
                f = x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10)
                feats.append(f.flatten(1) / math.sqrt(x.shape[2] * x.shape[3]))
        return torch.cat(feats, dim=1)


def load_vgg16(
    path: str | os.PathLike | None, device: str | torch.device = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Open VGG16 feature weights from a local file and return ``f(images) -> features``.

    Args:
        path: NVlabs' TorchScript ``vgg16.pt`` (called as ``vgg16(x, resize_images=False, return_lpips=True)``, the
            learned LPIPS distance) or a torchvision-format state dict (``.pth``/``.pt``/``.safetensors``; the
            unit-weight LPIPS of :class:`VGG16Features`).

    Returns:
        A function taking float32 [N, 3, H, W] in [0, 255] and returning float32 [N, F]; squared Euclidean distance
        between feature vectors is the perceptual distance.

    Raises:
        FileNotFoundError: no path given or the file does not exist (the message names the file expected).
        ValueError: the file is neither TorchScript nor a VGG16 state dict.
    """
    if path is None:
        raise MissingFileError(_NO_VGG)
    if not os.path.exists(path):
        raise MissingFileError(f"--vgg '{path}' does not exist. " + _NO_VGG)
    try:
        script = torch.jit.load(str(path), map_location=device).eval()
    except Exception:
        script = None
    if script is not None:
        def scripted(x: torch.Tensor) -> torch.Tensor:
            return script(x, resize_images=False, return_lpips=True).flatten(1)
        return scripted
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"'{path}' is neither a TorchScript module nor a state dict. " + _NO_VGG)
    model = VGG16Features()
    want = model.features.state_dict()
    got = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    missing = [k for k in want if k not in got]
    if missing:
        raise InputError(f"'{path}' lacks VGG16 weights {['features.' + k for k in missing[:4]]}... " + _NO_VGG)
    bad = [k for k in want if tuple(got[k].shape) != tuple(want[k].shape)]
    if bad:
        raise InputError(f"'{path}' has shapes that are not VGG16's for {['features.' + k for k in bad[:4]]}")
    model.features.load_state_dict({k: got[k] for k in want})
    return model.eval().requires_grad_(False).to(device)
