"""Hostile and broken network files (issue 29, findings 1, 3, 7): no signal, no unbounded allocation, one line.

The reproducers of an adversarial probe, rebuilt: a numpy dtype whose flags are cleared (numpy then reads bytes of
the file as object pointers: SIGSEGV before the fix), a 30-byte ``bytearray(2**31)`` pickle, a 3.5 KB portable JSON
asking for ``z_dim=2**25``, and files that are truncated, empty or of another format under a network file's name.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgtrain.io import NetworkFileError, load_network
from sgtrain.io.safe_pickle import safe_load_pickle

FIXTURES = Path(__file__).parent / "fixtures"
PORTABLE = FIXTURES / "format_v1" / "stylegan2" / "network-snapshot"


class _Reduce:
    """An object that pickles as ``func(*args)`` followed by BUILD ``state`` (what a forged file holds)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _object_dtype_with_cleared_flags() -> _Reduce:
    # numpy's own dtype pickle state is (3, byteorder, subarray, names, fields, elsize, alignment, flags); flags 0 on
    # an object dtype hides that its items are pointers
    return _Reduce(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0))


def _forged_array() -> _Reduce:
    mod = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    return _Reduce(mod._reconstruct, (np.ndarray, (0,), b"b"),
                   (1, (4,), _object_dtype_with_cleared_flags(), False, (0x4141414141414141).to_bytes(8, "little") * 4))


def _run(args: list[str], tmp_path: Path, limit_gb: float | None = None) -> subprocess.CompletedProcess:
    code = (f"import resource, runpy, sys; sys.argv = {args!r}; "
            + (f"resource.setrlimit(resource.RLIMIT_AS, ({int(limit_gb * 2**30)}, {int(limit_gb * 2**30)})); "
               if limit_gb else "")
            + "from sgtrain.cli.convert import main; rc = main(sys.argv[1:]);"
            + "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)


def _one_line_exit_2(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("maxrss_kb")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("payload", ["dtype", "array", "scalar"])
def test_forged_numpy_objects_are_refused_without_a_signal(tmp_path, payload):
    mod = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    obj = {"dtype": _object_dtype_with_cleared_flags, "array": _forged_array,
           "scalar": lambda: _Reduce(mod.scalar, (_object_dtype_with_cleared_flags(), b"A" * 8))}[payload]()
    path = tmp_path / "network.pkl"
    path.write_bytes(pickle.dumps({"G_ema": obj}, protocol=4))
    with pytest.raises(pickle.UnpicklingError, match="not allowed|not a plain"):
        safe_load_pickle(path)
    line = _one_line_exit_2(_run(["sgtrain-convert", str(path), str(tmp_path / "out")], tmp_path))
    assert "network.pkl" in line
    assert not list(tmp_path.glob("out*"))


def test_plain_numpy_arrays_and_scalars_still_load(tmp_path):
    arrays = {"f4": np.arange(6, dtype=np.float32).reshape(2, 3), "be": np.arange(4, dtype=">i4"),
              "b": np.array([True, False]), "s": np.float64(2.5), "i": np.int64(-3)}
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=4))
    out = safe_load_pickle(path)
    for k, v in arrays.items():
        np.testing.assert_array_equal(np.asarray(out[k]), v)
        assert np.asarray(out[k]).dtype.newbyteorder("=") == v.dtype.newbyteorder("=")  # numpy may swap to native


def test_array_with_fewer_bytes_than_its_shape_is_refused(tmp_path):
    mod = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    f4 = _Reduce(np.dtype, ("f4", False, True), (3, "<", None, None, None, -1, -1, 0))
    short = _Reduce(mod._reconstruct, (np.ndarray, (0,), b"b"), (1, (1000, 1000), f4, False, b"\0" * 16))
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(short, protocol=4))
    with pytest.raises(pickle.UnpicklingError, match="needs 4000000 bytes"):
        safe_load_pickle(path)


def test_bytearray_of_a_size_allocates_nothing(tmp_path):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps(_Reduce(bytearray, (2**31,)), protocol=4))
    assert path.stat().st_size < 64
    with pytest.raises(pickle.UnpicklingError, match="bytearray"):
        safe_load_pickle(path)
    r = _run(["sgtrain-convert", str(path), str(tmp_path / "out")], tmp_path, limit_gb=1.5)
    _one_line_exit_2(r)


