"""Package layout that pyproject.toml cannot express: the design card's top-level ``conf/`` (Hydra configs) and
``ops/`` (CUDA/C++ sources) are installed inside the package as ``sgtrain.conf`` and ``sgtrain.ops.csrc``, in wheels
and in editable installs alike. Everything else is in pyproject.toml."""

import os

from setuptools import find_packages, setup

# Every folder of conf/ is a (data-only) package: sgtrain.conf, sgtrain.conf.model, sgtrain.conf.hydra.launcher...
conf = [os.path.relpath(d, "conf").replace(os.sep, ".") for d, _, _ in os.walk("conf") if "__pycache__" not in d]
conf_packages = ["sgtrain.conf" + ("" if c == "." else "." + c) for c in conf]

setup(
    packages=[*find_packages(include=["sgtrain", "sgtrain.*"]), *conf_packages, "sgtrain.ops.csrc"],
    package_dir={"sgtrain.conf": "conf", "sgtrain.ops.csrc": "ops"},
    package_data={**{p: ["*.yaml"] for p in conf_packages}, "sgtrain.ops.csrc": ["*.cu", "*.cpp", "*.h"]},
)
