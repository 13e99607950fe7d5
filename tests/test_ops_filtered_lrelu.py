"""filtered_lrelu: the reference against NVlabs' _filtered_lrelu_ref (recorded cases), its double backward, the
fused path's autograd wiring (CPU, stand-in kernels), the kernel maths (slow: host emulation of the CUDA code),
the CUDA source compiling with nvcc for sm_90 (slow), and fused vs reference on a GPU (gpu marker).

The oracle of the fused path is the reference path (plain PyTorch, differentiated by autograd).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from sgtrain.ops import _backend, build, fused
from sgtrain.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_output_size, fused_kernel_fits
from sgtrain.ops.upfirdn2d import upfirdn2d

FIX = Path(__file__).parent / "fixtures" / "stylegan3"
_META = json.loads((FIX / "filtered_lrelu_cases.json").read_text())
CASES = _META["cases"]


@pytest.fixture(scope="module")
def nvlabs_arrays() -> dict[str, np.ndarray]:
    with np.load(FIX / "filtered_lrelu_cases.npz") as d:
        return {k: d[k] for k in d.files}


def _case_inputs(case: dict, arrays: dict) -> dict:
    key = case["key"]

    def opt(name: str) -> torch.Tensor | None:
        return torch.from_numpy(arrays[f"{key}/{name}"]) if f"{key}/{name}" in arrays else None

    return dict(
        x=torch.from_numpy(arrays[f"{key}/x"]),
        b=opt("b"),
        fu=opt("fu"),
        fd=opt("fd"),
        dy=torch.from_numpy(arrays[f"{key}/dy"]),
        kw=dict(
            up=case["up"],
            down=case["down"],
            padding=case["padding"],
            gain=case["gain"],
            slope=case["slope"],
            clamp=case["clamp"],
            flip_filter=case["flip_filter"],
        ),
    )


def _run(inp: dict, impl: str, second_order: bool = False) -> dict[str, torch.Tensor]:
    """y, dx, db (= d sum(y * dy)) and, with second_order, d/d(x, dy) of sum(dx^2) + sum(db^2) + sum(dx * x)."""
    x = inp["x"].clone().requires_grad_(True)
    b = inp["b"].clone().requires_grad_(True) if inp["b"] is not None else None
    dy = inp["dy"].clone().requires_grad_(second_order)
    y = filtered_lrelu(x, inp["fu"], inp["fd"], b, impl=impl, **inp["kw"])
    wrt = [x] + ([b] if b is not None else [])
    grads = torch.autograd.grad((y * dy).sum(), wrt, create_graph=second_order)
    out = {"y": y, "dx": grads[0]}
    if b is not None:
        out["db"] = grads[1]
    if second_order:
        loss = grads[0].square().sum() + (grads[0] * x).sum() + sum(g.square().sum() for g in grads[1:])
        ddx, ddy = torch.autograd.grad(loss, [x, dy])
        out.update(ddx=ddx, ddy=ddy)
    return {k: v.detach() for k, v in out.items()}


def _tol(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 8e-2}[dtype]


def _close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str) -> None:
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    a, b = a.double().cpu(), b.double().cpu()
    scale = max(1.0, float(b.abs().max()))
    err = float((a - b).abs().max())
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} (scale {scale:.3g}, tol {tol:g})"


# --------------------------------------------------------------------------------------------------------------
# Reference path against NVlabs


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_reference_matches_nvlabs(case, nvlabs_arrays):
    inp = _case_inputs(case, nvlabs_arrays)
    out = _run(inp, "ref")
    tol = _tol(inp["x"].dtype)
    for name in ("y", "dx", "db"):
        if name in out:
            _close(out[name], torch.from_numpy(nvlabs_arrays[f"{case['key']}/{name}"]), tol, f"{case['key']} {name}")
    assert out["y"].dtype == inp["x"].dtype
    assert list(out["y"].shape) == case["out_shape"]


def test_recorded_cases_cover_the_parameter_space():
    combos = {(c["up"], c["down"]) for c in CASES}
    assert {(1, 1), (2, 2), (4, 2), (2, 4), (4, 1), (1, 4)} <= combos
    assert {c["fu"] for c in CASES} == {"none", "sep", "2d"} and {c["fd"] for c in CASES} == {"none", "sep", "2d"}
    assert any(c["clamp"] is None for c in CASES) and any(c["clamp"] is not None for c in CASES)
    assert any(c["flip_filter"] for c in CASES) and {c["dtype"] for c in CASES} == {"float32", "float64"}
    assert any(isinstance(c["padding"], int) for c in CASES) and any(min(c["padding"]) < 0 for c in CASES
                                                                      if isinstance(c["padding"], list))


def test_reference_double_backward_gradcheck():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, generator=g, requires_grad=True)
    fu = torch.tensor([0.2, 0.5, 0.3, 0.1], dtype=torch.float32)
    fd = torch.tensor([[0.1, 0.3, 0.2], [0.25, 0.05, 0.1]], dtype=torch.float32)

    def fn(x_, b_, clamp=1.1):
        return filtered_lrelu(x_, fu, fd, b_, up=2, down=2, padding=[2, 1, 3, 0], gain=1.3, slope=0.3, clamp=clamp,
                              impl="ref")

    with torch.no_grad():
        assert float((fn(x, b) - fn(x, b, clamp=None)).abs().max()) > 0.01  # the clamp is reached
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_defaults_and_output_size():
    x = torch.randn(2, 3, 6, 5)
    f = torch.tensor([1.0, 2.0, 1.0]) / 4
    y = filtered_lrelu(x, f, f, up=2, down=2, padding=1)
    expected = upfirdn2d(
        torch.nn.functional.leaky_relu(upfirdn2d(x, f, up=2, padding=1, gain=4), 0.2) * math.sqrt(2), f, down=2
    )
    torch.testing.assert_close(y, expected)
    assert tuple(y.shape[2:]) == filtered_lrelu_output_size((6, 5), f, f, 2, 2, 1)
    # No filters, up = down = 1, slope 1, gain 1: the identity plus bias (the StyleGAN3 ToRGB layer).
    b = torch.randn(3)
    torch.testing.assert_close(filtered_lrelu(x, b=b, gain=1, slope=1), x + b[:, None, None])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(b=torch.zeros(3, dtype=torch.float64)), "dtype"),
        (dict(b=torch.zeros(4)), "b must be"),
        (dict(slope=-0.1), "slope"),
        (dict(gain=0), "gain"),
        (dict(clamp=-1.0), "clamp"),
        (dict(up=0), "up and down"),
        (dict(up=1.5), "up and down"),
        (dict(fu=torch.ones(3, dtype=torch.float64)), "fu must be"),
        (dict(fd=torch.ones(20, 20), down=4), "empty"),
        (dict(impl="triton"), "impl"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        filtered_lrelu(torch.randn(1, 3, 4, 4), **kwargs)


def test_cpu_tensors_take_the_reference_path_without_building(monkeypatch):
    monkeypatch.setenv("SGTRAIN_OPS", "fused")
    monkeypatch.setattr(build, "load_extension", lambda device=None: pytest.fail("must not build for CPU tensors"))
    x = torch.randn(1, 2, 6, 6)
    f = torch.tensor([0.25, 0.5, 0.25])
    torch.testing.assert_close(filtered_lrelu(x, f, f, up=2, down=2, padding=2),
                               filtered_lrelu(x, f, f, up=2, down=2, padding=2, impl="ref"))


def test_auto_keeps_filters_too_large_for_the_kernel_on_the_reference_path(monkeypatch):
    monkeypatch.setattr(_backend, "use_fused", lambda op, x: True)
    calls = []
    monkeypatch.setattr(fused, "filtered_lrelu_fused", lambda *a: calls.append(a) or a[0])
    x = torch.randn(1, 1, 90, 90, dtype=torch.float64)
    big = torch.ones(40, 40) / 1600
    assert not fused_kernel_fits(x.dtype, big, big, 1)
    filtered_lrelu(x, big, big)
    assert calls == []
    for fu, fd, up in [(torch.ones(24), torch.ones(12), 4), (torch.ones(12), torch.ones(12, 12), 2), (None, None, 1)]:
        assert fused_kernel_fits(torch.float16, fu, fd, up) and fused_kernel_fits(torch.float64, fu, fd, up)
    filtered_lrelu(x, torch.ones(12) / 12, padding=0)
    assert len(calls) == 1


# --------------------------------------------------------------------------------------------------------------
# Autograd wiring of the fused path, with stand-in kernels written in PyTorch (CPU, fast)


class _StandInKernels:
    """The entry point's contract (csrc/ops_host.h) in PyTorch: sign bytes written, read and offset as the kernel
    does. Checks fused.py's transposed configuration (padding, gain, filter swap, sign offsets) on CPU without a
    compiler; the kernel's own arithmetic is checked by the emulation tests below."""

    backend = "stand-in"

    @staticmethod
    def filtered_lrelu(x, fu, fd, b, si, up, down, px0, px1, py0, py1, sx, sy, gain, slope, clamp, flip, write):
        with torch.no_grad():
            if b.numel():
                x = x + b[:, None, None]
            t = upfirdn2d(x, fu, up=up, padding=(px0, px1, py0, py1), gain=up * up, flip_filter=flip, impl="ref")
            v = t * gain
            if si.numel():
                sh, sw = si.shape[2:]
                ys = torch.arange(v.shape[2]) + sy
                xs = torch.arange(v.shape[3]) + sx
                ok = ((ys >= 0) & (ys < sh))[:, None] & ((xs >= 0) & (xs < sw))[None, :]
                s = si[:, :, ys.clamp(0, sh - 1)][:, :, :, xs.clamp(0, sw - 1)].long()
                s = torch.where(ok, s, torch.full_like(s, 2))
                v = torch.where(s & 1 > 0, v * slope, v)
                v = torch.where(s & 2 > 0, torch.zeros_like(v), v)
                signs = torch.empty(0, dtype=torch.uint8)
            else:
                neg = ~(v > 0)
                v = torch.where(neg, v * slope, v)
                s = neg.to(torch.uint8)
                if clamp >= 0:
                    clamped = (v > clamp) | (v < -clamp)
                    v = v.clamp(-clamp, clamp)
                    s = s | (clamped.to(torch.uint8) * 2)
                signs = s if write else torch.empty(0, dtype=torch.uint8)
            y = upfirdn2d(v, fd, down=down, flip_filter=flip, impl="ref")
            return y.contiguous(), signs


@pytest.mark.parametrize("case", CASES[::3], ids=[c["key"] for c in CASES[::3]])
def test_fused_autograd_wiring_matches_reference(case, nvlabs_arrays):
    inp = _case_inputs(case, nvlabs_arrays)
    inp["x"], inp["dy"] = inp["x"].double(), inp["dy"].double()
    if inp["b"] is not None:
        inp["b"] = inp["b"].double()
    ref = _run(inp, "ref", second_order=True)
    with fused.extension_override(_StandInKernels):
        out = _run(inp, "fused", second_order=True)
    assert set(out) == set(ref)
    for name in out:
        _close(out[name], ref[name], 1e-10, f"{case['key']} {name}")


def test_fused_writes_signs_only_when_a_gradient_is_needed():
    seen = []

    class Spy(_StandInKernels):
        @staticmethod
        def filtered_lrelu(*args):
            seen.append(args[-1])
            return _StandInKernels.filtered_lrelu(*args)

    x = torch.randn(1, 2, 5, 5)
    with fused.extension_override(Spy):
        filtered_lrelu(x, impl="fused")
        filtered_lrelu(x.requires_grad_(True), impl="fused").sum().backward()
    assert seen == [False, True, False]  # forward without grad, forward with grad, backward (reads)


# --------------------------------------------------------------------------------------------------------------
# Kernel maths through the host emulation of the CUDA code (slow: compiles a C++ extension, about 1-3 minutes)


