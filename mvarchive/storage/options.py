"""fsspec storage options that never leave the process as text.

Flow parameters are stored by Prefect (JSON via FastAPI's ``jsonable_encoder``), shown in its
UI and logged by our own reports. Credentials must not end up there, so configs hold a
:class:`StorageOptions` instead of a dict: it pickles whole (Dask workers get the real
values), but every text form — ``repr``, ``str``, ``dict(options)`` (which is what
``jsonable_encoder`` falls back to) — masks secret values. Code that needs the values asks
for them explicitly with :meth:`StorageOptions.reveal`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

MASK = "**********"
_SECRET_KEY = re.compile(r"(secret|token|password|passwd|credential|^key$|access_key|api_key|private)", re.I)


def is_secret_key(name: str) -> bool:
    """Whether an option's value is a credential (``key``, ``secret``, ``token``, ...)."""
    return bool(_SECRET_KEY.search(name))


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested options with every secret value replaced by a mask."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            out[name] = masked(value)
        elif is_secret_key(str(name)) and value is not None:
            out[name] = MASK
        else:
            out[name] = value
    return out


def secret_values(values: Mapping[str, Any]) -> list[str]:
    """Every secret string in nested options (what tests search logs and stores for)."""
    found: list[str] = []
    for name, value in values.items():
        if isinstance(value, Mapping):
            found += secret_values(value)
        elif is_secret_key(str(name)) and isinstance(value, str) and value:
            found.append(value)
    return found


class StorageOptions:
    """fsspec options (credentials, endpoint) for one location; text forms are masked."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | StorageOptions | None = None) -> None:
        if isinstance(values, StorageOptions):
            values = values.reveal()
        self._values: dict[str, Any] = dict(values or {})

    def reveal(self) -> dict[str, Any]:
        """The real options, for fsspec."""
        return dict(self._values)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        # Not a mapping on purpose: ``**options`` fails loudly instead of passing masks to
        # fsspec, while ``dict(options)`` (jsonable_encoder's fallback) yields masked pairs.
        return iter(masked(self._values).items())

    def __bool__(self) -> bool:
        return bool(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StorageOptions):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(repr(sorted(self._values)))

    def __repr__(self) -> str:
        return f"StorageOptions({masked(self._values)!r})"

    __str__ = __repr__

    def __getstate__(self) -> dict[str, Any]:
        return {"values": self._values}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._values = dict(state["values"])

    def __deepcopy__(self, memo: dict) -> StorageOptions:
        import copy

        return StorageOptions(copy.deepcopy(self._values, memo))


def as_options(value: Mapping[str, Any] | StorageOptions | None) -> StorageOptions:
    """Accept a plain dict (library callers, tests) or StorageOptions."""
    return value if isinstance(value, StorageOptions) else StorageOptions(value)
