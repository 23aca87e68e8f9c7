"""The archive flow: dataset -> shards of groups -> encode tasks on Dask -> Zarr archive.

Everything that can be wrong with the request (codec, model, dataset, destination) is
checked by :func:`plan_archive` before any service starts or any byte is written; the
CLI calls it first for fast, one-line errors and the flow calls it again for itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from prefect import flow
from prefect.futures import as_completed

from mvarchive.codecs.determinism import decode_policy
from mvarchive.codecs import CodecRef, codec_from_checkpoint_bytes, get_spec, load_codec, read_checkpoint_bytes, weights_digest
from mvarchive.datasets import DatasetError, DatasetIndex, discover_dataset
from mvarchive.datasets.images import MAX_VIEW_PIXELS
from mvarchive.progress import progress_bar
from mvarchive.reporting import archive_summary, summary_markdown
from mvarchive.storage import (
    EMBEDDED_CHECKPOINT, ArchiveError, ArchiveMeta, ArchiveReader, ArchiveWriter, CodecRecord, Location,
)
from mvarchive.storage.location import absolute_url
from mvarchive.storage.options import StorageOptions, as_options
from mvarchive.tasks.encode import EncodeShardJob, encode_shard
from mvarchive.tasks.preflight import PreflightJob, check_groups
from mvarchive.tracking import TrackingConfig, environment_params, tracked_run

log = logging.getLogger("mvarchive.archive")


@dataclass
class ArchiveConfig:
    """What to archive, where, and with which codec."""

    source: str
    dest: str
    codec: str = "ldmic-fast"
    preset: str = "paper"
    checkpoint: str | None = None
    untrained: bool = False  # encode with seeded random weights: tests only, never by default
    layout: str = "auto"
    shard_size: int = 4
    seed: int = 0  # weights of an untrained codec come from this seed
    embed_model: bool = True  # copy the checkpoint into the archive: it restores anywhere
    max_pixels: int | None = MAX_VIEW_PIXELS  # per view; larger images are refused, not run out of memory
    source_options: StorageOptions = field(default_factory=StorageOptions)
    dest_options: StorageOptions = field(default_factory=StorageOptions)

    def __post_init__(self) -> None:
        self.source_options = as_options(self.source_options)
        self.dest_options = as_options(self.dest_options)


@dataclass
class ArchiveReport:
    archive: str
    summary: dict[str, float]
    shards_written: int
    shards_skipped: int
    wall_s: float
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class ArchivePlan:
    """A validated archive job: what the flow needs, nothing written yet."""

    index: DatasetIndex
    meta: ArchiveMeta
    location: Location
    checkpoint_bytes: bytes | None
    codec: CodecRef  # how workers load the codec (after the checkpoint is embedded)


def content_digest(index: DatasetIndex) -> str:
    """SHA-256 of the source's content as listed: group names, file names and byte sizes."""
    rows = [[g.name, [[v.camera, v.name, v.size] for v in g.views]] for g in index.groups]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def plan_archive(config: ArchiveConfig) -> ArchivePlan:
    """Check the whole request and build the archive's metadata; writes nothing."""
    if config.shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {config.shard_size}")
    spec = get_spec(config.codec)
    if config.preset not in spec.presets:
        raise KeyError(f"codec {config.codec!r} has no preset {config.preset!r}; presets: {', '.join(spec.presets)}")
    if config.checkpoint is None and not config.untrained:
        raise ArchiveError(
            f"no model given for codec {config.codec!r}: pass --checkpoint PATH (from `mvarchive train`); "
            "--untrained encodes with random weights and is for tests only"
        )
    if config.checkpoint is not None and config.untrained:
        raise ValueError("pass either --checkpoint or --untrained, not both")
    source_options = config.source_options.reveal()
    source = absolute_url(config.source)
    index = discover_dataset(source, config.layout, source_options)
    location = Location(absolute_url(config.dest), config.dest_options.reveal())
    checkpoint_bytes = None
    if config.checkpoint is not None:
        checkpoint_url = absolute_url(config.checkpoint)
        checkpoint_bytes = read_checkpoint_bytes(checkpoint_url)
        codec = codec_from_checkpoint_bytes(checkpoint_bytes, config.checkpoint, name=config.codec)
        codec.eval()
    else:
        checkpoint_url = None
        codec = load_codec(name=config.codec, preset=config.preset, seed=config.seed)
    codec.check_views(len(index.cameras))
    identity = codec.identity
    digest = weights_digest(codec)
    embedded = EMBEDDED_CHECKPOINT if (checkpoint_bytes is not None and config.embed_model) else None
    meta = ArchiveMeta(
        codec=CodecRecord(
            name=identity.name, codec_id=identity.codec_id, preset=identity.preset, config=dict(identity.config),
            weights_digest=digest, source=checkpoint_url, embedded=embedded,
            seed=config.seed if checkpoint_bytes is None else None,
        ),
        dataset_url=source,
        layout=index.layout,
        cameras=tuple(index.cameras),
        num_groups=len(index.groups),
        shard_size=config.shard_size,
        content_digest=content_digest(index),
        environment=decode_policy(),
    )
    ArchiveWriter.check_destination(location, meta)
    if embedded:
        ref = CodecRef(identity.name, identity.preset, location.child(embedded).url, digest=digest,
                       storage_options=StorageOptions(location.storage_options))
    else:
        ref = CodecRef(identity.name, identity.preset, checkpoint_url, config.seed, digest=digest)
    return ArchivePlan(index, meta, location, checkpoint_bytes, ref)


