"""Build archives in-process (no Prefect, no Dask) for tests of the storage and task layers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mvarchive.flows.archive import ArchiveConfig, ArchivePlan, plan_archive
from mvarchive.storage import ArchiveReader, ArchiveWriter, Location
from mvarchive.tasks.encode import EncodeShardJob, encode_shard_fn


def subset(dataset: Path, groups: list[str], dest: Path) -> Path:
    """A copy of a group-folders dataset holding only ``groups``."""
    dest.mkdir(parents=True, exist_ok=True)
    for group in groups:
        shutil.copytree(Path(dataset) / group, dest / group)
    return dest


def archive_in_process(config: ArchiveConfig, shards: list[int] | None = None) -> ArchivePlan:
    """Plan, create the archive and encode the run's shards in this process, then index them
    like the flow does. With ``shards`` only those shards' blobs are written and nothing is
    indexed: what a run killed after those shards leaves behind."""
    plan = plan_archive(config)
    writer = ArchiveWriter.create_or_resume(plan.location, plan.meta)
    writer.adopt_orphans()
    run_id = writer.begin_run(plan.meta.codec, planned=len(plan.growth.todo))
    if plan.checkpoint_bytes is not None and plan.meta.codec.embedded:
        writer.embed_checkpoint(plan.checkpoint_bytes, plan.meta.codec.weights_digest)
    todo = list(plan.growth.todo)
    chunks = [todo[i : i + config.shard_size] for i in range(0, len(todo), config.shard_size)]
    rows = []
    for shard in range(len(chunks)) if shards is None else shards:
        members = chunks[shard]
        result = encode_shard_fn(EncodeShardJob(
            plan.location, writer.meta, shard, tuple(plan.index.groups[i] for i in members), plan.codec,
            run_id=run_id, digests=tuple(plan.digests[i] for i in members)))
        rows += result.rows
    if shards is None:
        writer.append_rows(rows)
        writer.finish_run(added=len(rows))
        writer.finalize()
    return plan


def archive_snapshot(location: Location | str) -> dict[str, Any]:
    """Everything an archive stores, decoded, except timings and run history: two runs of
    one job (or a killed run and its rerun) compare equal."""
    reader = ArchiveReader(location if isinstance(location, Location) else Location(location))
    groups = reader.read_groups(range(len(reader.names)))
    keep = [i for i, c in enumerate(reader.meta.metrics) if c != "encode_s"]
    meta = reader.meta.to_json()
    meta.pop("runs")
    return {
        "meta": meta,
        "names": reader.names,
        "groups": [(g.name, g.files, g.sizes, g.stream, g.fingerprint, g.model) for g in groups],
        "latents": [{k: v.tolist() for k, v in reader.read_latents(g.index).items()} for g in groups],
        "metrics": np.nan_to_num(reader.metrics_table()[:, keep]).tolist(),
        "digests": reader.digests(),
    }
