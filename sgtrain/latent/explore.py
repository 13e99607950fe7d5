"""The latent explorer behind ``sgtrain-explore``: a local web page over one or more generators.

:class:`Explorer` holds the networks and does the work (seed grids, truncation, style mixing of any two latents,
a per-layer view of a mix, noise per layer, direction sliders, StyleGAN3 translate/rotate, interpolation strips,
projection of uploaded images in background threads, latent downloads); :func:`create_app` puts a FastAPI app with
a self-contained HTML page (no external assets) in front of it. Every image is computed by the same API functions
the single commands use: the style-mixing panel calls :func:`sgtrain.latent.mixing.mixing_grid_ws` on one row and one
column latent, so for seeds it gives exactly the bytes of ``sgtrain-mix``'s ``ROW-COL.png`` (same psi, cutoff,
layers, batch size, noise mode const, no directions or noise changes, same number of CPU threads).

Rendering happens on demand only (the page coalesces requests: at most one in flight and one waiting), mapped ws are
cached per (seed, psi, cutoff, class), finished images per request, and each network has a lock so that temporary
render controls (noise, transform) never leak between concurrent requests.
"""

from __future__ import annotations

import base64
import copy
import inspect
import io
import itertools
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import Body, FastAPI, File, Form, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sgtrain.errors import InputError
from sgtrain.latent._explore_page import PAGE
from sgtrain.latent.common import load_ws, save_ws, seeds_to_ws, seeds_to_z, to_uint8
from sgtrain.latent.directions import Direction, load_directions, sefa, sefa_directions
from sgtrain.latent.generate import render_ws
from sgtrain.latent.interpolate import lerp, slerp
from sgtrain.latent.mixing import STYLE_PRESETS, mix_ws, mixing_grid_ws, style_layers
from sgtrain.latent.project import load_target, load_vgg16, project
from sgtrain.latent.studio import (
    NetworkCaps,
    capabilities,
    generate_z_images,
    layer_groups,
    render_controls,
    require_w,
)

__all__ = ["LIMITS", "Explorer", "create_app", "png_bytes", "network_name"]

#: What one client may make the explorer hold or do (docs/security.md, "The explorer").
LIMITS = dict(
    json_body=1 * 2**20,  # bytes of a JSON request body
    upload=64 * 2**20,  # bytes of an uploaded file (and of an .npz's contents, counted after decompression)
    npz_members=64,  # arrays in an uploaded .npz
    results_bytes=256 * 2**20,  # rendered results kept in the cache (data URLs), in bytes
    latents=4096,  # latents kept (uploads and projections)
    directions=1024,  # directions per network
    running_jobs=2,  # projection jobs running at once
    kept_jobs=64,  # finished jobs kept for the page to read
    steps=20000,  # steps of one projection
)


def _size_of(obj: Any) -> int:
    """Approximate bytes held by a JSON-like result (its strings: the data URLs)."""
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return sum(_size_of(v) for v in obj.values()) + 64
    if isinstance(obj, (list, tuple)):
        return sum(_size_of(v) for v in obj) + 64
    return 16


