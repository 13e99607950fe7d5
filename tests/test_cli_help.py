"""Every console script's --help (and each subcommand's) is plain words: no reST/Sphinx markup such as ``x`` or
:func:`x`, which argparse would print as it is. Entry points are read from pyproject.toml."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SECTION = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^(sgtrain-[\w-]+)\s*=\s*"([\w.:]+)"', _SECTION, re.M))  # (tomllib needs Python 3.11)
MARKUP = re.compile(r"``|`|:(func|class|meth|mod|attr|ref|obj|data|exc|doc|py:\w+):|^\s*\.\. \w+::|\*\*\w", re.M)


def _help(module: str, argv: list[str]) -> str:
    main = importlib.import_module(module).main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code in (0, None)
    return buf.getvalue()


def _subcommands(text: str) -> list[str]:
    """Subcommands listed in a help text: ``{a,b}`` in the usage line, or the names under SUBCOMMAND."""
    usage = text.split("\n\n", 1)[0]
    braces = re.search(r"\{([\w,-]+)\} \.\.\.", usage)  # the subcommand positional, not {z,w} choices
    if braces:
        return braces.group(1).split(",")
    if "SUBCOMMAND" in usage:
        block = text.split("SUBCOMMAND\n", 1)[1].split("\n\n", 1)[0]
        return [m.group(1) for m in re.finditer(r"^    (\w[\w-]*)\s", block, re.M)]
    return []


@pytest.mark.parametrize("script", sorted(s for s in SCRIPTS if s != "sgtrain-train"))
def test_help_is_plain_words(script):
    module = SCRIPTS[script].split(":")[0]
    text = _help(module, [])
    assert len(text) > 100
    bad = {script: MARKUP.findall(text)}
    for sub in _subcommands(text):
        sub_text = _help(module, [sub])
        assert sub in sub_text.splitlines()[0], sub_text[:200]
        bad[f"{script} {sub}"] = MARKUP.findall(sub_text)
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"markup in help texts: {bad}"


def test_train_help_is_plain_words_and_names_the_command():
    res = subprocess.run([sys.executable, "-m", "sgtrain.cli.train", "--help"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    header = res.stdout.split("== Configuration groups ==")[0]
    assert header.startswith("sgtrain-train: train a GAN") and "dataset.path=" in header
    assert not MARKUP.findall(header), MARKUP.findall(header)
    assert "model: " in res.stdout and "loss:" in res.stdout  # the groups and the composed config follow
