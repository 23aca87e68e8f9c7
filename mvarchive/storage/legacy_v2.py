"""Format 2 archives (mvarchive before format 3), kept read/write only for `mvarchive migrate`,
tests that make a format-2 archive to migrate, and benchmarks/layout_scale.py. Not used by
the flows. Unchanged from commit f2d54ba except for this note and the shared ArchiveError.

Layout (documented for users in docs/archive-format.md)::

    <root>/                      group; attrs["mvarchive"] = ArchiveMeta as JSON
      groups/name    str    (G,)       chunks (S,)     group names, dataset order
      groups/files   str    (G, K)     chunks (S, K)   source file of each view, relative to the dataset
      groups/size    int32  (G, K, 2)  chunks (S, K, 2) original (height, width) of each view
      groups/stream  bytes  (G,)       chunks (S,)     one container per group (codecs/bitstream.py)
      groups/metrics float64(G, Q)     chunks (S, Q)   per-group metrics, columns in meta.metrics
      groups/pixels_sha256  str (G, K) chunks (S, K)   digest of the encoder's uint8 reconstruction
      groups/symbols_sha256 str (G, K) chunks (S, K)   digest of the coded latent symbols
      groups/thumbnail bytes (G,)      chunks (S,)     64x64-tile means of every view (integrity.py)
      groups/threads int16  (G,)       chunks (S,)     torch threads of the encoder's synthesis
      model/checkpoint.pt              the codec's weights, embedded (not a Zarr node)
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.dtype import VariableLengthBytes

from mvarchive.integrity import Fingerprint

from .errors import ArchiveError
from .location import Location
from .zarr_nodes import array_at, group_at, read

ARCHIVE_FORMAT = 2
METRIC_COLUMNS = ("bytes", "bpp", "psnr", "ms_ssim", "encode_s")
EMBEDDED_CHECKPOINT = "model/checkpoint.pt"




@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Zarr warns that string/bytes dtypes have no published v3 spec; that is a documented choice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        warnings.filterwarnings("ignore", category=FutureWarning, module="zarr")
        yield


@dataclass(frozen=True)
class CodecRecord:
    """The codec an archive was written with, and where its weights can be found again.

    ``weights_digest`` identifies the weights; the rest only helps find them: ``embedded``
    is the archive-relative path of a copy stored in the archive, ``source`` the absolute
    URL they were read from (provenance), ``seed`` set for an untrained codec (tests only).
    """

    name: str
    codec_id: int
    preset: str
    config: dict[str, Any]
    weights_digest: str
    source: str | None = None
    embedded: str | None = None
    seed: int | None = None


# What makes two archive runs the same job (a rerun resumes); everything else is provenance.
IDENTITY_FIELDS = ("format", "codec", "preset", "codec_config", "weights_digest", "cameras", "num_groups",
                   "content_digest", "shard_size", "metrics")


@dataclass(frozen=True)
class ArchiveMeta:
    codec: CodecRecord
    dataset_url: str  # provenance: where the source was read (absolute), not part of identity
    layout: str
    cameras: tuple[str, ...]
    num_groups: int
    shard_size: int
    content_digest: str = ""  # group names, file names and byte sizes of the source
    environment: dict[str, Any] = field(default_factory=dict)  # what decoding depends on
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
    def from_json(cls, data: dict[str, Any]) -> ArchiveMeta:
        data = dict(data)
        data["codec"] = CodecRecord(**data["codec"])
        data["cameras"] = tuple(data["cameras"])
        data["metrics"] = tuple(data["metrics"])
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The fields that define the job (paths, versions and model locations do not)."""
        return {
            "format": self.format, "codec": self.codec.name, "preset": self.codec.preset,
            "codec_config": self.codec.config, "weights_digest": self.codec.weights_digest,
            "cameras": list(self.cameras), "num_groups": self.num_groups, "content_digest": self.content_digest,
            "shard_size": self.shard_size, "metrics": list(self.metrics),
        }

    def identity_difference(self, other: ArchiveMeta) -> str | None:
        """The first identity field that differs, in words; None for the same job."""
        mine, theirs = self.identity(), other.identity()
        for name in IDENTITY_FIELDS:
            if mine[name] != theirs[name]:
                what = "dataset content (group names, files or file sizes)" if name == "content_digest" else name
                return f"{what} differs (archive: {_short(mine[name])}, this run: {_short(theirs[name])})"
        return None


def _short(value: Any, limit: int = 48) -> str:
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"  # a digest
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class GroupRecord:
    """Everything one encoded group contributes to the archive."""

    index: int
    name: str
    sizes: list[tuple[int, int]]
    stream: bytes
    latents: dict[str, np.ndarray]
    fingerprint: Fingerprint
    metrics: dict[str, float] = field(default_factory=dict)


def latent_path(group_index: int, name: str) -> str:
    return f"latents/{group_index:08d}/{name}"