@pytest.fixture(scope="module")
def emulation():
    cache = os.environ.get("SGTRAIN_TEST_OPS_CACHE") or str(Path.home() / ".cache" / "sgtrain" / "ops-test")
    old = os.environ.get("SGTRAIN_OPS_CACHE")
    os.environ["SGTRAIN_OPS_CACHE"] = cache
    try:
        return build.load_emulation()
    except build.BuildError as err:
        pytest.fail(f"the host emulation of the kernels does not build: {err}")
    finally:
        if old is None:
            os.environ.pop("SGTRAIN_OPS_CACHE", None)
        else:
            os.environ["SGTRAIN_OPS_CACHE"] = old


def _random_case(seed: int, dtype: torch.dtype, max_size: int = 12) -> dict:
    rng = np.random.RandomState(seed)
    while True:
        up, down = int(rng.choice([1, 2, 4])), int(rng.choice([1, 2, 4]))

        def filt():
            kind = rng.randint(3)
            if kind == 0:
                return None
            if kind == 1:
                return torch.tensor(rng.rand(rng.randint(1, 13)) + 0.1, dtype=torch.float32)
            return torch.tensor(rng.randn(rng.randint(1, 8), rng.randint(1, 8)), dtype=torch.float32)

        fu, fd = filt(), filt()
        pad = [int(p) for p in rng.randint(-3, 9, 4)]
        h, w = int(rng.randint(2, max_size)), int(rng.randint(2, max_size))
        oh, ow = filtered_lrelu_output_size((h, w), fu, fd, up, down, pad)
        fu_w, fu_h = (1, 1) if fu is None else (fu.shape[-1], fu.shape[0])
        fd_w, fd_h = (1, 1) if fd is None else (fd.shape[-1], fd.shape[0])
        fits = w * up + pad[0] + pad[1] - fu_w + 1 >= fd_w and h * up + pad[2] + pad[3] - fu_h + 1 >= fd_h
        if oh >= 1 and ow >= 1 and fits:
            break
    kw = dict(up=up, down=down, padding=pad, gain=float(rng.uniform(0.5, 2)),
              slope=float(rng.choice([0.2, 0, 1, 0.5])), clamp=None if rng.rand() < 0.5 else float(rng.uniform(0.3, 2)),
              flip_filter=bool(rng.rand() < 0.5))
    x = torch.tensor(rng.randn(2, 3, h, w)).to(dtype)
    b = torch.tensor(rng.randn(3)).to(dtype)
    dy = torch.tensor(rng.randn(2, 3, oh, ow)).to(dtype)
    return dict(x=x, b=b, fu=fu, fd=fd, dy=dy, kw=kw)


