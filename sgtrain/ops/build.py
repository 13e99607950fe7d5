"""Ninja JIT loader of sgtrain's fused CUDA ops (``sgtrain/ops/csrc``).

The kernels are compiled at their first use on a CUDA tensor with ``torch.utils.cpp_extension.load`` (which needs
ninja and a CUDA toolkit whose major version matches torch's) and kept in a build cache:

    $SGTRAIN_OPS_CACHE or ~/.cache/sgtrain/ops / <kind>-<source hash>-torch<ver>-cuda<ver>-sm<arch> /

so a change of the sources, of torch or of the GPU generation builds afresh, and everything else loads the cached
library directly (no compiler, no lock). The same approach as NVlabs' ``torch_utils/custom_ops.py``, with two
robustness changes:

- Concurrent builds (several ranks on one node) are serialised by a lock file that records the owner's PID, host
  and start time. A lock whose owner is dead (same host), or older than ``SGTRAIN_OPS_LOCK_STALE`` seconds
  (default 1800), is stale and removed, together with the baton file torch's builder leaves behind when its
  process is killed (torch waits on that file forever). A live lock is waited on for at most
  ``SGTRAIN_OPS_LOCK_TIMEOUT`` seconds (default 900); then the build is reported as failed, never hung.
- A failed build raises :class:`BuildError` with the reason; :func:`get_extension` turns that into one
  ``RuntimeWarning`` per process and ``None``, and the ops fall back to their reference path. The reason is also
  kept in the build directory (``failed.json``, removed by the next good build) for ``sgtrain-ops info``.

ninja is a dependency of sgtrain (the PyPI package); a build finds it on PATH or, in a virtual environment that was
not activated, beside the interpreter (:func:`find_ninja`). :func:`op_paths` says which path each op takes on this
machine and why (``sgtrain-ops info``).

Environment: ``SGTRAIN_OPS`` = ``auto`` (default: fused on CUDA when it builds, else reference), ``fused`` (fused on
CUDA, a failed build is an error), ``ref`` (never build, always the reference path). ``SGTRAIN_OPS_VERBOSE=1``
prints the compiler's output.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import sys
import sysconfig
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from sgtrain.errors import SgtrainError

__all__ = [
    "BuildError",
    "CSRC_DIR",
    "build_dir_for",
    "cache_root",
    "failure_reason",
    "find_ninja",
    "get_extension",
    "load_emulation",
    "load_extension",
    "op_paths",
    "ops_mode",
    "reset",
    "source_hash",
]

CSRC_DIR = Path(next(iter(importlib.import_module("sgtrain.ops.csrc").__path__)))  # the repo's ops/ (setup.py)
HEADERS = ("sgt_common.h", "bias_act.h", "upfirdn2d.h", "filtered_lrelu.h", "ops_host.h")
CUDA_SOURCES = ("ops.cpp", "kernels.cu")
EMULATION_SOURCES = ("cpu_emulation.cpp",)
MODES = ("auto", "fused", "ref")
LOCK_NAME = "sgtrain.lock"
TORCH_BATON_NAME = "lock"  # the FileBaton torch.utils.cpp_extension creates in the build directory
MARKER_NAME = "build.json"
FAILURE_NAME = "failed.json"


class BuildError(SgtrainError, RuntimeError):
    """The fused ops could not be built or loaded; the message says why and what to do."""


def ops_mode() -> str:
    """The ``SGTRAIN_OPS`` setting: 'auto' (default), 'fused' or 'ref'.

    Raises:
        ValueError: any other value.
    """
    mode = os.environ.get("SGTRAIN_OPS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"SGTRAIN_OPS={mode!r} is not one of {MODES}; unset it or pick one of those")
    return mode


def cache_root() -> Path:
    """Root of the build cache: ``$SGTRAIN_OPS_CACHE`` or ``~/.cache/sgtrain/ops``."""
    env = os.environ.get("SGTRAIN_OPS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sgtrain" / "ops"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError as err:
        raise ValueError(f"{name} must be a number of seconds, got {os.environ.get(name)!r}") from err


def source_hash(files: tuple[str, ...] = HEADERS + CUDA_SOURCES, src_dir: Path = CSRC_DIR) -> str:
    """SHA-256 (hex) over the names and bytes of ``files`` in ``src_dir``.

    Raises:
        BuildError: a source file is missing (a broken installation: the wheel must ship ``ops/csrc``).
    """
    h = hashlib.sha256()
    for name in files:
        path = src_dir / name
        if not path.is_file():
            raise BuildError(f"fused-op source {path} is missing; reinstall sgtrain (the wheel ships ops/csrc)")
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _arch_of(device: torch.device | None) -> str:
    if device is None or device.type != "cuda":
        return "cpu"
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm{major}{minor}"


def build_dir_for(kind: str, digest: str, arch: str) -> Path:
    """Cache directory of one build: ``<cache_root>/<kind>-<hash16>-torch<ver>-cuda<ver>-<arch>``."""
    torch_ver = re.sub(r"[^0-9A-Za-z.]+", "_", torch.__version__)
    cuda_ver = torch.version.cuda or "none"
    return cache_root() / f"{kind}-{digest[:16]}-torch{torch_ver}-cuda{cuda_ver}-{arch}"


# --------------------------------------------------------------------------------------------------------------
# Build lock


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _lock_owner(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def lock_is_stale(path: Path, stale_after: float | None = None) -> tuple[bool, str]:
    """Whether the build lock at ``path`` is left over by a process that no longer builds.

    Stale: the owner PID is dead on this host, or the lock is older than ``stale_after`` seconds (default
    ``SGTRAIN_OPS_LOCK_STALE`` or 1800), or the file is unreadable and older than 60 s (its writer was killed
    between creating and filling it). Returns (stale, description of the owner).
    """
    stale_after = _env_float("SGTRAIN_OPS_LOCK_STALE", 1800.0) if stale_after is None else stale_after
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False, "gone"
    owner = _lock_owner(path)
    if owner is None:
        return age > 60.0, f"unreadable lock, {age:.0f} s old"
    pid, host = int(owner.get("pid", -1)), str(owner.get("host", ""))
    desc = f"pid {pid} on {host or '?'}, {age:.0f} s old"
    if host == socket.gethostname() and not _pid_alive(pid):
        return True, desc + " (process is dead)"
    if age > stale_after:
        return True, desc + f" (older than {stale_after:.0f} s)"
    return False, desc


@contextmanager
def build_lock(build_dir: Path, timeout: float | None = None, poll: float = 0.25) -> Iterator[None]:
    """Holds the build lock of ``build_dir`` (created with O_EXCL; content: pid, host, start time).

    Removes a stale lock (see :func:`lock_is_stale`) and, once the lock is held, a leftover torch baton file
    ``build_dir/lock`` (only a killed builder leaves it, since every builder of this directory holds our lock).

    Raises:
        BuildError: a live lock was still held after ``timeout`` seconds (default ``SGTRAIN_OPS_LOCK_TIMEOUT`` or
            900); the message names the owner and the file to delete if no build is running.
    """
    timeout = _env_float("SGTRAIN_OPS_LOCK_TIMEOUT", 900.0) if timeout is None else timeout
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / LOCK_NAME
    deadline = time.monotonic() + timeout
    info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()})
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            stale, desc = lock_is_stale(path)
            if stale:
                warnings.warn(
                    f"sgtrain: removing stale fused-ops build lock {path} ({desc})", RuntimeWarning, stacklevel=3
                )
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                continue
            if time.monotonic() >= deadline:
                raise BuildError(
                    f"timed out after {timeout:.0f} s waiting for the fused-ops build lock {path} held by {desc}; "
                    f"if no build is running, delete that file (or raise SGTRAIN_OPS_LOCK_TIMEOUT)"
                ) from None
            time.sleep(poll)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(info)
        break
    try:
        baton = build_dir / TORCH_BATON_NAME
        if baton.exists():
            baton.unlink()
        yield
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------------------------------------------
# Building and loading


def _import_library(name: str, library: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, library)
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot import the fused-ops library {library}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cached_library(build_dir: Path, name: str) -> Path | None:
    marker = build_dir / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    library = build_dir / str(info.get("library", ""))
    if info.get("name") != name or not library.is_file():
        return None
    return library


@contextmanager
def _arch_env(arch: str) -> Iterator[None]:
    """Builds for the current GPU only (faster than torch's default list), unless the user set the list."""
    key = "TORCH_CUDA_ARCH_LIST"
    old = os.environ.get(key)
    if old is None and arch.startswith("sm"):
        digits = arch[2:]
        os.environ[key] = f"{digits[:-1]}.{digits[-1]}"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)