class ArchiveWriter:
    """Creates an archive (or reopens one to resume) and writes whole shards."""

    def __init__(self, location: Location, meta: ArchiveMeta) -> None:
        self.location = location
        self.meta = meta

    @staticmethod
    def check_destination(location: Location, meta: ArchiveMeta) -> None:
        """Refuse, before anything is written, a destination that holds something else: files
        that are not an archive, or an archive of another job. Empty or missing is fine."""
        with _quiet():
            try:
                root = zarr.open_group(location.zarr_store(read_only=True), mode="r", use_consolidated=False)
            except FileNotFoundError:
                root = None
            except Exception:  # noqa: BLE001 - zarr raises several types for "not a group"
                root = None
        if root is None:
            fs, path = location.filesystem()
            try:
                entries = fs.ls(path, detail=False) if fs.isdir(path) else ([path] if fs.exists(path) else [])
            except FileNotFoundError:
                entries = []
            if entries:
                raise ArchiveError(f"{location} exists and is not an mvarchive archive; refusing to write into it")
            return
        existing = root.attrs.get("mvarchive")
        if existing is None:
            raise ArchiveError(f"{location} exists and is not an mvarchive archive; refusing to write into it")
        difference = _read_meta(existing, location).identity_difference(meta)
        if difference:
            raise ArchiveError(f"{location} holds a different archive job: {difference}; choose another destination")

    def has_embedded_checkpoint(self) -> bool:
        if not self.meta.codec.embedded:
            return False
        fs, root = self.location.filesystem()
        return fs.exists(f"{root.rstrip('/')}/{self.meta.codec.embedded}")

    @classmethod
    def create_or_resume(
        cls, location: Location, meta: ArchiveMeta, names: Sequence[str], files: Sequence[Sequence[str]]
    ) -> ArchiveWriter:
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
                old = _read_meta(existing, location)
                difference = old.identity_difference(meta)
                if difference:
                    raise ArchiveError(
                        f"{location} holds a different archive job: {difference}; choose another destination"
                    )
                return cls(location, old)  # resume under the archive's own record (its provenance stays)
            root = zarr.open_group(store, mode="w-", zarr_format=3)
            g, k, s = meta.num_groups, len(meta.cameras), meta.shard_size
            groups = root.create_group("groups")
            name_arr = groups.create_array("name", shape=(g,), chunks=(s,), dtype=str)
            file_arr = groups.create_array("files", shape=(g, k), chunks=(s, k), dtype=str)
            groups.create_array("size", shape=(g, k, 2), chunks=(s, k, 2), dtype="int32", fill_value=0)
            groups.create_array("stream", shape=(g,), chunks=(s,), dtype=VariableLengthBytes())
            groups.create_array(
                "metrics", shape=(g, len(meta.metrics)), chunks=(s, len(meta.metrics)), dtype="float64",
                fill_value=np.nan,
            )
            groups.create_array("pixels_sha256", shape=(g, k), chunks=(s, k), dtype=str)
            groups.create_array("symbols_sha256", shape=(g, k), chunks=(s, k), dtype=str)
            groups.create_array("thumbnail", shape=(g,), chunks=(s,), dtype=VariableLengthBytes())
            groups.create_array("threads", shape=(g,), chunks=(s,), dtype="int16", fill_value=0)
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
            done = read(array_at(self._root(), "shards/complete"))
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
            array_at(root, "groups/size")[start:stop] = np.array([r.sizes for r in records], dtype=np.int32)
            streams = np.empty(len(records), dtype=object)
            streams[:] = [bytes(r.stream) for r in records]
            array_at(root, "groups/stream")[start:stop] = streams  # slice write keeps trailing NUL bytes
            array_at(root, "groups/metrics")[start:stop] = np.array(
                [[r.metrics.get(col, np.nan) for col in self.meta.metrics] for r in records], dtype=np.float64
            )
            k = len(self.meta.cameras)
            array_at(root, "groups/pixels_sha256")[start:stop] = np.array(
                [list(r.fingerprint.pixels) for r in records], dtype=object).reshape(len(records), k)
            array_at(root, "groups/symbols_sha256")[start:stop] = np.array(
                [list(r.fingerprint.symbols) for r in records], dtype=object).reshape(len(records), k)
            thumbs = np.empty(len(records), dtype=object)
            thumbs[:] = [_pack_thumbnails(r.fingerprint.thumbnails) for r in records]
            array_at(root, "groups/thumbnail")[start:stop] = thumbs
            threads = np.array([r.fingerprint.threads for r in records], dtype=np.int16)
            array_at(root, "groups/threads")[start:stop] = threads
            array_at(root, "shards/complete")[shard_id : shard_id + 1] = np.array([True])

    def finalize(self) -> None:
        """Consolidate metadata once all shards are written (readers then open it in one request)."""
        with _quiet():
            zarr.consolidate_metadata(self.location.zarr_store(read_only=False))


    def embed_checkpoint(self, data: bytes) -> str:
        """Store the codec's checkpoint inside the archive (restores need nothing else)."""
        fs, root = self.location.filesystem()
        path = f"{root.rstrip('/')}/{EMBEDDED_CHECKPOINT}"
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = path + ".tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
        return EMBEDDED_CHECKPOINT


