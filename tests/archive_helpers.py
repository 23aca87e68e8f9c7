"""Build archives in-process (no Prefect, no Dask) for tests of the storage and task layers."""

from __future__ import annotations

import shutil
from pathlib import Path

from mvarchive.flows.archive import ArchiveConfig, ArchivePlan, plan_archive
from mvarchive.storage import ArchiveWriter
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
