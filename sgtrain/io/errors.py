"""Errors raised while opening network files."""

from __future__ import annotations

import pickle

from sgtrain.errors import UserError


class UnsafePickleError(UserError, pickle.UnpicklingError):
    """A pickle asked for a Python global outside sgtrain's allow-list; nothing from it was executed.

    Attributes:
        global_name: the refused global as ``module.qualname`` (for example ``"os.system"``).
    """

    def __init__(self, global_name: str, path: str | None = None) -> None:
        self.global_name = global_name
        where = f" in {path}" if path else ""
        super().__init__(
            f"refused to unpickle global {global_name!r}{where}: sgtrain opens pickles with an allow-list "
            "(tensors, storages, containers, NVlabs persistence records) and never imports or calls anything "
            "else. If this file comes from a source you trust and holds a network sgtrain does not know yet, "
            "convert it with its authors' code to a state_dict (torch.save of tensors) and open that instead."
        )


class UnsupportedNetworkError(UserError, ValueError):
    """A file was read safely but holds a network architecture or layout that sgtrain cannot rebuild."""


class NetworkFileError(UserError, ValueError):
    """A path is not a network file sgtrain knows, or it is incomplete (missing tensors, missing JSON)."""
