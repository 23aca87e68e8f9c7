"""Decode groups from an archive and write their images under the original names."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import task

from mvarchive.codecs import BitstreamError, CodecRef
from mvarchive.datasets import save_image
from mvarchive.metrics import to_uint8
from mvarchive.storage import ArchiveReader, Location

from .worker import codec_on_worker, prepare_torch


@dataclass(frozen=True)
class RestoreJob:
    archive: Location
    indices: tuple[int, ...]
    cameras: tuple[int, ...]  # camera positions to write
    out: Location
    codec: CodecRef


@dataclass(frozen=True)
class RestoreResult:
    groups: int
    images: int
    decode_s: float


def restore_groups_fn(job: RestoreJob) -> RestoreResult:
    """Decode each group (all views: joint decoders need them) and write the chosen cameras."""
    prepare_torch()
    codec = codec_on_worker(job.codec)
    reader = ArchiveReader(job.archive)
    images = 0
    decode_s = 0.0
    for stored in reader.read_groups(list(job.indices)):
        started = time.perf_counter()
        decoded = codec.decompress(stored.stream, where=f"group {stored.name!r} of {job.archive}")
        decode_s += time.perf_counter() - started
        views = to_uint8(decoded.x_hat)
        if [tuple(s) for s in stored.sizes] != [v.shape[:2] for v in views]:
            raise BitstreamError(
                f"group {stored.name!r}: decoded sizes {[v.shape[:2] for v in views]} differ from the "
                f"archive's {stored.sizes}"
            )
        for camera in job.cameras:
            save_image(views[camera], job.out.child(stored.files[camera]).url, job.out.storage_options)
            images += 1
    return RestoreResult(len(job.indices), images, decode_s)


restore_groups = task(
    restore_groups_fn,
    name="restore-groups",
    task_run_name="restore-{job.indices[0]}",
    retries=2,
    retry_delay_seconds=[2, 10],
)
