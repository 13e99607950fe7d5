"""Fused ops: the JIT loader's policy (CPU), the autograd wiring of sgtrain.ops.fused (CPU, with stand-in kernels),
the kernels' maths (slow: host emulation of the CUDA code), and fused vs reference on a GPU (gpu marker).

The oracle everywhere is the reference path (plain PyTorch, differentiated by autograd).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import pytest
import torch

from sgtrain.ops import _backend, build, fused
from sgtrain.ops.bias_act import activation_funcs, bias_act
from sgtrain.ops.upfirdn2d import setup_filter, upfirdn2d

ACTS = sorted(activation_funcs)


@pytest.fixture(autouse=True)
def _isolated_build_state(tmp_path, monkeypatch):
    monkeypatch.setenv("SGTRAIN_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SGTRAIN_OPS", raising=False)
    build.reset()
    yield
    build.reset()


# --------------------------------------------------------------------------------------------------------------
# Loader policy (CPU)


def _fake_tensor_on_cuda(monkeypatch):
    monkeypatch.setattr(_backend, "_on_cuda", lambda x: True)
    return torch.zeros(2, 3)


def test_mode_ref_never_builds(monkeypatch):
    x = _fake_tensor_on_cuda(monkeypatch)
    monkeypatch.setenv("SGTRAIN_OPS", "ref")

    def boom(device=None):
        raise AssertionError("SGTRAIN_OPS=ref must not build")

    monkeypatch.setattr(build, "load_extension", boom)
    assert _backend.use_fused("bias_act", x) is False
    assert _backend.use_fused("upfirdn2d", x) is False


def test_auto_uses_fused_when_the_extension_loads(monkeypatch):
    x = _fake_tensor_on_cuda(monkeypatch)
    calls = []
    monkeypatch.setattr(build, "load_extension", lambda device=None: calls.append(device) or types.ModuleType("m"))
    assert _backend.use_fused("bias_act", x) is True
    assert _backend.use_fused("upfirdn2d", x) is True
    assert _backend.use_fused("filtered_lrelu", x) is True
    assert _backend.use_fused("conv2d_resample", x) is False  # no fused kernel of its own (built on upfirdn2d)
    assert len(calls) == 1  # loaded once, then cached


def test_cpu_tensors_always_take_the_reference_path(monkeypatch):
    monkeypatch.setenv("SGTRAIN_OPS", "fused")
    monkeypatch.setattr(build, "load_extension", lambda device=None: pytest.fail("must not build for CPU tensors"))
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    assert _backend.use_fused("bias_act", x) is False
    y = bias_act(x, b, act="lrelu", clamp=0.5)  # impl='auto'
    expected = (torch.nn.functional.leaky_relu(x + b[:, None, None], 0.2) * math.sqrt(2)).clamp(-0.5, 0.5)
    torch.testing.assert_close(y, expected)
    f = setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(upfirdn2d(x, f, up=2, padding=2), upfirdn2d(x, f, up=2, padding=2, impl="ref"))


def test_unknown_mode_is_an_error(monkeypatch):
    x = _fake_tensor_on_cuda(monkeypatch)
    monkeypatch.setenv("SGTRAIN_OPS", "fast")
    with pytest.raises(ValueError, match="SGTRAIN_OPS"):
        _backend.use_fused("bias_act", x)


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    x = _fake_tensor_on_cuda(monkeypatch)
    attempts = []

    def failing(device=None):
        attempts.append(1)
        raise build.BuildError("nvcc not found (simulated)")

    monkeypatch.setattr(build, "load_extension", failing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [_backend.use_fused("bias_act", x) for _ in range(3)] + [_backend.use_fused("upfirdn2d", x)]
    assert results == [False] * 4
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1 and "nvcc not found (simulated)" in msgs[0] and "reference" in msgs[0]
    assert len(attempts) == 1  # the failure is remembered, not retried at every call
    assert "nvcc not found" in build.failure_reason()


def test_forced_fused_turns_a_failed_build_into_an_error(monkeypatch):
    x = _fake_tensor_on_cuda(monkeypatch)
    monkeypatch.setenv("SGTRAIN_OPS", "fused")
    monkeypatch.setattr(build, "load_extension", lambda device=None: (_ for _ in ()).throw(build.BuildError("bad")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="SGTRAIN_OPS=fused.*bad"):
            _backend.use_fused("bias_act", x)


def test_load_extension_without_cuda_says_why():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(build.BuildError, match="no CUDA device"):
        build.load_extension()


def _copy_headers(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in build.HEADERS:
        shutil.copy(build.CSRC_DIR / name, dst / name)


def test_failed_compile_reports_the_compiler_error_and_releases_the_lock(tmp_path, monkeypatch):
    if shutil.which("ninja") is None and not _has_ninja_module():
        pytest.skip("ninja is not installed")
    src = tmp_path / "src"
    _copy_headers(src)
    (src / "bogus.cpp").write_text('#error "deliberately broken source for the test"\n')
    monkeypatch.setattr(
        build, "load_extension", lambda device=None: build._build("emu", ("bogus.cpp",), "cpu", False, src)
    )
    x = _fake_tensor_on_cuda(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _backend.use_fused("bias_act", x) is False
        assert _backend.use_fused("bias_act", x) is False
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1 and "deliberately broken" in msgs[0]
    leftovers = list((tmp_path / "cache").rglob(build.LOCK_NAME))
    assert leftovers == []


def _has_ninja_module() -> bool:
    try:
        from torch.utils.cpp_extension import is_ninja_available

        return is_ninja_available()
    except Exception:
        return False


def test_cache_dir_depends_on_sources_torch_and_arch(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _copy_headers(src)
    for name in build.CUDA_SOURCES:
        shutil.copy(build.CSRC_DIR / name, src / name)
    h1 = build.source_hash(build.HEADERS + build.CUDA_SOURCES, src)
    (src / "kernels.cu").write_text((src / "kernels.cu").read_text() + "\n// changed\n")
    h2 = build.source_hash(build.HEADERS + build.CUDA_SOURCES, src)
    assert h1 != h2
    d1, d2 = build.build_dir_for("cuda", h1, "sm80"), build.build_dir_for("cuda", h1, "sm90")
    assert d1 != d2 and d1.parent == tmp_path / "cache"
    assert torch.__version__.split("+")[0] in d1.name
    (src / "ops.cpp").unlink()
    with pytest.raises(build.BuildError, match="missing"):
        build.source_hash(build.HEADERS + build.CUDA_SOURCES, src)


# --------------------------------------------------------------------------------------------------------------
# Stale locks (CPU)


def _lock_json(pid: int, host: str) -> str:
    return json.dumps({"pid": pid, "host": host, "time": time.time()})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_of_a_dead_process_is_removed_with_torchs_baton(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / build.LOCK_NAME).write_text(_lock_json(_dead_pid(), socket.gethostname()))
    (d / build.TORCH_BATON_NAME).write_text("")
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match="stale"):
        with build.build_lock(d, timeout=5):
            assert not (d / build.TORCH_BATON_NAME).exists()
            assert str(os.getpid()) in (d / build.LOCK_NAME).read_text()
    assert time.monotonic() - t0 < 3
    assert not (d / build.LOCK_NAME).exists()


def test_live_lock_times_out_instead_of_hanging(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    lock = d / build.LOCK_NAME
    lock.write_text(_lock_json(os.getpid(), socket.gethostname()))
    t0 = time.monotonic()
    with pytest.raises(build.BuildError, match="timed out.*delete that file"):
        with build.build_lock(d, timeout=0.5, poll=0.05):
            pass
    assert time.monotonic() - t0 < 3
    assert lock.exists()  # a live owner's lock is left alone


def test_old_or_unreadable_locks_are_stale(tmp_path, monkeypatch):
    lock = tmp_path / build.LOCK_NAME
    lock.write_text(_lock_json(os.getpid(), "elsewhere"))
    assert build.lock_is_stale(lock)[0] is False  # other host, fresh: cannot tell, so wait
    old = time.time() - 7200
    os.utime(lock, (old, old))
    assert build.lock_is_stale(lock, stale_after=1800)[0] is True
    lock.write_text("")  # killed between creating and writing the file
    assert build.lock_is_stale(lock)[0] is False
    os.utime(lock, (old, old))
    assert build.lock_is_stale(lock)[0] is True


def test_lock_left_by_a_killed_builder_does_not_block_the_next_one(tmp_path):
    d = tmp_path / "b"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sgtrain.ops.build import build_lock\n"
        "with build_lock(Path(sys.argv[1])):\n"
        "    (Path(sys.argv[1]) / 'lock').write_text('')\n"  # what torch's builder would hold
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (d / build.LOCK_NAME).exists() and (d / build.TORCH_BATON_NAME).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with build.build_lock(d, timeout=10):
            assert not (d / build.TORCH_BATON_NAME).exists()


# --------------------------------------------------------------------------------------------------------------
# Comparison helpers shared by the stand-in, emulation and GPU tests


TOL = {  # (values rtol, atol), (gradients rtol, atol)
    torch.float64: ((1e-10, 1e-10), (1e-8, 1e-8)),
    torch.float32: ((1e-5, 1e-5), (1e-4, 1e-4)),
    torch.float16: ((1e-2, 1e-2), (2e-2, 2e-2)),
    torch.bfloat16: ((2e-2, 2e-2), (6e-2, 6e-2)),
}


def _close(a: torch.Tensor, b: torch.Tensor, tol: tuple[float, float], what: str) -> None:
    rtol, atol = tol
    a, b = a.double(), b.double()
    scale = max(1.0, b.abs().max().item())
    err = (a - b).abs().max().item()
    assert err <= atol * scale + rtol * b.abs().max().item(), f"{what}: max abs error {err:.3g}"


def _check_bias_act(device, dtype, act, clamp, channels_last, seed, ndim=4):
    g = torch.Generator().manual_seed(seed)
    shape = [int(s) for s in torch.randint(1, 6, (ndim,), generator=g)]
    shape[1] = max(shape[1], 2)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    b0 = torch.randn(shape[1], generator=g, dtype=torch.float64)
    gain = float(torch.rand(1, generator=g)) * 2 + 0.1 if seed % 2 else None
    alpha = 0.1 + 0.3 * float(torch.rand(1, generator=g)) if act == "lrelu" else None
    w1 = torch.randn(shape, generator=g, dtype=torch.float64)
    kw = dict(dim=1, act=act, alpha=alpha, gain=gain, clamp=clamp)
    if clamp is not None:
        # Keep outputs away from the clamp boundary, where rounding the output to float16/bfloat16 decides whether
        # the gradient passes (both implementations are right; the test would compare rounding luck).
        for _ in range(50):
            y64 = bias_act(x0, b0, impl="ref", **{**kw, "clamp": None})
            near = (y64.abs() - clamp).abs() < 0.03 * clamp
            if not near.any():
                break
            x0[near] = torch.randn(int(near.sum()), generator=g, dtype=torch.float64) * 2

    def run(impl, work_dtype):
        x = x0.to(device=device, dtype=dtype).to(work_dtype).requires_grad_(True)
        b = b0.to(device=device, dtype=dtype).to(work_dtype).requires_grad_(True)
        xi = x.to(memory_format=torch.channels_last) if channels_last and ndim == 4 else x
        y = bias_act(xi, b, impl=impl, **kw)
        gx, gb = torch.autograd.grad((y * w1.to(y)).sum(), [x, b], create_graph=True)
        loss2 = (gx.square() * 0.5).sum() + gb.square().sum()
        if loss2.requires_grad:
            ggx, ggb = torch.autograd.grad(loss2, [x, b], allow_unused=True)
        else:  # linear activation: the gradient does not depend on x or b
            ggx = ggb = None
        zero = torch.zeros_like
        return y, gx, gb, ggx if ggx is not None else zero(x), ggb if ggb is not None else zero(b)

    ref_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    ref = run("ref", ref_dtype)
    out = run("fused", dtype)
    vt, gt = TOL[dtype]
    assert out[0].dtype == dtype and out[0].shape == ref[0].shape
    if channels_last and ndim == 4 and shape[1] > 1:
        assert out[0].stride(1) == 1
    for name, a, r, t in zip(["y", "dx", "db", "ddx", "ddb"], out, ref, [vt, gt, gt, gt, gt]):
        _close(a, r, t, f"{act} clamp={clamp} {dtype} {name}")


def _random_upfirdn_case(g: torch.Generator):
    up = (int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g)))
    down = (int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g)))
    if torch.rand(1, generator=g) < 0.5:  # the isotropic cases StyleGAN uses most
        up, down = (up[0], up[0]), (down[0], down[0])
    taps = int(torch.randint(1, 9, (1,), generator=g))
    kind = int(torch.randint(0, 3, (1,), generator=g))
    if kind == 0:
        f = setup_filter(torch.rand(taps, generator=g) + 0.1, separable=True)
    elif kind == 1:
        f = setup_filter(torch.rand(taps, generator=g) + 0.1, separable=False)
    else:
        fh = int(torch.randint(1, 7, (1,), generator=g))
        f = torch.randn(fh, taps, generator=g)
    pad = [int(p) for p in torch.randint(-2, 5, (4,), generator=g)]
    h, w = (int(s) for s in torch.randint(3, 10, (2,), generator=g))
    return up, down, f, pad, h, w, bool(torch.rand(1, generator=g) < 0.5), float(torch.rand(1, generator=g) + 0.5)


def _check_upfirdn2d(device, dtype, seed, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    for _ in range(50):
        up, down, f, pad, h, w, flip, gain = _random_upfirdn_case(g)
        fh, fw = (f.shape[0], f.shape[-1])
        if w * up[0] + pad[0] + pad[1] >= fw + down[0] and h * up[1] + pad[2] + pad[3] >= fh + down[1]:
            break
    n, c = int(torch.randint(1, 3, (1,), generator=g)), int(torch.randint(2, 5, (1,), generator=g))
    x0 = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    kw = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)

    def run(impl, work_dtype):
        x = x0.to(device=device, dtype=dtype).to(work_dtype).requires_grad_(True)
        xi = x.to(memory_format=torch.channels_last) if channels_last else x
        y = upfirdn2d(xi, f.to(device), impl=impl, **kw)
        wy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        (gx,) = torch.autograd.grad((y * wy.to(y)).sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad((gx.square() * 0.5).sum() + (gx * x).sum(), x)
        return y, gx, ggx

    ref_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    ref = run("ref", ref_dtype)
    out = run("fused", dtype)
    vt, gt = TOL[dtype]
    if dtype == torch.float64:
        # The filter is float32 by contract and the reference scales it by gain in float32: ~1e-7 relative.
        vt = gt = (1e-6, 1e-6)
    for name, a, r, t in zip(["y", "dx", "ddx"], out, ref, [vt, gt, gt]):
        assert a.shape == r.shape, f"{name}: shape {tuple(a.shape)} vs reference {tuple(r.shape)} for {kw}"
        _close(a, r, t, f"upfirdn2d {kw} f{tuple(f.shape)} {dtype} {name}")


# --------------------------------------------------------------------------------------------------------------
# Autograd wiring of fused.py with stand-in kernels written in PyTorch (CPU, fast)


class _StandInKernels:
    """Implements the kernel entry points' contract (csrc/ops_host.h) with PyTorch ops: the autograd structure in
    fused.py (which tensors are saved, transposed padding, second-order terms) is then checked against the
    reference on CPU without a compiler. The kernels' own arithmetic is checked by the emulation tests."""

    backend = "stand-in"

    @staticmethod
    def bias_act(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp):
        with torch.no_grad():
            shape = [1] * x.ndim
            if b.numel():
                shape[dim] = -1
            bb = b.reshape(shape) if b.numel() else 0
            name = {v.cuda_idx: k for k, v in activation_funcs.items()}[act]
            if grad == 0:
                y = activation_funcs[name].func(x + bb, alpha) * gain
                return y.clamp(-clamp, clamp) if clamp >= 0 else y
            yy = yref / gain if yref.numel() else None
            z = xref + bb if xref.numel() else None
            d1 = {
                "linear": lambda: torch.ones_like(x),
                "relu": lambda: (yy > 0).to(x),
                "lrelu": lambda: torch.where(yy > 0, 1.0, alpha).to(x),
                "tanh": lambda: 1 - yy**2,
                "sigmoid": lambda: yy * (1 - yy),
                "elu": lambda: torch.where(yy >= 0, 1.0, yy + 1),
                "selu": lambda: torch.where(yy >= 0, 1.0507009873554805, yy + 1.0507009873554805 * 1.6732632423543772),
                "softplus": lambda: 1 - torch.exp(-yy),
                "swish": lambda: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))),
            }
            d2 = {
                "tanh": lambda: -2 * yy * (1 - yy**2),
                "sigmoid": lambda: yy * (1 - yy) * (1 - 2 * yy),
                "elu": lambda: torch.where(yy >= 0, 0.0, yy + 1),
                "selu": lambda: torch.where(yy >= 0, 0.0, yy + 1.0507009873554805 * 1.6732632423543772),
                "softplus": lambda: torch.exp(-yy) * (1 - torch.exp(-yy)),
                "swish": lambda: (lambda s: s * (1 - s) * (2 + z * (1 - 2 * s)))(torch.sigmoid(z)),
            }
            out = x * (d1[name]() if grad == 1 else d2[name]()) * gain
            if grad == 2:
                out = out * dy
            if clamp >= 0:
                yc = yref if name != "swish" else activation_funcs["swish"].func(z, 0) * gain
                out = torch.where((yc > -clamp) & (yc < clamp), out, torch.zeros_like(out))
            return out.contiguous(memory_format=torch.channels_last) if x.ndim == 4 and x.stride(1) == 1 else out

    @staticmethod
    def upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
        with torch.no_grad():
            return upfirdn2d(
                x,
                f,
                up=(upx, upy),
                down=(downx, downy),
                padding=(padx0, padx1, pady0, pady1),
                flip_filter=flip,
                gain=gain,
                impl="ref",
            )


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.7])
def test_fused_bias_act_autograd_matches_reference(act, clamp):
    with fused.extension_override(_StandInKernels):
        for seed, cl in [(1, False), (2, True)]:
            _check_bias_act("cpu", torch.float64, act, clamp, cl, seed)


