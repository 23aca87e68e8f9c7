"""The archive layout (format 3), its writer and its reader.

Layout (documented for users in docs/archive-format.md)::

    <root>/                     Zarr group; attrs["mvarchive"] = ArchiveMeta as JSON (models, runs)
      shards/<run>-<shard>.bin  one object per shard task: every byte of its groups (blob.py)
      index/<column>            appendable Zarr arrays, one row per encoded group (index.py)
      model/<digest16>.pt       embedded checkpoints, one per model any run used
      lease.json                the current writer's lease (lease.py), absent when idle

Workers write only their own blob (written whole: a temporary name then a move, or one S3
PUT), so a blob that exists is complete. The orchestrator alone writes the index and the
attributes. Blobs are the truth: groups of blobs without index rows (a killed run) are
visible to readers and adopted into the index by the next run; nothing is encoded twice.
Archives grow: a later run appends new groups in new blobs and never rewrites old ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zarr

from mvarchive.integrity import Fingerprint

from .blob import BlobError, BlobGroup, pack_blob, read_header, unpack_latents, unpack_record
from .errors import ArchiveError
from .index import IndexRow, append_rows, create_index, read_index
from .location import Location

ARCHIVE_FORMAT = 3
METRIC_COLUMNS = ("bytes", "bpp", "psnr", "ms_ssim", "encode_s")
SHARDS = "shards"
#: kept for callers of format 2's single checkpoint; format 3 names one file per model
EMBEDDED_CHECKPOINT = "model/checkpoint.pt"

__all__ = ["ARCHIVE_FORMAT", "ArchiveError", "ArchiveMeta", "ArchiveReader", "ArchiveWriter", "CodecRecord",
           "GroupRecord", "RunRecord", "StoredGroup", "embedded_path", "group_digest"]


def embedded_path(weights_digest: str) -> str:
    """Archive-relative path of a model's embedded checkpoint."""
    return f"model/{weights_digest[:16]}.pt"


