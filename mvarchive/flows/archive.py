"""The archive flow: dataset -> shards of new groups -> encode tasks on Dask -> one blob each -> index.

Everything that can be wrong with the request (codec, model, dataset, destination, a busy
archive) is checked by :func:`plan_archive` before any service starts or any byte is written;
the CLI calls it first for fast, one-line errors and the flow calls it again for itself.

Archives grow: a run encodes only source groups the archive lacks (and, with ``reencode``,
those whose content changed), under the archive's write lease; the orchestrator alone writes
index rows and metadata once the shards' blobs exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from prefect import flow
from prefect.futures import as_completed

from mvarchive.codecs import (
    check_view_count,
    get_spec,
    load_codec,
    weights_digest,
)
from mvarchive.codecs.checkpoint import codec_from_checkpoint, parse_checkpoint
from mvarchive.codecs.determinism import decode_policy
from mvarchive.datasets import DatasetError, DatasetIndex, GroupRef, discover_dataset
from mvarchive.datasets.images import MAX_VIEW_PIXELS
from mvarchive.infra.gpu import gpu_placement, require_gpu_for_flow, validate_device
from mvarchive.metrics import DEFAULT_METRICS_FRACTION
from mvarchive.monitoring import DriftDecision
from mvarchive.monitoring.watch import ArchiveRunFigures, watch_archive_run
from mvarchive.progress import progress_bar
from mvarchive.reporting import archive_summary, rows_summary, summary_markdown
from mvarchive.runtime.checkpoints import CodecRef, fetch_checkpoint_bytes
from mvarchive.storage import (
    ArchiveBusyError,
    ArchiveError,
    ArchiveMeta,
    ArchiveReader,
    ArchiveWriter,
    CodecRecord,
    IndexRow,
    Lease,
    LeaseConfig,
    Location,
    current_holder,
    embedded_path,
    group_digest,
)
from mvarchive.storage.location import absolute_url
from mvarchive.storage.options import StorageOptions, as_options
from mvarchive.tasks.encode import EncodeShardJob, encode_shard
from mvarchive.tasks.preflight import PreflightJob, check_groups
from mvarchive.tracking import RunLogger, TrackingConfig, environment_params, tracked_run

log = logging.getLogger("mvarchive.archive")


@dataclass
class ArchiveConfig:
    """What to archive, where, and with which codec."""

    source: str
    dest: str
    codec: str = "ldmic-fast"
    preset: str = "paper"
    checkpoint: str | None = None  # path, URL, or models:/NAME@ALIAS, models:/NAME/VERSION
    untrained: bool = False  # encode with seeded random weights: tests only, never by default
    layout: str = "auto"
    shard_size: int = 4
    seed: int = 0  # weights of an untrained codec come from this seed
    embed_model: bool = True  # copy the checkpoint into the archive: it restores anywhere
    max_pixels: int | None = MAX_VIEW_PIXELS  # per view; larger images are refused, not run out of memory
    reencode: bool = False  # encode again the groups whose source content changed since archived
    wait: bool = False  # wait for another run's write lease instead of failing
    lease_ttl_s: float = 60.0
    registry_uri: str | None = None  # MLflow tracking URI for models:/ checkpoints
    source_options: StorageOptions = field(default_factory=StorageOptions)
    dest_options: StorageOptions = field(default_factory=StorageOptions)
    # "cuda[:N]": encode tasks run their analysis transforms there, on GPU workers only, and
    # the run is refused up front when no worker offers a GPU; coding stays exact on CPU (docs/gpu.md)
    device: str = "cpu"
    # share of the groups (chosen by a hash of the name: reruns pick the same) whose MS-SSIM is
    # measured; NaN elsewhere. PSNR, bpp and the reconstruction digest cover every group.
    metrics_fraction: float = DEFAULT_METRICS_FRACTION

    def __post_init__(self) -> None:
        self.device = validate_device(self.device)
        self.source_options = as_options(self.source_options)
        self.dest_options = as_options(self.dest_options)


@dataclass
class ArchiveReport:
    archive: str
    summary: dict[str, float]  # the whole archive after the run
    shards_written: int
    shards_skipped: int  # blobs found complete (a retried task's, or a killed run's, adopted)
    wall_s: float
    mlflow_run_id: str | None = None
    run_id: str = ""  # the archive's run id (info's history)
    groups_added: int = 0  # groups encoded by this run (new and re-encoded)
    groups_changed: int = 0  # groups whose source content changed since archived
    groups_vanished: int = 0  # archived groups no longer in the source (kept)
    groups_reencoded: int = 0
    changed_names: tuple[str, ...] = ()
    vanished_names: tuple[str, ...] = ()
    run_summary: dict[str, float] = field(default_factory=dict)  # this run's groups only
    drift: DriftDecision | None = None  # this run against its registered model's reference figures


@dataclass(frozen=True)
class GrowthPlan:
    """What a run does to an existing archive (everything, for a new one)."""

    todo: tuple[int, ...]  # source group positions to encode
    changed: tuple[str, ...]  # in both, content differs
    vanished: tuple[str, ...]  # archived, not in the source
    reencode: tuple[str, ...]  # changed and to be encoded again
    archived: int  # groups already in the archive (with adopted ones)


@dataclass(frozen=True)
class ArchivePlan:
    """A validated archive job: what the flow needs, nothing written yet."""

    index: DatasetIndex
    meta: ArchiveMeta
    location: Location
    checkpoint_bytes: bytes | None
    codec: CodecRef  # how workers load the codec (after the checkpoint is embedded)
    digests: tuple[str, ...]  # per source group
    growth: GrowthPlan


def content_digest(index: DatasetIndex) -> str:
    """SHA-256 of the source's content as listed: group names, file names and byte sizes."""
    rows = [[g.name, [[v.camera, v.name, v.size] for v in g.views]] for g in index.groups]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def source_digest(group: GroupRef) -> str:
    return group_digest(group.name, [(v.camera, v.name, v.size) for v in group.views])