@pytest.mark.parametrize("seed", range(12))
def test_fused_upfirdn2d_autograd_matches_reference(seed):
    with fused.extension_override(_StandInKernels):
        _check_upfirdn2d("cpu", torch.float64, seed, channels_last=seed % 3 == 0)


def test_fused_identity_bias_act_returns_input():
    x = torch.randn(2, 3)
    with fused.extension_override(_StandInKernels):
        assert fused.bias_act_fused(x, None, 1, "linear", 0.0, 1.0, None) is x


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


@pytest.mark.slow
@pytest.mark.parametrize("act", ACTS)
def test_emulated_kernels_bias_act(emulation, act):
    with fused.extension_override(emulation):
        for i, (dtype, clamp, cl) in enumerate(
            [
                (torch.float64, None, False),
                (torch.float64, 0.6, True),
                (torch.float32, None, True),
                (torch.float32, 0.8, False),
                (torch.float16, None, False),
                (torch.float16, 0.8, True),  # 0.8 is not a float16: the clamped outputs hold 0.7998 (found on a GPU)
                (torch.bfloat16, 0.8, True),
            ]
        ):
            _check_bias_act("cpu", dtype, act, clamp, cl, seed=10 * i + 3)
        _check_bias_act("cpu", torch.float64, act, 1.0, False, seed=7, ndim=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_emulated_kernels_upfirdn2d(emulation, seed):
    dtype = [torch.float64, torch.float32, torch.float16, torch.bfloat16][seed % 4] if seed >= 24 else torch.float64
    with fused.extension_override(emulation):
        _check_upfirdn2d("cpu", dtype, 100 + seed, channels_last=seed % 2 == 1)


@pytest.mark.slow
def test_emulated_kernels_gradcheck(emulation):
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double().float()
    with fused.extension_override(emulation):
        for act in ("tanh", "swish", "softplus"):

            def fn(a, c, act=act):
                return fused.bias_act_fused(a, c, 1, act, 0.0, 1.3, None)

            assert torch.autograd.gradcheck(fn, (x, b))
            assert torch.autograd.gradgradcheck(fn, (x, b))

        def fn2(a):
            return fused.upfirdn2d_fused(a, f, (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0)

        assert torch.autograd.gradcheck(fn2, (x,))
        assert torch.autograd.gradgradcheck(fn2, (x,))


# --------------------------------------------------------------------------------------------------------------
# GPU: the real CUDA kernels against the reference


@pytest.mark.gpu
def test_gpu_extension_builds_and_is_used():
    x = torch.randn(4, 8, device="cuda")
    assert _backend.use_fused("bias_act", x), build.failure_reason()
    assert build.get_extension(x.device).backend == "cuda"
    t0 = time.time()
    build.reset()
    build.get_extension(x.device)  # second load comes from the cache: no compiler
    assert time.time() - t0 < 30


@pytest.mark.gpu
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_gpu_bias_act_matches_reference(act, dtype):
    for i, (clamp, cl) in enumerate([(None, False), (0.8, False), (None, True), (0.5, True)]):
        _check_bias_act("cuda", dtype, act, clamp, cl, seed=31 * i + 5)
    _check_bias_act("cuda", dtype, act, 1.0, False, seed=3, ndim=2)


@pytest.mark.gpu
@pytest.mark.parametrize("seed", range(60))
def test_gpu_upfirdn2d_matches_reference(seed):
    dtype = [torch.float64, torch.float32, torch.float16, torch.bfloat16][seed % 4]
    _check_upfirdn2d("cuda", dtype, 1000 + seed, channels_last=(seed // 4) % 2 == 1)


@pytest.mark.gpu
def test_gpu_large_images_and_stylegan_shapes():
    f = setup_filter([1, 3, 3, 1], device="cuda")
    for res, up, down in [(256, 2, 1), (512, 1, 2), (64, 1, 1), (1024, 2, 1)]:
        x = torch.randn(2, 16, res // 2 if up == 2 else res, res // 2 if up == 2 else res, device="cuda")
        pad = (2, 1, 2, 1) if up == 2 else (1, 1, 1, 1)
        ref = upfirdn2d(x, f, up=up, down=down, padding=pad, gain=up * up, impl="ref")
        out = upfirdn2d(x, f, up=up, down=down, padding=pad, gain=up * up, impl="fused")
        _close(out, ref, TOL[torch.float32][0], f"res {res}")
    x = torch.randn(8, 512, 32, 32, device="cuda", dtype=torch.float16)
    b = torch.randn(512, device="cuda", dtype=torch.float16)
    _close(
        bias_act(x, b, act="lrelu", clamp=256, impl="fused"),
        bias_act(x.float(), b.float(), act="lrelu", clamp=256, impl="ref"),
        TOL[torch.float16][0],
        "fp16 lrelu",
    )
    assert math.isfinite(float(bias_act(x, b, act="lrelu", impl="fused").float().abs().max()))


# --------------------------------------------------------------------------------------------------------------
# sgtrain-ops


def test_cli_info_and_build_report(capsys, tmp_path):
    from sgtrain.cli.ops import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "cache") in out and "source sha256" in out
    if not torch.cuda.is_available():
        assert main(["build"]) == 1
        assert "no CUDA device" in capsys.readouterr().err