def find_ninja() -> str | None:
    """The ninja executable a build would run: on PATH, else the one pip's ``ninja`` package installed beside this
    interpreter (a virtual environment that was not activated, e.g. ``/env/bin/sgtrain-train`` under SLURM)."""
    found = shutil.which("ninja")
    if found:
        return found
    dirs = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    try:
        import ninja  # the PyPI package (a dependency of sgtrain)

        dirs.insert(0, str(getattr(ninja, "BIN_DIR", "")))
    except ImportError:
        pass
    for d in dirs:
        exe = shutil.which("ninja", path=d) if d else None
        if exe:
            return exe
    return None


def _ensure_ninja_on_path() -> None:
    # torch's builder runs plain `ninja`: put the pip package's copy on PATH if PATH has none
    if shutil.which("ninja") is None:
        exe = find_ninja()
        if exe is not None:
            os.environ["PATH"] = os.path.dirname(exe) + os.pathsep + os.environ.get("PATH", "")


def _build(kind: str, sources: tuple[str, ...], arch: str, verbose: bool, src_dir: Path) -> ModuleType:
    digest = source_hash(HEADERS + sources, src_dir)
    name = f"sgtrain_ops_{kind}_{digest[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    build_dir = build_dir_for(kind, digest, arch)
    library = _cached_library(build_dir, name)
    if library is None:
        with build_lock(build_dir):
            library = _cached_library(build_dir, name)  # another process may have built it while we waited
            if library is None:
                from torch.utils import cpp_extension

                flags = ["-O3", "-DSGTRAIN_OPS_KIND=" + kind]
                cuda_flags = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
                t0 = time.time()
                _ensure_ninja_on_path()
                try:
                    with _arch_env(arch):
                        module = cpp_extension.load(
                            name=name,
                            sources=[str(src_dir / s) for s in sources],
                            extra_include_paths=[str(src_dir)],
                            extra_cflags=flags,
                            extra_cuda_cflags=cuda_flags if kind == "cuda" else None,
                            build_directory=str(build_dir),
                            verbose=verbose,
                            with_cuda=(kind == "cuda"),
                            is_python_module=True,
                        )
                except Exception as err:  # compiler missing, compile error, ninja missing, toolkit mismatch
                    _record_failure(build_dir, _summarise(err))
                    raise BuildError(_summarise(err)) from err
                found = sorted(build_dir.glob(f"{name}*.so")) + sorted(build_dir.glob(f"{name}*.pyd"))
                if not found:
                    raise BuildError(f"the build finished but {build_dir} holds no {name} library")
                library = found[0]
                (build_dir / MARKER_NAME).write_text(
                    json.dumps(
                        {
                            "name": name,
                            "library": library.name,
                            "kind": kind,
                            "arch": arch,
                            "torch": torch.__version__,
                            "cuda": torch.version.cuda,
                            "source_sha256": digest,
                            "seconds": round(time.time() - t0, 1),
                            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        },
                        indent=1,
                    )
                )
                sys.modules[name] = module
                (build_dir / FAILURE_NAME).unlink(missing_ok=True)
                return module
    if name in sys.modules:
        return sys.modules[name]
    module = _import_library(name, library)
    sys.modules[name] = module
    return module


