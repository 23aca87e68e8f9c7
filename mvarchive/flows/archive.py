"""The archive flow: dataset -> shards of groups -> encode tasks on Dask -> Zarr archive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import flow
from prefect.futures import as_completed

from mvarchive.codecs import CodecRef, MultiViewCodec, weights_digest
from mvarchive.datasets import DatasetIndex, discover_dataset
from mvarchive.progress import progress_bar
from mvarchive.storage import ArchiveMeta, ArchiveReader, ArchiveWriter, CodecRecord, Location
from mvarchive.tasks.encode import EncodeShardJob, encode_shard
from mvarchive.tracking import TrackingConfig, environment_params, tracked_run
from mvarchive.reporting import archive_summary, summary_markdown


@dataclass
class ArchiveConfig:
    """What to archive, where, and with which codec."""

    source: str
    dest: str
    codec: str = "ldmic-fast"
    preset: str = "paper"
    checkpoint: str | None = None
    layout: str = "auto"
    shard_size: int = 4
    seed: int = 0  # weights of an untrained codec (no checkpoint) come from this seed
    source_options: dict = field(default_factory=dict)
    dest_options: dict = field(default_factory=dict)


@dataclass
class ArchiveReport:
    archive: str
    summary: dict[str, float]
    shards_written: int
    shards_skipped: int
    wall_s: float
    mlflow_run_id: str | None = None


def relative_file(view_url: str, root_url: str) -> str:
    """A view's path relative to the dataset root (what restore recreates)."""
    root = root_url.rstrip("/") + "/"
    return view_url[len(root):] if view_url.startswith(root) else view_url.rsplit("/", 1)[-1]


def plan_archive(config: ArchiveConfig, index: DatasetIndex, codec: MultiViewCodec) -> ArchiveMeta:
    identity = codec.identity
    return ArchiveMeta(
        codec=CodecRecord(
            name=identity.name, codec_id=identity.codec_id, preset=identity.preset, config=dict(identity.config),
            weights_digest=weights_digest(codec), checkpoint=config.checkpoint,
        ),
        dataset_url=index.url,
        layout=index.layout,
        cameras=tuple(index.cameras),
        num_groups=len(index.groups),
        shard_size=config.shard_size,
    )


@flow(name="archive-dataset", log_prints=True)
def archive_dataset(config: ArchiveConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> ArchiveReport:
    """Encode every group of a dataset into an archive; completed shards of an earlier,
    interrupted run are kept and skipped."""
    started = time.perf_counter()
    if config.shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {config.shard_size}")
    index = discover_dataset(config.source, config.layout, config.source_options)
    ref = CodecRef(config.codec, config.preset, config.checkpoint, config.seed)
    codec = ref.load()  # once here: validates the view count and the weights before any work
    codec.check_views(len(index.cameras))
    ref = CodecRef(codec.identity.name, codec.identity.preset, config.checkpoint, config.seed)
    meta = plan_archive(config, index, codec)
    location = Location(config.dest, config.dest_options)
    writer = ArchiveWriter.create_or_resume(
        location, meta,
        names=[g.name for g in index.groups],
        files=[[relative_file(v.url, index.url) for v in g.views] for g in index.groups],
    )
    done = writer.completed_shards()
    pending = [s for s in range(meta.num_shards) if s not in done]
    with tracked_run(tracking, f"archive {config.codec}", "archive") as logger:
        futures = [
            encode_shard.submit(EncodeShardJob(
                archive=location, meta=meta, shard_id=shard,
                groups=tuple(index.groups[i] for i in meta.shard_range(shard)),
                codec=ref, source_options=config.source_options,
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
        report = ArchiveReport(str(location), summary, len(pending), len(done), time.perf_counter() - started)
        if logger:
            logger.log_params({
                "codec": meta.codec.name, "preset": meta.codec.preset, "weights_digest": meta.codec.weights_digest,
                "checkpoint": meta.codec.checkpoint, "dataset_url": meta.dataset_url, "layout": meta.layout,
                "shard_size": meta.shard_size, "cameras": ",".join(meta.cameras), "archive": str(location),
                **environment_params(),
            })
            logger.log_metrics({**summary, "wall_s": report.wall_s})
            logger.log_text(summary_markdown([(meta.codec.name, summary)]), "summary.md")
            report.mlflow_run_id = logger.run_id
        return report
