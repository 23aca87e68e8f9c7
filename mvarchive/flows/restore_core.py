"""Restore and verify without Prefect: plan the request, decode in the calling process, report.

The Prefect flows of :mod:`mvarchive.flows.restore` and the on-demand paths (this process, or one
warm worker of a running cluster: :mod:`mvarchive.flows.on_demand`) share everything here, so each
path checks the same things in the same order: the request and every target file before any
decoding, every group against the encoder's fingerprints, and nothing written for a group that
fails. :func:`plan_restore` checks the request before any service starts or any file is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mvarchive.datasets.layouts import unsafe_name_reason
from mvarchive.integrity import Status
from mvarchive.progress import progress_bar
from mvarchive.storage import ArchiveError, ArchiveReader, CodecRecord, Location, absolute_url
from mvarchive.storage.options import StorageOptions

from .restore_config import RestoreConfig, RestoreReport, VerifyConfig

if TYPE_CHECKING:  # torch comes with these: imported where needed, so refusals answer before it loads
    from mvarchive.codecs import MultiViewCodec
    from mvarchive.runtime.checkpoints import CodecRef
    from mvarchive.tasks.restore import RestoreJob, RestoreResult
    from mvarchive.tracking import RunLogger, TrackingConfig

log = logging.getLogger("mvarchive.restore")

#: How a codec is made ready from its reference: ``CodecRef.load`` by default; a worker's cache
#: (:func:`mvarchive.runtime.model_cache.worker_codec_loader`) or a per-command memo to load it once.
Loader = Callable[["CodecRef"], "MultiViewCodec"]


class RestoreError(ArchiveError):
    """Some groups did not decode to what was encoded; they were not written."""


def model_for_archive(reader: ArchiveReader, checkpoint: str | None, options: StorageOptions,
                      record: CodecRecord | None = None, registry_uri: str | None = None,
                      load: Loader | None = None) -> CodecRef:
    """Where workers load one of the archive's models (the newest by default) from:
    ``--checkpoint``, else the copy embedded in the archive, else where it was read when
    archiving (its registry URI first); each checked against the model's digest (by loading it
    with ``load``, so a caller that keeps what it loaded never loads it twice)."""
    from mvarchive.codecs import CheckpointError
    from mvarchive.runtime.checkpoints import CodecRef

    load = load or CodecRef.load
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
            _require_reachable(ref)
            load(ref)
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


def _require_reachable(ref: CodecRef) -> None:
    """A checkpoint file must still be there, even when ``load`` answers from a worker's cache:
    a restore that works only while a worker happens to hold the model would fail later."""
    from mvarchive.codecs import CheckpointError

    if ref.checkpoint is None or ref.checkpoint.startswith("models:/"):
        return
    from fsspec.core import url_to_fs

    from mvarchive.storage.options import as_options

    try:
        fs, path = url_to_fs(ref.checkpoint, **as_options(ref.storage_options).reveal())
        found = fs.exists(path)
    except Exception:  # noqa: BLE001 - let the load itself report an unreadable location
        return
    if not found:
        raise CheckpointError(f"checkpoint not found: {ref.checkpoint}")


def memo_loader() -> Loader:
    """A loader that loads each reference once for the lifetime of the returned function
    (one command: the plan's check and the decoding share the model)."""
    loaded: dict[CodecRef, MultiViewCodec] = {}

    def load(ref: CodecRef) -> MultiViewCodec:
        if ref not in loaded:
            loaded[ref] = ref.load()
        return loaded[ref]

    return load


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

    def jobs(self, config: RestoreConfig) -> list[RestoreJob]:
        """One decode job per batch, with the request's overwrite and exactness rules."""
        from mvarchive.tasks.restore import RestoreJob

        return [RestoreJob(self.reader.location, batch, self.cameras, self.out, ref,
                           overwrite=config.overwrite, accept_close=not config.exact)
                for ref, batch in self.batches(max(1, config.groups_per_task))]


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
                raise ArchiveError(f"{reader.location}: groups {targets[key]!r} and {name!r} both restore to "
                                   f"{files[c]!r}")
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


def plan_restore(config: RestoreConfig, write: bool = True, load: Loader | None = None) -> RestorePlan:
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
    from mvarchive.codecs.determinism import policy_differences

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
        codecs[digest] = model_for_archive(reader, given, config.archive_options, record, config.registry_uri, load)
    codec = codecs.get(reader.meta.codec.weights_digest) or next(iter(codecs.values()), None)
    if codec is None:
        codec = model_for_archive(reader, config.checkpoint, config.archive_options,
                                  registry_uri=config.registry_uri, load=load)
    return RestorePlan(reader, indices, cameras, out, codec, codecs)


def plan_verify(config: VerifyConfig, load: Loader | None = None) -> RestorePlan:
    return plan_restore(config.as_restore(), write=False, load=load)


def _matches(checkpoint: str | None, record: CodecRecord) -> bool:
    return checkpoint is not None and checkpoint in (record.source, record.registered)


def collect(plan: RestorePlan, results: Iterator[RestoreResult], description: str, show_progress: bool,
            placement: str) -> RestoreReport:
    """Add up the decode results (in any order) into one report, checks in the plan's order."""
    started = time.perf_counter()
    report = RestoreReport(str(plan.out or plan.reader.location), 0, 0, 0.0, 0.0, placement=placement)
    with progress_bar(description, total=len(plan.indices), enabled=show_progress) as bar:
        for result in results:
            report.groups += result.groups
            report.images += result.images
            report.decode_s += result.decode_s
            report.checks.extend(result.checks)
            bar.advance(result.groups)
    order = {plan.reader.names[i]: n for n, i in enumerate(plan.indices)}
    report.checks.sort(key=lambda c: order.get(c.group, 0))
    report.wall_s = time.perf_counter() - started
    return report


def decode_here(plan: RestorePlan, config: RestoreConfig, description: str, show_progress: bool,
                load: Loader, placement: str = "in-process") -> RestoreReport:
    """Decode every batch in this process, one after the other, with models from ``load``."""
    from mvarchive.tasks.restore import restore_groups_fn

    results = (restore_groups_fn(job, codec=load(job.codec)) for job in plan.jobs(config))
    return collect(plan, results, description, show_progress, placement)


def run_name(verb: str, plan: RestorePlan) -> str:
    """``restore stereo-archive 3 groups`` in the MLflow run list."""
    name = plan.reader.location.url.rstrip("/").rsplit("/", 1)[-1]
    count = len(plan.indices)
    return f"{verb} {name} {count} group{'s' if count != 1 else ''}"


def restore_record(plan: RestorePlan, report: RestoreReport, config: RestoreConfig) -> tuple[dict, dict]:
    """The parameters and metrics a restore's MLflow run logs (whichever process logs them)."""
    params = {"archive": plan.reader.location.url, "out": report.out, "groups": len(plan.indices),
              "cameras": ",".join(plan.reader.cameras[c] for c in plan.cameras),
              "codec": plan.codec.name, "overwrite": config.overwrite, "placement": report.placement}
    metrics = {"decode_s": report.decode_s, "images": report.images, "wall_s": report.wall_s,
               **{f"groups_{s.value}": report.count(s) for s in Status}}
    return params, metrics


def verify_record(plan: RestorePlan, report: RestoreReport) -> tuple[dict, dict]:
    """The parameters and metrics a verify's MLflow run logs."""
    params = {"archive": plan.reader.location.url, "groups": len(plan.indices), "codec": plan.codec.name,
              "placement": report.placement}
    metrics = {"decode_s": report.decode_s, "wall_s": report.wall_s,
               **{f"groups_{s.value}": report.count(s) for s in Status}}
    return params, metrics


def log_restore(logger: RunLogger | None, plan: RestorePlan, report: RestoreReport, config: RestoreConfig) -> None:
    if logger:
        params, metrics = restore_record(plan, report, config)
        logger.log_params(params)
        logger.log_metrics(metrics)
        report.mlflow_run_id = logger.run_id


def log_verify(logger: RunLogger | None, plan: RestorePlan, report: RestoreReport) -> None:
    if logger:
        params, metrics = verify_record(plan, report)
        logger.log_params(params)
        logger.log_metrics(metrics)
        report.mlflow_run_id = logger.run_id


def raise_failures(report: RestoreReport, config: RestoreConfig) -> RestoreReport:
    """Raise :class:`RestoreError` naming every group that failed its check (those were not
    written; all others were); warn about groups written within rounding."""
    failed = [c for c in report.checks if c.status.failed or (config.exact and c.status is Status.CLOSE)]
    close = report.count(Status.CLOSE)
    if close and not config.exact:
        log.warning("%d group(s) decoded with exact symbols but pixels that differ from the encoder's by rounding "
                    "(another CPU or thread count); they were written. `mvarchive verify` lists them.", close)
    if failed:
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        shown = "; ".join(c.describe() for c in failed[:5]) + more
        raise RestoreError(f"{len(failed)} of {len(report.checks)} group(s) failed verification and were not written: "
                           f"{shown}")
    return report


def _tracked(tracking: TrackingConfig | None, name: str, job: str) -> AbstractContextManager[RunLogger | None]:
    """An MLflow run, importing MLflow only when tracking is asked for (it costs seconds)."""
    if tracking is None or not tracking.tracking_uri:
        import contextlib

        return contextlib.nullcontext(None)
    from mvarchive.tracking import tracked_run

    return tracked_run(tracking, name, job)


def restore_here(config: RestoreConfig, tracking: TrackingConfig | None = None, show_progress: bool = False,
                 load: Loader | None = None, placement: str = "in-process") -> RestoreReport:
    """Plan, decode, check and write in this process: no Prefect, no Dask; an MLflow run only
    with ``tracking``. Same refusals and the same :class:`RestoreError` as the flow."""
    load = load or memo_loader()
    plan = plan_restore(config, load=load)
    with _tracked(tracking, run_name("restore", plan), "restore") as logger:
        report = decode_here(plan, config, "restore", show_progress, load, placement)
        log_restore(logger, plan, report, config)
    return raise_failures(report, config)


def verify_here(config: VerifyConfig, tracking: TrackingConfig | None = None, show_progress: bool = False,
                load: Loader | None = None, placement: str = "in-process") -> RestoreReport:
    """Decode and check in this process, writing nothing (see :func:`restore_here`)."""
    load = load or memo_loader()
    plan = plan_verify(config, load=load)
    with _tracked(tracking, run_name("verify", plan), "verify") as logger:
        report = decode_here(plan, config.as_restore(), "verify", show_progress, load, placement)
        log_verify(logger, plan, report)
    return report