def _record_failure(build_dir: Path, reason: str) -> None:
    # for `sgtrain-ops info` on this or another node sharing the cache: why the last build here failed
    try:
        (build_dir / FAILURE_NAME).write_text(
            json.dumps({"reason": reason, "host": socket.gethostname(), "time": time.time()}, indent=1)
        )
    except OSError:
        pass


def last_failure(build_dir: Path) -> dict[str, Any] | None:
    """``{"reason", "host", "time"}`` of the last failed build in ``build_dir`` (removed by a successful one)."""
    try:
        return json.loads((build_dir / FAILURE_NAME).read_text())
    except (OSError, ValueError):
        return None


def _summarise(err: BaseException, limit: int = 1500) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    if len(text) > limit:
        text = "..." + text[-limit:]
    return text


def load_extension(
    device: torch.device | int | str | None = None, verbose: bool | None = None, src_dir: Path = CSRC_DIR
) -> ModuleType:
    """Builds (or loads from the cache) the CUDA extension for ``device``'s architecture.

    Args:
        device: CUDA device whose compute capability to build for; None = the current CUDA device.
        verbose: Print the compiler's output; None = ``SGTRAIN_OPS_VERBOSE``.
        src_dir: Directory of the sources (tests point it elsewhere).

    Returns:
        The extension module, with ``bias_act(...)``, ``upfirdn2d(...)`` and ``filtered_lrelu(...)`` (see
        ``csrc/ops_host.h``).

    Raises:
        BuildError: no CUDA device, no toolkit/ninja/compiler, compile error, or lock timeout; with the reason.
    """
    if verbose is None:
        verbose = os.environ.get("SGTRAIN_OPS_VERBOSE", "") not in ("", "0")
    if not torch.cuda.is_available():
        raise BuildError(
            f"no CUDA device is available (this torch build: {torch.__version__}, CUDA {torch.version.cuda})"
        )
    dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return _build("cuda", CUDA_SOURCES, _arch_of(dev), verbose, src_dir)


def load_emulation(verbose: bool = False, src_dir: Path = CSRC_DIR) -> ModuleType:
    """Builds (or loads) the host emulation of the kernels: the same per-element code in CPU loops.

    For tests on machines without a GPU (slow: each element runs scalar code). Needs a C++ compiler and ninja.

    Raises:
        BuildError: with the reason.
    """
    return _build("emu", EMULATION_SOURCES, "cpu", verbose, src_dir)


_state_lock = threading.Lock()
_extensions: dict[str, ModuleType] = {}
_failure: str | None = None
_warned = False


def failure_reason() -> str | None:
    """Why the last :func:`get_extension` call in this process could not build, or None."""
    return _failure


def reset() -> None:
    """Forgets cached load results and the warn-once flag (for tests and for ``sgtrain-ops build``)."""
    global _failure, _warned
    with _state_lock:
        _extensions.clear()
        _failure = None
        _warned = False


def get_extension(device: torch.device | None = None) -> ModuleType | None:
    """The CUDA extension for ``device``, or None when it cannot be built (warns once per process, with why).

    A failure is remembered: later calls return None at once instead of retrying the build.
    """
    global _failure, _warned
    arch = _arch_of(device) if device is not None else "current"
    module = _extensions.get(arch)
    if module is not None:
        return module
    if _failure is not None:
        return None
    with _state_lock:
        module = _extensions.get(arch)
        if module is not None:
            return module
        if _failure is not None:
            return None
        try:
            module = load_extension(device)
        except Exception as err:  # BuildError and anything unexpected: never break training over a fast path
            _failure = str(err) if isinstance(err, BuildError) else _summarise(err)
            if not _warned:
                _warned = True
                warnings.warn(
                    f"sgtrain: the fused CUDA ops are unavailable, using the reference ops instead (slower). "
                    f"Reason: {_failure}. Run `sgtrain-ops build` for the full log, or set SGTRAIN_OPS=ref to "
                    f"skip the build.",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return None
        _extensions[arch] = module
        return module


# --------------------------------------------------------------------------------------------------------------
# Which path each op takes, and why (sgtrain-ops info)

FUSED_OP_NAMES = ("bias_act", "upfirdn2d", "filtered_lrelu")


def _toolchain_problem() -> str | None:
    """Why a CUDA build cannot even start on this machine (no ninja, no toolkit, no compiler), or None."""
    if find_ninja() is None:
        return "ninja is missing (pip install ninja, a dependency of sgtrain; or put ninja on PATH)"
    try:
        from torch.utils.cpp_extension import CUDA_HOME
    except Exception:  # pragma: no cover - torch without cpp_extension
        CUDA_HOME = None
    if CUDA_HOME is None and shutil.which("nvcc") is None:
        return "no CUDA toolkit found (CUDA_HOME is unset and nvcc is not on PATH)"
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return f"no C++ compiler ({os.environ.get('CXX', 'c++')} is not on PATH)"
    return None


def op_paths(build: bool = False) -> dict[str, tuple[str, str]]:
    """Which implementation each op runs on this machine and why: ``{op: (path, reason)}``.

    Ops: ``bias_act``, ``upfirdn2d``, ``filtered_lrelu`` (fused CUDA kernel or reference PyTorch) and
    ``conv2d_gradfix`` (sgtrain's convolution whose backward can skip weight gradients, on every device).
    The fused/reference answer is for CUDA tensors of float16/bfloat16/float32/float64; CPU tensors always take the
    reference path, and so does code that ``torch.compile`` traces.

    Args:
        build: True = build or load the extension now to find out (may compile for minutes); False = answer from
            the settings, the toolchain and the build cache only (a build that was never tried is reported as such).

    Returns:
        op name -> (path, reason); path is ``"fused"``, ``"reference"`` or, for conv2d_gradfix, ``"custom autograd"``.
    """
    out: dict[str, tuple[str, str]] = {}

    def fused_all(path: str, reason: str) -> None:
        for op in FUSED_OP_NAMES:
            out[op] = (path, reason)

    try:
        mode = ops_mode()
    except ValueError as err:
        mode = None
        fused_all("error", str(err))
    if mode == "ref":
        fused_all("reference", "forced by SGTRAIN_OPS=ref (never builds the CUDA extension)")
    elif mode is not None and not torch.cuda.is_available():
        if torch.version.cuda is None:
            why = f"no CUDA: torch {torch.__version__} is a CPU-only build"
        else:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            why = f"no CUDA device visible (torch {torch.__version__} with CUDA {torch.version.cuda}" + (
                f", CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ")"
            )
        fused_all("reference", why)
    elif mode is not None:
        fused_all(*_fused_state(mode, build))
    from sgtrain.ops import conv2d_gradfix  # noqa: F401 - present in this installation

    out["conv2d_gradfix"] = (
        "custom autograd",
        "every device, whenever autograd records: skips conv weight gradients inside R1 and (with "
        "loss.pl_no_weight_grad) path length; plain F.conv2d for inference and under torch.compile",
    )
    if out["filtered_lrelu"][0] == "fused":
        out["filtered_lrelu"] = ("fused", out["filtered_lrelu"][1] + "; filters too large for the kernel's shared "
                                 "memory (dozens of taps per axis) run on the reference path")  # fmt: skip
    return out


