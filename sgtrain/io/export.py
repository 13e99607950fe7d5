"""Generators out of sgtrain for deployment: ONNX and TorchScript graphs ``z [, c] -> img``.

The graph is :class:`GeneratorGraph`: input ``z`` float32 [N, z_dim] (and ``c`` float32 [N, c_dim] when the
generator is conditional), output ``img`` float32 NCHW [N, img_channels, R, R] in about [-1, 1] (the generator's
output, not clipped), with the truncation psi and cutoff baked in as constants and constant noise (the network's
``noise_const`` buffers, or none). The batch dimension N is dynamic.

What makes a generator exportable (issue 28; NVlabs stylegan3 #19 and #57, pytorch #51010):
- the reference ops: the export runs on CPU with ``SGTRAIN_OPS=ref``, so ``bias_act``, ``upfirdn2d`` and
  ``filtered_lrelu`` are plain PyTorch (pad, conv2d, leaky_relu, clamp) in the graph, never a custom kernel;
- no random ops: ``noise_mode='random'`` (``aten::normal``) is refused, the noise is ``'const'`` or ``'none'``;
- no per-sample grouped convolution: StyleGAN2's modulated convolution runs with ``fused_modconv=False``
  (activations scaled by the styles, one shared weight, then demodulated) and StyleGAN3's grouped convolution is
  replaced during the export by the same algebra (the family's ``Family.export_patches``:
  ``sgtrain.models.stylegan3.export.modulated_conv2d_ungrouped``), because a grouped
  convolution with ``groups = batch size`` fixes the batch size in the graph;
- ``assert_shape`` is silent while tracing (its ``int(size)`` would freeze the batch size).

Families: StyleGAN2 (and -ADA), StyleGAN3 (T and R), DCGAN and R3GAN export. ProGAN and StyleGAN (v1) do not: their
forward reads the ``lod`` buffer as a Python number (``float(self.lod)``) to choose which blocks run and how the
fade-in blends them, so a graph would either fail to trace (data-dependent control flow under ``torch.export``)
or silently freeze one level of detail; their `Family.not_exportable` says so and :func:`check_exportable` refuses
with it.

ONNX graphs are written with ``torch.onnx.export(dynamo=True)`` (opset 20: StyleGAN3's input transform uses
``affine_grid``, ONNX ``AffineGrid`` from opset 20); TorchScript with ``torch.jit.trace``. Both write atomically
(:func:`sgtrain.io.atomic.atomic_write`): a failure leaves no file.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
from collections.abc import Iterator
from typing import Any

import torch

from sgtrain.errors import UserError
from sgtrain.io.atomic import atomic_write

__all__ = ["FORMATS", "ExportError", "GeneratorGraph", "check_exportable", "export_generator",
           "export_onnx", "export_torchscript"]

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 20


class ExportError(UserError, ValueError):
    """A generator, option or format that cannot be exported; the message names the reason (one line)."""


def _family(G: torch.nn.Module) -> str:
    from sgtrain.latent.studio import family_name

    return family_name(G)


def _has_w(G: torch.nn.Module) -> bool:
    return all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws", "w_dim"))


def check_exportable(G: torch.nn.Module, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                     noise_mode: str = "const") -> str:
    """Check that ``G`` and the options can become a graph; return the family name.

    Raises:
        ExportError: a family that does not export (its ``Family.not_exportable`` reason), psi != 1 or a cutoff
            for a network without W space, an unknown or random noise mode, a cutoff out of [0, num_ws].
    """
    from sgtrain.models.family import family_of

    fam = _family(G)
    descriptor = family_of(G)
    why = descriptor.not_exportable if descriptor is not None else None
    if why:  # the family's word (Family.not_exportable); any other generator is traced and checked after
        raise ExportError(f"{fam} generators do not export to a graph: {why}")
    if noise_mode == "random":
        raise ExportError("noise_mode 'random' cannot be exported: aten::normal makes the graph non-deterministic and "
                          "is not portable; use 'const' (the network's fixed noise) or 'none'")
    if noise_mode not in ("const", "none"):
        raise ExportError(f"noise_mode {noise_mode!r} unknown: use 'const' or 'none'")
    if not _has_w(G):
        if truncation_psi != 1 or truncation_cutoff is not None:
            raise ExportError(f"{fam} has no W space: the truncation trick (--trunc, --trunc-cutoff) needs a "
                              "style-based generator; leave psi at 1")
    elif truncation_cutoff is not None and not 0 <= truncation_cutoff <= G.num_ws:
        raise ExportError(f"truncation cutoff {truncation_cutoff} is outside [0, num_ws={G.num_ws}]")
    return fam


class GeneratorGraph(torch.nn.Module):
    """The exported computation: ``z`` [N, z_dim] float32 (``c`` [N, c_dim] when conditional) -> ``img``.

    ``img`` is float32 [N, img_channels, img_resolution, img_resolution], about [-1, 1]. For style-based generators:
    ``ws = G.mapping(z, c, truncation_psi, truncation_cutoff)`` (Karras et al. 2019, sec. 3: w = w_avg + psi (w -
    w_avg) for the first cutoff ws) then ``G.synthesis(ws, noise_mode, force_fp32=True)``; otherwise ``G(z, c)``.
    """

    def __init__(self, G: torch.nn.Module, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                 noise_mode: str = "const") -> None:
        super().__init__()
        self.G = G
        self.truncation_psi = float(truncation_psi)
        self.truncation_cutoff = None if truncation_cutoff is None else int(truncation_cutoff)
        self.noise_mode = noise_mode
        self.c_dim = int(getattr(G, "c_dim", 0))
        self.synthesis_kwargs: dict[str, Any] = {}
        if _has_w(G):
            self.synthesis_kwargs = dict(noise_mode=noise_mode, force_fp32=True)
            if _accepts(G.synthesis, "fused_modconv"):
                self.synthesis_kwargs["fused_modconv"] = False

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            c = z.new_zeros([z.shape[0], self.c_dim])
        if not _has_w(self.G):
            return self.G(z, c).to(torch.float32)
        ws = self.G.mapping(z, c, truncation_psi=self.truncation_psi, truncation_cutoff=self.truncation_cutoff)
        return self.G.synthesis(ws, **self.synthesis_kwargs).to(torch.float32)


def _accepts(module: torch.nn.Module, keyword: str) -> bool:
    """Whether ``keyword`` reaches the layers: StyleGAN2's synthesis passes ``**kwargs`` down to its blocks, which
    name ``fused_modconv``; StyleGAN3's layers do not take it."""
    for m in module.modules():
        try:
            if keyword in inspect.signature(m.forward).parameters:
                return True
        except (TypeError, ValueError):  # pragma: no cover - builtins
            continue
    return False


