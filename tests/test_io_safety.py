"""Pickles that name anything outside the allow-list are refused and run nothing (marker files never appear)."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from sgtrain.cli.convert import main as convert_main
from sgtrain.io import SafeUnpickler, UnsafePickleError, load_network


class _Call:
    """Pickles as ``func(*args)``: what an attacker's object looks like inside a pickle."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, object]:
    cmd = f"touch {marker}"
    return {
        "os.system": _Call(os.system, cmd),
        "builtins.eval": _Call(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": _Call(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": _Call(subprocess.Popen, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_pickle_with_foreign_global_is_refused(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "marker"
    evil = _payloads(marker)[kind]
    # Hidden among real tensors in an NVlabs-like snapshot dict.
    path = tmp_path / "network-snapshot-000000.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": None, "weights": torch.ones(3), "x": evil}, f)
    with pytest.raises(UnsafePickleError) as err:
        load_network(path)
    expected = {"os.system": os.system.__module__ + ".system"}.get(kind, kind)  # os.system pickles as posix.system
    assert err.value.global_name == expected
    assert expected in str(err.value)
    assert not marker.exists()


def test_refused_inside_an_nvlabs_persistence_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A payload placed in a persistent object's state (where NVlabs' loader would exec module_src)."""
    marker = tmp_path / "marker"
    pkg = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # stand-in so that pickle can name NVlabs' function
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    meta = dict(type="class", version=6, module_src=f"import os\nos.system('touch {marker}')\nclass Generator: pass\n",
                class_name="Generator", state={"_init_kwargs": {}, "payload": _Call(os.system, f"touch {marker}")})
    data = pickle.dumps({"G_ema": _Call(_reconstruct_persistent_obj, meta)})
    with pytest.raises(UnsafePickleError, match="system"):
        SafeUnpickler(io.BytesIO(data)).load()
    # Without the payload the record is read as data: module_src (which would touch the marker) is never run.
    meta["state"].pop("payload")
    rec = SafeUnpickler(io.BytesIO(pickle.dumps(_Call(_reconstruct_persistent_obj, meta)))).load()
    assert rec.class_name == "Generator" and "os.system" in rec.module_src
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, 4])
def test_refused_inside_an_embedded_storage(tmp_path: Path, protocol: int) -> None:
    """torch.storage._load_from_bytes payloads go through torch.load(weights_only=True), not pickle.loads."""
    import torch.storage

    marker = tmp_path / "marker"
    inner = pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=protocol)
    data = pickle.dumps(_Call(torch.storage._load_from_bytes, inner))
    # torch's loader names the global (protocol 2) or stops at an opcode it does not take (protocol 4).
    with pytest.raises(UnsafePickleError if protocol == 2 else pickle.UnpicklingError):
        SafeUnpickler(io.BytesIO(data)).load()
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".ckpt"])
def test_torch_files_with_foreign_globals_are_refused(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / f"net{suffix}"
    torch.save({"g_ema": {"style.1.weight": torch.ones(2, 2)}, "args": _Call(os.system, f"touch {marker}")}, path)
    with pytest.raises(UnsafePickleError, match="system"):
        load_network(path)
    assert not marker.exists()


def test_convert_cli_refuses_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Call(os.system, f"touch {marker}")))
    assert convert_main([str(path), str(tmp_path / "out")]) == 2
    assert "refused to unpickle global" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
