"""The archive layout on Zarr (format 3), its writer and its reader.

Layout (documented for users in docs/archive-format.md)::

    <root>/                      group; attrs["mvarchive"] = ArchiveMeta as JSON
      groups/name    str    (G,)       chunks (S,)     group names, dataset order
      groups/files   str    (G, K)     chunks (S, K)   source file of each view, relative to the dataset
      groups/size    int32  (G, K, 2)  chunks (S, K, 2) original (height, width) of each view
      groups/stream  bytes  (G,)       chunks (S,)     one container per group (codecs/bitstream.py)
      groups/metrics float64(G, Q)     chunks (S, Q)   per-group metrics, columns in meta.metrics
      latents/<gggggggg>/<name> int32 (K, C, h, w)  one chunk: quantized latent symbols per view
      shards/complete bool  (n_shards,) chunks (1,)    completion marker, written last by each shard

G groups, K cameras, S groups per shard. A shard writes only its own chunks (shard boundaries
are chunk boundaries), so shards run in parallel and a retried shard rewrites the same
objects. Readers trust a group only if its shard's marker is set. Attributes are written
by the orchestrator only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import zarr

from .location import Location

ARCHIVE_FORMAT = 1
METRIC_COLUMNS = ("bytes", "bpp", "psnr", "ms_ssim", "encode_s")


class ArchiveError(ValueError):
    """An archive is missing, incomplete, or does not match what was asked."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Zarr warns that string/bytes dtypes have no published v3 spec; that is a documented choice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        warnings.filterwarnings("ignore", category=FutureWarning, module="zarr")
        yield


@dataclass(frozen=True)
class CodecRecord:
    name: str
    codec_id: int
    preset: str
    config: dict[str, Any]
    weights_digest: str
    checkpoint: str | None


