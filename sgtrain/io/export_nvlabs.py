"""NVlabs network pickles written by sgtrain: read by NVlabs' ``legacy.load_network_pkl``, gen_images.py, the
visualizer and every fork that takes their ``.pkl``, with their repository on ``sys.path``.

Their own snapshots store every module as ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with the
module's source text in ``meta['module_src']``, which their loader ``exec``s. sgtrain writes none of their code.
Instead each module is an ordinary pickled object whose class is named by module and name, the way pickle names any
class: ``training.networks_stylegan2.Generator``, ``training.networks_stylegan3.SynthesisLayer`` (stylegan3
repository) or ``training.networks.Generator`` (stylegan2-ada-pytorch). Unpickling imports that class from their
installed repository (it is their ``@persistence.persistent_class`` decorator subclass, so ``is_persistent`` holds and
re-pickling by their code embeds their source as usual), creates the object with ``cls.__new__(cls)`` (opcode
``NEWOBJ``) and hands it its ``__dict__`` (opcode ``BUILD``, which calls ``torch.nn.Module.__setstate__``): exactly
the state their ``_reconstruct_persistent_obj`` would restore, so no constructor runs and no code from the file runs.

The state is sgtrain's module ``__dict__`` (sgtrain's StyleGAN2/3 modules have NVlabs' attribute names, submodule
names, parameters and buffers; tests/test_export.py and the out-of-repo check in docs/networks.md compare them with
their classes) with, for the top-level ``Generator``/``Discriminator``, ``_init_args = ()`` and ``_init_kwargs`` in
their constructor's form (what ``legacy.load_network_pkl(force_fp16=True)`` and their training resume read).
Submodules carry no ``_init_kwargs`` (their code reads them only from G, D and G_ema). The dict holds ``G``, ``D``,
``G_ema``, ``augment_pipe`` (None: their resume does not read it, and their snapshots hold None when training without
augmentation) and ``training_set_kwargs`` (their dataset keywords when the network came from an NVlabs pickle, else
None, for which their calc_metrics.py asks for ``--data``).

Only these globals appear in the file (checked after writing, see :func:`pickle_globals`): the NVlabs classes, the
``torch.nn`` container classes, ``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter``,
``torch.storage._load_from_bytes`` and ``collections.OrderedDict``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
from typing import Any

import numpy as np
import torch

from sgtrain.io.atomic import atomic_write
from sgtrain.io.export import ExportError
from sgtrain.io.safe_pickle import PersistentRecord, SafeUnpickler

__all__ = ["TARGETS", "export_nvlabs", "nvlabs_snapshot_bytes", "pickle_globals", "read_nvlabs_export"]

#: Which NVlabs repository the pickle is for: the module of each sgtrain family's classes there.
TARGETS = {
    "stylegan3": {"stylegan2": "training.networks_stylegan2", "stylegan3": "training.networks_stylegan3"},
    "stylegan2-ada": {"stylegan2": "training.networks"},
}
# Attributes sgtrain keeps that a target's classes do not have (read from their constructors).
_DROP_ALWAYS = {"init_kwargs"}
_DROP = {
    "stylegan2-ada": {
        "FullyConnectedLayer": {"in_features", "out_features"},
        "Conv2dLayer": {"in_channels", "out_channels"},
        "SynthesisLayer": {"in_channels", "out_channels", "w_dim"},
        "ToRGBLayer": {"in_channels", "out_channels", "w_dim"},
        "SynthesisBlock": {"fused_modconv_default"},
        "SynthesisNetwork": {"num_fp16_res"},
    },
}
# Attributes their classes set to None where sgtrain registers nothing: {(family, class): {name: value}}.
_ADD = {("stylegan3", "MappingNetwork"): {"embed": None}}
_TORCH_GLOBALS = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                  "torch.storage._load_from_bytes", "collections.OrderedDict", "numpy.core.multiarray._reconstruct",
                  "numpy.ndarray", "numpy.dtype"}


class _ClassRef:
    """A class named by ``module`` and ``name``, written as ``STACK_GLOBAL`` and never imported here."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # pickle's save_reduce asks for a callable
        raise TypeError(f"{self.module}.{self.name} is a name in a pickle, not callable here")


