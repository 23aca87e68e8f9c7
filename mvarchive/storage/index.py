"""The archive's group index: appendable Zarr arrays, one row per encoded group, written by the
orchestrator only (concurrent writers of one chunk lose updates).

Rows are appended by resizing every column and then raising the committed row count in the
``index`` group's attributes; a writer killed between the two leaves extra rows that readers
ignore and the next writer overwrites. Rows are never rewritten: a re-encoded group gets a
new row, and the newest row of a name wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from .zarr_nodes import array_at, group_at, int_attr, read, str_list_attr

ROW_CHUNK = 4096
INDEX = "index"


@dataclass(frozen=True)
class IndexRow:
    """One encoded group: where its bytes are and what it is."""

    name: str
    files: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    blob: str  # blob id: shards/<blob>.bin
    record: tuple[int, int]  # (offset, length) of stream + fingerprint in the blob
    latents: tuple[int, int]  # (offset, length) of the latent symbols (.npz) in the blob
    metrics: dict[str, float]
    model: str  # weights digest of the model that encoded it
    digest: str  # the source group's content digest when it was encoded
    run: str

    @classmethod
    def from_header(cls, header: dict[str, Any], blob: str) -> list[IndexRow]:
        return [cls(name=g["name"], files=tuple(g["files"]), sizes=tuple((int(h), int(w)) for h, w in g["sizes"]),
                    blob=blob, record=(int(g["record"][0]), int(g["record"][1])),
                    latents=(int(g["latents"][0]), int(g["latents"][1])), metrics=dict(g["metrics"]),
                    model=header["model"], digest=g["digest"], run=header["run"])
                for g in header["groups"]]


def create_index(root: zarr.Group, cameras: int, metrics: int) -> None:
    """Empty columns (K cameras, Q metric columns)."""
    group = root.create_group(INDEX)
    r, k = ROW_CHUNK, cameras
    group.create_array("name", shape=(0,), chunks=(r,), dtype=str)
    group.create_array("files", shape=(0, k), chunks=(r, k), dtype=str)
    group.create_array("size", shape=(0, k, 2), chunks=(r, k, 2), dtype="int32", fill_value=0)
    group.create_array("blob", shape=(0,), chunks=(r,), dtype=str)
    group.create_array("record", shape=(0, 2), chunks=(r, 2), dtype="int64", fill_value=0)
    group.create_array("latents", shape=(0, 2), chunks=(r, 2), dtype="int64", fill_value=0)
    group.create_array("metrics", shape=(0, metrics), chunks=(r, metrics), dtype="float64", fill_value=np.nan)
    group.create_array("model", shape=(0,), chunks=(r,), dtype=str)
    group.create_array("digest", shape=(0,), chunks=(r,), dtype=str)
    group.create_array("run", shape=(0,), chunks=(r,), dtype=str)
    group.attrs.update({"rows": 0, "blobs": []})


def _strings(values: Sequence[Any], shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 1:
        out = np.empty(shape[0], dtype=object)
        out[:] = [str(v) for v in values]
        return out
    return np.array([[str(x) for x in v] for v in values], dtype=object).reshape(shape)


def append_rows(root: zarr.Group, rows: Sequence[IndexRow], metric_names: Sequence[str]) -> int:
    """Append rows after the committed ones; returns the new row count."""
    group = group_at(root, INDEX)
    start = int_attr(group, "rows", 0)
    if not rows:
        return start
    stop = start + len(rows)
    n, k = len(rows), len(rows[0].files)
    columns = {
        "name": _strings([r.name for r in rows], (n,)),
        "files": _strings([r.files for r in rows], (n, k)),
        "size": np.array([r.sizes for r in rows], dtype=np.int32).reshape(n, k, 2),
        "blob": _strings([r.blob for r in rows], (n,)),
        "record": np.array([r.record for r in rows], dtype=np.int64),
        "latents": np.array([r.latents for r in rows], dtype=np.int64),
        "metrics": np.array([[r.metrics.get(c, np.nan) for c in metric_names] for r in rows], dtype=np.float64),
        "model": _strings([r.model for r in rows], (n,)),
        "digest": _strings([r.digest for r in rows], (n,)),
        "run": _strings([r.run for r in rows], (n,)),
    }
    for name, values in columns.items():
        arr = array_at(group, name)
        arr.resize((stop, *arr.shape[1:]))
        arr[start:stop] = values
    blobs = list(dict.fromkeys([*(str_list_attr(group, "blobs") or []), *(r.blob for r in rows)]))
    group.attrs.update({"rows": stop, "blobs": blobs})  # the commit point (one attribute write)
    return stop


@dataclass
class IndexColumns:
    """Committed rows, read column by column when first needed."""

    group: zarr.Group
    rows: int
    metric_names: tuple[str, ...]
    _cache: dict[str, np.ndarray] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = read(array_at(self.group, name), slice(0, self.rows)) if self.rows else np.zeros((0,))
        return self._cache[name]

    def value(self, name: str, i: int) -> Any:
        """One row of a column: from the cached column, else one chunk read."""
        if name in self._cache:
            return self._cache[name][i]
        return read(array_at(self.group, name), slice(i, i + 1))[0]

    def blobs(self) -> set[str]:
        """Blob ids with committed rows (from the attributes; older archives: the column)."""
        listed = str_list_attr(self.group, "blobs")
        if listed is not None:
            return set(listed)
        return {str(b) for b in self.column("blob")} if self.rows else set()

    def row(self, i: int) -> IndexRow:
        v = self.value
        return IndexRow(
            name=str(v("name", i)), files=tuple(str(f) for f in v("files", i)),
            sizes=tuple((int(h), int(w)) for h, w in v("size", i)), blob=str(v("blob", i)),
            record=tuple(int(x) for x in v("record", i)),  # type: ignore[arg-type]
            latents=tuple(int(x) for x in v("latents", i)),  # type: ignore[arg-type]
            metrics={c: float(x) for c, x in zip(self.metric_names, v("metrics", i))},
            model=str(v("model", i)), digest=str(v("digest", i)), run=str(v("run", i)),
        )


def read_index(root: zarr.Group, metric_names: Sequence[str]) -> IndexColumns:
    group = group_at(root, INDEX)
    rows = min(int_attr(group, "rows", 0), array_at(group, "name").shape[0])
    return IndexColumns(group, rows, tuple(metric_names))
