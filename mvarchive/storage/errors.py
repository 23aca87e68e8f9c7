"""The storage layer's user-facing error."""

from __future__ import annotations


class ArchiveError(ValueError):
    """An archive is missing, incomplete, busy, or does not match what was asked."""