# NumPy 2 pickles arrays as numpy._core.multiarray._reconstruct, which NumPy 1.x (common beside NVlabs' code) cannot
# import; numpy.core.multiarray._reconstruct is the name both read.
_NUMPY_RECONSTRUCT = _ClassRef("numpy.core.multiarray", "_reconstruct")


class _Instance:
    """An object of ``cls`` restored from ``state`` (``NEWOBJ`` with no arguments, then ``BUILD``)."""

    __slots__ = ("cls", "state")

    def __init__(self, cls: _ClassRef, state: dict[str, Any]) -> None:
        self.cls, self.state = cls, state


class _Pickler(pickle._Pickler):  # the Python pickler: its dispatch table takes the two stand-in types
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_class_ref(self, obj: _ClassRef) -> None:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    def _save_instance(self, obj: _Instance) -> None:
        self.save(obj.cls)
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    def _save_ndarray(self, obj: np.ndarray) -> None:
        func, args, *rest = obj.__reduce_ex__(4)
        if getattr(func, "__name__", "") != "_reconstruct":
            raise ExportError(f"numpy array {obj.dtype} {obj.shape} pickles through {func!r}")
        self.save_reduce(_NUMPY_RECONSTRUCT, args, *rest, obj=obj)

    dispatch[_ClassRef] = _save_class_ref
    dispatch[_Instance] = _save_instance
    dispatch[np.ndarray] = _save_ndarray


def _family_of(module: torch.nn.Module) -> str | None:
    mod = type(module).__module__
    if not mod.startswith("sgtrain.models."):
        return None
    for fam in ("stylegan3", "stylegan2"):
        if mod == f"sgtrain.models.{fam}" or mod.startswith(f"sgtrain.models.{fam}."):
            return fam
    return mod.split(".")[2]


def _plain(v: Any, where: str) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf" and v.size <= 1024:
        return v.copy()
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x, where) for x in v)
    if isinstance(v, (set, frozenset)):
        return type(v)(_plain(x, where) for x in v)
    if isinstance(v, dict):
        return type(v)((k, _plain(x, where)) for k, x in v.items()) if type(v) in (dict, collections.OrderedDict) \
            else {k: _plain(x, where) for k, x in v.items()}
    raise ExportError(f"{where} is a {type(v).__name__}, which has no NVlabs form")


def _tensor(t: torch.Tensor | None, param: bool) -> Any:
    if t is None:
        return None
    t = t.detach().to("cpu").clone().contiguous()
    return torch.nn.Parameter(t, requires_grad=False) if param else t


class _Converter:
    def __init__(self, target: str) -> None:
        if target not in TARGETS:
            raise ExportError(f"unknown NVlabs target {target!r}: use one of {', '.join(TARGETS)}")
        self.target = target
        self.refs: dict[tuple[str, str], _ClassRef] = {}

    def ref(self, module: str, name: str) -> _ClassRef:
        return self.refs.setdefault((module, name), _ClassRef(module, name))

    def convert(self, m: torch.nn.Module, path: str, parent_family: str | None = None) -> _Instance:
        cls = type(m)
        fam = _family_of(m)
        if fam is None and cls.__module__.startswith("sgtrain.nn."):
            fam = parent_family  # shared layers (FullyConnectedLayer...) sit in the family's module at NVlabs
        if fam is not None:
            modules = TARGETS[self.target]
            if fam not in modules:
                raise ExportError(f"{path}: a {fam} {cls.__name__} has no class in NVlabs' "
                                  f"{'stylegan2-ada-pytorch' if self.target == 'stylegan2-ada' else self.target} "
                                  f"repository (it has {', '.join(sorted(modules))}); choose another --target")
            ref = self.ref(modules[fam], cls.__name__)
        elif cls.__module__.startswith("torch.nn.modules."):
            ref = self.ref(cls.__module__, cls.__qualname__)
        else:
            raise ExportError(f"{path} is a {cls.__module__}.{cls.__qualname__}, not an sgtrain or torch.nn module")
        drop = _DROP_ALWAYS | _DROP.get(self.target, {}).get(cls.__name__, set())
        state: dict[str, Any] = {}
        for k, v in vars(m).items():
            if k in drop:
                continue
            if k == "_parameters":
                state[k] = collections.OrderedDict((n, _tensor(t, True)) for n, t in v.items())
            elif k == "_buffers":
                state[k] = collections.OrderedDict((n, _tensor(t, False)) for n, t in v.items())
            elif k == "_modules":
                state[k] = collections.OrderedDict(
                    (n, None if c is None else self.convert(c, f"{path}.{n}", fam)) for n, c in v.items())
            elif isinstance(v, torch.Tensor):
                state[k] = _tensor(v, False)
            elif k.startswith("_") and (k.endswith("hooks") or "hooks_" in k):
                state[k] = collections.OrderedDict()  # no hooks travel
            else:
                state[k] = _plain(v, f"{path}.{k}")
        for k, v in _ADD.get((fam, cls.__name__), {}).items():
            if k not in state and k not in state.get("_modules", {}):
                state[k] = v
        return _Instance(ref, state)


