"""The restore and verify flows: archive -> decode tasks on Dask -> checked images.

Every decoded group is checked against the fingerprints the encoder stored (see
:mod:`mvarchive.integrity`); restore writes only groups that pass and never replaces an
existing file unless asked. :func:`plan_restore` checks the request before any service
starts or any file is written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from prefect import flow
from prefect.futures import as_completed

from mvarchive.codecs import CheckpointError, CodecRef
from mvarchive.codecs.determinism import policy_differences
from mvarchive.datasets.layouts import unsafe_name_reason
from mvarchive.integrity import GroupCheck, Status
from mvarchive.progress import progress_bar
from mvarchive.storage import ArchiveError, ArchiveReader, CodecRecord, Location, absolute_url
from mvarchive.storage.options import StorageOptions, as_options
from mvarchive.tasks.restore import RestoreJob, restore_groups
from mvarchive.tracking import TrackingConfig, tracked_run

log = logging.getLogger("mvarchive.restore")


class RestoreError(ArchiveError):
    """Some groups did not decode to what was encoded; they were not written."""


@dataclass
class RestoreConfig:
    """What to restore: all groups and cameras, or a subset."""

    archive: str
    out: str
    groups: list[str] | None = None
    cameras: list[str] | None = None
    checkpoint: str | None = None  # the codec's weights, when the archive has no copy and they moved
    overwrite: bool = False  # replace existing files in OUT
    exact: bool = False  # also refuse groups whose pixels differ from the encoder's only by rounding
    groups_per_task: int = 4
    archive_options: StorageOptions = field(default_factory=StorageOptions)
    out_options: StorageOptions = field(default_factory=StorageOptions)
    registry_uri: str | None = None  # MLflow store of models:/ weights (default: the environment's)

    def __post_init__(self) -> None:
        self.archive_options = as_options(self.archive_options)
        self.out_options = as_options(self.out_options)


@dataclass
class RestoreReport:
    out: str
    groups: int
    images: int
    decode_s: float
    wall_s: float
    checks: list[GroupCheck] = field(default_factory=list)
    mlflow_run_id: str | None = None

    def count(self, status: Status) -> int:
        return sum(c.status is status for c in self.checks)


def model_for_archive(reader: ArchiveReader, checkpoint: str | None, options: StorageOptions,
                      record: CodecRecord | None = None, registry_uri: str | None = None) -> CodecRef:
    """Where workers load one of the archive's models (the newest by default) from:
    ``--checkpoint``, else the copy embedded in the archive, else where it was read when
    archiving (its registry URI first); each checked against the model's digest."""
    record = record or reader.meta.codec
    registry = StorageOptions({"mlflow_tracking_uri": registry_uri} if registry_uri else {})
    candidates: list[CodecRef] = []
    if checkpoint is not None:
        url = checkpoint if checkpoint.startswith("models:/") else absolute_url(checkpoint)
        candidates.append(CodecRef(record.name, record.preset, url, digest=record.weights_digest,
                                   storage_options=registry if url.startswith("models:/") else StorageOptions()))
    elif record.embedded:
        candidates.append(CodecRef(record.name, record.preset, reader.location.child(record.embedded).url,
                                   digest=record.weights_digest, storage_options=options))
    if checkpoint is None and record.registered:
        candidates.append(CodecRef(record.name, record.preset, record.registered, digest=record.weights_digest,
                                   storage_options=registry))
    if checkpoint is None and record.source and record.source != record.registered:
        candidates.append(CodecRef(record.name, record.preset, record.source, digest=record.weights_digest))
    if checkpoint is None and record.seed is not None:
        candidates.append(CodecRef(record.name, record.preset, None, record.seed, digest=record.weights_digest))
    problems = []
    for ref in candidates:
        try:
            ref.load()
            return ref
        except CheckpointError as exc:
            problems.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. a registry that is not reachable: try the next copy
            problems.append(f"{ref.checkpoint}: {exc}")
    raise CheckpointError(
        f"{reader.location} needs the {record.name} ({record.preset}) weights {record.weights_digest[:12]}: "
        + ("; ".join(problems) if problems else "no copy in the archive and no recorded location")
        + "; pass --checkpoint PATH with the checkpoint used for archiving"
    )


