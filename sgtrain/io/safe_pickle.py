"""Allow-list unpickler for network pickles (NVlabs stylegan2-ada-pytorch / stylegan3 snapshots).

A pickle is a small program: every ``GLOBAL``/``STACK_GLOBAL`` opcode names a Python object that the
unpickler imports and may then call. :class:`SafeUnpickler` answers each such request from a fixed table
and refuses everything else with :class:`~sgtrain.io.errors.UnsafePickleError` before anything is imported
or called, so a pickle that names ``os.system``, ``builtins.eval`` or ``subprocess.Popen`` runs nothing.

NVlabs' ``torch_utils.persistence`` stores every network module as a call
``_reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class', version=6, module_src=<the whole
source file>, class_name=<name>, state=<the module's __dict__>)``; their loader ``exec``s ``module_src``.
Here that call returns a :class:`PersistentRecord` holding ``class_name`` and ``state`` (parameters in
``state['_parameters']``, buffers in ``state['_buffers']``, submodules in ``state['_modules']``, constructor
arguments in ``state['_init_kwargs']``); the source text is kept as a string for error messages and is never
executed or compiled. Plain ``torch.nn`` containers (``torch.nn.modules.*``) become :class:`ForeignModuleRecord`
without importing the class.

Tensors are rebuilt with torch's own rebuild functions; the raw storages that plain ``pickle`` embeds
(``torch.storage._load_from_bytes``) are read with ``torch.load(weights_only=True)``, torch's own allow-list.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
import torch

from sgtrain.io.errors import UnsafePickleError

__all__ = [
    "ForeignModuleRecord",
    "TFNetworkRecord",
    "PersistentRecord",
    "SafeUnpickler",
    "collect_state_dict",
    "iter_records",
    "safe_load_pickle",
]


class PersistentRecord:
    """One object that NVlabs' ``torch_utils.persistence`` pickled, as data (its source is never executed).

    Attributes:
        class_name: the class name inside the pickled module source (``"Generator"``, ``"SynthesisBlock"``...).
        state: the object's ``__dict__`` at pickling time: ``_parameters``, ``_buffers``, ``_modules``,
            ``_init_args``, ``_init_kwargs`` and plain attributes.
        module_src: the embedded Python source text (kept for messages only).
        version: NVlabs' persistence format version (6 in stylegan2-ada-pytorch and stylegan3).
    """

    def __init__(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            raise pickle.UnpicklingError(f"NVlabs persistence record is a {type(meta).__name__}, expected a dict")
        self.kind = meta.get("type")
        self.version = meta.get("version")
        self.class_name = str(meta.get("class_name"))
        src = meta.get("module_src")
        self.module_src = src if isinstance(src, str) else ""
        state = meta.get("state")
        self.state: dict = dict(state) if isinstance(state, dict) else {}

    def source_classes(self) -> list[str]:
        """Names of the classes defined in the embedded source (read as text with a regex, never run)."""
        return re.findall(r"^class\s+(\w+)\s*[(:]", self.module_src, flags=re.M)

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name!r})"


class ForeignModuleRecord:
    """A plain ``torch.nn`` container (for example ``ModuleList``) stored without NVlabs persistence.

    The class is named, never imported; the pickle's ``BUILD`` state is kept as data in :attr:`state`.
    """

    qualified_name = "torch.nn.Module"

    def __init__(self) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict_state, slot_state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {}

    @property
    def class_name(self) -> str:
        return self.qualified_name.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"ForeignModuleRecord({self.qualified_name!r})"


class TFNetworkRecord:
    """A TensorFlow network that NVlabs' ``dnnlib.tflib.Network`` (or ProGAN's ``tfutil.Network``) pickled, as data.

    Their ``__setstate__`` ``exec``s the embedded build source and rebuilds a TF graph; here the state is only
    stored: nothing is compiled, executed or imported, and TensorFlow is not needed.

    Attributes:
        version: state version (2: progressive_growing_of_gans' ``tfutil.Network`` and early dnnlib; 3: NVlabs
            stylegan; 4: NVlabs stylegan2).
        name: the network's scope name (``'G'``, ``'D'``, ``'Gs'``, ``'G_mapping'``, ``'G_synthesis'``).
        static_kwargs: the build function's keyword arguments (a plain dict).
        components: sub-networks (``{'mapping': TFNetworkRecord, 'synthesis': TFNetworkRecord}``), may be empty.
        build_func_name: the build function (``'training.networks_stylegan.G_style'``, ``'networks.G_paper'``...).
        build_module_src: the embedded source text (kept for messages only; never executed).
        variables: ``{variable name relative to the network scope: numpy array}`` (``'4x4/Conv/weight'``...).
    """

    qualified_name = "dnnlib.tflib.network.Network"

    def __init__(self) -> None:
        self.version: int | None = None
        self.name = ""
        self.static_kwargs: dict = {}
        self.components: dict = {}
        self.build_func_name = ""
        self.build_module_src = ""
        self.variables: dict[str, np.ndarray] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"TensorFlow network state is a {type(state).__name__}, expected a dict")
        self.version = state.get("version")
        self.name = str(state.get("name", ""))
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.components = dict(state.get("components") or {})
        self.build_func_name = str(state.get("build_func_name", ""))
        src = state.get("build_module_src")
        self.build_module_src = src if isinstance(src, str) else ""
        self.variables = {str(k): np.asarray(v) for k, v in (state.get("variables") or [])}

    @property
    def func(self) -> str:
        """The build function's short name (``'G_style'``, ``'G_paper'``, ``'D_basic'``...)."""
        return self.build_func_name.rsplit(".", 1)[-1]

    def all_variables(self) -> dict[str, np.ndarray]:
        """Own variables and those of every component, the latter prefixed ``'<component name>/'``."""
        out = dict(self.variables)
        for comp in self.components.values():
            if isinstance(comp, TFNetworkRecord):
                out.update({f"{comp.name}/{k}": v for k, v in comp.all_variables().items()})
        return out

    def __repr__(self) -> str:
        return f"TFNetworkRecord({self.name!r}, {self.build_func_name!r}, version={self.version})"


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access): restored as a plain dict."""

    def __setstate__(self, state: Any) -> None:  # EasyDict has no instance state beyond its items
        pass


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    return PersistentRecord(meta)


def _load_from_bytes(data: bytes) -> Any:
    """A storage that plain ``pickle`` embedded as ``torch.save`` bytes, read with torch's allow-list loader."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("torch storage payload is not bytes")
    if bytes(data[:4]) == b"PK\x03\x04":
        from sgtrain.io.budget import check_zip_inflation

        check_zip_inflation(io.BytesIO(data), len(data), "an embedded torch storage")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m:
            raise UnsafePickleError(m.group(1)) from e
        raise
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"torch storage payload holds a {type(storage).__name__}, not a storage")
    return storage