def _nvlabs_init_kwargs(module: torch.nn.Module, target: str) -> dict[str, Any]:
    kwargs = _plain(dict(getattr(module, "init_kwargs", None) or {}), "init_kwargs")
    if not kwargs:
        raise ExportError(f"{type(module).__name__} has no init_kwargs: NVlabs' tools need its constructor keywords")
    if "init_res" in kwargs:
        raise ExportError(f"{type(module).__name__} is a W x H network (init_res={kwargs['init_res']}), which NVlabs' "
                          "classes cannot build (they are square): keep the portable .safetensors file, or export "
                          "onnx / torchscript with sgtrain-export")
    if target == "stylegan2-ada" and type(module).__name__ == "Generator":
        fixed = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
        synthesis = {k: v for k, v in kwargs.items() if k not in fixed}
        kwargs = {k: kwargs[k] for k in fixed if k in kwargs}
        kwargs["synthesis_kwargs"] = synthesis
    return kwargs


def nvlabs_snapshot_bytes(nets: dict[str, Any], target: str = "stylegan3") -> bytes:
    """Pickle ``G``, ``D``, ``G_ema`` as NVlabs' ``network-snapshot-*.pkl`` dict (see the module docstring).

    Args:
        nets: :func:`sgtrain.io.load_network`'s result (``G_ema`` required; ``G``, ``D``, ``training_info``
            optional; ``G`` defaults to ``G_ema``, ``D`` to None).
        target: ``'stylegan3'`` (classes from NVlabs/stylegan3's ``training.networks_stylegan2`` and
            ``training.networks_stylegan3``) or ``'stylegan2-ada'`` (NVlabs/stylegan2-ada-pytorch's
            ``training.networks``; StyleGAN2 only).

    Returns:
        The pickle (protocol 4).

    Raises:
        ExportError: a family NVlabs' PyTorch code lacks (only StyleGAN2 and StyleGAN3 exist there), an attribute
            with no plain form, an unknown target.
    """
    conv = _Converter(target)
    out: dict[str, Any] = {}
    G_ema = nets["G_ema"]
    for key in ("G", "D", "G_ema"):
        m = nets.get(key, G_ema if key == "G" else None)
        if m is None:
            out[key] = None
            continue
        fam = _family_of(m)
        if fam not in ("stylegan2", "stylegan3"):
            from sgtrain.latent.studio import family_name

            raise ExportError(f"{key} is a {family_name(m) if key != 'D' else type(m).__module__} network: NVlabs' "
                              "PyTorch code (stylegan2-ada-pytorch, stylegan3) has StyleGAN2 and StyleGAN3 classes "
                              "only; use sgtrain-export onnx/torchscript or the portable .safetensors")
        rec = conv.convert(m.to("cpu").eval(), key)
        rec.state["training"] = False
        rec.state["_init_args"] = ()
        rec.state["_init_kwargs"] = _nvlabs_init_kwargs(m, target)
        out[key] = rec
    info = nets.get("training_info") or {}
    tsk = info.get("training_set_kwargs") if info.get("source") == "nvlabs-pickle" else None
    out["training_set_kwargs"] = _plain(tsk, "training_set_kwargs") if isinstance(tsk, dict) else None
    out["augment_pipe"] = None
    buf = io.BytesIO()
    _Pickler(buf, protocol=4).dump({k: out[k] for k in ("G", "D", "G_ema", "augment_pipe", "training_set_kwargs")})
    data = buf.getvalue()
    allowed = {f"{r.module}.{r.name}" for r in conv.refs.values()} | _TORCH_GLOBALS
    extra = pickle_globals(data) - allowed
    if extra:
        raise ExportError(f"the pickle would reference {sorted(extra)}, outside NVlabs' classes and torch's tensor "
                          "rebuild functions")
    return data


