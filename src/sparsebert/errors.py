"""The errors sparsebert raises for bad input, as opposed to bugs.

Every error that reports something the *user* can fix (a file, a field, an option value, a
missing model or dependency, an output already there) derives from :class:`SparsebertError`.
The command line (:func:`sparsebert.cli.handle_errors`) prints exactly these as one
``error: ...`` line and exits with status 2; any other exception is a bug and keeps its
traceback.

:class:`SparsebertError` is a mixin on :class:`Exception`: each concrete error also derives
from the built-in class it was before (``ValueError``, ``FileNotFoundError``, ``OSError``, ...),
so ``except ValueError`` in Python callers still catches what it caught.
"""

from __future__ import annotations


class SparsebertError(Exception):
    """Base of the user-facing errors: the message names the file, field, option or value at fault."""


class InputError(SparsebertError, ValueError):
    """A value given by the user (option, argument, setting, file content) is invalid; the message
    names it and what is allowed."""


class MissingDependencyError(SparsebertError, ImportError):
    """An optional dependency needed for the requested feature is not installed; the message says
    which extra to install or which option avoids it."""