def _check_against_reference(inp: dict, device: str = "cpu", second_order: bool = True) -> None:
    dtype = inp["x"].dtype
    ref_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    move = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in inp.items()}
    ref_in = {k: (v.to(ref_dtype) if isinstance(v, torch.Tensor) and k in ("x", "b", "dy") else v)
              for k, v in move.items()}
    ref = _run(ref_in, "ref", second_order=second_order)
    out = _run(move, "fused", second_order=second_order)
    assert out["y"].dtype == dtype
    tol = _tol(dtype)
    for name in out:
        _close(out[name], ref[name], tol if name == "y" else 2 * tol, f"{inp['kw']} {dtype} {name}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(30))
def test_emulated_kernel_matches_reference(emulation, seed):
    dtype = [torch.float64, torch.float64, torch.float32, torch.float16, torch.bfloat16][seed % 5]
    inp = _random_case(seed, dtype)
    with fused.extension_override(emulation):
        _check_against_reference(inp, second_order=dtype in (torch.float64, torch.float32))


@pytest.mark.slow
def test_emulated_kernel_matches_nvlabs_cases(emulation, nvlabs_arrays):
    with fused.extension_override(emulation):
        for case in CASES:
            inp = _case_inputs(case, nvlabs_arrays)
            out = _run(inp, "fused")
            for name in ("y", "dx", "db"):
                if name in out:
                    _close(out[name], torch.from_numpy(nvlabs_arrays[f"{case['key']}/{name}"]),
                           _tol(inp["x"].dtype), f"{case['key']} {name}")


@pytest.mark.slow
def test_emulated_kernel_stylegan3_layer_shapes(emulation):
    """The shapes StyleGAN3 layers use (up 2/4, down 2, 12/24-tap Kaiser filters, radial 12x12, tiles > 1)."""
    from sgtrain.models.stylegan3 import design_lowpass_filter

    g = torch.Generator().manual_seed(0)
    fu2 = design_lowpass_filter(12, 4.0, 3.7, 64)
    fu4 = design_lowpass_filter(24, 4.0, 3.7, 64)
    fdr = design_lowpass_filter(12, 5.0, 4.0, 64, radial=True)
    for fu, fd, up, size, pad in [(fu2, fu2, 2, 36, [9, 8, 9, 8]), (fu4, fu2, 4, 36, [-6, -9, -6, -9]),
                                  (fu2, fdr, 2, 52, [11, 10, 11, 10])]:
        x = torch.randn(1, 2, size, size, generator=g, dtype=torch.float64)
        b = torch.randn(2, generator=g, dtype=torch.float64)
        oh, ow = filtered_lrelu_output_size((size, size), fu, fd, up, 2, pad)
        dy = torch.randn(1, 2, oh, ow, generator=g, dtype=torch.float64)
        inp = dict(x=x, b=b, fu=fu, fd=fd, dy=dy, kw=dict(up=up, down=2, padding=pad, clamp=0.8))
        with fused.extension_override(emulation):
            _check_against_reference(inp, second_order=False)


@pytest.mark.slow
def test_fused_kernel_fits_agrees_with_the_kernels_own_check(emulation):
    """fused_kernel_fits (Python) and flrelu_choose_tiles (C++) draw the same line."""
    rng = np.random.RandomState(7)
    seen = set()
    for _ in range(60):
        up = int(rng.choice([1, 2, 4]))
        fu = torch.ones(int(rng.randint(1, 70))) if rng.rand() < 0.5 else torch.ones(*rng.randint(1, 45, 2))
        fd = torch.ones(int(rng.randint(1, 70))) if rng.rand() < 0.5 else torch.ones(*rng.randint(1, 45, 2))
        dtype = torch.float64 if rng.rand() < 0.5 else torch.float32
        x = torch.zeros(1, 1, 48, 48, dtype=dtype)
        fits = fused_kernel_fits(dtype, fu, fd, up)
        seen.add(fits)
        args = (x, fu, fd, torch.zeros(1, dtype=dtype), torch.empty(0, dtype=torch.uint8), up, 1, 40, 40, 40, 40,
                0, 0, 1.0, 0.2, -1.0, False, False)
        if fits:
            emulation.filtered_lrelu(*args)
        else:
            with pytest.raises(RuntimeError, match="too large"):
                emulation.filtered_lrelu(*args)
    assert seen == {True, False}


@pytest.mark.slow
def test_emulated_kernel_gradcheck(emulation):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, generator=g, requires_grad=True)
    fu = torch.tensor([0.2, 0.5, 0.3, 0.1], dtype=torch.float32)
    fd = torch.tensor([[0.1, 0.3, 0.2], [0.25, 0.05, 0.1]], dtype=torch.float32)
    with fused.extension_override(emulation):

        def fn(x_, b_):
            return filtered_lrelu(x_, fu, fd, b_, up=2, down=2, padding=[2, 1, 3, 0], gain=1.3, slope=0.3, clamp=1.1,
                                  impl="fused")

        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))


