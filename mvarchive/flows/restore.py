"""The restore flow: archive -> decode tasks on Dask -> images under their original names."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import flow
from prefect.futures import as_completed

from mvarchive.codecs import CodecRef, weights_digest
from mvarchive.progress import progress_bar
from mvarchive.storage import ArchiveError, ArchiveReader, Location
from mvarchive.tasks.restore import RestoreJob, restore_groups
from mvarchive.tracking import TrackingConfig, tracked_run



@dataclass
class RestoreConfig:
    """What to restore: all groups and cameras, or a subset."""

    archive: str
    out: str
    groups: list[str] | None = None
    cameras: list[str] | None = None
    checkpoint: str | None = None  # where the codec's weights are now, if not where the archive says
    groups_per_task: int = 4
    archive_options: dict = field(default_factory=dict)
    out_options: dict = field(default_factory=dict)


@dataclass
class RestoreReport:
    out: str
    groups: int
    images: int
    decode_s: float
    wall_s: float
    mlflow_run_id: str | None = None


def _refuse_source(out: Location, dataset_url: str) -> None:
    """Never write decoded images into (or around) the source dataset."""
    src = Location(dataset_url)
    if out.is_local and src.is_local:
        a, b = out.local_path, src.local_path
        if a == b or a.is_relative_to(b) or b.is_relative_to(a):
            raise ArchiveError(f"refusing to restore into {a}: it overlaps the source dataset {b}")
    elif out.url.rstrip("/") == dataset_url.rstrip("/"):
        raise ArchiveError(f"refusing to restore into the source dataset {dataset_url}")


def codec_for_archive(reader: ArchiveReader, checkpoint: str | None) -> CodecRef:
    """The codec that wrote the archive, with its weights checked against the recorded digest."""
    record = reader.meta.codec
    ref = CodecRef(record.name, record.preset, checkpoint or record.checkpoint)
    codec = ref.load()
    digest = weights_digest(codec)
    if digest != record.weights_digest:
        raise ArchiveError(
            f"{reader.location}: written with weights {record.weights_digest[:12]}, but "
            f"{ref.checkpoint or 'the untrained ' + record.name} has {digest[:12]}; pass --checkpoint "
            "with the checkpoint used for archiving"
        )
    return ref


@flow(name="restore-dataset", log_prints=True)
def restore_dataset(config: RestoreConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> RestoreReport:
    started = time.perf_counter()
    archive = Location(config.archive, config.archive_options)
    reader = ArchiveReader(archive)
    out = Location(config.out, config.out_options)
    _refuse_source(out, reader.meta.dataset_url)
    indices = reader.select(config.groups)
    cameras = tuple(reader.camera_indices(config.cameras))
    ref = codec_for_archive(reader, config.checkpoint)
    size = max(1, config.groups_per_task)
    batches = [tuple(indices[i : i + size]) for i in range(0, len(indices), size)]
    futures = [restore_groups.submit(RestoreJob(archive, batch, cameras, out, ref)) for batch in batches]
    groups = images = 0
    decode_s = 0.0
    with progress_bar("restore", total=len(indices), enabled=show_progress) as bar:
        for future in as_completed(futures):
            result = future.result()
            groups += result.groups
            images += result.images
            decode_s += result.decode_s
            bar.advance(result.groups)
    report = RestoreReport(str(out), groups, images, decode_s, time.perf_counter() - started)
    with tracked_run(tracking, "restore", "restore") as logger:
        if logger:
            logger.log_params({"archive": config.archive, "out": config.out, "groups": len(indices),
                               "cameras": ",".join(reader.cameras[c] for c in cameras), "codec": ref.name})
            logger.log_metrics({"decode_s": decode_s, "images": images, "wall_s": report.wall_s})
            report.mlflow_run_id = logger.run_id
    return report
