"""The private Lightning APIs sgtrain relies on (sgtrain/training/_lightning.py) exist in the installed Lightning."""

from __future__ import annotations

from sgtrain.training._lightning import LIGHTNING_VERSION, check_private_api


def test_private_lightning_api_is_there():
    missing = check_private_api()
    assert not missing, (
        f"Lightning {LIGHTNING_VERSION} lacks private APIs sgtrain uses: {missing}. Adapt "
        "sgtrain/training/_lightning.py (and ddp.py / callbacks.py) before widening the pin in pyproject.toml."
    )
