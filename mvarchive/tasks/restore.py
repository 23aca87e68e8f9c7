"""Decode groups from an archive, check each against the encoder's fingerprints, and (for a
restore) write the chosen cameras under their original names.

:func:`restore_groups_fn` is plain (an on-demand restore calls it in its own process without
Prefect); the Prefect task ``restore_groups`` wrapping it is built when first asked for, so
importing this module does not import Prefect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mvarchive.codecs import BitstreamError
from mvarchive.datasets import save_image
from mvarchive.integrity import GroupCheck, Status, check_group
from mvarchive.metrics import to_uint8
from mvarchive.runtime.checkpoints import CodecRef
from mvarchive.runtime.model_cache import codec_on_worker
from mvarchive.storage import ArchiveReader, Location

from .worker import prepare_torch, torch_threads

if TYPE_CHECKING:
    from mvarchive.codecs import MultiViewCodec


@dataclass(frozen=True)
class RestoreJob:
    archive: Location
    indices: tuple[int, ...]
    cameras: tuple[int, ...]  # camera positions to write
    out: Location | None  # None: verify only, write nothing
    codec: CodecRef
    overwrite: bool = False
    accept_close: bool = True  # write groups whose pixels differ from the encoder's only by rounding


@dataclass(frozen=True)
class RestoreResult:
    groups: int
    images: int
    decode_s: float
    checks: tuple[GroupCheck, ...]


def restore_groups_fn(job: RestoreJob, codec: MultiViewCodec | None = None) -> RestoreResult:
    """Decode each group (all views: joint decoders need them), check it, write the chosen
    cameras of every group that passed. A group that fails is reported, never written.
    ``codec``: the model of ``job.codec`` when the caller already holds it (else it is loaded,
    once per Dask worker)."""
    prepare_torch()
    codec = codec if codec is not None else codec_on_worker(job.codec)
    reader = ArchiveReader(job.archive)
    images = 0
    decode_s = 0.0
    checks = []
    for stored in reader.read_groups(list(job.indices)):
        started = time.perf_counter()
        try:
            with torch_threads(stored.fingerprint.threads):
                decoded = codec.decompress(stored.stream, where=f"group {stored.name!r} of {job.archive}")
        except BitstreamError as exc:
            checks.append(GroupCheck(stored.name, Status.UNDECODABLE, detail=str(exc)))
            continue
        finally:
            decode_s += time.perf_counter() - started
        views = to_uint8(decoded.x_hat)
        if [tuple(s) for s in stored.sizes] != [v.shape[:2] for v in views]:
            checks.append(GroupCheck(stored.name, Status.MISMATCH, detail=(
                f"decoded sizes {[v.shape[:2] for v in views]} differ from the archive's {list(stored.sizes)}")))
            continue
        check = check_group(stored.name, reader.cameras, stored.fingerprint, views, decoded.latents)
        checks.append(check)
        if job.out is None or check.status.failed or (check.status is Status.CLOSE and not job.accept_close):
            continue
        for camera in job.cameras:
            save_image(views[camera], job.out.child(stored.files[camera]).url, job.out.storage_options,
                       exclusive=not job.overwrite)
            images += 1
    return RestoreResult(len(job.indices), images, decode_s, tuple(checks))


def _restore_groups_task() -> Any:
    from prefect import task

    from .retry import TRANSIENT_RETRIES

    return task(name="restore-groups", task_run_name="restore-{job.indices[0]}", **TRANSIENT_RETRIES)(restore_groups_fn)


def __getattr__(name: str) -> Any:
    """``restore_groups``: the Prefect task, built on first use (PEP 562) and kept."""
    if name == "restore_groups":
        value = globals()["restore_groups"] = _restore_groups_task()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