def test_huge_keywords_in_a_small_portable_file_are_refused_before_allocating(tmp_path):
    shutil.copy(PORTABLE.with_suffix(".safetensors"), tmp_path / "net.safetensors")
    header = json.loads(PORTABLE.with_suffix(".json").read_text())
    header["networks"]["G_ema"]["init_kwargs"]["z_dim"] = 2**25
    (tmp_path / "net.json").write_text(json.dumps(header))
    with pytest.raises(NetworkFileError, match="do not fit its tensors"):
        load_network(tmp_path / "net.json")
    r = _run(["sgtrain-convert", str(tmp_path / "net.json"), str(tmp_path / "out")], tmp_path)
    _one_line_exit_2(r)
    # the same command on the honest file is the baseline (torch's own import weighs about 1 GB on some machines);
    # building the hostile keywords would allocate z_dim * w_dim float32 weights (gigabytes) on top of it
    good = _run(["sgtrain-convert", str(PORTABLE.with_suffix(".json")), str(tmp_path / "good")], tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    w_dim = header["networks"]["G_ema"]["init_kwargs"]["w_dim"]
    would_allocate_gb = 2**25 * w_dim * 4 / 2**30
    assert would_allocate_gb >= 1.0
    rss_gb, base_gb = (int(x.stderr.split("maxrss_kb")[1].split()[0]) / 2**20 for x in (r, good))
    assert rss_gb < base_gb + 0.25, (rss_gb, base_gb)


def _broken_files(tmp_path: Path) -> dict[str, Path]:
    good = (FIXTURES / "format_v1" / "stylegan2" / "last.ckpt").read_bytes()
    pkl = pickle.dumps({"G_ema": None}, protocol=4)
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(png, format="PNG")
    files = {
        "empty.pkl": b"", "truncated.pkl": pkl[: len(pkl) // 2], "text.pkl": b"hello, I am not a pickle\n",
        "image.pkl": png.getvalue(), "zip.pkl": good[:200], "truncated.ckpt": good[: len(good) // 3],
        "random.ckpt": bytes(range(256)) * 8,
    }
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    st = PORTABLE.with_suffix(".safetensors").read_bytes()
    (tmp_path / "badheader.safetensors").write_bytes(st[:8] + b"{not json" + st[17:200])
    shutil.copy(PORTABLE.with_suffix(".json"), tmp_path / "badheader.json")
    out["badheader.safetensors"] = tmp_path / "badheader.safetensors"
    shutil.copy(PORTABLE.with_suffix(".safetensors"), tmp_path / "badjson.safetensors")
    (tmp_path / "badjson.json").write_text('{"format": "sgtrain-network", "networks": {')
    out["badjson.json"] = tmp_path / "badjson.json"
    return out


def test_broken_files_end_in_one_line_naming_the_file(tmp_path):
    for name, path in _broken_files(tmp_path).items():
        with pytest.raises((NetworkFileError, pickle.UnpicklingError)) as err:
            load_network(path)
        assert name in str(err.value) or path.stem in str(err.value), (name, err.value)
        assert "\n" not in str(err.value), (name, err.value)


@pytest.mark.parametrize("name", ["empty.pkl", "image.pkl", "truncated.ckpt", "badjson.json"])
def test_clis_print_one_line_and_exit_2_for_broken_files(tmp_path, name):
    path = _broken_files(tmp_path)[name]
    _one_line_exit_2(_run(["sgtrain-convert", str(path), str(tmp_path / "out")], tmp_path))
    gen = subprocess.run([sys.executable, "-m", "sgtrain.cli.generate", "--network", str(path), "--seeds", "0",
                          "--outdir", str(tmp_path / "gen")], capture_output=True, text=True, timeout=300)
    _one_line_exit_2(gen)



def _deflate(src: Path, dst: Path) -> None:
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def test_compressed_storage_bomb_is_refused_before_inflating(tmp_path):
    import torch

    big = tmp_path / "big.ckpt"
    torch.save({"state_dict": {"G.w": torch.zeros(48 * 2**20)}}, big)  # 192 MiB of zeros, stored
    bomb = tmp_path / "bomb.ckpt"
    _deflate(big, bomb)
    big.unlink()
    assert bomb.stat().st_size < 2 * 2**20
    with pytest.raises(NetworkFileError, match="deflate bomb"):
        load_network(bomb)
    r = _run(["sgtrain-convert", str(bomb), str(tmp_path / "out")], tmp_path)
    assert "deflate bomb" in _one_line_exit_2(r)
    good = _run(["sgtrain-convert", str(PORTABLE.with_suffix(".json")), str(tmp_path / "good")], tmp_path)
    rss_gb, base_gb = (int(x.stderr.split("maxrss_kb")[1].split()[0]) / 2**20 for x in (r, good))
    assert rss_gb < base_gb + 0.1, (rss_gb, base_gb)


def test_tensor_declared_larger_than_its_storage_is_refused(tmp_path):
    import torch

    from sgtrain.io.safe_pickle import check_view

    storage = torch.zeros(16).untyped_storage()
    check_view(storage, 0, (2, 2), (2, 1))  # 16 bytes of storage hold a 4-element uint8 view
    with pytest.raises(pickle.UnpicklingError, match="needs 1000001 elements; its storage holds 64"):
        check_view(storage, 1, (1000, 1000), (1000, 1))
    with pytest.raises(pickle.UnpicklingError, match="non-negative"):
        check_view(storage, -1, (2,), (1,))