def group_digest(name: str, views: Iterable[tuple[str, str, int | None]]) -> str:
    """Content digest of one source group: its name and each view's (camera, file name, bytes;
    None where the listing gave no size)."""
    import hashlib

    rows = [name, [list(v) for v in views]]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Zarr warns that string/bytes dtypes have no published v3 spec; that is a documented choice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        warnings.filterwarnings("ignore", category=FutureWarning, module="zarr")
        yield


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CodecRecord:
    """A model an archive was written with, and where its weights can be found again.

    ``weights_digest`` identifies the weights; the rest only helps find them: ``embedded``
    is the archive-relative path of a copy stored in the archive, ``source`` the absolute
    URL they were read from (provenance), ``registered`` the pinned ``models:/NAME/VERSION``
    URI when they came from the model registry, ``seed`` set for an untrained codec (tests only).
    """

    name: str
    codec_id: int
    preset: str
    config: dict[str, Any]
    weights_digest: str
    source: str | None = None
    embedded: str | None = None
    seed: int | None = None
    registered: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One archive run, as ``info`` shows it."""

    id: str
    started: str
    model: str  # weights digest
    status: str = "running"  # running | finished | interrupted
    finished: str | None = None
    planned: int = 0  # groups this run set out to encode
    added: int = 0
    reencoded: int = 0
    changed_skipped: int = 0
    vanished: int = 0
    adopted: int = 0  # groups of an earlier, killed run's blobs indexed by this run
    changed_names: tuple[str, ...] = ()
    vanished_names: tuple[str, ...] = ()
    mlflow_run_id: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)  # what this run's decoding depends on


# What makes two archive runs the same archive; everything else may change between runs.
IDENTITY_FIELDS = ("format", "codec", "cameras", "layout", "metrics")


@dataclass(frozen=True)
class ArchiveMeta:
    codec: CodecRecord  # the newest model (the latest run's)
    dataset_url: str  # provenance: where the source was read (absolute), not part of identity
    layout: str
    cameras: tuple[str, ...]
    num_groups: int = 0  # groups in the archive (readers count them from the index)
    shard_size: int = 4  # groups per shard task of the latest run
    content_digest: str = ""  # the latest run's source: group names, file names and byte sizes
    environment: dict[str, Any] = field(default_factory=dict)  # what decoding depends on
    format: int = ARCHIVE_FORMAT
    metrics: tuple[str, ...] = METRIC_COLUMNS
    created_by: str = "mvarchive"
    models: tuple[CodecRecord, ...] = ()  # every model a run used; index rows name theirs by digest
    runs: tuple[RunRecord, ...] = ()

    def all_models(self) -> tuple[CodecRecord, ...]:
        known = {m.weights_digest for m in self.models}
        return self.models + (() if self.codec.weights_digest in known else (self.codec,))

    def model(self, weights_digest: str) -> CodecRecord:
        for record in self.all_models():
            if record.weights_digest == weights_digest:
                return record
        raise ArchiveError(f"no model {weights_digest[:12]} recorded in the archive's metadata")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArchiveMeta:
        data = dict(data)
        data["codec"] = CodecRecord(**data["codec"])
        data["cameras"] = tuple(data["cameras"])
        data["metrics"] = tuple(data["metrics"])
        data["models"] = tuple(CodecRecord(**m) for m in data.get("models", ()))
        known = {f.name for f in dataclasses.fields(RunRecord)}  # history from a newer writer still reads
        data["runs"] = tuple(RunRecord(**{**{k: v for k, v in r.items() if k in known},
                                          "changed_names": tuple(r.get("changed_names", ())),
                                          "vanished_names": tuple(r.get("vanished_names", ()))})
                             for r in data.get("runs", ()))
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The fields that define the archive (models, paths, versions and group counts do not)."""
        return {"format": self.format, "codec": self.codec.name, "cameras": list(self.cameras),
                "layout": self.layout, "metrics": list(self.metrics)}

    def identity_difference(self, other: ArchiveMeta) -> str | None:
        """The first identity field that differs, in words; None for the same archive."""
        mine, theirs = self.identity(), other.identity()
        for name in IDENTITY_FIELDS:
            if mine[name] != theirs[name]:
                return f"{name} differs (archive: {_short(mine[name])}, this run: {_short(theirs[name])})"
        return None


def _short(value: Any, limit: int = 48) -> str:
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"  # a digest
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class GroupRecord:
    """Everything one encoded group contributes to the archive."""

    index: int  # position in the shard's job (ordering only)
    name: str
    sizes: list[tuple[int, int]]
    stream: bytes
    latents: dict[str, np.ndarray]
    fingerprint: Fingerprint
    metrics: dict[str, float] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    digest: str = ""  # the source group's content digest


def _read_meta(raw: Any, location: Location) -> ArchiveMeta:
    """Parse the metadata attribute, with one clear error for other format versions."""
    if not isinstance(raw, dict):
        raise ArchiveError(f"{location}: archive metadata is not an object")
    version = raw.get("format")
    if version != ARCHIVE_FORMAT:
        hint = (" (format 1 archives have no integrity digests: restore them with mvarchive 0.1)" if version == 1
                else f" (convert it: mvarchive migrate {location} NEW)" if version == 2 else "")
        raise ArchiveError(f"{location}: archive format {version}, this build reads format {ARCHIVE_FORMAT}{hint}")
    try:
        return ArchiveMeta.from_json(raw)
    except (TypeError, KeyError) as exc:
        raise ArchiveError(f"{location}: archive metadata is damaged ({exc})") from exc


def _open_root(location: Location, read_only: bool) -> zarr.Group | None:
    """The archive's root group, or None when there is no Zarr group there."""
    with _quiet():
        try:
            if read_only:
                return zarr.open_group(location.zarr_store(read_only=True), mode="r")
            return zarr.open_group(location.zarr_store(read_only=False), mode="r+", use_consolidated=False)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - zarr raises several types for "not a group"
            return None


def _has_entries(location: Location) -> bool:
    """Whether anything but a write lease is there."""
    fs, path = location.filesystem()
    try:
        entries = fs.ls(path, detail=False) if fs.isdir(path) else ([path] if fs.exists(path) else [])
    except FileNotFoundError:
        return False
    return any(not e.rstrip("/").endswith("/lease.json") for e in entries)


def blob_path(location: Location, blob: str) -> tuple[Any, str]:
    fs, root = location.filesystem()
    return fs, f"{root.rstrip('/')}/{SHARDS}/{blob}.bin"


def list_blobs(location: Location) -> list[str]:
    """Ids of every complete blob (temporary names of unfinished writes are not blobs)."""
    fs, root = location.filesystem()
    with contextlib.suppress(AttributeError):
        fs.invalidate_cache()
    try:
        paths = fs.ls(f"{root.rstrip('/')}/{SHARDS}", detail=False)
    except FileNotFoundError:
        return []
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in paths]
    return sorted(n[:-4] for n in names if n.endswith(".bin"))


class ArchiveWriter:
    """Creates an archive or reopens one to grow it. Workers call :meth:`write_shard`; the
    orchestrator calls everything else (index rows, runs, models, attributes)."""

    def __init__(self, location: Location, meta: ArchiveMeta, run_id: str | None = None) -> None:
        self.location = location
        self.meta = meta
        self.run_id = run_id

    @staticmethod
    def check_destination(location: Location, meta: ArchiveMeta) -> ArchiveMeta | None:
        """Refuse, before anything is written, a destination that holds something else: files
        that are not an archive, or an archive that differs in identity. Returns the existing
        archive's metadata (None when empty or missing)."""
        root = _open_root(location, read_only=True)
        if root is None:
            if _has_entries(location):
                raise ArchiveError(f"{location} exists and is not an mvarchive archive; refusing to write into it")
            return None
        existing = root.attrs.get("mvarchive")
        if existing is None:
            raise ArchiveError(f"{location} exists and is not an mvarchive archive; refusing to write into it")
        old = _read_meta(existing, location)
        difference = old.identity_difference(meta)
        if difference:
            raise ArchiveError(f"{location} holds a different archive job: {difference}; choose another destination")
        return old

    @classmethod
    def create_or_resume(cls, location: Location, meta: ArchiveMeta, names: Sequence[str] | None = None,
                         files: Sequence[Sequence[str]] | None = None) -> ArchiveWriter:
        """Make the skeleton, or check that an existing archive is the same one and reopen it
        under its own record (models and runs kept). ``names``/``files`` are accepted for
        format-2 callers and unused: groups are recorded as they are encoded."""
        old = cls.check_destination(location, meta)
        if old is not None:
            return cls(location, old)
        store = location.zarr_store(read_only=False)
        with _quiet():
            # mode "a": the folder may hold our lease already; check_destination saw no group
            root = zarr.open_group(store, mode="a", zarr_format=3)
            create_index(root, len(meta.cameras), len(meta.metrics))
            root.attrs["mvarchive"] = meta.to_json()  # written last: the skeleton is now valid
        return cls(location, meta)

    def _root(self) -> zarr.Group:
        root = _open_root(self.location, read_only=False)
        if root is None:
            raise ArchiveError(f"{self.location}: no archive there")
        return root

    def save_meta(self) -> None:
        with _quiet():
            self._root().attrs["mvarchive"] = self.meta.to_json()

    # -- runs and models (orchestrator) ---------------------------------------------------
    def begin_run(self, codec: CodecRecord | None = None, planned: int = 0, environment: dict[str, Any] | None = None,
                  **provenance: Any) -> str:
        """Record a new run (earlier runs still marked running were interrupted) and its model.
        The archive's ``environment`` stays the first run's; each run keeps its own."""
        codec = codec or self.meta.codec
        models = self.meta.all_models()
        if codec.weights_digest not in {m.weights_digest for m in models}:
            models = models + (codec,)
        runs = tuple(dataclasses.replace(r, status="interrupted") if r.status == "running" else r
                     for r in self.meta.runs)
        run_id = f"r{len(runs) + 1:04d}-{uuid.uuid4().hex[:6]}"
        runs += (RunRecord(id=run_id, started=_now(), model=codec.weights_digest, planned=planned,
                           environment=dict(environment or {})),)
        self.meta = dataclasses.replace(self.meta, codec=codec, models=models, runs=runs, **provenance)
        self.save_meta()
        self.run_id = run_id
        return run_id

    def finish_run(self, **counts: Any) -> RunRecord:
        """Mark this run finished with its counts (``added=``, ``vanished_names=``, ...)."""
        runs = list(self.meta.runs)
        i = next(i for i, r in enumerate(runs) if r.id == self.run_id)
        runs[i] = dataclasses.replace(runs[i], status="finished", finished=_now(), **counts)
        self.meta = dataclasses.replace(self.meta, runs=tuple(runs))
        self.save_meta()
        return runs[i]

    def embed_checkpoint(self, data: bytes, weights_digest: str | None = None) -> str:
        """Store a model's checkpoint inside the archive (restores need nothing else)."""
        rel = embedded_path(weights_digest or self.meta.codec.weights_digest)
        fs, root = self.location.filesystem()
        path = f"{root.rstrip('/')}/{rel}"
        if fs.exists(path):
            return rel
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
        return rel

    def has_embedded_checkpoint(self, record: CodecRecord | None = None) -> bool:
        record = record or self.meta.codec
        if not record.embedded:
            return False
        fs, root = self.location.filesystem()
        return fs.exists(f"{root.rstrip('/')}/{record.embedded}")

    # -- shards (workers) ------------------------------------------------------------------
    def write_shard(self, shard_id: int, records: Iterable[GroupRecord], run_id: str | None = None) -> list[IndexRow]:
        """Write one shard's blob whole and return its index rows. A blob that already exists
        (a retried task whose first try finished writing) is not written again."""
        run = run_id or self.run_id
        if run is None:
            raise ArchiveError(f"{self.location}: shard {shard_id} written outside a run (call begin_run first)")
        blob = f"{run}-{shard_id:05d}"
        fs, path = blob_path(self.location, blob)
        if fs.exists(path):
            return IndexRow.from_header(read_header(fs, path), blob)
        records = sorted(records, key=lambda r: r.index)
        k = len(self.meta.cameras)
        groups = []
        for r in records:
            if len(r.sizes) != k or (r.files and len(r.files) != k):
                raise ArchiveError(f"shard {shard_id}: group {r.name!r} has {len(r.sizes)} views, cameras are {k}")
            groups.append(BlobGroup(r.name, tuple(r.files) or tuple(f"{r.name}/{c}" for c in self.meta.cameras),
                                    tuple((int(h), int(w)) for h, w in r.sizes), bytes(r.stream), r.latents,
                                    r.fingerprint, r.metrics, r.digest))
        data, header = pack_blob(groups, {"format": ARCHIVE_FORMAT, "run": run, "shard": shard_id,
                                          "model": self.meta.codec.weights_digest, "cameras": list(self.meta.cameras)})
        if self.location.is_local:
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{path[:-4]}.{uuid.uuid4().hex[:8]}.tmp"
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        else:
            fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all
        return IndexRow.from_header(header, blob)

    # -- index (orchestrator) ----------------------------------------------------------------
    def append_rows(self, rows: Sequence[IndexRow]) -> int:
        with _quiet():
            root = self._root()
            count = append_rows(root, rows, self.meta.metrics)
        return count

    def adopt_orphans(self) -> list[IndexRow]:
        """Index the groups of blobs that have no rows (a run killed before indexing them)."""
        with _quiet():
            known = read_index(self._root(), self.meta.metrics).blobs()
        rows: list[IndexRow] = []
        for blob in list_blobs(self.location):
            if blob not in known:
                fs, path = blob_path(self.location, blob)
                try:
                    rows += IndexRow.from_header(read_header(fs, path), blob)
                except (BlobError, ValueError, KeyError):
                    continue  # not ours to judge here; readers report it
        if rows:
            self.append_rows(rows)
        return rows

    def finalize(self) -> None:
        """Consolidate metadata (readers then open the archive in one request)."""
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
    fingerprint: Fingerprint
    model: str = ""  # weights digest of the model that encoded it
    run: str = ""


