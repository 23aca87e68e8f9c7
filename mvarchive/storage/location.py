"""Where an archive lives: one URL plus explicit storage options, normalized to a Zarr store."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import zarr
from zarr.abc.store import Store


def absolute_url(url: str) -> str:
    """A local path made absolute (``~`` expanded, relative to the current directory), other
    URLs unchanged: what is stored and sent to workers must not depend on where a command ran."""
    if "://" in url and not url.startswith("file://"):
        return url
    return str(Path(url.removeprefix("file://")).expanduser().resolve())


@dataclass(frozen=True)
class Location:
    """A local path or fsspec URL (``s3://bucket/prefix``) with its storage options.

    Options are explicit per location (never read from fsspec's global config), so the same
    value can be sent to a Dask worker and means the same there.
    """

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("an empty URL is not a location")

    @property
    def is_local(self) -> bool:
        return "://" not in self.url or self.url.startswith("file://")

    @property
    def local_path(self) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local path")
        return Path(self.url.removeprefix("file://")).expanduser().resolve()

    def child(self, *parts: str) -> Location:
        if self.is_local:
            return Location(str(self.local_path.joinpath(*parts)), self.storage_options)
        return Location(posixpath.join(self.url.rstrip("/"), *parts), self.storage_options)

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(str(self.local_path) if self.is_local else self.url, **self.storage_options)
        return fs, path

    def exists(self) -> bool:
        fs, path = self.filesystem()
        return fs.exists(path)

    def zarr_store(self, read_only: bool) -> Store:
        """A Zarr store for this location; local paths get a LocalStore."""
        if self.is_local:
            if self.storage_options:
                options = sorted(self.storage_options)
                raise ValueError(f"storage options {options} do not apply to local path {self.url}")
            path = self.local_path
            if not read_only:
                path.mkdir(parents=True, exist_ok=True)
            return zarr.storage.LocalStore(path, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(self.url, storage_options=self.storage_options, read_only=read_only)

    def __str__(self) -> str:
        return self.url