def _fused_state(mode: str, build: bool) -> tuple[str, str]:
    forced = " (SGTRAIN_OPS=fused: a failed build is an error)" if mode == "fused" else ""
    try:
        digest = source_hash()
    except BuildError as err:
        return "reference", str(err)
    dev = torch.device("cuda", torch.cuda.current_device())
    arch = _arch_of(dev)
    build_dir = build_dir_for("cuda", digest, arch)
    if build:
        try:
            module = load_extension(dev)
        except BuildError as err:
            return "reference", f"the build failed: {err}{forced}"
        return "fused", f"extension built and loaded for {arch}: {module.__file__}{forced}"
    if (build_dir / MARKER_NAME).is_file():
        return "fused", f"built for {arch} in the cache ({build_dir}){forced}"
    failure = last_failure(build_dir)
    if failure is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(failure.get("time", 0))))
        return "reference", (f"the last build failed ({when} on {failure.get('host', '?')}): {failure.get('reason')}; "
                             f"fix it and run `sgtrain-ops build`{forced}")  # fmt: skip
    problem = _toolchain_problem()
    if problem is not None:
        return "reference", f"cannot build: {problem}{forced}"
    return "fused", (f"not built yet for {arch}: the first CUDA call builds it into {build_dir} (a minute or two), "
                     f"or run `sgtrain-ops build` now{forced}")  # fmt: skip