def pending_groups(plan: ArchivePlan) -> list[int]:
    """Groups of shards not yet complete in an existing archive (all groups for a new one)."""
    try:
        done = ArchiveReader(plan.location).complete
    except ArchiveError:
        return list(range(plan.meta.num_groups))
    return [i for i in range(plan.meta.num_groups) if not done[plan.meta.shard_of(i)]]


def preflight(plan: ArchivePlan, config: ArchiveConfig, show_progress: bool, groups_per_task: int = 16) -> None:
    """Load every image still to be encoded (on the workers) and refuse the whole run, before
    anything is written, if any group cannot be archived."""
    pending = pending_groups(plan)
    chunks = [pending[i : i + groups_per_task] for i in range(0, len(pending), groups_per_task)]
    futures = [
        check_groups.submit(PreflightJob(tuple(plan.index.groups[i] for i in chunk), config.source_options,
                                         config.max_pixels))
        for chunk in chunks
    ]
    problems: list[str] = []
    with progress_bar("check source", total=len(pending), enabled=show_progress and len(pending) > 64) as bar:
        for future, chunk in zip(futures, chunks):
            result = future.result()
            problems += result.problems
            for notice in result.notices:
                log.warning("%s", notice)
            bar.advance(len(chunk))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise DatasetError(f"{len(problems)} group(s) cannot be archived, nothing was written: {shown}")


@flow(name="archive-dataset", log_prints=True)
def archive_dataset(config: ArchiveConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> ArchiveReport:
    """Encode every group of a dataset into an archive; completed shards of an earlier,
    interrupted run are kept and skipped."""
    started = time.perf_counter()
    plan = plan_archive(config)
    index, location = plan.index, plan.location
    preflight(plan, config, show_progress)
    writer = ArchiveWriter.create_or_resume(
        location, plan.meta, names=[g.name for g in index.groups], files=[[v.name for v in g.views] for g in index.groups],
    )
    meta = writer.meta
    if plan.checkpoint_bytes is not None and meta.codec.embedded and not writer.has_embedded_checkpoint():
        writer.embed_checkpoint(plan.checkpoint_bytes)
    done = writer.completed_shards()
    pending = [s for s in range(meta.num_shards) if s not in done]
    with tracked_run(tracking, f"archive {config.codec}", "archive") as logger:
        futures = [
            encode_shard.submit(EncodeShardJob(
                archive=location, meta=meta, shard_id=shard,
                groups=tuple(index.groups[i] for i in meta.shard_range(shard)),
                codec=plan.codec, source_options=config.source_options, max_pixels=config.max_pixels,
            ))
            for shard in pending
        ]
        with progress_bar(f"archive {config.codec}", total=meta.num_shards, enabled=show_progress) as bar:
            bar.advance(len(done))
            for future in as_completed(futures):
                future.result()
                bar.advance(1)
        writer.finalize()
        summary = archive_summary(ArchiveReader(location))
        report = ArchiveReport(location.url, summary, len(pending), len(done), time.perf_counter() - started)
        if logger:
            logger.log_params({
                "codec": meta.codec.name, "preset": meta.codec.preset, "weights_digest": meta.codec.weights_digest,
                "checkpoint": meta.codec.source or "untrained", "model_embedded": bool(meta.codec.embedded),
                "dataset_url": meta.dataset_url, "layout": meta.layout, "content_digest": meta.content_digest,
                "shard_size": meta.shard_size, "cameras": ",".join(meta.cameras), "archive": location.url,
                **environment_params(),
            })
            logger.log_metrics({**summary, "wall_s": report.wall_s})
            logger.log_text(summary_markdown([(meta.codec.name, summary)]), "summary.md")
            report.mlflow_run_id = logger.run_id
        return report
