"""Format 2 -> format 3, without re-encoding: every group's stream, latents, fingerprints,
sizes, file names and metrics are copied into blobs of a new archive; the model's embedded
checkpoint is copied too. Format 2 recorded no per-group content digest, so migrated groups
carry none: a later ``archive`` run treats them as unchanged (it can only add groups)."""

from __future__ import annotations

from dataclasses import dataclass

from . import legacy_v2
from .archive import ArchiveMeta, ArchiveWriter, CodecRecord, GroupRecord, embedded_path
from .errors import ArchiveError
from .location import Location


@dataclass(frozen=True)
class MigrationResult:
    groups: int
    blobs: int
    run_id: str


def migrate_v2(old: Location, new: Location, shard_size: int = 64) -> MigrationResult:
    """Copy the complete groups of a format-2 archive at ``old`` into a new archive at ``new``."""
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    reader = legacy_v2.ArchiveReader(old)
    meta2 = reader.meta
    if ArchiveWriter.check_destination(new, _meta(meta2)) is not None:
        raise ArchiveError(f"{new} already holds an archive; migrate into a new location")
    meta = _meta(meta2)
    writer = ArchiveWriter.create_or_resume(new, meta)
    indices = reader.complete_indices()
    run_id = writer.begin_run(meta.codec, planned=len(indices))
    checkpoint = reader.read_embedded_checkpoint()
    if checkpoint is not None and meta.codec.embedded:
        writer.embed_checkpoint(checkpoint, meta.codec.weights_digest)
    rows = []
    chunks = [indices[i : i + shard_size] for i in range(0, len(indices), shard_size)]
    for shard, chunk in enumerate(chunks):
        records = [
            GroupRecord(index=n, name=g.name, sizes=list(g.sizes), stream=g.stream,
                        latents=reader.read_latents(g.index), fingerprint=g.fingerprint, metrics=g.metrics,
                        files=g.files, digest="")
            for n, g in enumerate(reader.read_groups(chunk))
        ]
        rows += writer.write_shard(shard, records)
    writer.append_rows(rows)
    writer.finish_run(added=len(rows))
    writer.finalize()
    return MigrationResult(len(rows), len(chunks), run_id)


def _meta(old: legacy_v2.ArchiveMeta) -> ArchiveMeta:
    c = old.codec
    record = CodecRecord(c.name, c.codec_id, c.preset, dict(c.config), c.weights_digest, source=c.source,
                         embedded=embedded_path(c.weights_digest) if c.embedded else None, seed=c.seed)
    return ArchiveMeta(codec=record, dataset_url=old.dataset_url, layout=old.layout, cameras=old.cameras,
                       num_groups=old.num_groups, shard_size=old.shard_size, content_digest=old.content_digest,
                       environment=dict(old.environment), metrics=old.metrics, models=(record,))