@contextlib.contextmanager
def _export_mode(G: torch.nn.Module) -> Iterator[None]:
    """Reference ops, and the family's export patches (``Family.export_patches``: StyleGAN3's ungrouped modulated
    convolution), for the duration of the export."""
    import importlib

    from sgtrain.models.family import family_of, resolve

    old_env = os.environ.get("SGTRAIN_OPS")
    os.environ["SGTRAIN_OPS"] = "ref"
    patched: list[tuple[Any, str, Any]] = []
    descriptor = family_of(G)
    try:
        for target, replacement in (descriptor.export_patches if descriptor is not None else {}).items():
            mod_name, _, attr = target.partition(":")
            module = importlib.import_module(mod_name)
            if not callable(getattr(module, attr, None)):
                raise ExportError(f"{mod_name} has no {attr} to replace for the export")
            patched.append((module, attr, getattr(module, attr)))
            setattr(module, attr, resolve(replacement))
        yield
    finally:
        for module, attr, fn in patched:
            setattr(module, attr, fn)
        if old_env is None:
            os.environ.pop("SGTRAIN_OPS", None)
        else:
            os.environ["SGTRAIN_OPS"] = old_env


def _prepare(G: torch.nn.Module, truncation_psi: float, truncation_cutoff: int | None,
             noise_mode: str) -> tuple[GeneratorGraph, tuple[torch.Tensor, ...], list[str]]:
    check_exportable(G, truncation_psi, truncation_cutoff, noise_mode)
    G = copy.deepcopy(G).to("cpu", torch.float32).eval().requires_grad_(False)  # the caller's G stays as it is
    graph = GeneratorGraph(G, truncation_psi, truncation_cutoff, noise_mode).eval()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn([2, int(G.z_dim)], generator=gen)
    if graph.c_dim:
        c = torch.nn.functional.one_hot(torch.arange(2) % graph.c_dim, graph.c_dim).to(torch.float32)
        return graph, (z, c), ["z", "c"]
    return graph, (z,), ["z"]