@dataclass(frozen=True)
class RestorePlan:
    reader: ArchiveReader
    indices: list[int]
    cameras: tuple[int, ...]
    out: Location | None
    codec: CodecRef  # the newest model's (what most runs use)
    codecs: dict[str, CodecRef] = field(default_factory=dict)  # weights digest -> where workers load it

    def batches(self, size: int) -> list[tuple[CodecRef, tuple[int, ...]]]:
        """Groups to decode per task, each batch of one model (each model loaded once per worker)."""
        out = []
        for digest, indices in self.reader.models_of(self.indices).items():
            ref = self.codecs.get(digest, self.codec)
            out += [(ref, tuple(indices[i : i + size])) for i in range(0, len(indices), size)]
        return out


def _refuse_source(out: Location, dataset_url: str) -> None:
    """Never write decoded images into (or around) the source dataset."""
    src = Location(dataset_url)
    if out.is_local and src.is_local:
        a, b = out.local_path, src.local_path
        if a == b or a.is_relative_to(b) or b.is_relative_to(a):
            raise ArchiveError(f"refusing to restore into {a}: it overlaps the source dataset {b}")
    elif out.url.rstrip("/") == dataset_url.rstrip("/"):
        raise ArchiveError(f"refusing to restore into the source dataset {dataset_url}")


def _check_targets(reader: ArchiveReader, indices: list[int], cameras: tuple[int, ...], out: Location,
                   overwrite: bool) -> int:
    """Every file restore would write: a safe relative name, distinct, and (unless
    ``overwrite``) not there yet. Returns how many files that is."""
    targets: dict[str, str] = {}
    for name, files in reader.read_names(indices):
        for c in cameras:
            reason = unsafe_name_reason(files[c])
            if reason:
                raise ArchiveError(f"{reader.location}: group {name!r} camera {reader.cameras[c]!r}: {reason}")
            key = files[c].casefold()
            if key in targets:
                raise ArchiveError(f"{reader.location}: groups {targets[key]!r} and {name!r} both restore to {files[c]!r}")
            targets[key] = name
    if overwrite:
        return len(targets)
    fs, root = out.filesystem()
    existing = []
    if fs.exists(root):
        present = {p[len(root.rstrip("/")) + 1:].casefold() for p in fs.find(root)}
        existing = sorted(k for k in targets if k in present)
    if existing:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise ArchiveError(
            f"restore would overwrite {len(existing)} existing file(s) in {out}: {shown}; "
            "pass --overwrite to replace them, or choose another folder"
        )
    return len(targets)


def plan_restore(config: RestoreConfig, write: bool = True) -> RestorePlan:
    """Open the archive, select groups and cameras, find the model, check the targets."""
    archive = Location(absolute_url(config.archive), config.archive_options.reveal())
    reader = ArchiveReader(archive)
    out = Location(absolute_url(config.out), config.out_options.reveal()) if write else None
    if out is not None:
        _refuse_source(out, reader.meta.dataset_url)
    indices = reader.select(config.groups)
    cameras = tuple(reader.camera_indices(config.cameras))
    if out is not None:
        _check_targets(reader, indices, cameras, out, config.overwrite)
    differences = policy_differences(reader.meta.environment) if reader.meta.environment else {}
    differences.pop("synthesis_threads", None)  # workers pick their own; only pixels' rounding depends on it
    if differences:
        shown = ", ".join(f"{k} {a} -> {b}" for k, a, b in ((k, *v) for k, v in differences.items()))
        log.warning("%s was written under other decoding conditions (%s); every group is verified", archive, shown)
    used = reader.models_of(indices)
    codecs: dict[str, CodecRef] = {}
    for digest in used:
        record = reader.meta.model(digest) if digest else reader.meta.codec
        # --checkpoint names one model's weights: it applies to the model it matches
        given = config.checkpoint if (len(used) == 1 or _matches(config.checkpoint, record)) else None
        codecs[digest] = model_for_archive(reader, given, config.archive_options, record, config.registry_uri)
    codec = codecs.get(reader.meta.codec.weights_digest) or next(iter(codecs.values()), None)
    if codec is None:
        codec = model_for_archive(reader, config.checkpoint, config.archive_options, registry_uri=config.registry_uri)
    return RestorePlan(reader, indices, cameras, out, codec, codecs)


def _matches(checkpoint: str | None, record: CodecRecord) -> bool:
    return checkpoint is not None and checkpoint in (record.source, record.registered)