class ArchiveReader:
    """Read-only access to an archive: every group whose blob exists, the newest row of each
    name. Groups of blobs without index rows (a killed run) are read from the blob headers."""

    def __init__(self, location: Location) -> None:
        self.location = location
        root = _open_root(location, read_only=True)
        if root is None:
            if _has_entries(location):
                raise ArchiveError(f"{location}: not a readable archive (no Zarr group there)")
            raise ArchiveError(f"{location}: no archive there")
        self.root = root
        raw = root.attrs.get("mvarchive")
        if raw is None:
            raise ArchiveError(f"{location}: not an mvarchive archive (no 'mvarchive' attributes)")
        meta = _read_meta(raw, location)
        with _quiet():
            self._index = read_index(root, meta.metrics)
            indexed_blobs = self._index.blobs()
        self.orphans: list[IndexRow] = []
        for blob in list_blobs(location):
            if blob not in indexed_blobs:
                fs, path = blob_path(location, blob)
                try:
                    self.orphans += IndexRow.from_header(read_header(fs, path), blob)
                except (BlobError, ValueError, KeyError) as exc:
                    raise ArchiveError(f"{location}: shard object {blob}.bin is damaged ({exc})") from exc
        names = [str(n) for n in self._index.column("name")] if self._index.rows else []
        names += [r.name for r in self.orphans]
        newest: dict[str, int] = {}
        for i, name in enumerate(names):
            newest[name] = i
        self.names: list[str] = list(newest)
        self._rows: list[int] = [newest[n] for n in self.names]
        self.meta = dataclasses.replace(meta, num_groups=len(self.names))
        self.complete = np.ones(len(self.names), dtype=bool)

    # -- rows -------------------------------------------------------------------------------
    def row(self, index: int) -> IndexRow:
        i = self._rows[index]
        return self._index.row(i) if i < self._index.rows else self.orphans[i - self._index.rows]

    def _column(self, name: str, index: int, bulk: bool = True) -> Any:
        """A group's value of an index column; ``bulk`` reads (and caches) the whole column."""
        i = self._rows[index]
        if i < self._index.rows:
            return self._index.column(name)[i] if bulk else self._index.value(name, i)
        row = self.orphans[i - self._index.rows]
        return {"digest": row.digest, "model": row.model, "run": row.run}[name]

    def digests(self) -> dict[str, str]:
        """Group name -> content digest of the source group when it was (last) encoded."""
        with _quiet():
            return {n: str(self._column("digest", i)) for i, n in enumerate(self.names)}

    def models_of(self, indices: Sequence[int]) -> dict[str, list[int]]:
        """Weights digest -> the given groups it encoded, in the given order."""
        out: dict[str, list[int]] = {}
        with _quiet():
            bulk = len(indices) > 8  # a few groups: their chunks only
            for i in indices:
                out.setdefault(str(self._column("model", i, bulk)), []).append(i)
        return out

    def row_names(self) -> list[str]:
        """The group name of every row, superseded and unindexed ones included (a name seen
        twice was encoded twice)."""
        with _quiet():
            names = [str(n) for n in self._index.column("name")] if self._index.rows else []
        return names + [r.name for r in self.orphans]

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.meta.cameras

    @property
    def runs(self) -> tuple[RunRecord, ...]:
        return self.meta.runs

    @property
    def indexed_rows(self) -> int:
        return self._index.rows

    def is_complete(self) -> bool:
        """The latest run finished, or every group it set out to encode has its blob."""
        if not self.meta.runs:
            return True
        last = self.meta.runs[-1]
        if last.status == "finished":
            return True
        with _quiet():
            mine = sum(str(self._column("run", i)) == last.id for i in range(len(self.names)))
        return mine >= last.planned

    def complete_indices(self) -> list[int]:
        return list(range(len(self.names)))

    def select(self, groups: Sequence[str] | None = None) -> list[int]:
        """Indices of the named groups (all when None); unknown names are errors."""
        if groups is None:
            return self.complete_indices()
        lookup = {name: i for i, name in enumerate(self.names)}
        missing = [g for g in groups if g not in lookup]
        if missing:
            sample = ", ".join(self.names[:8]) + (" ..." if len(self.names) > 8 else "")
            raise ArchiveError(f"{self.location}: no group(s) {missing}; groups include: {sample}")
        return [lookup[g] for g in groups]

    def camera_indices(self, cameras: Sequence[str] | None) -> list[int]:
        if cameras is None:
            return list(range(len(self.cameras)))
        unknown = [c for c in cameras if c not in self.cameras]
        if unknown:
            raise ArchiveError(f"{self.location}: no camera(s) {unknown}; cameras: {list(self.cameras)}")
        return [self.cameras.index(c) for c in cameras]

    def _ranges(self, pieces: Sequence[tuple[str, int, int]]) -> list[bytes]:
        """Byte ranges (blob, offset, length) in one batched request."""
        if not pieces:
            return []
        fs, _ = self.location.filesystem()
        paths = [blob_path(self.location, b)[1] for b, _, _ in pieces]
        starts = [o for _, o, _ in pieces]
        ends = [o + n for _, o, n in pieces]
        return [bytes(d) for d in fs.cat_ranges(paths, starts, ends)]

    def read_groups(self, indices: Sequence[int]) -> list[StoredGroup]:
        """Read groups by index: one byte range of one blob each, fetched together."""
        indices = list(indices)
        with _quiet():
            rows = [self.row(i) for i in indices]
        data = self._ranges([(r.blob, r.record[0], r.record[1]) for r in rows])
        out = []
        for index, row, raw in zip(indices, rows, data):
            try:
                stream, fingerprint = unpack_record(raw)
            except BlobError:  # decoding an empty stream reports the group as undecodable
                stream, fingerprint = b"", Fingerprint((), (), (), 0)
            out.append(StoredGroup(index=index, name=row.name, files=row.files, sizes=row.sizes, stream=stream,
                                   metrics=dict(row.metrics), fingerprint=fingerprint, model=row.model, run=row.run))
        return out

    def read_names(self, indices: Sequence[int]) -> list[tuple[str, tuple[str, ...]]]:
        """(group name, file names) of the given groups, without reading their streams."""
        with _quiet():
            return [(self.names[i], self.row(i).files) for i in indices]

    def read_latents(self, index: int) -> dict[str, np.ndarray]:
        with _quiet():
            row = self.row(index)
        return unpack_latents(self._ranges([(row.blob, row.latents[0], row.latents[1])])[0])

    def read_embedded_checkpoint(self, record: CodecRecord | None = None) -> bytes | None:
        """A model's embedded checkpoint (the newest model's by default), or None."""
        record = record or self.meta.codec
        if not record.embedded:
            return None
        fs, root = self.location.filesystem()
        try:
            return fs.cat_file(f"{root.rstrip('/')}/{record.embedded}")
        except FileNotFoundError:
            return None

    def metrics_table(self) -> np.ndarray:
        with _quiet():
            if not self.names:
                return np.zeros((0, len(self.meta.metrics)))
            rows = np.array(self._rows)
            table = np.full((len(rows), len(self.meta.metrics)), np.nan)
            indexed = rows < self._index.rows
            if indexed.any():
                table[indexed] = self._index.column("metrics")[rows[indexed]]
            for j in np.flatnonzero(~indexed):
                row = self.orphans[rows[j] - self._index.rows]
                table[j] = [row.metrics.get(c, np.nan) for c in self.meta.metrics]
        return table