def _resolve_checkpoint(text: str, registry_uri: str | None) -> tuple[str, str | None]:
    """(what to read, pinned registry URI or None) for a --checkpoint/--model value."""
    if not text.startswith("models:/"):
        return absolute_url(text), None
    from mvarchive.models.registry import resolve_model_uri  # lazy: imports mlflow

    pinned = resolve_model_uri(text, tracking_uri=registry_uri).uri
    return pinned, pinned


def _registry_options(registered: str | None, registry_uri: str | None) -> StorageOptions:
    """How a ``models:/`` checkpoint is read: from the named MLflow store (else the environment's)."""
    return StorageOptions({"mlflow_tracking_uri": registry_uri} if registered and registry_uri else {})


def plan_growth(index: DatasetIndex, digests: tuple[str, ...], reader: ArchiveReader | None,
                reencode: bool) -> GrowthPlan:
    """Compare the source with what is archived (newest row per name, adopted blobs included)."""
    if reader is None:
        return GrowthPlan(tuple(range(len(index.groups))), (), (), (), 0)
    archived = reader.digests()
    source = {g.name for g in index.groups}
    todo, changed = [], []
    for i, (group, digest) in enumerate(zip(index.groups, digests)):
        if group.name not in archived:
            todo.append(i)
        elif archived[group.name] and archived[group.name] != digest:  # "": unknown (migrated from format 2)
            changed.append(group.name)
            if reencode:
                todo.append(i)
    vanished = tuple(n for n in archived if n not in source)
    return GrowthPlan(tuple(todo), tuple(changed), vanished, tuple(changed) if reencode else (), len(archived))