def check_npz_upload(path: str) -> None:
    """Refuse an uploaded .npz whose arrays, decompressed, exceed :data:`LIMITS` (a small file may inflate to
    gigabytes: the "npz bomb"); the sizes are read from the zip directory, nothing is decompressed.

    Raises:
        InputError: not a zip, too many arrays, or contents larger than the upload limit.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"not an .npz file ({e})") from e
    if len(infos) > LIMITS["npz_members"]:
        raise InputError(f"the .npz holds {len(infos)} arrays; at most {LIMITS['npz_members']} are accepted")
    total = sum(i.file_size for i in infos)
    if total > LIMITS["upload"]:
        raise InputError(f"the .npz's arrays take {total} bytes once decompressed; at most {LIMITS['upload']} are "
                         "accepted")


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """Encode one uint8 image [H, W, C] as PNG exactly as :func:`sgtrain.latent.save_image` writes it to a file."""
    import PIL.Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    buf = io.BytesIO()
    PIL.Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _b64(image: np.ndarray | torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def network_name(path: str) -> str:
    """A short name for a network path: the run directory's or file's stem."""
    p = os.path.normpath(str(path))
    base = os.path.basename(p)
    for suffix in (".safetensors", ".json", ".pkl", ".ckpt", ".pt"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base or p


class _Cancelled(Exception):
    pass


@dataclass
class _Net:
    name: str
    G: torch.nn.Module
    path: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    ws_cache: OrderedDict = field(default_factory=OrderedDict)
    directions: dict = field(default_factory=dict)  # id -> (kind 'sefa' | 'file', Direction)
    w_scale: float | None = None
    caps: NetworkCaps = field(init=False)

    def __post_init__(self) -> None:
        self.caps = capabilities(self.G)

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device


@dataclass
class _Job:
    id: str
    net: str
    name: str
    steps: int
    done_steps: int = 0
    state: str = "running"  # running | done | error | cancelled
    message: str = ""
    latent: str | None = None
    images: dict = field(default_factory=dict)
    cancel: bool = False


class Explorer:
    """The explorer's state and work; thread-safe.

    Args:
        networks: {name: generator} (any family ``sgtrain.io.load_network`` opens; see
            :mod:`sgtrain.latent.studio` for what each capability enables).
        paths: {name: file} shown on the page (optional).
        directions: direction files (:func:`sgtrain.latent.directions.load_directions`) to offer as sliders on every
            network whose w_dim (and num_ws, for per-layer directions) they fit.
        vgg: VGG16 weights for the lpips-vgg projection loss (path or a feature function); without it the page
            offers mse only.
        batch_size: images per network call (the single commands' --batch-size; style mixing equals sgtrain-mix with
            the same value).
        sefa_count: leading SeFa directions offered as sliders (computed on all layers).
        w_avg_samples: samples for the projection's starting point (:func:`sgtrain.latent.project`).
        cache_size: mapped ws and rendered results kept (each LRU).
    """

    def __init__(
        self,
        networks: dict[str, torch.nn.Module],
        paths: dict[str, str] | None = None,
        directions: Sequence[str] = (),
        vgg: Any = None,
        batch_size: int = 16,
        sefa_count: int = 8,
        w_avg_samples: int = 10000,
        cache_size: int = 4096,
    ):
        if not networks:
            raise InputError("no networks: pass at least one --network")
        self.nets = {name: _Net(name, G, (paths or {}).get(name, "")) for name, G in networks.items()}
        self.vgg = vgg
        self.batch_size = batch_size
        self.w_avg_samples = w_avg_samples
        self.cache_size = cache_size
        self.latents: dict[str, dict] = {}
        self.jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._results: OrderedDict = OrderedDict()
        self._results_bytes = 0  # approximate bytes held by _results (:func:`_size_of`), bounded by LIMITS
        self._sizes: dict[str, int] = {}
        for net in self.nets.values():
            caps = net.caps
            if caps.w_space and sefa_count > 0:
                try:
                    res = sefa(net.G)
                except ValueError:
                    res = None  # no modulation affines (e.g. a W network without '*affine' modules)
                if res is not None:
                    for k, d in enumerate(sefa_directions(res)[:sefa_count]):
                        net.directions[f"sefa{k}"] = ("sefa", replace(d, name=f"SeFa {k}"))
        for path in directions:
            self.add_directions(path)

    # Networks, latents, directions -------------------------------------------------------------------------------

    def net(self, name: str) -> _Net:
        if name not in self.nets:
            raise InputError(f"unknown network '{name}'; this explorer has {', '.join(self.nets)}")
        return self.nets[name]

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"

    def w_scale(self, net: _Net) -> float:
        """Mean distance of w from its mean over 1000 seeds (the slider range of directions); 1 for z-only nets."""
        if net.w_scale is None:
            if not net.caps.w_space:
                net.w_scale = 1.0
            else:
                with net.lock, torch.no_grad():
                    c = None if net.G.c_dim == 0 else 0
                    ws = seeds_to_ws(net.G, range(1000), class_idx=c, batch_size=250)[:, 0]
                    net.w_scale = float((ws - ws.mean(0)).norm(dim=1).mean())
        return net.w_scale

    def info(self) -> list[dict]:
        """What the page needs to build its widgets, per network."""
        out = []
        for net in self.nets.values():
            caps = net.caps
            d = dict(name=net.name, path=net.path, caps=caps.as_dict(), vgg=self.vgg is not None)
            if caps.w_space:
                d["presets"] = {p: _range_text(style_layers(p, caps.num_ws, caps.img_resolution))
                                for p in STYLE_PRESETS if _try_layers(p, caps)}
                d["groups"] = [dict(label=lab, layers=_range_text(ls))
                               for lab, ls in layer_groups(caps.num_ws, caps.img_resolution)]
                d["w_scale"] = self.w_scale(net)
            d["directions"] = self.directions(net.name)
            d["latents"] = self.list_latents(net.name)
            out.append(d)
        return out

    def directions(self, name: str) -> list[dict]:
        net = self.net(name)
        return [dict(id=k, name=d.name, kind=kind, layers=_range_text(d.layers) if d.layers is not None else "all")
                for k, (kind, d) in net.directions.items()]

    def add_directions(self, path: str, net_name: str | None = None, label: str | None = None) -> list[str]:
        """Offer the directions of a file on the named network (or every network they fit). Returns the new ids.

        Raises:
            ValueError: the file fits no network (w_dim / num_ws).
        """
        found = load_directions(path, need_w=True)
        added: list[str] = []
        for net in ([self.net(net_name)] if net_name else self.nets.values()):
            caps = net.caps
            if not all(caps.w_space and _fits(d, caps.num_ws, caps.w_dim) for d in found):
                continue
            if len(net.directions) + len(found) > LIMITS["directions"]:
                raise InputError(f"network '{net.name}' keeps at most {LIMITS['directions']} directions")
            for d in found:
                did = self._new_id("dir")
                net.directions[did] = ("file", d if label is None or len(found) > 1 else replace(d, name=label))
                added.append(did)
        if not added:
            where = f"network '{net_name}'" if net_name else "any network of this explorer"
            raise InputError(f"'{label or path}' holds directions of shape {list(found[0].vector.shape)}, "
                             f"which fit no W space of {where} (w_dim / num_ws differ)")
        return added

    def add_latent(self, net_name: str, latent: torch.Tensor, name: str, kind: str = "w") -> str:
        """Keep a latent ([num_ws, w_dim] ws, or [z_dim] z with kind 'z') for ``net_name``; returns its id."""
        if len(self.latents) >= LIMITS["latents"]:
            raise InputError(f"this explorer keeps at most {LIMITS['latents']} latents; restart it to clear them")
        lid = self._new_id("lat")
        self.latents[lid] = dict(net=net_name, value=latent.detach().cpu(), name=name, kind=kind)
        return lid

    def list_latents(self, net_name: str) -> list[dict]:
        return [dict(id=k, name=v["name"]) for k, v in self.latents.items() if v["net"] == net_name]

    def upload_latents(self, net_name: str, path: str, label: str) -> list[str]:
        """Read a .npz/.npy of ws (key 'w') or z (key 'z', for z-only networks) and keep each row; returns ids."""
        net = self.net(net_name)
        caps = net.caps
        if caps.w_space:
            ws = load_ws(path, caps.num_ws, caps.w_dim)
            return [self.add_latent(net_name, w, f"{label}[{i}]" if len(ws) > 1 else label) for i, w in enumerate(ws)]
        data = np.load(path)
        z = np.asarray(data["z"] if isinstance(data, np.lib.npyio.NpzFile) and "z" in data else
                       (data if not isinstance(data, np.lib.npyio.NpzFile) else np.zeros([0])), dtype=np.float32)
        z = z.reshape(-1, z.shape[-1]) if z.size else z
        if z.size == 0 or z.shape[-1] != caps.z_dim:
            raise InputError(f"this network has no W space ({caps.family}); a latent for it is z [N, {caps.z_dim}] "
                             "(.npy, or .npz key 'z')")
        return [self.add_latent(net_name, torch.from_numpy(v), f"{label}[{i}]" if len(z) > 1 else label, kind="z")
                for i, v in enumerate(z)]

    # Latents of a request ----------------------------------------------------------------------------------------

    def _seed_ws(self, net: _Net, seed: int, psi: float, cutoff: int | None, cls: int | None) -> torch.Tensor:
        key = (int(seed), float(psi), cutoff, cls)
        hit = net.ws_cache.get(key)
        if hit is not None:
            net.ws_cache.move_to_end(key)
            return hit
        # One seed per mapping call, as sgtrain-mix maps its row and column seeds: the same w in every context.
        ws = seeds_to_ws(net.G, [int(seed)], psi, cutoff, cls)
        net.ws_cache[key] = ws
        if len(net.ws_cache) > self.cache_size:
            net.ws_cache.popitem(last=False)
        return ws

    def _ws(self, net: _Net, ref: dict | None, st: dict) -> torch.Tensor:
        if not isinstance(ref, dict) or not ({"seed", "latent"} & set(ref)):
            raise InputError(f"a latent is {{'seed': N}} or {{'latent': ID}}, got {ref!r}")
        if "latent" in ref and ref["latent"] is not None:
            lat = self.latents.get(str(ref["latent"]))
            if lat is None:
                raise InputError(f"unknown latent '{ref['latent']}' (upload or project it first)")
            value = lat["value"]
            caps = net.caps
            if lat["kind"] != "w" or tuple(value.shape) != (caps.num_ws, caps.w_dim):
                raise InputError(f"latent '{lat['name']}' ({lat['kind']} {list(value.shape)}) does not fit network "
                                 f"'{net.name}' (num_ws={caps.num_ws}, w_dim={caps.w_dim})")
            return value[None].to(net.device)
        return self._seed_ws(net, int(ref["seed"]), st["psi"], st["cutoff"], st["class_idx"])

    def _z(self, net: _Net, ref: dict) -> torch.Tensor:
        if "latent" in ref and ref["latent"] is not None:
            lat = self.latents.get(str(ref["latent"]))
            if lat is None or lat["kind"] != "z":
                raise InputError(f"latent '{ref['latent']}' is not a z of this network")
            return lat["value"][None]
        return seeds_to_z([int(ref["seed"])], net.G.z_dim)

    def _edit(self, net: _Net, ws: torch.Tensor, directions: dict) -> torch.Tensor:
        for did, strength in (directions or {}).items():
            if float(strength) == 0:
                continue
            if did not in net.directions:
                raise InputError(f"unknown direction '{did}' on network '{net.name}'")
            ws = net.directions[did][1].apply(ws, float(strength))
        return ws

    @staticmethod
    def _state(body: dict) -> dict:
        """The request's controls, checked: one :class:`InputError` (HTTP 400) naming a bad value."""
        import math

        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        try:
            st = Explorer._parse_state(body)
        except InputError:
            raise
        except (TypeError, ValueError, OverflowError, AttributeError, IndexError, KeyError) as e:
            raise InputError(f"bad request parameter: {type(e).__name__}: {e}") from e
        numbers = [st["psi"], st["rotate"], *st["translate"], *st["directions"].values()]
        if not all(math.isfinite(v) for v in numbers):
            raise InputError("psi, rotate, translate and direction strengths must be finite numbers")
        if st["cutoff"] is not None and not 0 <= st["cutoff"] <= 4096:
            raise InputError(f"cutoff={st['cutoff']}: a layer count in [0, num_ws]")
        if st["mix"] is not None and len(st["mix"]) > 256:
            raise InputError("mix: a layer range such as '0-3' or a preset name")
        return st

    @staticmethod
    def _parse_state(body: dict) -> dict:
        st = dict(body)
        for key in ("start", "count", "frames"):
            if key in st and st[key] is not None:
                st[key] = int(st[key])
        for key in ("a", "b"):
            ref = st.get(key)
            if isinstance(ref, dict) and ref.get("seed") is not None:
                seed = int(ref["seed"])
                if not 0 <= seed < 2**32:
                    raise InputError(f"{key}.seed={seed}: seeds are integers in [0, 2^32)")
                st[key] = {**ref, "seed": seed}
            elif ref is not None and not isinstance(ref, dict):
                raise InputError(f"{key} must be {{'seed': N}} or {{'latent': ID}}")
        st["psi"] = float(st.get("psi", 1.0) if st.get("psi") is not None else 1.0)
        cutoff = st.get("cutoff")
        st["cutoff"] = None if cutoff in (None, "") else int(cutoff)
        cls = st.get("class_idx")
        st["class_idx"] = None if cls in (None, "") else int(cls)
        st["noise_mode"] = st.get("noise_mode") or "const"
        st["noise_off"] = list(st.get("noise_off") or [])
        st["directions"] = {k: float(v) for k, v in (st.get("directions") or {}).items()}
        tr = st.get("translate") or [0.0, 0.0]
        st["translate"] = [float(tr[0]), float(tr[1])]
        st["rotate"] = float(st.get("rotate") or 0.0)
        mix = st.get("mix")
        st["mix"] = None if mix in (None, "") else str(mix)
        return st

    def _check_z_only(self, net: _Net, st: dict) -> None:
        if net.caps.w_space:
            return
        if any(st["translate"]) or st["rotate"]:
            raise InputError(f"this network has no input transform ({net.caps.family}): translate/rotate need a "
                             "StyleGAN3 generator (G.synthesis.input.transform)")
        asked = [what for what, on in (("truncation psi", st["psi"] != 1.0), ("truncation cutoff", st["cutoff"]),
                                       ("style mixing", st["mix"]), ("directions", any(st["directions"].values())),
                                       ("noise controls", st["noise_off"] or st["noise_mode"] != "const"))
                 if on]
        if asked:
            require_w(net.G, asked[0])

    # Work --------------------------------------------------------------------------------------------------------

    def _cached(self, key: str | None, fn):
        if key is not None:
            with self._lock:
                hit = self._results.get(key)
                if hit is not None:
                    self._results.move_to_end(key)
                    return hit
        out = fn()
        size = _size_of(out)
        if key is not None and size <= LIMITS["results_bytes"] // 4:
            with self._lock:
                self._results_bytes += size - self._sizes.get(key, 0)
                self._results[key] = out
                self._sizes[key] = size
                while self._results and (len(self._results) > 256 or self._results_bytes > LIMITS["results_bytes"]):
                    old, _ = self._results.popitem(last=False)
                    self._results_bytes -= self._sizes.pop(old, 0)
        return out

    def _key(self, kind: str, st: dict) -> str | None:
        if st.get("noise_mode") == "random":
            return None  # fresh noise every time
        if any("latent" in (st.get(k) or {}) for k in ("a", "b")):
            return None  # latent ids are few and cheap; keep the cache to seeds
        return kind + json.dumps(st, sort_keys=True, default=str)

    def render(self, body: dict) -> dict:
        """The main view. ``body``: net, a ({seed} | {latent}), optional b, psi, cutoff, class_idx, noise_mode,
        noise_off [layer names], mix (layer spec; needs b), directions {id: strength}, translate [x, y], rotate.

        Returns:
            dict with ``images`` {a, b (when b), mix (when mix)} as PNG data URLs, ``main`` ('mix' or 'a') and
            ``layers`` (the mixed layer indices).
        """
        st = self._state(body)
        net = self.net(str(st.get("net")))
        self._check_z_only(net, st)
        return self._cached(self._key("render", st), lambda: self._render(net, st))

    def _render(self, net: _Net, st: dict) -> dict:
        G = net.G
        with net.lock, torch.no_grad():
            if not net.caps.w_space:
                imgs = {"a": generate_z_images(G, self._z(net, st["a"]), st["class_idx"], self.batch_size)[0]}
                if st.get("b"):
                    imgs["b"] = generate_z_images(G, self._z(net, st["b"]), st["class_idx"], self.batch_size)[0]
                return dict(images={k: _b64(v) for k, v in imgs.items()}, main="a", layers=[])
            wa = self._edit(net, self._ws(net, st["a"], st), st["directions"])
            wb = self._edit(net, self._ws(net, st["b"], st), st["directions"]) if st.get("b") else None
            with render_controls(G, st["noise_off"], st["translate"], st["rotate"]):
                if st["mix"] is not None:
                    if wb is None:
                        raise InputError("style mixing needs a second latent B")
                    layers = style_layers(st["mix"], G.num_ws, G.img_resolution)
                    if len(layers) > G.num_ws or any(not 0 <= int(i) < G.num_ws for i in layers):
                        raise InputError(f"mix={st['mix']!r}: layers must lie in 0-{G.num_ws - 1}")
                    out = mixing_grid_ws(G, wa, wb, layers, st["noise_mode"], self.batch_size)
                    imgs = {"a": out["rows"][0], "b": out["cols"][0], "mix": out["mixed"][0, 0]}
                    return dict(images={k: _b64(v) for k, v in imgs.items()}, main="mix", layers=layers)
                imgs = {"a": render_ws(G, wa, st["noise_mode"], self.batch_size)[0]}
                if wb is not None:
                    imgs["b"] = render_ws(G, wb, st["noise_mode"], self.batch_size)[0]
                return dict(images={k: _b64(v) for k, v in imgs.items()}, main="a", layers=[])

    def final_latent(self, body: dict) -> tuple[np.ndarray, str]:
        """The latent of the main view (after mixing and directions): ('w' [1, num_ws, w_dim]) or ('z' [1, z_dim])."""
        st = self._state(body)
        net = self.net(str(st.get("net")))
        self._check_z_only(net, st)
        with net.lock, torch.no_grad():
            if not net.caps.w_space:
                return self._z(net, st["a"]).numpy(), "z"
            ws = self._edit(net, self._ws(net, st["a"], st), st["directions"])
            if st["mix"] is not None:
                if not st.get("b"):
                    raise InputError("style mixing needs a second latent B")
                wb = self._edit(net, self._ws(net, st["b"], st), st["directions"])
                ws = mix_ws(ws, wb, style_layers(st["mix"], net.G.num_ws, net.G.img_resolution))[0]
            return ws.cpu().numpy(), "w"

    def latent_npz(self, body: dict) -> bytes:
        """The main view's latent as .npz bytes: key 'w' [1, num_ws, w_dim] (NVlabs' projected_w layout, written by
        :func:`sgtrain.latent.save_ws`), or key 'z' [1, z_dim] for a z-only network."""
        value, kind = self.final_latent(body)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "latent.npz")
            if kind == "w":
                save_ws(path, torch.from_numpy(value))
            else:
                np.savez(path, z=value)
            with open(path, "rb") as f:
                return f.read()

    def grid(self, body: dict) -> dict:
        """Seed thumbnails: body has net, start, count (<= 256) and the sampling controls of :meth:`render`
        (directions are not applied). Returns {'seeds': [...], 'images': [data URL, ...]}."""
        st = self._state(body)
        net = self.net(str(st.get("net")))
        self._check_z_only(net, st)
        start, count = int(st.get("start", 0)), int(st.get("count", 16))
        if not 1 <= count <= 256 or start < 0:
            raise InputError("a seed grid shows 1-256 seeds from a start >= 0")
        seeds = list(range(start, start + count))

        def work() -> dict:
            G = net.G
            with net.lock, torch.no_grad():
                if not net.caps.w_space:
                    imgs = generate_z_images(G, seeds_to_z(seeds, G.z_dim), st["class_idx"], self.batch_size)
                else:
                    ws = torch.cat([self._seed_ws(net, s, st["psi"], st["cutoff"], st["class_idx"]) for s in seeds])
                    with render_controls(G, st["noise_off"], st["translate"], st["rotate"]):
                        imgs = render_ws(G, ws, st["noise_mode"], self.batch_size)
            return dict(seeds=seeds, images=[_b64(i) for i in imgs])

        st.pop("directions", None)
        return self._cached(self._key("grid", st), work)

    def layer_view(self, body: dict) -> dict:
        """What each layer group changes: A with only that group's ws taken from B, for every group of
        :func:`sgtrain.latent.studio.layer_groups`. Returns {'cells': [{label, layers, image}]}."""
        st = self._state(body)
        net = self.net(str(st.get("net")))
        require_w(net.G, "the per-layer view of style mixing")
        if not st.get("b"):
            raise InputError("the per-layer view needs a second latent B")

        def work() -> dict:
            G = net.G
            groups = layer_groups(G.num_ws, G.img_resolution)
            with net.lock, torch.no_grad():
                wa = self._edit(net, self._ws(net, st["a"], st), st["directions"])
                wb = self._edit(net, self._ws(net, st["b"], st), st["directions"])
                ws = torch.cat([mix_ws(wa, wb, ls)[0] for _, ls in groups])
                with render_controls(G, st["noise_off"], st["translate"], st["rotate"]):
                    imgs = render_ws(G, ws, st["noise_mode"], self.batch_size)
            return dict(cells=[dict(label=lab, layers=_range_text(ls), image=_b64(img))
                               for (lab, ls), img in zip(groups, imgs)])

        return self._cached(self._key("layers", st), work)

    def interpolate(self, body: dict) -> dict:
        """Frames from A to B (``frames``, 2-32): seeds are slerped in z and mapped (as sgtrain-video's default),
        stored latents lerped in W; directions and render controls as in :meth:`render`.
        Returns {'images': [data URL, ...]}."""
        st = self._state(body)
        net = self.net(str(st.get("net")))
        self._check_z_only(net, st)
        n = int(st.get("frames", 8))
        if not 2 <= n <= 32 or not st.get("b"):
            raise InputError("interpolation needs a latent B and 2-32 frames")
        t = torch.linspace(0, 1, n)

        def work() -> dict:
            G = net.G
            with net.lock, torch.no_grad():
                if not net.caps.w_space:
                    z = slerp(self._z(net, st["a"]), self._z(net, st["b"]), t[:, None])
                    imgs = generate_z_images(G, z, st["class_idx"], self.batch_size)
                    return dict(images=[_b64(i) for i in imgs])
                if "seed" in st["a"] and "seed" in st["b"] and st["a"].get("latent") is None \
                        and st["b"].get("latent") is None:
                    z = slerp(seeds_to_z([int(st["a"]["seed"])], G.z_dim), seeds_to_z([int(st["b"]["seed"])],
                                                                                       G.z_dim), t[:, None])
                    from sgtrain.latent.common import make_labels

                    c = make_labels(G, n, st["class_idx"], net.device)
                    ws = G.mapping(z.to(net.device), c, truncation_psi=st["psi"], truncation_cutoff=st["cutoff"])
                else:
                    wa, wb = self._ws(net, st["a"], st), self._ws(net, st["b"], st)
                    ws = lerp(wa, wb, t.to(wa.device)[:, None, None])
                ws = self._edit(net, ws, st["directions"])
                with render_controls(G, st["noise_off"], st["translate"], st["rotate"]):
                    imgs = render_ws(G, ws, st["noise_mode"], self.batch_size)
            return dict(images=[_b64(i) for i in imgs])

        return self._cached(self._key("interp", st), work)

    # Projection ---------------------------------------------------------------------------------------------------

    def start_projection(self, net_name: str, image_path: str, label: str, space: str = "w", steps: int = 200,
                         loss: str = "mse", seed: int = 303, class_idx: int | None = None) -> str:
        """Project an image file into ``net_name`` in a background thread; returns the job id (see :meth:`job`).

        Raises:
            ValueError: a network without W space, a bad space / loss / step count, lpips-vgg without VGG weights.
        """
        net = self.net(net_name)
        require_w(net.G, "projection")
        if space not in ("w", "w+"):
            raise InputError(f"space '{space}' unknown: use w or w+")
        if loss not in ("mse", "lpips-vgg"):
            raise InputError(f"loss '{loss}' unknown: use mse or lpips-vgg")
        if loss == "lpips-vgg" and self.vgg is None:
            raise InputError("the lpips-vgg loss needs VGG16 weights: start sgtrain-explore with --vgg PATH, or use "
                             "mse")
        if not 1 <= int(steps) <= LIMITS["steps"]:
            raise InputError(f"steps must be between 1 and {LIMITS['steps']}")
        running = [j for j in self.jobs.values() if j.state == "running"]
        if len(running) >= LIMITS["running_jobs"]:
            raise InputError(f"{len(running)} projections are running (at most {LIMITS['running_jobs']}); wait for one "
                             "or cancel it")
        finished = [k for k, j in self.jobs.items() if j.state != "running"]
        for k in finished[: max(0, len(finished) - LIMITS["kept_jobs"] + 1)]:
            del self.jobs[k]
        caps = net.caps
        target = load_target(image_path, (caps.img_width, caps.img_height), caps.img_channels)
        job = _Job(self._new_id("job"), net_name, label, int(steps))
        job.images["target"] = _b64(target.permute(1, 2, 0))
        self.jobs[job.id] = job
        threading.Thread(target=self._project, args=(job, net, target, space, loss, seed, class_idx),
                         name=f"sgtrain-explore-{job.id}", daemon=True).start()
        return job.id

    def _project(self, job: _Job, net: _Net, target: torch.Tensor, space: str, loss: str, seed: int,
                 class_idx: int | None) -> None:
        try:
            with net.lock:
                G = copy.deepcopy(net.G)
            kwargs: dict[str, Any] = {}
            if "callback" in inspect.signature(project).parameters:
                every = max(1, job.steps // 20)

                def callback(step: int, num_steps: int, info: dict) -> bool:
                    job.done_steps = step
                    if step % every == 0 and "images" in info:
                        job.images["current"] = _b64(to_uint8(info["images"][:1])[0])
                    return job.cancel

                kwargs["callback"] = callback
            else:  # count synthesis calls (one per step); a plain function, which project()'s deepcopy shares
                def progress(module, args, output):
                    job.done_steps = min(job.done_steps + 1, job.steps)
                    if job.cancel:
                        raise _Cancelled()

                G.synthesis.register_forward_hook(progress)
            vgg = self.vgg
            if loss == "lpips-vgg" and not callable(vgg):
                vgg = self.vgg = load_vgg16(vgg, net.device)
            out = project(G, target[None], space=space, num_steps=job.steps, loss=loss, vgg=vgg, class_idx=class_idx,
                          w_avg_samples=self.w_avg_samples, seed=seed, device=net.device, **kwargs)
            if job.cancel:
                raise _Cancelled()
            job.images.pop("current", None)
            job.latent = self.add_latent(net.name, out["ws"][0], f"{job.name} ({space.upper()}, {job.steps} steps)")
            job.images["projection"] = _b64(to_uint8(out["images"])[0])
            job.message = f"PSNR {float(out['psnr'][0]):.2f} dB"
            job.done_steps = job.steps
            job.state = "done"
        except _Cancelled:
            job.state, job.message = "cancelled", "cancelled"
        except Exception as e:  # reported to the page; the server keeps running
            job.state, job.message = "error", f"{type(e).__name__}: {e}"

    def job(self, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if job is None:
            raise InputError(f"unknown projection job '{job_id}'")
        return dict(id=job.id, net=job.net, name=job.name, state=job.state, step=job.done_steps, steps=job.steps,
                    message=job.message, latent=job.latent, images=job.images)

    def cancel(self, job_id: str) -> dict:
        if job_id not in self.jobs:
            raise InputError(f"unknown projection job '{job_id}'")
        self.jobs[job_id].cancel = True
        return self.job(job_id)


def _fits(d: Direction, num_ws: int, w_dim: int) -> bool:
    """A W / W+ direction fits ws [N, num_ws, w_dim], its layers included."""
    shape = (w_dim,) if d.space == "w" else (num_ws, w_dim)
    return tuple(d.vector.shape) == shape and all(0 <= i < num_ws for i in d.layers or ())


def _range_text(layers: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    layers = sorted(int(i) for i in layers)
    parts, start = [], None
    for i, v in enumerate(layers):
        if start is None:
            start = v
        if i + 1 == len(layers) or layers[i + 1] != v + 1:
            parts.append(f"{start}-{v}" if v != start else f"{v}")
            start = None
    return ",".join(parts)


def _try_layers(preset: str, caps) -> bool:
    try:
        style_layers(preset, caps.num_ws, caps.img_resolution)
        return True
    except ValueError:
        return False


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_UPLOAD_PATHS = ("/api/latents", "/api/directions", "/api/project")


def _host_name(host_header: str) -> str:
    """'example.org:8000' -> 'example.org', '[::1]:8000' -> '::1' (lower case)."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def create_app(explorer: Explorer, hosts: Sequence[str] = ()):
    """The FastAPI app: ``GET /`` (the page), ``GET /api/networks``, ``POST /api/render``, ``/api/grid``,
    ``/api/layers``, ``/api/interpolate``, ``/api/latent.npz``, ``/api/latents`` (upload), ``/api/directions``
    (upload), ``/api/project`` (upload, starts a job), ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/cancel``.
    User errors answer 400 with {"error": message}. Generator calls run in FastAPI's worker threads (sync
    endpoints), projection in its own thread, so the server stays responsive.

    Every request must name an allowed host in its ``Host`` header (``localhost``, ``127.0.0.1``, ``::1`` and
    ``hosts``, the address the server is bound to): a DNS-rebinding page cannot read the API (403). A request that
    changes state (any POST) with an ``Origin`` header must come from the page's own origin (403 otherwise: no
    cross-site upload or render), and its body must declare its size within :data:`LIMITS` (413).
    """
    from urllib.parse import urlsplit

    allowed = {h.lower().strip("[]") for h in (*LOCAL_HOSTS, *hosts) if h}
    app = FastAPI(title="sgtrain explorer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request, call_next):
        host = request.headers.get("host", "")
        if _host_name(host) not in allowed:
            return JSONResponse({"error": f"Host {host!r} is not this explorer's address (allowed: "
                                 f"{', '.join(sorted(allowed))}); start sgtrain-explore with --host NAME"}, 403)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None:
                o = urlsplit(origin)
                if o.scheme not in ("http", "https") or o.netloc.lower() != host.lower():
                    return JSONResponse({"error": f"cross-origin request from {origin!r} refused"}, 403)
            if request.headers.get("sec-fetch-site") == "cross-site":
                return JSONResponse({"error": "cross-site request refused"}, 403)
            limit = LIMITS["upload"] + 2**20 if request.url.path in _UPLOAD_PATHS else LIMITS["json_body"]
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return JSONResponse({"error": "a request body needs a Content-Length"}, 411)
            if int(length) > limit:
                return JSONResponse({"error": f"request body of {length} bytes; at most {limit} accepted"}, 413)
        return await call_next(request)

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc):  # noqa: ARG001
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"bad request: {where}: {first.get('msg', 'invalid')}"[:300]}, status_code=400)

    @app.exception_handler(ValueError)
    @app.exception_handler(KeyError)
    @app.exception_handler(FileNotFoundError)
    async def user_error(request, exc):  # noqa: ARG001
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return JSONResponse({"error": str(msg)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get("/api/networks")
    def networks() -> list:
        return explorer.info()

    @app.post("/api/render")
    def render(body: Annotated[dict, Body()]) -> dict:
        return explorer.render(body)

    @app.post("/api/grid")
    def grid(body: Annotated[dict, Body()]) -> dict:
        return explorer.grid(body)

    @app.post("/api/layers")
    def layers(body: Annotated[dict, Body()]) -> dict:
        return explorer.layer_view(body)

    @app.post("/api/interpolate")
    def interpolate(body: Annotated[dict, Body()]) -> dict:
        return explorer.interpolate(body)

    @app.post("/api/latent.npz")
    def latent(body: Annotated[dict, Body()]) -> Response:
        data = explorer.latent_npz(body)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="latent.npz"'})

    def _saved(upload: UploadFile, suffixes: tuple[str, ...], tmp: str) -> str:
        name = os.path.basename(upload.filename or "upload")
        ext = os.path.splitext(name)[1].lower()
        if ext not in suffixes:
            raise InputError(f"'{name}': expected a {' / '.join(suffixes)} file")
        path = os.path.join(tmp, "upload" + ext)
        data = upload.file.read(LIMITS["upload"] + 1)
        if len(data) > LIMITS["upload"]:
            raise InputError(f"'{name}' is larger than {LIMITS['upload'] // 2**20} MiB")
        with open(path, "wb") as f:
            f.write(data)
        if ext == ".npz":
            check_npz_upload(path)
        return path

    @app.post("/api/latents")
    def upload_latents(file: Annotated[UploadFile, File()], net: Annotated[str, Form()]) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            ids = explorer.upload_latents(net, _saved(file, (".npz", ".npy"), tmp), file.filename or "latent")
        return dict(ids=ids, latents=explorer.list_latents(net))

    @app.post("/api/directions")
    def upload_directions(file: Annotated[UploadFile, File()], net: Annotated[str, Form()]) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            ids = explorer.add_directions(_saved(file, (".npz",), tmp), net, label=file.filename)
        return dict(ids=ids, directions=explorer.directions(net))

    @app.post("/api/project")
    def start_project(file: Annotated[UploadFile, File()], net: Annotated[str, Form()],
                      space: Annotated[str, Form()] = "w", steps: Annotated[int, Form()] = 200,
                      loss: Annotated[str, Form()] = "mse",
                      class_idx: Annotated[str, Form()] = "") -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            path = _saved(file, (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"), tmp)
            job = explorer.start_projection(net, path, file.filename or "image", space, steps, loss,
                                            class_idx=int(class_idx) if class_idx not in ("", None) else None)
        return explorer.job(job)

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict:
        return explorer.job(job_id)

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict:
        return explorer.cancel(job_id)

    return app