def _decode_all(plan: RestorePlan, config: RestoreConfig, description: str, show_progress: bool) -> RestoreReport:
    started = time.perf_counter()
    futures = [
        restore_groups.submit(RestoreJob(plan.reader.location, batch, plan.cameras, plan.out, ref,
                                         overwrite=config.overwrite, accept_close=not config.exact))
        for ref, batch in plan.batches(max(1, config.groups_per_task))
    ]
    report = RestoreReport(str(plan.out or plan.reader.location), 0, 0, 0.0, 0.0)
    with progress_bar(description, total=len(plan.indices), enabled=show_progress) as bar:
        for future in as_completed(futures):
            result = future.result()
            report.groups += result.groups
            report.images += result.images
            report.decode_s += result.decode_s
            report.checks.extend(result.checks)
            bar.advance(result.groups)
    order = {plan.reader.names[i]: n for n, i in enumerate(plan.indices)}
    report.checks.sort(key=lambda c: order.get(c.group, 0))
    report.wall_s = time.perf_counter() - started
    return report


def _run_name(verb: str, plan: RestorePlan) -> str:
    """``restore stereo-archive 3 groups`` in the MLflow run list."""
    name = plan.reader.location.url.rstrip("/").rsplit("/", 1)[-1]
    count = len(plan.indices)
    return f"{verb} {name} {count} group{'s' if count != 1 else ''}"


@flow(name="restore-dataset", log_prints=True)
def restore_dataset(config: RestoreConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> RestoreReport:
    """Decode and write groups; raises :class:`RestoreError` naming every group that failed
    its check (those are not written; all others are)."""
    plan = plan_restore(config)
    with tracked_run(tracking, _run_name("restore", plan), "restore") as logger:  # open while decoding: real duration
        report = _decode_all(plan, config, "restore", show_progress)
        if logger:
            logger.log_params({"archive": plan.reader.location.url, "out": report.out, "groups": len(plan.indices),
                               "cameras": ",".join(plan.reader.cameras[c] for c in plan.cameras),
                               "codec": plan.codec.name, "overwrite": config.overwrite})
            logger.log_metrics({"decode_s": report.decode_s, "images": report.images, "wall_s": report.wall_s,
                                **{f"groups_{s.value}": report.count(s) for s in Status}})
            report.mlflow_run_id = logger.run_id
    failed = [c for c in report.checks if c.status.failed or (config.exact and c.status is Status.CLOSE)]
    close = report.count(Status.CLOSE)
    if close and not config.exact:
        log.warning("%d group(s) decoded with exact symbols but pixels that differ from the encoder's by rounding "
                    "(another CPU or thread count); they were written. `mvarchive verify` lists them.", close)
    if failed:
        shown = "; ".join(c.describe() for c in failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else "")
        raise RestoreError(f"{len(failed)} of {len(report.checks)} group(s) failed verification and were not written: {shown}")
    return report


@dataclass
class VerifyConfig:
    archive: str
    groups: list[str] | None = None
    checkpoint: str | None = None
    groups_per_task: int = 4
    archive_options: StorageOptions = field(default_factory=StorageOptions)
    registry_uri: str | None = None

    def __post_init__(self) -> None:
        self.archive_options = as_options(self.archive_options)

    def as_restore(self) -> RestoreConfig:
        return RestoreConfig(archive=self.archive, out="", groups=self.groups, checkpoint=self.checkpoint,
                             groups_per_task=self.groups_per_task, archive_options=self.archive_options,
                             registry_uri=self.registry_uri)


def plan_verify(config: VerifyConfig) -> RestorePlan:
    return plan_restore(config.as_restore(), write=False)


@flow(name="verify-archive", log_prints=True)
def verify_archive(config: VerifyConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> RestoreReport:
    """Decode every selected group without writing anything and check it; the report lists
    ok / close / mismatch / undecodable per group."""
    restore_config = config.as_restore()
    plan = plan_verify(config)
    with tracked_run(tracking, _run_name("verify", plan), "verify") as logger:
        report = _decode_all(plan, restore_config, "verify", show_progress)
        if logger:
            logger.log_params({"archive": plan.reader.location.url, "groups": len(plan.indices), "codec": plan.codec.name})
            logger.log_metrics({"decode_s": report.decode_s, "wall_s": report.wall_s,
                                **{f"groups_{s.value}": report.count(s) for s in Status}})
            report.mlflow_run_id = logger.run_id
    return report
