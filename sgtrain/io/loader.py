"""``load_network``: one entry point for every network file sgtrain opens."""

from __future__ import annotations

import argparse
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from sgtrain.errors import MissingFileError, UserError
from sgtrain.io.errors import NetworkFileError, UnsafePickleError
from sgtrain.io.nvlabs import convert_nvlabs_snapshot, jsonable
from sgtrain.io.portable import load_portable, modules_from_header, portable_paths
from sgtrain.io.safe_pickle import safe_load_pickle
from sgtrain.io.tensorflow import convert_tf_snapshot, is_tf_snapshot
from sgtrain.models.family import registered, resolve

__all__ = ["find_run_network", "load_network"]

_TORCH_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]  # torch.save's non-zip header
_SNAPSHOT_RE = re.compile(r"network-snapshot-(\d+)\.(safetensors|pkl)$")
W_AVG_SAMPLES = 4096


def load_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Open any network file sgtrain knows and return sgtrain modules.

    Accepted inputs:
        - an sgtrain run directory: its newest ``network-snapshot-<kimg>.safetensors`` (an NVlabs run directory's
          newest ``network-snapshot-<kimg>.pkl``), else ``checkpoints/last.ckpt``;
        - a portable network file: ``<stem>.safetensors``, ``<stem>.json`` or ``<stem>``;
        - a Lightning ``.ckpt`` of sgtrain's training module (read with ``torch.load(weights_only=True)``);
        - an NVlabs network pickle (stylegan2-ada-pytorch, stylegan3), read by the allow-list unpickler without
          running the code embedded in it;
        - an NVlabs TensorFlow pickle (ProGAN, StyleGAN, StyleGAN2-TF: ``(G, D, Gs)``), read the same way, without
          TensorFlow (:mod:`sgtrain.io.tensorflow`);
        - a rosinality stylegan2-pytorch checkpoint (``.pt``: ``g_ema`` and optionally ``g``, ``d``,
          ``latent_avg``, ``ada_aug_p``; read with ``torch.load(weights_only=True)``).

    Args:
        path: file or directory.
        device: where to put the modules.

    Returns:
        dict with ``'G_ema'`` (always; the generator for inference), and where the file has them ``'G'``,
        ``'D'`` (sgtrain ``Generator``/``Discriminator`` modules), ``'augment_p'`` (float, ADA probability),
        ``'training_info'`` (dict: source, kimg, ...). Modules are in eval mode with ``requires_grad`` off,
        float32. For fine-tuning, copy them into fresh modules with ``load_state_dict(net.state_dict())``
        or call ``requires_grad_(True)`` on them.

    Raises:
        FileNotFoundError: nothing at ``path``.
        UnsafePickleError: a pickle names a global outside the allow-list (nothing from it was executed).
        UnsupportedNetworkError: a known container holding an architecture sgtrain cannot build (the message names
            it).
        NetworkFileError: not a network file sgtrain knows, or one it cannot parse (truncated, empty, another
            format under a network file's name, a broken header): one line naming the file, the parser's error
            chained.
    """
    p = Path(path)
    if p.is_dir():
        p = find_run_network(p)
    elif not p.exists() and not portable_paths(p)[0].exists():
        raise MissingFileError(f"network '{p}' not found: pass a run directory, a .ckpt, a portable network file "
                                "(.safetensors + .json), an NVlabs .pkl or a rosinality .pt")
    try:
        result = load_portable(p) if p.suffix in (".safetensors", ".json") or not p.exists() else _load_file(p)
    except (UserError, FileNotFoundError):
        raise
    except Exception as e:  # whatever a truncated, empty or hostile file makes a parser raise: one line, the file named
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise NetworkFileError(f"{p}: not a network file sgtrain can read ({type(e).__name__}: {first})") from e
    for key in ("G_ema", "G", "D"):
        if key in result:
            result[key] = result[key].to(device).eval().requires_grad_(False)
    return result


def find_run_network(run_dir: str | os.PathLike) -> Path:
    """The network file a run directory stands for: newest snapshot by kimg, else ``checkpoints/last.ckpt``.

    Raises:
        NetworkFileError: the directory holds neither.
    """
    d = Path(run_dir)
    snaps = list(d.glob("network-snapshot-*.safetensors"))
    if not snaps:
        snaps = list(d.glob("network-snapshot-*.pkl"))  # an NVlabs run directory
    snaps = [q for q in snaps if _SNAPSHOT_RE.search(q.name)]
    if snaps:
        return max(snaps, key=lambda q: (int(_SNAPSHOT_RE.search(q.name).group(1)), q.stat().st_mtime))
    last = d / "checkpoints" / "last.ckpt"
    if last.exists():
        return last
    ckpts = sorted(d.glob("checkpoints/*.ckpt"), key=lambda q: q.stat().st_mtime)
    if ckpts:
        return ckpts[-1]
    raise NetworkFileError(f"run directory {d} has no network-snapshot-*.safetensors, no network-snapshot-*.pkl and "
                           "no checkpoints/last.ckpt")


def _load_file(p: Path) -> dict[str, Any]:
    if p.suffix in (".safetensors", ".json"):
        return load_portable(p)
    with open(p, "rb") as f:
        head = f.read(len(_TORCH_LEGACY_MAGIC))
    if head.startswith(b"PK\x03\x04") or head == _TORCH_LEGACY_MAGIC:
        return _load_torch_file(p)
    obj = safe_load_pickle(p)
    nets = _family_checkpoint(obj, p)  # other programs' plain pickles a family reads (R3GAN's snapshots)
    if nets is not None:
        return nets
    if is_tf_snapshot(obj):
        return convert_tf_snapshot(obj, p)
    return convert_nvlabs_snapshot(obj, p)


def _torch_load(p: Path) -> Any:
    """``torch.load(weights_only=True)``; argparse.Namespace (rosinality's saved args) is the one extra class. A zip
    whose compressed entries would inflate far past the file's size is refused first (a deflate bomb)."""
    from sgtrain.io.budget import check_zip_inflation

    with open(p, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            check_zip_inflation(p, p.stat().st_size, str(p))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m:
            raise UnsafePickleError(m.group(1), str(p)) from e
        raise NetworkFileError(f"{p}: torch.load(weights_only=True) failed: {e}") from e


def _family_checkpoint(obj: Any, p: Path) -> dict[str, Any] | None:
    """The networks of ``obj`` read by the first family whose ``checkpoint_readers`` claim it, or None."""
    for family in registered().values():
        for probe, load in family.checkpoint_readers:
            if resolve(probe)(obj):
                return resolve(load)(obj, p)
    return None


def _load_torch_file(p: Path) -> dict[str, Any]:
    obj = _torch_load(p)
    nets = _family_checkpoint(obj, p)
    if nets is not None:
        return nets
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return convert_lightning(obj, p)
    keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
    raise NetworkFileError(f"{p}: a torch file with {keys}; expected an sgtrain Lightning checkpoint (state_dict with "
                           "G./D./G_ema. keys) or a rosinality checkpoint (g_ema)")


def convert_lightning(obj: dict[str, Any], p: Path) -> dict[str, Any]:
    """sgtrain training checkpoint: ``state_dict`` keys ``G.``, ``D.``, ``G_ema.``; kwargs in hyper_parameters."""
    extra = obj.get("sgtrain") if isinstance(obj.get("sgtrain"), dict) else {}
    if not isinstance(extra.get("networks"), dict):
        raise NetworkFileError(f"{p}: checkpoint has no sgtrain.networks entry (nor the G_kwargs of sgtrain 0.1), so "
                               "the networks cannot be rebuilt")
    header = {"networks": extra["networks"]}
    sd = obj["state_dict"]
    header["networks"] = {k: v for k, v in header["networks"].items() if any(s.startswith(f"{k}.") for s in sd)}
    info: dict[str, Any] = {"source": "lightning-checkpoint", "file": str(p)}
    for k in ("kimg", "cur_nimg", "cur_tick", "pl_mean", "total_kimg"):
        if k in extra:
            info[k] = jsonable(extra[k])
    for k in ("epoch", "global_step"):
        if k in obj:
            info[k] = obj[k]
    if extra.get("augment_p") is not None:
        header["augment_p"] = float(extra["augment_p"])
    header["training_info"] = info
    return modules_from_header(header, sd, str(p))


