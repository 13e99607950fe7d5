#!/usr/bin/env bash
# The README's first command, on a fresh machine:
#   1. scripts/setup.sh: a virtual environment in .venv with torch and sgtrain installed;
#   2. the demo dataset: the 100 smiley emoji of Noto Color Emoji at 32x32, packed into shards in data/smileys
#      (datasets/emoji.py --subset smileys; installs the Debian font package when run as root);
#   3. trains a small StyleGAN on it, growing from 8x8 to 32x32 (experiment=quickstart: 50 kimg, 11-30 minutes on
#      2 CPU cores; the same command uses a GPU when there is one), printing SWD against the data at kimg 0 and at
#      the end and writing sample grids to runs/stylegan_small-smileys/samples/.
# Rerunning resumes (or, when finished, only prints the result). Extra arguments are Hydra overrides, e.g.
#   bash scripts/quickstart.sh model=dcgan                 # another family on the same data: runs/dcgan-smileys
#   bash scripts/quickstart.sh train.kimg=100 run.dir=runs/smileys-long
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python datasets/emoji.py data/smileys --subset smileys --resolution 32
exec sgtrain-train experiment=quickstart dataset.path=data/smileys "$@"
