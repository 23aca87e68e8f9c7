"""Typed reads of an archive's Zarr nodes and attributes.

Zarr types ``group[path]`` as "array or group" and attributes as any JSON value; the archive
layout says which one each path holds. These helpers check it once, so a damaged or foreign
archive fails with an :class:`ArchiveError` naming the path instead of an AttributeError later.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from .errors import ArchiveError


def array_at(group: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` under ``group``."""
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise ArchiveError(f"{_joined(group, path)}: expected a Zarr array, found a group")
    return node


def group_at(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` under ``group``."""
    node = group[path]
    if not isinstance(node, zarr.Group):
        raise ArchiveError(f"{_joined(group, path)}: expected a Zarr group, found an array")
    return node


def _joined(group: zarr.Group, path: str) -> str:
    return f"{group.path}/{path}".lstrip("/")


def read(array: zarr.Array, selection: Any = slice(None)) -> np.ndarray:
    """``array[selection]`` as a NumPy array (Zarr types a read as "array or scalar")."""
    return np.asarray(array[selection])


def int_attr(group: zarr.Group, name: str, default: int) -> int:
    """An integer attribute, ``default`` when absent."""
    value = group.attrs.get(name, default)
    if not isinstance(value, int):
        raise ArchiveError(f"{group.path}: attribute {name!r} is {value!r}, expected an integer")
    return value


def str_list_attr(group: zarr.Group, name: str) -> list[str] | None:
    """A list-of-strings attribute, None when absent."""
    value = group.attrs.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArchiveError(f"{group.path}: attribute {name!r} is {value!r}, expected a list of strings")
    return [str(v) for v in value]
