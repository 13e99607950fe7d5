#!/usr/bin/env bash
# Set up sgtrain on a fresh machine: a virtual environment in .venv with torch and sgtrain installed.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.sgtrain-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  # PYTHONWARNINGS=ignore: setuptools prints build-backend banners (editable layout) that ask nothing of the user
  export PYTHONWARNINGS=ignore
  python -m pip install -q --upgrade pip
  if ! python -c "import torch" 2>/dev/null; then
    # torch 2.13.0: a CPU wheel is available locally on CPU machines; on a GPU machine the same
    # pin resolves to the CUDA build from the registry.
    python -m pip install -q "torch==2.13.0" || python -m pip install -q "torch>=2.4"
  fi
  python -m pip install -q -e ".[dev]"
  unset PYTHONWARNINGS
  touch "$stamp"
fi
python -c "import sgtrain, torch; print(f'sgtrain {sgtrain.__version__}, torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