def export_nvlabs(nets: dict[str, Any], out: str | os.PathLike, target: str = "stylegan3") -> None:
    """Write :func:`nvlabs_snapshot_bytes` to ``out`` atomically (no partial file on any error).

    Raises:
        ExportError: see :func:`nvlabs_snapshot_bytes`; the destination directory does not exist.
        OSError: the file cannot be written.
    """
    data = nvlabs_snapshot_bytes(nets, target)
    parent = os.path.dirname(os.path.abspath(os.fspath(out)))
    if not os.path.isdir(parent):
        raise ExportError(f"cannot write {out}: directory {parent} does not exist")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(out, write)


def pickle_globals(data: bytes) -> set[str]:
    """The ``module.name`` of every global a pickle references (``GLOBAL``/``STACK_GLOBAL``), read with pickletools
    without unpickling anything (STACK_GLOBAL's operands are the two strings pushed or memoised before it)."""
    found: set[str] = set()
    strings: list[str] = []
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(str(arg).replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            strings.append(arg)
        elif op.name == "MEMOIZE":
            if strings:
                memo[len(memo)] = strings[-1]
            else:
                memo[len(memo)] = None
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = strings[-1] if strings else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            v = memo.get(int(arg))
            if isinstance(v, str):
                strings.append(v)
        elif op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]}.{strings[-1]}")
        if op.name not in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "MEMOIZE", "BINGET",
                           "LONG_BINGET", "GET", "BINPUT", "LONG_BINPUT", "PUT", "STACK_GLOBAL", "FRAME"):
            strings.append(None)  # type: ignore[arg-type]  # anything else breaks a pending string pair
    return found


class _ImportedRecord(PersistentRecord):
    """An NVlabs class instance pickled by reference (as sgtrain writes them), kept as data like PersistentRecord."""

    class_name = ""

    def __setstate__(self, state: Any) -> None:
        self.kind, self.version, self.module_src = "class", None, ""
        self.state = dict(state) if isinstance(state, dict) else {}


class _ExportUnpickler(SafeUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in {m for t in TARGETS.values() for m in t.values()} and name.isidentifier():
            self.globals_seen.add(f"{module}.{name}")
            return type(name, (_ImportedRecord,), {"class_name": name})
        return super().find_class(module, name)


def read_nvlabs_export(path: str | os.PathLike) -> dict[str, Any]:
    """Open a pickle written by :func:`export_nvlabs` with sgtrain's allow-list unpickler (no NVlabs code needed).

    Returns:
        :func:`sgtrain.io.load_network`'s result (``G_ema``, ``G``, ``D``, ``training_info``).

    Raises:
        UnsafePickleError: a global outside NVlabs' network classes and the allow-list.
        UnsupportedNetworkError, NetworkFileError: see :func:`sgtrain.io.nvlabs.convert_nvlabs_snapshot`.
    """
    from sgtrain.io.nvlabs import convert_nvlabs_snapshot

    with open(path, "rb") as f:
        obj = _ExportUnpickler(f, os.fspath(path)).load()
    out = convert_nvlabs_snapshot(obj, path)
    for key in ("G_ema", "G", "D"):
        if key in out:
            out[key] = out[key].eval().requires_grad_(False)
    return out
