"""Encode one shard of groups into one blob of an archive (the orchestrator indexes it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import task

from mvarchive.datasets import GroupRef, load_group
from mvarchive.integrity import Fingerprint
from mvarchive.metrics import DEFAULT_METRICS_FRACTION, group_metrics, measured_for_quality, to_tensor, to_uint8
from mvarchive.runtime.checkpoints import CodecRef
from mvarchive.runtime.model_cache import codec_on_worker
from mvarchive.storage import ArchiveMeta, ArchiveWriter, GroupRecord, IndexRow, Location
from mvarchive.storage.archive import blob_path
from mvarchive.storage.blob import read_header
from mvarchive.storage.options import StorageOptions, as_options

from .retry import TRANSIENT_RETRIES
from .worker import check_device, prepare_torch


@dataclass(frozen=True)
class EncodeShardJob:
    """References only: the worker reads the images and loads the codec itself."""

    archive: Location
    meta: ArchiveMeta
    shard_id: int  # within the run
    groups: tuple[GroupRef, ...]
    codec: CodecRef
    run_id: str = ""
    digests: tuple[str, ...] = ()  # each group's source content digest
    source_options: StorageOptions = field(default_factory=StorageOptions)
    max_pixels: int | None = None
    device: str = "cpu"  # where the analysis transforms run (docs/gpu.md); coding stays on CPU
    # share of groups (chosen by name) whose MS-SSIM is measured, NaN elsewhere; PSNR and bpp
    # are always measured (docs/performance.md)
    metrics_fraction: float = DEFAULT_METRICS_FRACTION


@dataclass(frozen=True)
class ShardResult:
    shard_id: int
    skipped: bool
    metrics: list[dict[str, float]]  # one per group
    views: int
    rows: tuple[IndexRow, ...] = ()  # what the orchestrator appends to the index
    blob: str = ""


def encode_shard_fn(job: EncodeShardJob) -> ShardResult:
    """Encode every group of the shard and write its blob; a blob already there (a retry
    after the first try wrote it) is read back instead of encoding again."""
    writer = ArchiveWriter(job.archive, job.meta, job.run_id)
    blob = f"{job.run_id}-{job.shard_id:05d}"
    fs, path = blob_path(job.archive, blob)
    if fs.exists(path):
        rows = IndexRow.from_header(read_header(fs, path), blob)
        return ShardResult(job.shard_id, True, [r.metrics for r in rows], sum(len(r.sizes) for r in rows),
                           tuple(rows), blob)
    digests = job.digests or ("",) * len(job.groups)
    if len(digests) != len(job.groups):
        raise ValueError(f"shard {job.shard_id}: {len(job.groups)} groups but {len(digests)} digests")
    check_device(job.device)
    threads = prepare_torch()
    # analysis on job.device, coding and synthesis canonical CPU (docs/gpu.md); kept per worker
    encoder = codec_on_worker(job.codec, job.device)
    records = []
    source_options = as_options(job.source_options).reveal()
    for index, (group, digest) in enumerate(zip(job.groups, digests)):
        views = load_group(group, source_options, job.max_pixels)
        started = time.perf_counter()
        compressed = encoder.compress(to_tensor(views))
        encode_s = time.perf_counter() - started
        if compressed.x_hat is None:
            raise RuntimeError(f"group {group.name}: the encoder returned no reconstruction to fingerprint")
        reconstruction = to_uint8(compressed.x_hat)
        metrics = group_metrics(views, reconstruction, len(compressed.data),
                                with_ms_ssim=measured_for_quality(group.name, job.metrics_fraction))
        metrics["encode_s"] = encode_s
        records.append(GroupRecord(
            index=index,
            name=group.name,
            sizes=[(int(views.shape[1]), int(views.shape[2]))] * views.shape[0],
            stream=compressed.data,
            latents=compressed.latents,
            fingerprint=Fingerprint.of(reconstruction, compressed.latents, threads),
            metrics=metrics,
            files=tuple(v.name for v in group.views),
            digest=digest,
        ))
    rows = writer.write_shard(job.shard_id, records)
    return ShardResult(job.shard_id, False, [r.metrics for r in records], int(sum(len(r.sizes) for r in records)),
                       tuple(rows), blob)


encode_shard = task(name="encode-shard", task_run_name="encode-shard-{job.shard_id}", **TRANSIENT_RETRIES)(
    encode_shard_fn
)