@dataclass(frozen=True)
class ArchiveMeta:
    codec: CodecRecord
    dataset_url: str
    layout: str
    cameras: tuple[str, ...]
    num_groups: int
    shard_size: int
    format: int = ARCHIVE_FORMAT
    metrics: tuple[str, ...] = METRIC_COLUMNS
    created_by: str = "mvarchive"

    @property
    def num_shards(self) -> int:
        return -(-self.num_groups // self.shard_size)

    def shard_of(self, group_index: int) -> int:
        return group_index // self.shard_size

    def shard_range(self, shard_id: int) -> range:
        return range(shard_id * self.shard_size, min((shard_id + 1) * self.shard_size, self.num_groups))

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArchiveMeta":
        data = dict(data)
        data["codec"] = CodecRecord(**data["codec"])
        data["cameras"] = tuple(data["cameras"])
        data["metrics"] = tuple(data["metrics"])
        return cls(**data)

    def same_content_as(self, other: "ArchiveMeta") -> bool:
        return self.to_json() == other.to_json()


@dataclass
class GroupRecord:
    """Everything one encoded group contributes to the archive."""

    index: int
    name: str
    sizes: list[tuple[int, int]]
    stream: bytes
    latents: dict[str, np.ndarray]
    metrics: dict[str, float] = field(default_factory=dict)


def latent_path(group_index: int, name: str) -> str:
    return f"latents/{group_index:08d}/{name}"


class ArchiveWriter:
    """Creates an archive (or reopens one to resume) and writes whole shards."""

    def __init__(self, location: Location, meta: ArchiveMeta) -> None:
        self.location = location
        self.meta = meta

    @classmethod
    def create_or_resume(
        cls, location: Location, meta: ArchiveMeta, names: Sequence[str], files: Sequence[Sequence[str]]
    ) -> "ArchiveWriter":
        """Make the skeleton, or check that an existing archive is the same job and resume it."""
        store = location.zarr_store(read_only=False)
        with _quiet():
            try:
                root = zarr.open_group(store, mode="r", use_consolidated=False)
            except FileNotFoundError:  # zarr's GroupNotFoundError is one too
                root = None
            if root is not None:
                existing = root.attrs.get("mvarchive")
                if existing is None:
                    raise ArchiveError(f"{location}: exists and is not an mvarchive archive; refusing to write into it")
                old = ArchiveMeta.from_json(existing)
                if not old.same_content_as(meta):
                    diff = {k: (v, meta.to_json()[k]) for k, v in old.to_json().items() if meta.to_json()[k] != v}
                    raise ArchiveError(
                        f"{location}: holds a different archive job ({diff}); choose another destination"
                    )
                return cls(location, meta)
            root = zarr.open_group(store, mode="w-", zarr_format=3)
            g, k, s = meta.num_groups, len(meta.cameras), meta.shard_size
            groups = root.create_group("groups")
            name_arr = groups.create_array("name", shape=(g,), chunks=(s,), dtype=str)
            file_arr = groups.create_array("files", shape=(g, k), chunks=(s, k), dtype=str)
            groups.create_array("size", shape=(g, k, 2), chunks=(s, k, 2), dtype="int32", fill_value=0)
            groups.create_array("stream", shape=(g,), chunks=(s,), dtype=zarr.dtype.VariableLengthBytes())
            groups.create_array(
                "metrics", shape=(g, len(meta.metrics)), chunks=(s, len(meta.metrics)), dtype="float64",
                fill_value=np.nan,
            )
            root.create_group("latents")
            shards = root.create_group("shards")
            shards.create_array("complete", shape=(meta.num_shards,), chunks=(1,), dtype="bool", fill_value=False)
            name_arr[:] = np.array(list(names), dtype=object)
            file_arr[:] = np.array([list(f) for f in files], dtype=object).reshape(g, k)
            root.attrs["mvarchive"] = meta.to_json()  # written last: the skeleton is now valid
        return cls(location, meta)

    def _root(self) -> zarr.Group:
        return zarr.open_group(self.location.zarr_store(read_only=False), mode="r+", use_consolidated=False)

    def completed_shards(self) -> set[int]:
        with _quiet():
            done = self._root()["shards/complete"][:]
        return {int(i) for i in np.flatnonzero(done)}

    def write_shard(self, shard_id: int, records: Iterable[GroupRecord]) -> None:
        """Write one shard's chunks, then its completion marker (last, so readers never see half)."""
        records = sorted(records, key=lambda r: r.index)
        expected = list(self.meta.shard_range(shard_id))
        if [r.index for r in records] != expected:
            raise ArchiveError(f"shard {shard_id}: expected groups {expected}, got {[r.index for r in records]}")
        with _quiet():
            root = self._root()
            start, stop = expected[0], expected[-1] + 1
            for record in records:
                for name, array in record.latents.items():
                    arr = root.create_array(
                        latent_path(record.index, name), shape=array.shape, chunks=array.shape,
                        dtype="int32", overwrite=True,
                    )
                    arr[...] = array.astype(np.int32)
            root["groups/size"][start:stop] = np.array([r.sizes for r in records], dtype=np.int32)
            streams = np.empty(len(records), dtype=object)
            streams[:] = [bytes(r.stream) for r in records]
            root["groups/stream"][start:stop] = streams  # slice write keeps trailing NUL bytes
            root["groups/metrics"][start:stop] = np.array(
                [[r.metrics.get(col, np.nan) for col in self.meta.metrics] for r in records], dtype=np.float64
            )
            root["shards/complete"][shard_id : shard_id + 1] = np.array([True])

    def finalize(self) -> None:
        """Consolidate metadata once all shards are written (readers then open it in one request)."""
        with _quiet():
            zarr.consolidate_metadata(self.location.zarr_store(read_only=False))


@dataclass(frozen=True)
class StoredGroup:
    index: int
    name: str
    files: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    stream: bytes
    metrics: dict[str, float]


class ArchiveReader:
    """Read-only access to an archive; only groups of complete shards are visible."""

    def __init__(self, location: Location) -> None:
        self.location = location
        with _quiet():
            try:
                self.root = zarr.open_group(location.zarr_store(read_only=True), mode="r")
            except FileNotFoundError as exc:
                raise ArchiveError(f"{location}: no archive there") from exc
            except Exception as exc:  # zarr raises several types for "not a group"
                raise ArchiveError(f"{location}: not a readable archive ({exc})") from exc
            raw = self.root.attrs.get("mvarchive")
            if raw is None:
                raise ArchiveError(f"{location}: not an mvarchive archive (no 'mvarchive' attributes)")
            self.meta = ArchiveMeta.from_json(raw)
            if self.meta.format != ARCHIVE_FORMAT:
                raise ArchiveError(f"{location}: archive format {self.meta.format}, this build reads {ARCHIVE_FORMAT}")
            self.names: list[str] = [str(n) for n in self.root["groups/name"][:]]
            self.complete = np.asarray(self.root["shards/complete"][:], dtype=bool)

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.meta.cameras

    def is_complete(self) -> bool:
        return bool(self.complete.all())

    def complete_indices(self) -> list[int]:
        return [i for i in range(self.meta.num_groups) if self.complete[self.meta.shard_of(i)]]

    def select(self, groups: Sequence[str] | None = None) -> list[int]:
        """Indices of the named groups (all complete ones when None); unknown names are errors."""
        if groups is None:
            return self.complete_indices()
        lookup = {name: i for i, name in enumerate(self.names)}
        missing = [g for g in groups if g not in lookup]
        if missing:
            sample = ", ".join(self.names[:8]) + (" ..." if len(self.names) > 8 else "")
            raise ArchiveError(f"{self.location}: no group(s) {missing}; groups include: {sample}")
        incomplete = [g for g in groups if not self.complete[self.meta.shard_of(lookup[g])]]
        if incomplete:
            raise ArchiveError(f"{self.location}: group(s) {incomplete} belong to unfinished shards")
        return [lookup[g] for g in groups]

    def camera_indices(self, cameras: Sequence[str] | None) -> list[int]:
        if cameras is None:
            return list(range(len(self.cameras)))
        unknown = [c for c in cameras if c not in self.cameras]
        if unknown:
            raise ArchiveError(f"{self.location}: no camera(s) {unknown}; cameras: {list(self.cameras)}")
        return [self.cameras.index(c) for c in cameras]

    def read_groups(self, indices: Sequence[int]) -> list[StoredGroup]:
        """Read groups by index, one slice per contiguous run (few requests on object stores)."""
        out: list[StoredGroup] = []
        with _quiet():
            files = self.root["groups/files"]
            sizes = self.root["groups/size"]
            streams = self.root["groups/stream"]
            metrics = self.root["groups/metrics"]
            for start, stop in _runs(sorted(set(indices))):
                f, s, b, m = files[start:stop], sizes[start:stop], streams[start:stop], metrics[start:stop]
                for offset, index in enumerate(range(start, stop)):
                    out.append(StoredGroup(
                        index=index,
                        name=self.names[index],
                        files=tuple(str(x) for x in f[offset]),
                        sizes=tuple((int(h), int(w)) for h, w in s[offset]),
                        stream=bytes(b[offset]),
                        metrics={c: float(v) for c, v in zip(self.meta.metrics, m[offset])},
                    ))
        order = {index: i for i, index in enumerate(indices)}
        return sorted(out, key=lambda g: order.get(g.index, 0))

    def read_latents(self, index: int) -> dict[str, np.ndarray]:
        with _quiet():
            group = self.root[f"latents/{index:08d}"]
            return {name: np.asarray(arr[...]) for name, arr in group.arrays()}

    def metrics_table(self) -> np.ndarray:
        with _quiet():
            return np.asarray(self.root["groups/metrics"][:])


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs
