"""Restore of a damaged archive names the group and the problem, and writes nothing for it."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from mvarchive.flows.archive import ArchiveConfig
from mvarchive.integrity import Status
from mvarchive.storage import Location
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from tests.archive_helpers import archive_in_process


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_stream_is_reported_by_group_and_not_written(sample_data, tmp_path, damage):
    plan = archive_in_process(ArchiveConfig(str(sample_data.stereo), str(tmp_path / "a"), codec="single-view-mbt2018-mean",
                                            preset="tiny", untrained=True, shard_size=4))
    streams = zarr.open_group(str(tmp_path / "a"), mode="r+")["groups/stream"]
    original = streams[1:2][0]
    broken = original[:-10] if damage == "truncate" else original[:40] + bytes([original[40] ^ 1]) + original[41:]
    value = np.empty(1, dtype=object)
    value[0] = broken
    streams[1:2] = value
    out = tmp_path / "out"
    result = restore_groups_fn(RestoreJob(plan.location, (0, 1), (0, 1), Location(str(out)), plan.codec))
    statuses = {c.group: c.status for c in result.checks}
    bad = plan.index.groups[1].name
    assert statuses[plan.index.groups[0].name] is Status.OK
    assert statuses[bad] in (Status.UNDECODABLE, Status.MISMATCH)
    assert f"group {bad!r}" in [c for c in result.checks if c.group == bad][0].describe()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [f"{plan.index.groups[0].name}/left.png", f"{plan.index.groups[0].name}/right.png"]
