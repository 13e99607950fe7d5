"""The error types of sgtrain: one base, and a subclass for what the user can fix.

:class:`SgtrainError` is the base of every error sgtrain raises on purpose; :class:`UserError` marks those caused by
input the user can fix (a config value, a file, a command-line argument): its message is one line naming the
problem and the fix, and the command-line tools print it without a traceback and exit with status 2. Each module's
own errors (``ConfigError``, ``NetworkFileError``, ``PackError``...) subclass :class:`UserError` and the built-in
type callers catch today (``ValueError``, ``FileNotFoundError``...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["ConfigError", "SgtrainError", "UserError"]


class SgtrainError(Exception):
    """Base of every error sgtrain raises on purpose."""


class UserError(SgtrainError):
    """Bad input the user can fix; the message names the problem and the fix (one line). CLIs: exit status 2."""


class ConfigError(UserError, ValueError):
    """A training configuration that cannot run; the message names the key and the fix."""
