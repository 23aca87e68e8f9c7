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
    """Plan, create the skeleton and encode the given shards (all by default) in this process."""
    plan = plan_archive(config)
    writer = ArchiveWriter.create_or_resume(
        plan.location, plan.meta, [g.name for g in plan.index.groups],
        [[v.name for v in g.views] for g in plan.index.groups],
    )
    if plan.checkpoint_bytes is not None and plan.meta.codec.embedded:
        writer.embed_checkpoint(plan.checkpoint_bytes)
    for shard in range(plan.meta.num_shards) if shards is None else shards:
        groups = tuple(plan.index.groups[i] for i in plan.meta.shard_range(shard))
        encode_shard_fn(EncodeShardJob(plan.location, plan.meta, shard, groups, plan.codec))
    return plan


def archive_snapshot(location: Location | str) -> dict[str, Any]:
    """Everything an archive stores, decoded, except timings: two runs of one job compare equal."""
    reader = ArchiveReader(location if isinstance(location, Location) else Location(location))
    groups = reader.read_groups(range(reader.meta.num_groups))
    keep = [i for i, c in enumerate(reader.meta.metrics) if c != "encode_s"]
    return {
        "meta": reader.meta.to_json(),
        "names": reader.names,
        "groups": [(g.name, g.files, g.sizes, g.stream, g.fingerprint) for g in groups],
        "latents": [{k: v.tolist() for k, v in reader.read_latents(g.index).items()} for g in groups],
        "metrics": np.nan_to_num(reader.metrics_table()[:, keep]).tolist(),
        "complete": reader.complete.tolist(),
    }