def _pack_thumbnails(thumbs: Sequence[bytes]) -> bytes:
    """Per-view thumbnails as one value: a uint32 length before each."""
    return b"".join(len(t).to_bytes(4, "little") + t for t in thumbs)


def _unpack_thumbnails(data: bytes) -> tuple[bytes, ...]:
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "little")
        out.append(bytes(data[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return tuple(out)


def _read_meta(raw: Any, location: Location) -> ArchiveMeta:
    """Parse the metadata attribute, with one clear error for other format versions."""
    if not isinstance(raw, dict):
        raise ArchiveError(f"{location}: archive metadata is not an object")
    version = raw.get("format")
    if version != ARCHIVE_FORMAT:
        hint = " (format 1 archives have no integrity digests: restore them with mvarchive 0.1)" if version == 1 else ""
        raise ArchiveError(f"{location}: archive format {version}, this build reads format {ARCHIVE_FORMAT}{hint}")
    try:
        return ArchiveMeta.from_json(raw)
    except (TypeError, KeyError) as exc:
        raise ArchiveError(f"{location}: archive metadata is damaged ({exc})") from exc


@dataclass(frozen=True)
class StoredGroup:
    index: int
    name: str
    files: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    stream: bytes
    metrics: dict[str, float]
    fingerprint: Fingerprint


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
            self.meta = _read_meta(raw, location)
            self.names: list[str] = [str(n) for n in read(array_at(self.root, "groups/name"))]
            self.complete = read(array_at(self.root, "shards/complete")).astype(bool)

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
            files = array_at(self.root, "groups/files")
            sizes = array_at(self.root, "groups/size")
            streams = array_at(self.root, "groups/stream")
            metrics = array_at(self.root, "groups/metrics")
            pixels, symbols = array_at(self.root, "groups/pixels_sha256"), array_at(self.root, "groups/symbols_sha256")
            thumbs, threads = array_at(self.root, "groups/thumbnail"), array_at(self.root, "groups/threads")
            for start, stop in _runs(sorted(set(indices))):
                run = slice(start, stop)
                f, s, b, m = read(files, run), read(sizes, run), read(streams, run), read(metrics, run)
                px, sy, th, nt = read(pixels, run), read(symbols, run), read(thumbs, run), read(threads, run)
                for offset, index in enumerate(range(start, stop)):
                    out.append(StoredGroup(
                        index=index,
                        name=self.names[index],
                        files=tuple(str(x) for x in f[offset]),
                        sizes=tuple((int(h), int(w)) for h, w in s[offset]),
                        stream=bytes(b[offset]),
                        metrics={c: float(v) for c, v in zip(self.meta.metrics, m[offset])},
                        fingerprint=Fingerprint(
                            pixels=tuple(str(x) for x in px[offset]),
                            symbols=tuple(str(x) for x in sy[offset]),
                            thumbnails=_unpack_thumbnails(bytes(th[offset])),
                            threads=int(nt[offset]),
                        ),
                    ))
        order = {index: i for i, index in enumerate(indices)}
        return sorted(out, key=lambda g: order.get(g.index, 0))

    def read_names(self, indices: Sequence[int]) -> list[tuple[str, tuple[str, ...]]]:
        """(group name, file names) of the given groups, without reading their streams."""
        with _quiet():
            files = array_at(self.root, "groups/files")
            rows: dict[int, tuple[str, ...]] = {}
            for start, stop in _runs(sorted(set(indices))):
                for offset, row in enumerate(read(files, slice(start, stop))):
                    rows[start + offset] = tuple(str(x) for x in row)
        return [(self.names[i], rows[i]) for i in indices]

    def read_latents(self, index: int) -> dict[str, np.ndarray]:
        with _quiet():
            group = group_at(self.root, f"latents/{index:08d}")
            return {name: np.asarray(arr[...]) for name, arr in group.arrays()}

    def read_embedded_checkpoint(self) -> bytes | None:
        """The embedded checkpoint's bytes, or None when the archive has none."""
        if not self.meta.codec.embedded:
            return None
        fs, root = self.location.filesystem()
        try:
            return fs.cat_file(f"{root.rstrip('/')}/{self.meta.codec.embedded}")
        except FileNotFoundError:
            return None

    def metrics_table(self) -> np.ndarray:
        with _quiet():
            return read(array_at(self.root, "groups/metrics"))


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs
