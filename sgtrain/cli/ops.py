"""``sgtrain-ops``: build and inspect the fused CUDA ops.

    sgtrain-ops info            # which path each op takes and why; mode, cache, sources, toolchain, cached builds
    sgtrain-ops info --build    # the same, after building (or loading) the extension to find out for sure
    sgtrain-ops build [-v]      # compile now (e.g. once per node before a multi-GPU job) and report
    sgtrain-ops build --emulation   # build the CPU emulation of the kernels (for tests without a GPU)

Exit status of ``build``: 0 built or loaded from the cache, 1 failed (the reason is printed). ``info``: 0, or 1 when
SGTRAIN_OPS has an invalid value.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time


def _info(probe: bool = False) -> int:
    import torch

    from sgtrain.ops import build

    print("op paths (for CUDA tensors; CPU tensors always run the reference ops):")
    paths = build.op_paths(build=probe)
    for op, (path, why) in paths.items():
        print(f"  {op:16s} {path:16s} {why}")
    print()
    print(f"SGTRAIN_OPS        {os.environ.get('SGTRAIN_OPS', 'auto (unset)')}")
    print(f"cache              {build.cache_root()}")
    print(f"sources            {build.CSRC_DIR}")
    try:
        digest = build.source_hash()
        print(f"source sha256      {digest[:16]}")
    except build.BuildError as err:
        print(f"source sha256      unavailable: {err}")
        digest = None
    print(f"torch              {torch.__version__} (CUDA {torch.version.cuda})")
    try:
        from torch.utils.cpp_extension import CUDA_HOME
    except Exception:  # pragma: no cover - torch without cpp_extension support
        CUDA_HOME = None
    print(f"CUDA_HOME          {CUDA_HOME}")
    print(f"ninja              {build.find_ninja() or 'not found (pip install ninja)'}")
    print(f"nvcc               {shutil.which('nvcc') or 'not found'}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            dev = torch.device("cuda", i)
            arch = build._arch_of(dev)
            cached = "n/a"
            if digest is not None:
                d = build.build_dir_for("cuda", digest, arch)
                cached = f"cached in {d}" if (d / build.MARKER_NAME).is_file() else f"not built yet ({d})"
            print(f"cuda:{i}             {torch.cuda.get_device_name(dev)} {arch}: {cached}")
    else:
        print("GPU                none visible: the reference ops run (always the case on CPU)")
    return 1 if any(path == "error" for path, _ in paths.values()) else 0


def _build(verbose: bool, emulation: bool) -> int:
    from sgtrain.ops import build

    t0 = time.time()
    try:
        module = build.load_emulation(verbose=verbose) if emulation else build.load_extension(verbose=verbose)
    except build.BuildError as err:
        print(f"sgtrain-ops: build failed after {time.time() - t0:.1f} s: {err}", file=sys.stderr)
        return 1
    print(f"sgtrain-ops: {module.backend} ops ready in {time.time() - t0:.1f} s: {module.__file__}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sgtrain-ops``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="sgtrain-ops", description="Build and inspect sgtrain's fused CUDA ops.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("info", help="say which path each op takes and why; print the mode, cache and toolchain")
    i.add_argument("--build", action="store_true", help="build (or load) the CUDA extension first, to be sure")
    b = sub.add_parser("build", help="build (or load from the cache) and report")
    b.add_argument("-v", "--verbose", action="store_true", help="show the compiler's output")
    b.add_argument("--emulation", action="store_true", help="build the CPU emulation of the kernels instead")
    args = parser.parse_args(argv)
    if args.cmd == "info":
        return _info(args.build)
    return _build(args.verbose, args.emulation)


if __name__ == "__main__":
    sys.exit(main())
