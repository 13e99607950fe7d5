"""The error types of sgtrain: one base, and a subclass for what the user can fix.

:class:`SgtrainError` is the base of every error sgtrain raises on purpose; :class:`UserError` marks those caused by
input the user can fix (a config value, a file, a command-line argument): its message is one line naming the
problem and the fix, and the command-line tools print it without a traceback and exit with status 2. Each module's
own errors (``ConfigError``, ``NetworkFileError``, ``PackError``...) subclass :class:`UserError` and the built-in
type callers catch today (``ValueError``, ``FileNotFoundError``...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["ConfigError", "FileContentError", "InputError", "MissingFileError", "SgtrainError", "UserError"]


class SgtrainError(Exception):
    """Base of every error sgtrain raises on purpose."""


class UserError(SgtrainError):
    """Bad input the user can fix; the message names the problem and the fix (one line). CLIs: exit status 2."""


class ConfigError(UserError, ValueError):
    """A training configuration that cannot run; the message names the key and the fix."""


class InputError(UserError, ValueError):
    """A value the user gave (an option, an argument, a file's field) that is malformed or out of range."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or directory the user named that does not exist."""


class FileContentError(UserError, KeyError):
    """A file the user named that lacks what it must hold (an array, a key); its message is shown as is."""

    def __str__(self) -> str:  # KeyError's own str() is the repr of its argument, quotes and escapes included
        return str(self.args[0]) if self.args else ""
