#!/usr/bin/env python
"""Demo dataset recipe: every Noto Color Emoji glyph at 64x64 RGB on white, packed to shards.

    python datasets/emoji.py OUT [--resolution 64] [--font PATH] [--shard-size 4MB] [--workers N] [--no-install]
                                 [--subset smileys]

Same as `python -m sgtrain.data.emoji OUT`. Source: the Debian package fonts-noto-color-emoji (Noto Color Emoji,
SIL Open Font License 1.1, by Google); about 3,900 glyphs (2.042-0+deb12u1 gives 3,926), including the ligature glyphs
of skin-tone, flag and ZWJ sequences. When the font is missing the recipe installs the package if it runs as root
(apt-get update; apt-get install -y fonts-noto-color-emoji), and otherwise prints the package to install.
Idempotent: does nothing when OUT/dataset.json exists. Writes OUT/grid.png (the first 256 glyphs).
"""

import sys

from sgtrain.data.emoji import main

if __name__ == "__main__":
    sys.exit(main())
