"""An encoder from images to W+, trained on the generator's own samples, as a starting point for projection.

Encoders that invert a GAN (Zhu et al. 2016, "Generative Visual Manipulation on the Natural Image Manifold",
sec. 3.2: a network trained to predict the latent of generated images, then refined by optimisation; Richardson et al.
2021, pSp, and Tov et al. 2021, e4e, for W+ encoders) make projection start close to the answer. Here the training
set is the generator itself: each step draws z, maps it to ws (with style mixing, so that layers differ as in W+),
renders the image with random noise, and trains the encoder to predict the ws from the image. The loss is the mean
squared error of the ws normalised per channel by the spread of w (and optionally the image mse of rendering the
prediction). No dataset is needed. :func:`sgtrain.latent.project.project` takes the prediction as ``init_ws``.

Files. Training keeps ``DIR/checkpoint.pt`` (encoder, optimiser, step; written atomically) so that rerunning the same
command continues; the encoder is exported as ``DIR/encoder.safetensors`` + ``DIR/encoder.json`` (the portable
convention of ``sgtrain.io``: tensors in safetensors, what to build in JSON, the JSON also in the safetensors
metadata). JSON layout (``format_version`` 1)::

    {"format": "sgtrain-encoder", "format_version": 1, "sgtrain_version": "0.1.0",
     "class": "sgtrain.latent.encoder.Encoder", "init_kwargs": {...},
     "generator": {"z_dim": 128, "w_dim": 128, "num_ws": 10, "img_resolution": 64, "img_channels": 3,
                   "img_width": 64, "img_height": 64, "sha256": "..."},   # the network it was trained for
     "training_info": {"step": 2000, "batch": 16, ...}}

W x H generators (a StyleGAN2 with ``init_res``, e.g. 64x32) get an encoder of the same input size: ``init_kwargs``
then hold ``img_width`` and ``img_height``, the residual blocks halve both sides down to the network's first level
(``init_res``, 2x4 for 64x32) and the fully connected layer reads that rectangle (the rectangular last block, as
the W x H discriminator's).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sgtrain.core.batches import in_batches
from sgtrain.errors import InputError, MissingFileError
from sgtrain.io.atomic import atomic_write
from sgtrain.latent.common import image_size

__all__ = ["Encoder", "generator_info", "save_encoder", "load_encoder", "encode_images", "train_encoder",
           "ENCODER_FORMAT"]

ENCODER_FORMAT = "sgtrain-encoder"
ENCODER_FORMAT_VERSION = 1
_CLASS = "sgtrain.latent.encoder.Encoder"


class _ResBlock(torch.nn.Module):
    """Two 3x3 convs with leaky ReLU, then 2x average-pool; a 1x1 skip; sum scaled by 1/sqrt(2) (as StyleGAN2's
    residual D blocks keep the signal's variance)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = torch.nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = torch.nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        y = F.avg_pool2d(F.leaky_relu(self.conv1(y), 0.2), 2)
        return (y + F.avg_pool2d(self.skip(x), 2)) / math.sqrt(2)


class Encoder(torch.nn.Module):
    """Images to W+: a residual CNN (from-RGB 1x1 conv, one downsampling residual block per resolution down to 4x4,
    or to the first level ``[img_height, img_width] * 4 / img_resolution`` of a W x H network, then two fully
    connected layers) predicting ws normalised as ``(ws - w_avg) / w_scale``.

    Input: float32 [N, img_channels, img_height, img_width] in [-1, 1] (network images; img_resolution square
    unless img_width / img_height are given).
    Output: float32 [N, num_ws, w_dim] = ``w_avg + w_scale * head(x)``.
    Buffers ``w_avg`` [w_dim] and ``w_scale`` [w_dim] (per-channel std of w) are set from the generator before
    training and saved with the encoder.
    """

    def __init__(
        self,
        img_resolution: int,  # Input resolution (a power of two >= 4).
        img_channels: int,  # Input channels (3 = RGB).
        num_ws: int,  # Number of ws predicted (the generator's num_ws).
        w_dim: int,  # Dimensionality of each w.
        channel_base: int | None = None,  # Channels at res r = min(channel_base / r, channel_max); None = 16 * res.
        channel_max: int = 256,  # Maximum number of channels in any block.
        hidden: int = 512,  # Width of the fully connected layer before the output.
        img_width: int | None = None,  # Input width of a W x H generator's images; None = img_resolution.
        img_height: int | None = None,  # Input height; None = img_resolution. The longer side is img_resolution.
    ) -> None:
        super().__init__()
        log2 = int(round(math.log2(img_resolution)))
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise InputError(f"Encoder: img_resolution must be a power of two >= 4, got {img_resolution}")
        W = img_resolution if img_width is None else int(img_width)
        H = img_resolution if img_height is None else int(img_height)
        step = img_resolution // 4  # the 4x4 level's pixel in input pixels
        if max(W, H) != img_resolution or min(W, H) < step or W % step or H % step:
            raise InputError(f"Encoder: a {W}x{H} input needs its longer side = img_resolution ({img_resolution}) "
                             f"and each side a multiple of {step} (img_resolution / 4), as a W x H generator's images")
        channel_base = 16 * img_resolution if channel_base is None else int(channel_base)
        self.init_kwargs = dict(img_resolution=img_resolution, img_channels=img_channels, num_ws=num_ws, w_dim=w_dim,
                                channel_base=channel_base, channel_max=channel_max, hidden=hidden)
        if (W, H) != (img_resolution, img_resolution):  # square encoders keep the keywords of format 1 as they were
            self.init_kwargs.update(img_width=W, img_height=H)
        self.img_resolution, self.img_channels, self.num_ws, self.w_dim = img_resolution, img_channels, num_ws, w_dim
        self.img_width, self.img_height = W, H

        def ch(res: int) -> int:
            return max(1, min(channel_base // res, channel_max))

        self.fromrgb = torch.nn.Conv2d(img_channels, ch(img_resolution), 1)
        self.blocks = torch.nn.ModuleList(_ResBlock(ch(2 ** k), ch(2 ** (k - 1))) for k in range(log2, 2, -1))
        self.fc = torch.nn.Linear(ch(4) * (H // step) * (W // step), hidden)  # the last block's H0 x W0 map
        self.out = torch.nn.Linear(hidden, num_ws * w_dim)
        with torch.no_grad():
            self.out.weight.mul_(0.1)  # start near w_avg
            self.out.bias.zero_()
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("w_scale", torch.ones(w_dim))

    def normalised(self, img: torch.Tensor) -> torch.Tensor:
        """The raw prediction ``(ws - w_avg) / w_scale``: float32 [N, num_ws, w_dim]."""
        want = (self.img_channels, self.img_height, self.img_width)
        if img.ndim != 4 or tuple(img.shape[1:]) != want:
            raise InputError(f"Encoder takes images [N, {want[0]}, {want[1]}, {want[2]}]; got {list(img.shape)}")
        x = F.leaky_relu(self.fromrgb(img), 0.2)
        for block in self.blocks:
            x = block(x)
        x = F.leaky_relu(self.fc(x.flatten(1)), 0.2)
        return self.out(x).reshape(-1, self.num_ws, self.w_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.w_avg + self.w_scale * self.normalised(img)


def generator_info(G: torch.nn.Module) -> dict[str, Any]:
    """What an encoder must match in a generator: sizes (image width and height too), and a SHA-256 of its mapping
    and synthesis weights."""
    h = hashlib.sha256()
    for part in ("mapping", "synthesis"):
        for k, v in getattr(G, part).state_dict().items():
            h.update(f"{part}.{k}".encode())
            h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    width, height = image_size(G)
    return dict(z_dim=int(G.z_dim), w_dim=int(G.w_dim), num_ws=int(G.num_ws), img_resolution=int(G.img_resolution),
                img_channels=int(G.img_channels), img_width=width, img_height=height, sha256=h.hexdigest())


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / "encoder"
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_encoder(path: str | os.PathLike, encoder: Encoder, generator: dict[str, Any] | None = None,
                 training_info: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` + ``<stem>.json`` (each atomically); ``path`` may be a folder (stem ``encoder``).

    Args:
        generator: :func:`generator_info` of the network it was trained for. training_info: JSON fields.

    Returns:
        The two paths written.
    """
    from safetensors.torch import save_file

    import sgtrain

    st_path, json_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(format=ENCODER_FORMAT, format_version=ENCODER_FORMAT_VERSION, sgtrain_version=sgtrain.__version__,
                  **{"class": _CLASS}, init_kwargs=dict(encoder.init_kwargs), generator=generator or {},
                  training_info=training_info or {})
    text = json.dumps(header, indent=2)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in encoder.state_dict().items()}
    atomic_write(st_path, lambda tmp: save_file(tensors, tmp, metadata={"format": ENCODER_FORMAT, "sgtrain": text}))
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text + "\n"))
    return st_path, json_path


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu",
                 G: torch.nn.Module | None = None) -> Encoder:
    """Open an encoder written by :func:`save_encoder` (a ``.safetensors``, ``.json``, stem or training folder).

    Args:
        G: when given, the encoder's sizes must fit it; a different generator (weights hash) only warns, since the
            prediction remains a usable starting point for a fine-tuned network.

    Returns:
        The encoder in eval mode without gradients, on ``device``; ``encoder.header`` holds the JSON document.

    Raises:
        FileNotFoundError: no such file. ValueError: not an encoder file, a newer format, sizes that do not fit G.
    """
    from safetensors import safe_open

    st_path, json_path = _paths(path)
    if not st_path.exists():
        raise MissingFileError(f"encoder file '{st_path}' not found; train one with sgtrain-encoder train")
    with safe_open(str(st_path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(json_path.read_text()) if json_path.exists() else json.loads(meta.get("sgtrain", "{}"))
    if header.get("format") != ENCODER_FORMAT or header.get("class") != _CLASS:
        raise InputError(f"'{st_path}' is not an sgtrain encoder file (format {header.get('format')!r})")
    if int(header.get("format_version", 0)) > ENCODER_FORMAT_VERSION:
        raise InputError(f"'{st_path}' has encoder format version {header['format_version']}; this sgtrain reads up "
                         f"to {ENCODER_FORMAT_VERSION}: update sgtrain")
    encoder = Encoder(**header["init_kwargs"])
    encoder.load_state_dict(tensors)
    encoder.header = header
    if G is not None:
        gen = header.get("generator") or {}
        width, height = image_size(G)
        have = dict(w_dim=G.w_dim, num_ws=G.num_ws, img_resolution=G.img_resolution, img_channels=G.img_channels,
                    img_width=width, img_height=height)
        for k, v in have.items():  # files of encoders made before W x H hold no img_width / img_height
            if k in gen and int(gen[k]) != int(v):
                raise InputError(f"the encoder '{st_path}' was trained for a network with {k}={gen[k]}; this network "
                                 f"has {k}={v}: train an encoder for it with sgtrain-encoder train")
        if gen.get("sha256") and gen["sha256"] != generator_info(G)["sha256"]:
            import warnings

            warnings.warn(f"the encoder '{st_path}' was trained for other weights of this architecture; its "
                          "prediction is a rougher starting point", stacklevel=2)
    return encoder.eval().requires_grad_(False).to(device)


@torch.no_grad()
def encode_images(encoder: Encoder, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Predict ws for images: uint8 or float [N, C, H, W] in [0, 255] (as :func:`~sgtrain.latent.project.load_target`
    gives them). Returns float32 [N, num_ws, w_dim] on the encoder's device."""
    device = next(encoder.parameters()).device
    x = images.to(device).float() / 127.5 - 1
    return in_batches(encoder, x, batch_size=batch_size)


def _samples(G: torch.nn.Module, n: int, seed: int, mixing_prob: float, truncation_psi: float,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n (ws, images) pairs drawn from ``seed`` alone (z, classes, style mixing with probability mixing_prob, and
    the synthesis noise), so that a resumed training sees the same batches."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        z = torch.randn([2, n, G.z_dim], device=device)
        c = torch.zeros([n, G.c_dim], device=device)
        if G.c_dim:
            c[torch.arange(n, device=device), torch.randint(G.c_dim, [n], device=device)] = 1
        ws = G.mapping(z[0], c, truncation_psi=truncation_psi)
        if mixing_prob > 0:
            ws2 = G.mapping(z[1], c, truncation_psi=truncation_psi)
            cut = torch.randint(1, G.num_ws, [n], device=device)
            mix = torch.rand([n], device=device) < mixing_prob
            cut = torch.where(mix, cut, torch.full_like(cut, G.num_ws))
            layer = torch.arange(G.num_ws, device=device)[None, :, None]
            ws = torch.where(layer < cut[:, None, None], ws, ws2)
        img = G.synthesis(ws, noise_mode="random")
    return ws, img


def train_encoder(
    G: torch.nn.Module,
    out_dir: str | os.PathLike,
    *,
    steps: int = 8000,
    batch: int = 16,
    lr: float = 1e-3,
    image_weight: float = 0.0,
    mixing_prob: float = 0.5,
    truncation_psi: float = 1.0,
    seed: int = 0,
    save_every: int = 500,
    progress: bool = True,
    callback: Callable[[int, int, dict], bool | None] | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> Encoder:
    """Train (or continue training) an encoder for G on G's own samples; resumable and exported.

    A folder holds one training: its ``checkpoint.pt`` is read when present (training continues from its step up to
    ``steps``; the settings stored there must match), written atomically every ``save_every`` steps and at the end,
    together with the portable export ``encoder.safetensors`` + ``encoder.json``. Step k's batch is drawn from a
    generator seeded by ``(seed, k)``, so a resumed run sees the same samples as an uninterrupted one.

    Args:
        G: generator with W (``mapping``, ``synthesis``, ``num_ws``); not modified.
        steps: total optimisation steps (batches).
        batch: samples per step.
        lr: Adam learning rate (betas 0.9, 0.99), cosine-decayed to 10% over the steps.
        image_weight: weight of the image mse of rendering the prediction (0 = latent loss only; > 0 backpropagates
            through the synthesis network, several times slower on CPU).
        mixing_prob: probability that a sample's ws switch to a second z's ws at a random layer (W+ variety).
        truncation_psi: truncation of the training samples.
        callback: called after each step with (step, steps, {"loss": float, "latent_loss": float}); True stops.
        encoder_kwargs: :class:`Encoder` keywords beyond the sizes (channel_base, channel_max, hidden).

    Returns:
        The trained encoder (eval mode) on ``device``.

    Raises:
        ValueError: G has no W, or the folder's checkpoint was made with other settings or another network.
    """
    from tqdm.auto import tqdm

    if not all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws")):
        raise InputError(f"an encoder predicts ws; this network ({type(G).__name__}) has no W space")
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    G = G.eval().requires_grad_(False).to(dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = generator_info(G)
    settings = dict(batch=batch, lr=lr, image_weight=image_weight, mixing_prob=mixing_prob,
                    truncation_psi=truncation_psi, seed=seed)
    kwargs = dict(img_resolution=G.img_resolution, img_channels=G.img_channels, num_ws=G.num_ws, w_dim=G.w_dim,
                  **(encoder_kwargs or {}))
    width, height = image_size(G)
    if (width, height) != (G.img_resolution, G.img_resolution):  # a W x H network: an encoder of its image size
        kwargs.update(img_width=width, img_height=height)
    ckpt_path = out / "checkpoint.pt"
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True) if ckpt_path.exists() else None
    if state is not None:
        if state["generator"]["sha256"] != info["sha256"]:
            raise InputError(f"'{ckpt_path}' trains an encoder for another network; use another --out folder")
        old = json.loads(state["settings"])
        if old != settings or json.loads(state["init_kwargs"]) != kwargs:
            raise InputError(f"'{ckpt_path}' was made with settings {old} and encoder {state['init_kwargs']}; this run "
                             f"asks for {settings} and {kwargs}: rerun with the same options or another --out folder")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = Encoder(**kwargs).to(dev)
    opt = torch.optim.Adam(encoder.parameters(), lr=lr, betas=(0.9, 0.99))
    step = 0
    if state is not None:
        encoder.load_state_dict(state["encoder"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
    else:
        with torch.no_grad():  # w statistics of the generator, for the normalised target
            w = []
            gen = torch.Generator().manual_seed(int(seed) + 2**40)  # apart from the training batches' seeds
            for _ in range(10):
                z = torch.randn([1000, G.z_dim], generator=gen).to(dev)
                c = torch.zeros([1000, G.c_dim], device=dev)
                if G.c_dim:
                    c[torch.arange(1000, device=dev), torch.randint(G.c_dim, [1000], generator=gen).to(dev)] = 1
                w.append(G.mapping(z, c, truncation_psi=truncation_psi)[:, 0])
            w = torch.cat(w)
            encoder.w_avg.copy_(w.mean(0))
            encoder.w_scale.copy_(w.std(0).clamp_min(1e-8))

    def save(at: int, seconds: float) -> None:
        training = dict(step=at, steps=steps, seconds=round(seconds, 1), **settings)
        payload = dict(encoder=encoder.state_dict(), optimizer=opt.state_dict(), step=at, generator=info,
                       settings=json.dumps(settings), init_kwargs=json.dumps(kwargs), seconds=seconds)
        atomic_write(ckpt_path, lambda tmp: torch.save(payload, tmp))
        save_encoder(out / "encoder", encoder, info, training)

    seconds = float(state.get("seconds", 0)) if state is not None else 0.0
    t0 = time.time()
    encoder.train()
    bar = tqdm(total=steps, initial=step, desc="encoder", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        while step < steps:
            with torch.no_grad():
                ws, img = _samples(G, batch, int(seed) * 1_000_003 + step, mixing_prob, truncation_psi, dev)
            for group in opt.param_groups:
                group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
            pred = encoder.normalised(img)
            target = (ws - encoder.w_avg) / encoder.w_scale
            latent_loss = (pred - target).square().mean()
            loss = latent_loss
            if image_weight > 0:
                rendered = G.synthesis(encoder.w_avg + encoder.w_scale * pred, noise_mode="const")
                loss = loss + image_weight * (rendered - img).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            stop = bool(callback(step, steps, dict(loss=loss.item(), latent_loss=latent_loss.item()))) \
                if callback is not None else False
            if step % save_every == 0 or step == steps or stop:
                save(step, seconds + time.time() - t0)
            if stop:
                break
    finally:
        bar.close()
    if state is not None and step == int(state["step"]):  # nothing to do: make sure the export exists
        if not _paths(out / "encoder")[0].exists():
            save(step, seconds)
    return encoder.eval().requires_grad_(False)
