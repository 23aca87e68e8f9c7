"""Error type for problems found while reading a multi-camera dataset."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A dataset cannot be read as given.

    Subclasses ``ValueError`` so callers that validate inputs generically still
    catch it. Every message names the offending file or group and says what is
    wrong, so a user can fix the data without a debugger.
    """