def export_onnx(G: torch.nn.Module, out: str | os.PathLike, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> None:
    """Write ``G`` as an ONNX graph (:class:`GeneratorGraph`: inputs ``z`` [, ``c``], output ``img``; batch dynamic).

    Raises:
        ExportError: see :func:`check_exportable`; the tracer met an op it cannot export (its message appended).
        OSError: the destination cannot be written. No file is left behind on any error.
    """
    graph, args, names = _prepare(G, truncation_psi, truncation_cutoff, noise_mode)
    G = graph.G
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {n: {0: batch} for n in names}

    def write(tmp: str) -> None:
        with _export_mode(G), torch.no_grad(), _quiet():
            program = torch.onnx.export(graph, args, None, input_names=names, output_names=["img"],
                                        dynamo=True, dynamic_shapes=dynamic, opset_version=ONNX_OPSET,
                                        optimize=True, verbose=False)
        program.save(tmp)

    _write(out, write, "ONNX")


def export_torchscript(G: torch.nn.Module, out: str | os.PathLike, truncation_psi: float = 1.0,
                       truncation_cutoff: int | None = None, noise_mode: str = "const") -> None:
    """Write ``G`` as TorchScript (``torch.jit.trace`` of :class:`GeneratorGraph`; ``torch.jit.load(out)(z[, c])``).

    Raises:
        ExportError, OSError: as :func:`export_onnx`; no file is left behind on any error.
    """
    graph, args, _ = _prepare(G, truncation_psi, truncation_cutoff, noise_mode)
    G = graph.G

    def write(tmp: str) -> None:
        with _export_mode(G), torch.no_grad(), _quiet():
            traced = torch.jit.trace(graph, args, check_trace=False)
            torch.jit.save(traced, tmp)

    _write(out, write, "TorchScript")


def export_generator(G: torch.nn.Module, fmt: str, out: str | os.PathLike, **options: Any) -> None:
    """Dispatch to :func:`export_onnx` or :func:`export_torchscript` by ``fmt``.

    Raises:
        ExportError: unknown format, or from the exporter.
    """
    writers = {"onnx": export_onnx, "torchscript": export_torchscript}
    if fmt not in writers:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)} (or 'nvlabs' for a pickle)")
    writers[fmt](G, out, **options)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _write(out: str | os.PathLike, write: Any, what: str) -> None:
    parent = os.path.dirname(os.path.abspath(os.fspath(out)))
    if not os.path.isdir(parent):
        raise ExportError(f"cannot write {out}: directory {parent} does not exist")
    try:
        atomic_write(out, write)
    except ExportError:
        raise
    except (RuntimeError, TypeError, AttributeError, NotImplementedError, AssertionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{what} export failed ({type(e).__name__}): {first}") from e
    except ImportError as e:
        raise ExportError(f"{what} export needs onnx and onnxscript: pip install 'sgtrain[export]' ({e})") from e