def plan_archive(config: ArchiveConfig, check_lease: bool = True) -> ArchivePlan:
    """Check the whole request and build the archive's metadata; writes nothing."""
    if config.shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {config.shard_size}")
    if not 0.0 <= config.metrics_fraction <= 1.0:
        raise ValueError(f"--metrics-fraction must be between 0 and 1, got {config.metrics_fraction}")
    spec = get_spec(config.codec)
    if config.preset not in spec.presets:
        raise KeyError(f"codec {config.codec!r} has no preset {config.preset!r}; presets: {', '.join(spec.presets)}")
    if config.checkpoint is None and not config.untrained:
        raise ArchiveError(
            f"no model given for codec {config.codec!r}: pass --checkpoint PATH (from `mvarchive train`) or "
            "--model models:/NAME@ALIAS; --untrained encodes with random weights and is for tests only"
        )
    if config.checkpoint is not None and config.untrained:
        raise ValueError("pass either --checkpoint or --untrained, not both")
    source_options = config.source_options.reveal()
    source = absolute_url(config.source)
    index = discover_dataset(source, config.layout, source_options)
    location = Location(absolute_url(config.dest), config.dest_options.reveal())
    checkpoint_bytes = None
    registered = None
    if config.checkpoint is not None:
        checkpoint_url, registered = _resolve_checkpoint(config.checkpoint, config.registry_uri)
        options = _registry_options(registered, config.registry_uri).reveal()
        checkpoint_bytes = fetch_checkpoint_bytes(checkpoint_url, options)
        held = parse_checkpoint(checkpoint_bytes, config.checkpoint)
        codec = codec_from_checkpoint(held, f"checkpoint {config.checkpoint}", name=config.codec)
        codec.eval()
        recorded = held.digest  # checked against these tensors while parsing
    else:
        checkpoint_url = None
        recorded = None
        codec = load_codec(name=config.codec, preset=config.preset, seed=config.seed)
    check_view_count(codec, len(index.cameras))
    identity = codec.identity
    if identity is None:  # codecs are complete at construction; a subclass that is not cannot be archived
        raise ValueError(f"codec {config.codec!r} has no registered identity to record in the archive")
    digest = recorded or weights_digest(codec)
    embedded = embedded_path(digest) if (checkpoint_bytes is not None and config.embed_model) else None
    record = CodecRecord(
        name=identity.name, codec_id=identity.codec_id, preset=identity.preset, config=dict(identity.config),
        weights_digest=digest, source=checkpoint_url, embedded=embedded,
        seed=config.seed if checkpoint_bytes is None else None, registered=registered,
    )
    meta = ArchiveMeta(
        codec=record, dataset_url=source, layout=index.layout, cameras=tuple(index.cameras),
        num_groups=len(index.groups), shard_size=config.shard_size, content_digest=content_digest(index),
        environment=decode_policy(), models=(record,),
    )
    existing = ArchiveWriter.check_destination(location, meta)
    if check_lease and not config.wait:
        holder = current_holder(location)
        if holder is not None:
            raise ArchiveBusyError(holder.describe(location))
    digests = tuple(source_digest(g) for g in index.groups)
    growth = plan_growth(index, digests, ArchiveReader(location) if existing is not None else None, config.reencode)
    if embedded:
        ref = CodecRef(identity.name, identity.preset, location.child(embedded).url, digest=digest,
                       storage_options=StorageOptions(location.storage_options))
    else:
        # a registry model: workers (on any host) fetch it from the store this run resolved it in
        ref = CodecRef(identity.name, identity.preset, checkpoint_url, config.seed, digest=digest,
                       storage_options=_registry_options(registered, config.registry_uri))
    return ArchivePlan(index, meta, location, checkpoint_bytes, ref, digests, growth)


def preflight(plan: ArchivePlan, config: ArchiveConfig, show_progress: bool, groups: tuple[int, ...] | None = None,
              groups_per_task: int = 16) -> None:
    """Load every image still to be encoded (on the workers) and refuse the whole run, before
    anything is written, if any group cannot be archived."""
    pending = list(plan.growth.todo if groups is None else groups)
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


def plan_shards(todo: list[int], shard_size: int, slots: int) -> list[list[int]]:
    """Split the groups to encode into shards of at most ``shard_size`` groups whose count is a
    multiple of ``slots`` (the tasks that run at once) and whose sizes differ by one at most, so
    that no worker idles while another finishes a last, lone shard (groups of equal size assumed)."""
    if not todo:
        return []
    count = -(-len(todo) // shard_size)
    count = min(len(todo), -(-count // slots) * slots)
    base, extra = divmod(len(todo), count)
    shards, start = [], 0
    for i in range(count):
        end = start + base + (i < extra)
        shards.append(todo[start:end])
        start = end
    return shards


def task_slots() -> int:
    """Encode tasks that run at once: the Dask workers' threads (1 without a Dask runner)."""
    try:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        return max(1, sum(context.task_runner.client.nthreads().values()))  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - a thread-pool runner, no client yet: plain shards
        return 1


def _names(names: tuple[str, ...], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def report_drift(location: Location, growth: GrowthPlan) -> None:
    """One warning line each for changed and vanished source groups."""
    if growth.changed and not growth.reencode:
        log.warning("%s: %d group(s) changed in the source since they were archived and were left alone "
                    "(pass --reencode to encode them again): %s", location, len(growth.changed), _names(growth.changed))
    elif growth.reencode:
        log.warning("%s: %d group(s) changed in the source since they were archived; encoding them again "
                    "(the earlier copies stay in their shards): %s",
                    location, len(growth.reencode), _names(growth.reencode))
    if growth.vanished:
        log.warning("%s: %d archived group(s) are no longer in the source; they stay in the archive: %s",
                    location, len(growth.vanished), _names(growth.vanished))


def _shard_bpp(rows: Sequence[IndexRow]) -> float:
    pixels = sum(8.0 * r.metrics["bytes"] / r.metrics["bpp"] for r in rows if r.metrics.get("bpp"))
    return 8.0 * sum(r.metrics.get("bytes", 0.0) for r in rows) / pixels if pixels else math.nan


def archive_run_name(plan: ArchivePlan) -> str:
    """What a person reads in the MLflow run list: ``archive stereo ldmic-fast v3``."""
    record = plan.meta.codec
    dataset = plan.meta.dataset_url.rstrip("/").rsplit("/", 1)[-1] or plan.meta.dataset_url
    if record.registered:
        model = "v" + record.registered.rstrip("/").rsplit("/", 1)[-1]
    elif record.source:
        model = record.source.rstrip("/").rsplit("/", 1)[-1]
    else:
        model = "untrained"
    return f"archive {dataset} {record.name} {model}"


def watch_drift(plan: ArchivePlan, report: ArchiveReport, logger: RunLogger) -> DriftDecision | None:
    """Compare this run's groups with the model's reference RD point (registry models only);
    record the verdict on the run and ask for retraining when the drift persists."""
    record = plan.meta.codec
    figures = report.run_summary
    if not record.registered or not figures.get("groups") or not math.isfinite(figures.get("bpp", math.nan)):
        return None
    run = ArchiveRunFigures(
        archive_url=plan.location.url, dataset_url=plan.meta.dataset_url, codec=record.name,
        weights_digest=record.weights_digest, model_uri=record.registered, bpp=figures["bpp"],
        psnr=figures.get("psnr", math.nan),
    )
    try:
        decision = watch_archive_run(run, logger.run_id, logger.tracking_uri, logger.experiment_id)
    except Exception as exc:  # noqa: BLE001 - the archive is written; monitoring must not fail it
        log.warning("drift check of %s skipped: %s", plan.location.url, exc)
        return None
    if decision is not None and decision.exceeded:
        print(f"archive {plan.location.url}: {decision.reason}")
    return decision


@flow(name="archive-dataset", log_prints=True)
def archive_dataset(config: ArchiveConfig, tracking: TrackingConfig | None = None,
                    show_progress: bool = True) -> ArchiveReport:
    """Encode the source's groups that the archive lacks into new shards; a killed run's
    blobs are adopted, never encoded again."""
    started = time.perf_counter()
    plan = plan_archive(config)
    require_gpu_for_flow(config.device, f"archive {config.dest}")
    preflight(plan, config, show_progress)
    location = plan.location
    lease = Lease(location, config=LeaseConfig(ttl_s=config.lease_ttl_s, renew_s=config.lease_ttl_s / 4))
    lease.acquire(wait=config.wait)
    try:
        writer = ArchiveWriter.create_or_resume(location, plan.meta)
        adopted = writer.adopt_orphans()
        if adopted:
            log.warning("%s: %d group(s) of an interrupted run were adopted from their shards", location, len(adopted))
        checked = set(plan.growth.todo)
        plan = replace(plan, growth=plan_growth(plan.index, plan.digests, ArchiveReader(location), config.reencode))
        unchecked = tuple(sorted(set(plan.growth.todo) - checked))
        if unchecked:  # the archive changed while we waited: check what is new to this run
            preflight(plan, config, show_progress, unchecked)
        growth = plan.growth
        report_drift(location, growth)
        record = plan.meta.codec
        run_id = writer.begin_run(record, planned=len(growth.todo), dataset_url=plan.meta.dataset_url,
                                  content_digest=plan.meta.content_digest, shard_size=config.shard_size,
                                  environment=plan.meta.environment,  # this run's; the archive keeps its first
                                  num_groups=growth.archived + len(growth.todo) - len(growth.reencode))
        if plan.checkpoint_bytes is not None and record.embedded and not writer.has_embedded_checkpoint(record):
            writer.embed_checkpoint(plan.checkpoint_bytes, record.weights_digest)
        shards = plan_shards(list(growth.todo), config.shard_size, task_slots())
        with tracked_run(tracking, archive_run_name(plan), "archive") as logger:
            with gpu_placement(config.device):  # only the encode tasks need a GPU worker
                futures = [
                    encode_shard.submit(EncodeShardJob(
                        archive=location, meta=writer.meta, shard_id=shard, run_id=run_id,
                        groups=tuple(plan.index.groups[i] for i in members),
                        digests=tuple(plan.digests[i] for i in members),
                        codec=plan.codec, source_options=config.source_options, max_pixels=config.max_pixels,
                        device=config.device, metrics_fraction=config.metrics_fraction,
                    ))
                    for shard, members in enumerate(shards)
                ]
            results = []
            with progress_bar(f"archive {config.codec}", total=len(shards), enabled=show_progress) as bar:
                for future in as_completed(futures):
                    results.append(future.result())
                    bar.advance(1)
            results.sort(key=lambda r: r.shard_id)
            rows = [row for r in results for row in r.rows]
            lease.check()
            writer.append_rows(rows)
            skipped = sum(r.skipped for r in results) + len({r.blob for r in adopted})
            report = ArchiveReport(
                location.url, {}, len(results) - sum(r.skipped for r in results), skipped, 0.0, run_id=run_id,
                groups_added=len(rows), groups_changed=len(growth.changed), groups_vanished=len(growth.vanished),
                groups_reencoded=len(growth.reencode), changed_names=growth.changed, vanished_names=growth.vanished,
                run_summary=rows_summary(rows, len(plan.meta.cameras)),
            )
            writer.finish_run(added=len(rows) - len(growth.reencode), reencoded=len(growth.reencode),
                              changed_skipped=len(growth.changed) - len(growth.reencode),
                              vanished=len(growth.vanished), adopted=len(adopted),
                              changed_names=growth.changed[:100], vanished_names=growth.vanished[:100],
                              mlflow_run_id=logger.run_id if logger else None)
            writer.finalize()
            report.summary = archive_summary(ArchiveReader(location))
            report.wall_s = time.perf_counter() - started
            if logger:
                meta = writer.meta
                logger.set_tags({"mvarchive.archive": location.url, "mvarchive.run": run_id})
                logger.log_params({
                    "codec": meta.codec.name, "preset": meta.codec.preset, "weights_digest": meta.codec.weights_digest,
                    "checkpoint": meta.codec.registered or meta.codec.source or "untrained",
                    "model_embedded": bool(meta.codec.embedded), "dataset_url": meta.dataset_url,
                    "layout": meta.layout, "content_digest": meta.content_digest, "shard_size": config.shard_size,
                    "cameras": ",".join(meta.cameras), "archive": location.url, "archive_run": run_id,
                    "analysis_device": config.device, "metrics_fraction": config.metrics_fraction,
                    **environment_params(),
                })
                logger.log_series("rate_bpp", {r.shard_id: _shard_bpp(r.rows) for r in results})
                logger.log_metrics({**report.summary, "wall_s": report.wall_s, "groups_added": report.groups_added,
                                    "groups_changed": report.groups_changed, "groups_vanished": report.groups_vanished,
                                    **{f"run_{k}": v for k, v in report.run_summary.items()}})
                logger.log_text(summary_markdown([(meta.codec.name, report.summary)]), "summary.md")
                report.mlflow_run_id = logger.run_id
                report.drift = watch_drift(plan, report, logger)
            return report
    finally:
        lease.release()

