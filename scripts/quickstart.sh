#!/usr/bin/env bash
# The README's first command, on a fresh machine:
#   1. scripts/setup.sh: a virtual environment in .venv with torch and sgtrain installed;
#   2. the emoji demo dataset: every Noto Color Emoji glyph at 64x64, packed into shards in data/emoji
#      (datasets/emoji.py; installs the Debian font package when run as root);
#   3. trains model=stylegan2_small on it (experiment=quickstart: 12 kimg, about 15 minutes on 2 CPU cores; the
#      same command uses a GPU when there is one), printing SWD against the data at kimg 0 and at the end and
#      writing sample grids to runs/quickstart/samples/.
# Rerunning resumes (or, when finished, only prints the result). Extra arguments are Hydra overrides, e.g.
#   bash scripts/quickstart.sh train.kimg=30 run.dir=runs/emoji-long
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python datasets/emoji.py data/emoji
exec sgtrain-train experiment=quickstart dataset.path=data/emoji "$@"
