#!/usr/bin/env bash
# Debian packages that some tests drive, installed when missing (needs root and apt-get; otherwise says what to install):
#   chromium, chromium-driver   the explorer page's browser test (tests/test_explore.py; skipped without them)
#   fonts-noto-color-emoji      the emoji demo recipe (tests/test_data_emoji.py)
# The SLURM and two-node tests install slurm-wlm, munge and iproute2 themselves when they run (tests/_slurm.py).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing ${need[*]}; install them (Debian: sudo apt-get install ${need[*]}); the tests that need them skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