# --------------------------------------------------------------------------------------------------------------
# The CUDA source compiles with nvcc for sm_90 (no GPU needed; slow: about a minute per file)


def _torch_cuda_include_args(tmp_path: Path) -> list[str]:
    from torch.utils.cpp_extension import include_paths

    args = [f"-I{p}" for p in include_paths()]
    if not any((Path(p) / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").is_file() for p in include_paths()):
        # A CPU-only torch wheel ships the c10/cuda headers without this generated one; its content in a CUDA build:
        stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
        stub.mkdir(parents=True)
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        args.insert(0, f"-I{tmp_path / 'stub'}")
    return args + [f"-I{sysconfig.get_paths()['include']}", f"-I{build.CSRC_DIR}"]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["kernels.cu", "ops.cpp"])
def test_cuda_sources_compile_for_sm90(tmp_path, source):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    cmd = [nvcc, "-arch=sm_90", "-std=c++20", "-O3", "--expt-relaxed-constexpr", "-DTORCH_EXTENSION_NAME=sgt_check",
           "-c", str(build.CSRC_DIR / source), "-o", str(tmp_path / "out.o"), *_torch_cuda_include_args(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nvcc failed on {source}:\n{proc.stderr[-4000:]}"
    assert (tmp_path / "out.o").stat().st_size > 0
    if source == "kernels.cu":  # the kernel's (mangled) name is in the object's symbols and embedded sm_90 code
        assert b"filtered_lrelu_kernel" in (tmp_path / "out.o").read_bytes()


# --------------------------------------------------------------------------------------------------------------
# GPU: the real CUDA kernel against the reference


gpu = pytest.mark.gpu


@gpu
@pytest.mark.parametrize("seed", range(40))
def test_gpu_matches_reference(seed):
    dtype = [torch.float64, torch.float32, torch.float16, torch.bfloat16][seed % 4]
    _check_against_reference(_random_case(1000 + seed, dtype, max_size=40), device="cuda",
                             second_order=dtype in (torch.float64, torch.float32))


@gpu
def test_gpu_nvlabs_cases():
    with np.load(FIX / "filtered_lrelu_cases.npz") as d:
        arrays = {k: d[k] for k in d.files}
    for case in CASES:
        inp = _case_inputs(case, arrays)
        inp = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in inp.items()}
        out = _run(inp, "fused")
        for name in ("y", "dx", "db"):
            if name in out:
                _close(out[name], torch.from_numpy(arrays[f"{case['key']}/{name}"]), _tol(inp["x"].dtype),
                       f"{case['key']} {name}")


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_gpu_stylegan3_sizes(dtype):
    """Full-size StyleGAN3 layers (148 px, 256 channels, up 2 / 4) with the Kaiser and radial filters."""
    from sgtrain.models.stylegan3 import design_lowpass_filter

    g = torch.Generator(device="cuda").manual_seed(0)
    fu2, fu4 = design_lowpass_filter(12, 32.0, 20.0, 256), design_lowpass_filter(24, 32.0, 20.0, 512)
    fdr = design_lowpass_filter(12, 40.0, 20.0, 256, radial=True)
    for fu, fd, up, size, pad in [(fu2, fu2, 2, 148, [9, 8, 9, 8]), (fu4, fu2, 4, 84, [-6, -9, -6, -9]),
                                  (fu2, fdr, 2, 148, [11, 10, 11, 10])]:
        x = torch.randn(4, 256, size, size, generator=g, device="cuda").to(dtype)
        b = torch.randn(256, generator=g, device="cuda").to(dtype)
        oh, ow = filtered_lrelu_output_size((size, size), fu, fd, up, 2, pad)
        dy = torch.randn(4, 256, oh, ow, generator=g, device="cuda").to(dtype)
        inp = dict(x=x, b=b, fu=fu.cuda(), fd=fd.cuda(), dy=dy, kw=dict(up=up, down=2, padding=pad, clamp=256.0))
        _check_against_reference(inp, device="cuda", second_order=False)


@gpu
def test_gpu_stylegan3_generator_fused_equals_reference():
    from sgtrain.io import load_network

    nets = load_network(FIX / "r_uncond32.pkl", device="cuda")
    G = nets["G_ema"]
    z = torch.randn(4, G.z_dim, device="cuda")
    c = torch.zeros(4, 0, device="cuda")
    os.environ["SGTRAIN_OPS"] = "ref"
    try:
        ref = G(z, c, force_fp32=True)
    finally:
        os.environ.pop("SGTRAIN_OPS")
    assert _backend.use_fused("filtered_lrelu", z), build.failure_reason()
    out = G(z, c, force_fp32=True)
    _close(out, ref, 1e-4, "G image fused vs ref")
    out16 = G(z, c)  # the num_fp16_res highest layers in float16
    assert torch.isfinite(out16).all() and float((out16 - ref).abs().max()) < 0.05