def check_view(storage: Any, storage_offset: Any, size: Any, stride: Any) -> None:
    """Refuse a tensor view that reaches past the end of its storage, or has a negative size, stride or offset (a
    tensor declared larger than its storage would read memory that is not the file's).

    Raises:
        pickle.UnpicklingError: naming the view and the storage's size.
    """
    if isinstance(storage, torch.TypedStorage):
        numel = storage.size()
    elif isinstance(storage, torch.UntypedStorage):
        numel = storage.nbytes()
    else:
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}, not a torch storage")
    try:
        size, stride = tuple(size), tuple(stride)
    except TypeError:
        raise pickle.UnpicklingError("tensor view size / stride are not sequences") from None
    if not (type(storage_offset) is int and storage_offset >= 0 and len(size) == len(stride)
            and all(type(n) is int and n >= 0 for n in size) and all(type(t) is int and t >= 0 for t in stride)):
        raise pickle.UnpicklingError(f"tensor view offset={storage_offset!r:.40} size={size!r:.80} "
                                     f"stride={stride!r:.80} is not a view of non-negative integers")
    if any(n == 0 for n in size):
        return
    need = storage_offset + 1 + sum((n - 1) * t for n, t in zip(size, stride))
    if need > numel:
        raise pickle.UnpicklingError(f"tensor of size {list(size)} needs {need} elements; its storage holds {numel}")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    check_view(storage, storage_offset, size, stride)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False, collections.OrderedDict(),
                                           metadata)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data is a {type(data).__name__}, not a tensor")
    return data  # parameters become plain tensors: only their values are used


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in _TENSOR_FUNCS:
        raise pickle.UnpicklingError("tensor subclass rebuild with a function outside the allow-list")
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise pickle.UnpicklingError(f"tensor subclass {new_type!r} is not allowed")
    return func(*args)


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` limited to the stand-in classes of :meth:`SafeUnpickler.find_class`."""
    if not (isinstance(cls, type) and issubclass(cls, (ForeignModuleRecord, TFNetworkRecord, _EasyDict))
            and base is object):
        raise pickle.UnpicklingError(f"copyreg._reconstructor({cls!r}, {base!r}) is not allowed")
    return cls()


_TENSOR_FUNCS = {_rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter}


#: numpy dtypes a network pickle may hold: booleans, integers, floats and complex numbers. Object, void (records),
#: string and datetime dtypes are refused: an object dtype makes numpy read bytes of the file as pointers.
_NUMPY_KINDS = frozenset("biufc")


class _DtypeRecord:
    """What ``numpy.dtype(spec, align, copy)`` + BUILD state unpickle to: the type string and the byte order only.
    numpy's own ``dtype.__setstate__`` is never called (its flags field can turn bytes into object pointers)."""

    def __init__(self, spec: Any = None, align: Any = False, copy: Any = True) -> None:
        self.spec = spec
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "=", "|"):
            self.byteorder = state[1]
        else:
            raise pickle.UnpicklingError(f"numpy dtype state {str(state)[:80]!r} is not a plain dtype's")
        self.to_dtype()  # refuse an object / record / string dtype at once

    def to_dtype(self) -> np.dtype:
        spec = self.spec
        if not (isinstance(spec, str) and re.fullmatch(r"[biufc]\d{1,2}", spec)):
            raise pickle.UnpicklingError(f"numpy dtype {str(spec)[:40]!r} is not allowed in a network file (only "
                                         "booleans, integers, floats and complex numbers)")
        dt = np.dtype(spec).newbyteorder(self.byteorder if self.byteorder != "|" else "=")
        if dt.kind not in _NUMPY_KINDS or dt.hasobject or dt.fields is not None:
            raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not allowed in a network file")
        return dt

    def __repr__(self) -> str:
        return f"dtype({self.spec!r})"


def _dtype_of(d: Any) -> np.dtype:
    if isinstance(d, _DtypeRecord):
        return d.to_dtype()
    raise pickle.UnpicklingError(f"numpy array dtype is a {type(d).__name__}, not a plain dtype")


class _SafeArray(np.ndarray):
    """The ndarray that ``numpy.core.multiarray._reconstruct`` + BUILD unpickle to: its state is checked (a plain
    dtype, a shape of non-negative ints, raw bytes exactly as many as the shape needs) before numpy sees it."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("numpy array state is not (version, shape, dtype, fortran, data)")
        version, shape, dtype, fortran, raw = state
        dt = _dtype_of(dtype)
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and 0 <= n for n in shape) and len(shape) <= 32):
            raise pickle.UnpicklingError(f"numpy array shape {str(shape)[:80]} is not a tuple of sizes")
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("numpy array data is not raw bytes (object arrays are not allowed)")
        need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if len(raw) != need:
            raise pickle.UnpicklingError(f"numpy array of shape {shape} {dt} needs {need} bytes, the file holds "
                                         f"{len(raw)}")
        super().__setstate__((version, shape, dt, bool(fortran), bytes(raw)))


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _SafeArray:
    if cls is not _SafeArray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {cls!r} is not allowed")
    return np.ndarray.__new__(_SafeArray, (0,), np.uint8)


def _scalar(dtype: Any, data: Any = None) -> Any:
    dt = _dtype_of(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar of {dt} needs {dt.itemsize} bytes of data")
    return np.frombuffer(bytes(data), dtype=dt)[0]


def _bytearray(*args: Any) -> bytearray:
    """``bytearray`` of existing data only (``bytearray(2**31)`` from a 30-byte pickle would allocate 2 GB)."""
    if len(args) > 2 or (args and not isinstance(args[0], (bytes, str))) or len(args) == 2 and not isinstance(
            args[1], str):
        raise pickle.UnpicklingError("bytearray() in a network file may only copy data the file holds")
    return bytearray(*args)


def _numpy_globals() -> dict[str, Any]:
    table: dict[str, Any] = {"numpy.dtype": _DtypeRecord, "numpy.ndarray": _SafeArray}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[f"{mod}.scalar"] = _scalar
        table[f"{mod}._reconstruct"] = _reconstruct
    return table


def _build_allow_list() -> dict[str, Any]:
    table: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.slice": slice,
        "builtins.bytearray": _bytearray,
        "builtins.object": object,
        "copyreg._reconstructor": _reconstructor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.Tensor": torch.Tensor,
        "torch._tensor.Tensor": torch.Tensor,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.storage._load_from_bytes": _load_from_bytes,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
        "dnnlib.util.EasyDict": _EasyDict,
        "dnnlib.EasyDict": _EasyDict,
        # TensorFlow networks: NVlabs stylegan / stylegan2 (dnnlib.tflib) and progressive_growing_of_gans (tfutil)
        "dnnlib.tflib.network.Network": TFNetworkRecord,
        "tfutil.Network": TFNetworkRecord,
    }
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            table[f"torch.{name}"] = getattr(torch, name)
    table.update(_numpy_globals())
    return table


ALLOWED_GLOBALS: dict[str, Any] = _build_allow_list()
_TORCH_NN_CLASS = re.compile(r"^torch\.nn\.modules\.[a-z_.]+$")


def _claimed(key: str) -> bool:
    """Whether a registered family reads the ``nn.Module`` class ``key`` of another program's plain (non-persistent)
    pickle as :class:`ForeignModuleRecord` data (``Family.pickle_classes``, e.g. ``'R3GAN.Networks.ResidualBlock'``)."""
    from sgtrain.models.family import registered

    return any(key in fam.pickle_classes for fam in registered().values())


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals only from :data:`ALLOWED_GLOBALS`.

    Args:
        file: binary file object positioned at the start of a pickle.
        path: file name used in error messages.

    Raises (from :meth:`load`):
        UnsafePickleError: at the first global outside the allow-list, before it is imported; nothing else runs.
        pickle.UnpicklingError: persistent ids (not used by plain pickles) or malformed tensor records.
    """

    def __init__(self, file: BinaryIO, path: str | None = None) -> None:
        super().__init__(file)
        self._path = path
        self.globals_seen: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        self.globals_seen.add(key)
        if key in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[key]
        if _TORCH_NN_CLASS.match(module) and name.isidentifier() and name[:1].isupper():
            return type(name, (ForeignModuleRecord,), {"qualified_name": key})
        if name.isidentifier() and _claimed(key):
            return type(name, (ForeignModuleRecord,), {"qualified_name": key})
        raise UnsafePickleError(key, self._path)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(
            f"persistent id {pid!r}{' in ' + self._path if self._path else ''}: this is not a plain pickle; "
            "torch.save files are opened with torch.load(weights_only=True) instead"
        )


def safe_load_pickle(path: str | os.PathLike | BinaryIO) -> Any:
    """Unpickle a file through :class:`SafeUnpickler`.

    Args:
        path: file path or binary file object.

    Returns:
        The unpickled object; NVlabs persistent modules appear as :class:`PersistentRecord`, tensors as
        CPU ``torch.Tensor``.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list (nothing was executed).
    """
    if hasattr(path, "read"):
        return SafeUnpickler(path).load()  # type: ignore[arg-type]
    with open(path, "rb") as f:
        return SafeUnpickler(f, os.fspath(path)).load()


Record = PersistentRecord | ForeignModuleRecord


def iter_records(record: Record, prefix: str = "") -> Iterator[tuple[str, Record]]:
    """Yield ``(dotted_name, record)`` for a record and all its submodule records, depth first."""
    yield prefix, record
    for name, sub in (record.state.get("_modules") or {}).items():
        if isinstance(sub, (PersistentRecord, ForeignModuleRecord)):
            yield from iter_records(sub, f"{prefix}.{name}" if prefix else name)


def collect_state_dict(record: Record, on_other: Callable[[str, Any], None] | None = None) -> dict[str, torch.Tensor]:
    """The ``state_dict()`` a module record would have: parameters and persistent buffers, dotted keys.

    Args:
        record: a :class:`PersistentRecord` (or :class:`ForeignModuleRecord`) from :func:`safe_load_pickle`.
        on_other: called with ``(key, value)`` for a submodule entry that is not a record (for errors).

    Returns:
        ``{key: tensor}`` with NVlabs' keys (``mapping.fc0.weight``, ``synthesis.b4.conv1.noise_const``...).
    """
    out: dict[str, torch.Tensor] = {}
    for prefix, rec in iter_records(record):
        p = f"{prefix}." if prefix else ""
        state = rec.state
        for name, t in (state.get("_parameters") or {}).items():
            if t is not None:
                out[p + name] = t
        skip = state.get("_non_persistent_buffers_set") or set()
        for name, t in (state.get("_buffers") or {}).items():
            if t is not None and name not in skip:
                out[p + name] = t
        for name, sub in (state.get("_modules") or {}).items():
            if sub is not None and not isinstance(sub, (PersistentRecord, ForeignModuleRecord)) and on_other:
                on_other(p + name, sub)
    return out
