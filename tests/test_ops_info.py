"""`sgtrain-ops info`: which path each op takes and why (sgtrain.ops.build.op_paths), on CPU with a faked GPU."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest
import torch

from sgtrain.ops import build

FUSED = ("bias_act", "upfirdn2d", "filtered_lrelu")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SGTRAIN_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SGTRAIN_OPS", raising=False)
    build.reset()
    yield
    build.reset()


def _fake_gpu(monkeypatch):
    """torch sees one sm90 GPU (nothing runs on it); returns the build directory of the extension for it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    return build.build_dir_for("cuda", build.source_hash(), "sm90")


@pytest.fixture
def fake_gpu(monkeypatch):
    """A faked sm90 GPU with a complete toolchain."""
    monkeypatch.setattr(build, "_toolchain_problem", lambda: None)
    return _fake_gpu(monkeypatch)


def _fused_paths(**kw) -> set[tuple[str, str]]:
    paths = build.op_paths(**kw)
    assert set(paths) == {*FUSED, "conv2d_gradfix"}
    assert paths["conv2d_gradfix"][0] == "custom autograd"
    return {(paths[op][0], paths[op][1].split("; filters too large")[0]) for op in FUSED}


def test_no_cuda_cpu_build_and_hidden_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    [(path, why)] = _fused_paths()
    assert path == "reference" and "CPU-only build" in why
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    [(path, why)] = _fused_paths()
    assert path == "reference" and "no CUDA device visible" in why and "CUDA_VISIBLE_DEVICES=''" in why


def test_forced_by_environment(monkeypatch, capsys):
    from sgtrain.cli.ops import main

    monkeypatch.setenv("SGTRAIN_OPS", "ref")
    [(path, why)] = _fused_paths()
    assert path == "reference" and "SGTRAIN_OPS=ref" in why
    monkeypatch.setenv("SGTRAIN_OPS", "fast")
    [(path, why)] = _fused_paths()
    assert path == "error" and "SGTRAIN_OPS='fast'" in why
    assert main(["info"]) == 1
    assert "SGTRAIN_OPS='fast' is not one of" in capsys.readouterr().out


def test_gpu_not_built_cached_and_failed(fake_gpu, monkeypatch):
    [(path, why)] = _fused_paths()
    assert path == "fused" and "not built yet for sm90" in why and "sgtrain-ops build" in why

    fake_gpu.mkdir(parents=True)
    (fake_gpu / build.FAILURE_NAME).write_text(json.dumps({"reason": "nvcc fatal: bad arch", "host": "node7",
                                                           "time": 0}))  # fmt: skip
    [(path, why)] = _fused_paths()
    assert path == "reference" and "last build failed" in why and "node7" in why and "nvcc fatal" in why

    (fake_gpu / build.MARKER_NAME).write_text("{}")
    [(path, why)] = _fused_paths()
    assert path == "fused" and "built for sm90 in the cache" in why

    monkeypatch.setenv("SGTRAIN_OPS", "fused")
    [(path, why)] = _fused_paths()
    assert path == "fused" and "a failed build is an error" in why


def test_gpu_without_toolchain_or_with_a_failing_build(monkeypatch):
    _fake_gpu(monkeypatch)
    monkeypatch.setattr(build, "find_ninja", lambda: None)
    [(path, why)] = _fused_paths()
    assert path == "reference" and "ninja is missing" in why

    def failing(device=None, verbose=None, src_dir=None):
        raise build.BuildError("error: identifier \"__hfma2\" is undefined")

    monkeypatch.setattr(build, "load_extension", failing)
    [(path, why)] = _fused_paths(build=True)
    assert path == "reference" and "the build failed" in why and "__hfma2" in why


def test_build_records_and_clears_its_failure(monkeypatch):
    """A failed build leaves failed.json (read by info on any node sharing the cache); a good build removes it."""
    from torch.utils import cpp_extension

    monkeypatch.setattr(build, "find_ninja", lambda: "/usr/bin/ninja")
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: (_ for _ in ()).throw(RuntimeError("g++: not found")))
    with pytest.raises(build.BuildError, match="g\\+\\+: not found"):
        build.load_emulation()
    build_dir = build.build_dir_for("emu", build.source_hash(build.HEADERS + build.EMULATION_SOURCES), "cpu")
    assert "g++: not found" in build.last_failure(build_dir)["reason"]

    def fake_load(name, build_directory, **kw):
        open(os.path.join(build_directory, name + ".so"), "wb").close()
        return types.ModuleType(name)

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    digest = build.source_hash(build.HEADERS + build.EMULATION_SOURCES)
    try:
        build.load_emulation()
    finally:  # the fake module must not stand in for the real emulation in later tests
        sys.modules.pop(f"sgtrain_ops_emu_{digest[:12]}", None)
    assert build.last_failure(build_dir) is None and (build_dir / build.MARKER_NAME).is_file()


def test_find_ninja_beside_the_interpreter_when_path_lacks_it(tmp_path, monkeypatch):
    pytest.importorskip("ninja")  # the PyPI package, a dependency of sgtrain
    monkeypatch.setenv("PATH", str(tmp_path))  # e.g. /env/bin/sgtrain-train run without activating /env
    exe = build.find_ninja()
    assert exe is not None and os.access(exe, os.X_OK)
    build._ensure_ninja_on_path()
    assert os.environ["PATH"].split(os.pathsep)[0] == os.path.dirname(exe)
    assert build.find_ninja() == exe
