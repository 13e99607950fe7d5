"""Latent recipes: a YAML file (OmegaConf) that chains named steps of the latent tools.

A recipe names its networks and lists steps in order; each step reads earlier steps by name and writes its outputs
to ``<out>/<step name>/``::

    networks: {emoji: runs/stylegan_small-smileys, second: runs/smileys-seed1}
    out: out/character_pipeline
    steps:
      characters: {type: sample, network: emoji, seeds: 0-7, psi: 0.7}
      palette:    {type: sample, network: emoji, seeds: 42, psi: 0.7}
      restyled:   {type: mix, layers: "0-5:characters,6-end:palette"}
      cropped:    {type: crop, input: restyled, center: 0.75, size: 64}
      projected:  {type: project, input: cropped, network: second, space: w+, steps: 300, loss: mse}
      sheet:      {type: sheet, inputs: [characters, restyled, cropped, projected]}

Every step calls the same API function as the single command it mirrors (sample: ``sgtrain-generate``; load:
``sgtrain-generate --projected-w``; mix: ``sgtrain-blend``; project: ``sgtrain-project``; direction:
``sgtrain-directions``' edit), with the same batching, so its images and latents equal that command's for the same
arguments. The step types and their keys are in :data:`STEP_TYPES` and docs/studio.md.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from sgtrain.errors import InputError, MissingFileError, UserError
from sgtrain.latent.blend import blend_ws, mean_ws, parse_layer_spec
from sgtrain.latent.common import (
    load_generator,
    load_ws,
    make_grid,
    parse_grid,
    parse_range,
    save_image,
    save_ws,
    seeds_to_ws,
    seeds_to_z,
    to_uint8,
)
from sgtrain.latent.directions import load_direction, sefa, sefa_directions
from sgtrain.latent.generate import render_ws
from sgtrain.latent.mixing import style_layers
from sgtrain.latent.project import image_size, load_target, load_vgg16, project
from sgtrain.latent.studio import capabilities, generate_z_images, require_w

__all__ = ["STEP_TYPES", "TOP_KEYS", "RecipeError", "StepResult", "load_recipe", "check_recipe", "run_recipe",
           "crop_images"]

# Top-level keys and their defaults (None = required or computed).
TOP_KEYS: dict[str, Any] = {
    "networks": None,  # {name: path}: anything sgtrain.io.load_network opens.
    "out": None,  # Output folder; default out/<recipe file stem>.
    "device": "auto",  # cpu, cuda, cuda:1 ... (auto: CUDA when available).
    "batch_size": 16,  # Images per network call (the single commands' --batch-size).
    "noise_mode": "const",  # const | random | none, for every rendering step unless the step says otherwise.
    "steps": None,  # {step name: {type: ..., ...}}, run in order.
}

_REQ = object()  # marks a required key

# Per step type: its keys with defaults (_REQ = required). Every step also takes 'type' and 'save' (default true).
STEP_TYPES: dict[str, dict[str, Any]] = {
    "sample": {"network": None, "seeds": _REQ, "psi": 1.0, "cutoff": None, "class": None, "noise_mode": None},
    "load": {"network": None, "path": _REQ, "noise_mode": None},
    "mix": {"layers": None, "mean": None, "weights": None, "noise_mode": None},
    "crop": {"input": _REQ, "box": None, "center": None, "size": None},
    "resize": {"input": _REQ, "size": _REQ},
    "project": {"input": _REQ, "network": None, "space": "w", "steps": 1000, "loss": "lpips-vgg", "vgg": None,
                "lr": 0.1, "w_avg_samples": 10000, "fixed_noise": False, "seed": 303, "class": None},
    "direction": {"input": _REQ, "file": None, "index": 0, "sefa": None, "sefa_layers": "all", "strength": _REQ,
                  "layers": None, "noise_mode": None},
    "sheet": {"inputs": _REQ, "grid": None, "size": None},
    "save": {"input": _REQ, "dir": None, "images": True, "latents": True},
}
_COMMON = {"type": _REQ, "save": True}
_LATENT_STEPS = ("sample", "load", "mix", "project", "direction")
_NAME = re.compile(r"[A-Za-z_]\w*")


class RecipeError(UserError, ValueError):
    """A recipe that cannot run: unknown step type or key, a reference to no earlier step, a bad value."""


@dataclass
class StepResult:
    """What a step produced.

    ``ws`` float32 [N, num_ws, w_dim] (W networks) or ``z`` float32 [N, z_dim] (z-only networks) on CPU, both None
    for image-only steps; ``images`` uint8 [N, H, W, C]; ``labels`` one name per item (file stems); ``network`` the
    recipe's name of the network the latents belong to; ``files`` the images written.
    """

    name: str
    type: str
    network: str | None = None
    ws: torch.Tensor | None = None
    z: torch.Tensor | None = None
    images: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _closest(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return close[0] if close else None


def _nearest(word: str, choices: Sequence[str]) -> str:
    close = _closest(word, choices)
    return f"; did you mean '{close}'?" if close else ""


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> DictConfig:
    """Read a recipe YAML and apply ``key=value`` overrides (OmegaConf dot-list, e.g. ``steps.characters.seeds=0-3``,
    ``networks.emoji=runs/other``, ``out=out/try2``).

    Returns:
        The merged config; ``out`` defaults to ``out/<file stem>``.

    Raises:
        FileNotFoundError: no recipe file. RecipeError: not a mapping, or a malformed override.
    """
    if not os.path.exists(path):
        raise MissingFileError(f"recipe '{path}' not found")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"recipe '{path}' must be a mapping with networks:, steps: (and optionally out:, device:)")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise RecipeError(f"overrides must be key=value (e.g. steps.characters.seeds=0-3); got {bad}")
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    if cfg.get("out") is None:
        cfg.out = os.path.join("out", os.path.splitext(os.path.basename(str(path)))[0])
    return cfg


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else cfg


def _mix_sources(params: dict) -> list[str]:
    names: list[str] = []
    if params.get("layers") is not None:
        for part in str(params["layers"]).split(","):
            m = re.fullmatch(r"\s*(?:\d+|end)\s*(?:-\s*(?:\d+|end))?\s*:\s*(\w+)\s*", part)
            if not m:
                raise RecipeError(f"cannot parse '{part.strip()}' in layers '{params['layers']}': write ranges like "
                                  "'0-3:style,4-end:characters' (step names as sources; 'mean' for the average)")
            if m.group(1) != "mean" and m.group(1) not in names:
                names.append(m.group(1))
    for n in params.get("mean") or []:
        if n not in names:
            names.append(n)
    return names


def _check_ref(name: str, other: str, what: str, done: dict[str, str], steps: dict, latents: bool) -> None:
    if other not in done:
        later = " (it comes later: steps run in order)" if other in steps else ""
        near = _closest(other, list(done))
        near = f" (did you mean '{near}'?)" if near else ""
        raise RecipeError(f"step '{name}' refers to '{other}' as {what}, which is not an earlier step{later}{near}. "
                          f"Earlier steps: {', '.join(done) or 'none'}")
    if latents and done[other] not in _LATENT_STEPS:
        raise RecipeError(f"step '{name}' needs latents from '{other}', but a {done[other]} step has only images "
                          f"(latent steps: {', '.join(_LATENT_STEPS)})")
    if not latents and done[other] == "save":
        raise RecipeError(f"step '{name}' reads '{other}', a save step, which produces nothing to read")


def check_recipe(cfg: DictConfig | dict) -> list[tuple[str, str, dict]]:
    """Validate a recipe without loading any network.

    Returns:
        [(step name, step type, keys with defaults filled)] in order.

    Raises:
        RecipeError: unknown top-level key, step type or step key (with the nearest valid one), a missing required
            key, a step name that is not an identifier, a reference to a step that does not come earlier, a latent
            step fed from an image-only step, an unknown network name.
    """
    cfg = _plain(cfg)
    for key in cfg:
        if key not in TOP_KEYS:
            raise RecipeError(f"unknown recipe key '{key}'{_nearest(key, list(TOP_KEYS))} "
                              f"(keys: {', '.join(TOP_KEYS)})")
    networks = cfg.get("networks") or {}
    if not isinstance(networks, dict) or not networks:
        raise RecipeError("the recipe needs networks: {name: path, ...} (run directories, .pkl, .safetensors)")
    steps = cfg.get("steps")
    if not isinstance(steps, dict) or not steps:
        raise RecipeError("the recipe needs steps: {step_name: {type: sample, ...}, ...}")
    if cfg.get("noise_mode", "const") not in ("const", "random", "none"):
        raise RecipeError(f"noise_mode '{cfg['noise_mode']}' unknown: use const, random or none")
    done: dict[str, str] = {}
    plan = []
    for name, step in steps.items():
        name = str(name)
        if not _NAME.fullmatch(name) or name == "mean":
            raise RecipeError(f"step name '{name}' must be an identifier (letters, digits, _) and not 'mean'")
        if not isinstance(step, dict) or "type" not in step:
            raise RecipeError(f"step '{name}' needs a type: one of {', '.join(STEP_TYPES)}")
        kind = str(step["type"])
        if kind not in STEP_TYPES:
            raise RecipeError(f"step '{name}' has unknown type '{kind}'{_nearest(kind, list(STEP_TYPES))} "
                              f"(types: {', '.join(STEP_TYPES)})")
        allowed = {**_COMMON, **STEP_TYPES[kind]}
        for key in step:
            if key not in allowed:
                raise RecipeError(f"step '{name}' ({kind}) has no key '{key}'{_nearest(str(key), list(allowed))} "
                                  f"(keys: {', '.join(allowed)})")
        params = {k: step.get(k, v) for k, v in allowed.items()}
        missing = [k for k, v in params.items() if v is _REQ or (allowed[k] is _REQ and v is None)]
        if missing:
            raise RecipeError(f"step '{name}' ({kind}) needs {', '.join(missing)}")

        def ref(other: Any, what: str, latents: bool = False, name: str = name) -> None:
            _check_ref(name, str(other), what, done, steps, latents)

        if kind in ("crop", "resize", "project", "save"):
            ref(params["input"], "input")
        if kind == "direction":
            ref(params["input"], "input", latents=True)
            if (params["file"] is None) == (params["sefa"] is None):
                raise RecipeError(f"step '{name}' (direction) needs exactly one of file: PATH.npz or sefa: INDEX")
        if kind == "sheet":
            inputs = params["inputs"] if isinstance(params["inputs"], list) else [params["inputs"]]
            for other in inputs:
                ref(other, "a sheet input")
            params["inputs"] = [str(i) for i in inputs]
        if kind == "mix":
            if params["layers"] is None and params["mean"] is None:
                raise RecipeError(f"step '{name}' (mix) needs layers: 'RANGE:STEP,...' and/or mean: [STEP, ...]")
            if params["mean"] is not None and not isinstance(params["mean"], list):
                params["mean"] = [params["mean"]]
            if params["layers"] is not None and "mean" in re.findall(r":\s*(\w+)", str(params["layers"])) \
                    and params["mean"] is None:
                raise RecipeError(f"step '{name}' (mix) uses 'mean' in layers but gives no mean: [STEP, ...]")
            for other in _mix_sources(params):
                ref(other, "a mix source", latents=True)
        if kind == "crop" and (params["box"] is None) == (params["center"] is None):
            raise RecipeError(f"step '{name}' (crop) needs exactly one of box: [left, top, right, bottom] (pixels) "
                              "or center: FRACTION")
        if kind == "project":
            if params["space"] not in ("w", "w+"):
                raise RecipeError(f"step '{name}' (project): space '{params['space']}' unknown: use w or w+")
            if params["loss"] not in ("lpips-vgg", "mse"):
                raise RecipeError(f"step '{name}' (project): loss '{params['loss']}' unknown: use lpips-vgg or mse")
        if params.get("noise_mode") not in (None, "const", "random", "none"):
            raise RecipeError(f"step '{name}': noise_mode '{params['noise_mode']}' unknown: use const, random or none")
        if "network" in params:
            if params["network"] is None:
                if len(networks) != 1:
                    raise RecipeError(f"step '{name}' ({kind}) needs network: one of {', '.join(networks)}")
                params["network"] = next(iter(networks))
            elif str(params["network"]) not in networks:
                raise RecipeError(f"step '{name}' names network '{params['network']}'"
                                  f"{_nearest(str(params['network']), list(networks))}; the recipe's networks are "
                                  f"{', '.join(networks)}")
        done[name] = kind
        plan.append((name, kind, params))
    return plan


def crop_images(images: np.ndarray, box: Sequence[int] | None = None, center: float | None = None,
                size: int | Sequence[int] | None = None) -> np.ndarray:
    """Crop and/or resize uint8 images [N, H, W, C] with Pillow (Lanczos).

    Args:
        box: [left, top, right, bottom] in pixels (right/bottom exclusive).
        center: keep the central fraction (0, 1] of width and height: ``round(W * f) x round(H * f)`` pixels starting
            at ``((W - w) // 2, (H - h) // 2)``.
        size: resize to ``size x size`` (int) or ``[width, height]``.

    Returns:
        uint8 [N, H', W', C].

    Raises:
        ValueError: a box outside the image or empty, a fraction outside (0, 1].
    """
    import PIL.Image

    n, H, W, C = images.shape
    if box is not None:
        box = [int(v) for v in box]
        if len(box) != 4 or not (0 <= box[0] < box[2] <= W and 0 <= box[1] < box[3] <= H):
            raise InputError(f"crop box {box} is not [left, top, right, bottom] inside the {W}x{H} image")
    elif center is not None:
        f = float(center)
        if not 0 < f <= 1:
            raise InputError(f"crop center {f} must be a fraction in (0, 1]")
        w, h = max(1, round(W * f)), max(1, round(H * f))
        box = [(W - w) // 2, (H - h) // 2, (W - w) // 2 + w, (H - h) // 2 + h]
    if size is not None:
        size = (int(size), int(size)) if isinstance(size, (int, float, str)) else tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise InputError(f"size {size} must be a positive int or [width, height]")
    out = []
    for img in images:
        pil = PIL.Image.fromarray(img[:, :, 0] if C == 1 else img)
        if box is not None:
            pil = pil.crop(tuple(box))
        if size is not None:
            pil = pil.resize(size, PIL.Image.LANCZOS)
        arr = np.asarray(pil, dtype=np.uint8)
        out.append(arr[:, :, None] if arr.ndim == 2 else arr)
    return np.stack(out)


def _unique_labels(labels: list[str]) -> list[str]:
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i:03d}_{s}" for i, s in enumerate(labels)]


class _Runner:
    def __init__(self, cfg: dict, networks: dict[str, torch.nn.Module] | None, log: Callable[[str], None]):
        self.cfg = cfg
        self.paths = {str(k): str(v) for k, v in cfg["networks"].items()}
        self.nets: dict[str, torch.nn.Module] = dict(networks or {})
        self.out = str(cfg["out"])
        self.device = cfg.get("device", "auto")
        self.batch_size = int(cfg.get("batch_size", 16))
        self.noise_mode = cfg.get("noise_mode", "const")
        self.log = log
        self.results: dict[str, StepResult] = {}
        self.vggs: dict[str, Any] = {}

    def net(self, name: str) -> torch.nn.Module:
        if name not in self.nets:
            self.log(f"loading network '{name}' from {self.paths[name]}")
            self.nets[name] = load_generator(self.paths[name], self.device)
        return self.nets[name]

    def noise(self, params: dict) -> str:
        return params.get("noise_mode") or self.noise_mode

    def render(self, G: torch.nn.Module, ws: torch.Tensor, noise_mode: str) -> np.ndarray:
        return render_ws(G, ws, noise_mode, self.batch_size).numpy()

    def latent_network(self, name: str, sources: Sequence[str]) -> str:
        nets = {s: self.results[s].network for s in sources}
        if len(set(nets.values())) != 1:
            raise InputError(f"step '{name}' mixes latents of different networks ("
                             + ", ".join(f"{s}: {n}" for s, n in nets.items())
                             + "); project images into one network first (type: project)")
        return next(iter(nets.values()))

    # Steps --------------------------------------------------------------------------------------------------------

    def sample(self, name: str, p: dict) -> StepResult:
        G = self.net(p["network"])
        seeds = parse_range(str(p["seeds"]) if isinstance(p["seeds"], int) else p["seeds"])
        labels = [f"seed{s:04d}" for s in seeds]
        if not capabilities(G).w_space:
            if p["psi"] != 1.0 or p["cutoff"] is not None:
                raise InputError(f"psi/cutoff need a W space; this network ({capabilities(G).family}) has none")
            z = seeds_to_z(seeds, G.z_dim)
            images = generate_z_images(G, z, p["class"], self.batch_size).numpy()
            return StepResult(name, "sample", p["network"], z=z, images=images, labels=labels)
        # Exactly sgtrain-generate --seeds: generate_images = seeds_to_ws then render_ws, batch by batch.
        ws = seeds_to_ws(G, seeds, float(p["psi"]), p["cutoff"], p["class"], self.batch_size)
        return StepResult(name, "sample", p["network"], ws=ws.cpu(), images=self.render(G, ws, self.noise(p)),
                          labels=labels)

    def load(self, name: str, p: dict) -> StepResult:
        G = self.net(p["network"])
        require_w(G, "loading W latents")
        ws = load_ws(p["path"], G.num_ws, G.w_dim)
        return StepResult(name, "load", p["network"], ws=ws, images=self.render(G, ws, self.noise(p)),
                          labels=[f"w{i:02d}" for i in range(len(ws))])

    def mix(self, name: str, p: dict) -> StepResult:
        names = _mix_sources(p)
        net = self.latent_network(name, names)
        G = self.net(net)
        require_w(G, "mixing layers")
        sources = {s: self.results[s].ws.to(next(G.parameters()).device) for s in names}
        if p["mean"] is not None:
            weights = None if p["weights"] is None else [float(v) for v in p["weights"]]
            avg = mean_ws({s: sources[s] for s in p["mean"]}, weights)
            if p["layers"] is None:
                ws = avg  # sgtrain-blend --mean
            else:
                owner = parse_layer_spec(str(p["layers"]), [*names, "mean"], G.num_ws, G.img_resolution)
                ws = blend_ws({**sources, "mean": avg}, owner)
        else:  # sgtrain-blend --layers
            ws = blend_ws(sources, parse_layer_spec(str(p["layers"]), names, G.num_ws, G.img_resolution))
        first = next(s for s in names if self.results[s].ws.shape[0] == ws.shape[0])
        return StepResult(name, "mix", net, ws=ws.cpu(), images=self.render(G, ws, self.noise(p)),
                          labels=list(self.results[first].labels))

    def crop(self, name: str, p: dict) -> StepResult:
        src = self.results[str(p["input"])]
        images = crop_images(src.images, p.get("box"), p.get("center"), p.get("size"))
        return StepResult(name, p["type"], images=images, labels=list(src.labels))

    resize = crop

    def project(self, name: str, p: dict) -> StepResult:
        src = self.results[str(p["input"])]
        G = self.net(p["network"])
        require_w(G, "projection")
        device = next(G.parameters()).device
        vgg = None
        if p["loss"] == "lpips-vgg":
            key = str(p["vgg"])
            if key not in self.vggs:
                self.vggs[key] = load_vgg16(p["vgg"], device)
            vgg = self.vggs[key]
        with tempfile.TemporaryDirectory() as tmp:
            # sgtrain-project reads image files through load_target (centre crop to the aspect, Lanczos): the same
            # from the input's PNGs (lossless), written afresh when the input step did not save them.
            files = src.files
            if len(files) != len(src.images):
                files = [os.path.join(tmp, f"{i:03d}.png") for i in range(len(src.images))]
                for img, f in zip(src.images, files):
                    save_image(img, f)
            targets = torch.stack([load_target(f, image_size(G), G.img_channels) for f in files])
        ws, images, scores = [], [], []
        for i in range(0, len(targets), self.batch_size):  # as sgtrain-project: each batch projected jointly
            out = project(G, targets[i:i + self.batch_size], space=p["space"], num_steps=int(p["steps"]),
                          loss=p["loss"], vgg=vgg, class_idx=p["class"], w_avg_samples=int(p["w_avg_samples"]),
                          initial_learning_rate=float(p["lr"]), optimize_noise=not p["fixed_noise"],
                          seed=int(p["seed"]), device=device)
            ws.append(out["ws"].cpu())
            images.append(to_uint8(out["images"]).numpy())
            scores.append(out["psnr"])
        psnr = torch.cat(scores)
        self.log(f"  {name}: PSNR " + ", ".join(f"{v:.2f}" for v in psnr.tolist()) + " dB")
        return StepResult(name, "project", p["network"], ws=torch.cat(ws), images=np.concatenate(images),
                          labels=list(src.labels), info=dict(psnr=psnr.tolist()))

    def direction(self, name: str, p: dict) -> StepResult:
        src = self.results[str(p["input"])]
        G = self.net(src.network)
        require_w(G, "a latent direction")
        if p["file"] is not None:
            d = load_direction(p["file"], int(p["index"]), need_w=True)
        else:
            layers = None if p["sefa_layers"] == "all" else style_layers(str(p["sefa_layers"]), G.num_ws,
                                                                          G.img_resolution)
            found = sefa_directions(sefa(G, layers))  # as sgtrain-directions --layers
            index = int(p["sefa"])
            if not 0 <= index < len(found):
                raise InputError(f"sefa index {index} out of range 0-{len(found) - 1}")
            d = found[index]
        layers = None if p["layers"] is None else style_layers(
            str(p["layers"]) if not isinstance(p["layers"], list) else p["layers"], G.num_ws, G.img_resolution)
        ws = d.apply(src.ws, float(p["strength"]), layers)
        return StepResult(name, "direction", src.network, ws=ws, images=self.render(G, ws, self.noise(p)),
                          labels=list(src.labels))

    def sheet(self, name: str, p: dict) -> StepResult:
        rows = [self.results[s].images for s in p["inputs"]]
        if p["size"] is not None:
            size = (int(p["size"]),) * 2 if not isinstance(p["size"], list) else tuple(int(v) for v in p["size"])
        else:
            size = (max(r.shape[2] for r in rows), max(r.shape[1] for r in rows))  # (width, height)
        channels = max(r.shape[3] for r in rows)
        cells = []
        for r in rows:
            if r.shape[3] != channels:
                r = np.repeat(r, channels, axis=3)
            if (r.shape[2], r.shape[1]) != size:
                r = crop_images(r, size=size)
            cells.append(r)
        if p["grid"] is not None:
            if len(cells) != 1:
                raise InputError("grid: RxC lays out one input; with several inputs each becomes a row")
            R, C = parse_grid(str(p["grid"]))
            sheet = make_grid(cells[0], R, C)
        else:
            C = max(len(r) for r in cells)
            padded = [np.concatenate([r, np.zeros([C - len(r), *r.shape[1:]], np.uint8)]) for r in cells]
            sheet = make_grid(np.concatenate(padded), len(cells), C)
        return StepResult(name, "sheet", images=sheet[None], labels=["sheet"])

    def save_step(self, name: str, p: dict) -> StepResult:
        src = self.results[str(p["input"])]
        folder = str(p["dir"]) if p["dir"] is not None else os.path.join(self.out, name)
        files = self.write(src, folder, images=bool(p["images"]), latents=bool(p["latents"]))
        self.log(f"  {name}: wrote {len(files)} files of '{src.name}' to {folder}")
        return StepResult(name, "save")

    # Output -------------------------------------------------------------------------------------------------------

    def write(self, res: StepResult, folder: str, images: bool = True, latents: bool = True) -> list[str]:
        os.makedirs(folder, exist_ok=True)
        written = []
        if images and res.images is not None:
            for img, label in zip(res.images, _unique_labels(res.labels)):
                path = os.path.join(folder, f"{label}.png")
                save_image(img, path)
                written.append(path)
        if latents and res.ws is not None:
            save_ws(os.path.join(folder, "w.npz"), res.ws)
            written.append(os.path.join(folder, "w.npz"))
        if latents and res.z is not None:
            os.makedirs(folder, exist_ok=True)
            np.savez(os.path.join(folder, "z.npz"), z=res.z.numpy())
            written.append(os.path.join(folder, "z.npz"))
        return written

    def run(self, plan: list[tuple[str, str, dict]]) -> dict[str, StepResult]:
        os.makedirs(self.out, exist_ok=True)
        for name, kind, params in plan:
            fn = self.save_step if kind == "save" else getattr(self, kind)
            try:
                with torch.no_grad() if kind != "project" else contextlib.nullcontext():
                    res = fn(name, {**params, "type": kind})
            except UserError as e:
                raise RecipeError(f"step '{name}' ({kind}): {e}") from e
            if params["save"] and kind != "save":
                written = self.write(res, os.path.join(self.out, name))
                res.files = [f for f in written if f.endswith(".png")]
            self.results[name] = res
            n = 0 if res.images is None else len(res.images)
            what = f"{n} image{'s' if n != 1 else ''}" + (" + latents" if res.ws is not None or res.z is not None
                                                          else "")
            self.log(f"{name} ({kind}): {what}" + (f" -> {os.path.join(self.out, name)}" if params["save"] and
                                                   kind != "save" else ""))
        return self.results


def run_recipe(
    recipe: str | os.PathLike | DictConfig | dict,
    overrides: Sequence[str] = (),
    *,
    networks: dict[str, torch.nn.Module] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, StepResult]:
    """Run a recipe (a path or a loaded config) and write every step's outputs to ``<out>/<step>/``.

    Args:
        recipe: YAML path or config (see the module docstring and docs/studio.md).
        overrides: ``key=value`` strings applied on top (only with a path).
        networks: already-loaded generators by recipe network name (skips loading those paths).
        log: where progress lines go.

    Returns:
        {step name: :class:`StepResult`} in order. ``<out>/recipe.yaml`` records the resolved recipe.

    Raises:
        RecipeError: the recipe is invalid or a step fails on a value (the message names the step).
        FileNotFoundError / sgtrain.io errors: a network or file cannot be read.
    """
    cfg = load_recipe(recipe, overrides) if isinstance(recipe, (str, os.PathLike)) else recipe
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    if cfg.get("out") is None:
        cfg.out = "out/recipe"
    plan = check_recipe(cfg)
    plain = _plain(cfg)
    runner = _Runner(plain, networks, log)
    os.makedirs(runner.out, exist_ok=True)
    OmegaConf.save(OmegaConf.create(plain), os.path.join(runner.out, "recipe.yaml"))
    return runner.run(plan)
