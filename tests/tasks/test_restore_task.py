"""Restore of a damaged archive names the group and the problem, and writes nothing for it."""

from __future__ import annotations

import struct

import pytest

from mvarchive.flows.archive import ArchiveConfig
from mvarchive.integrity import Status
from mvarchive.storage import ArchiveReader, Location
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from tests.archive_helpers import archive_in_process


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_stream_is_reported_by_group_and_not_written(sample_data, tmp_path, damage):
    plan = archive_in_process(ArchiveConfig(str(sample_data.stereo), str(tmp_path / "a"),
                                            codec="single-view-mbt2018-mean", preset="tiny", untrained=True,
                                            shard_size=4))
    reader = ArchiveReader(plan.location)
    row = reader.row(1)
    blob = tmp_path / "a" / "shards" / f"{row.blob}.bin"
    data = bytearray(blob.read_bytes())
    start = row.record[0]
    head = struct.unpack_from("<I", data, start)[0]
    length_at = start + 4 + head  # the stream's length field, then the stream
    if damage == "truncate":  # the record now ends its stream 10 bytes early
        struct.pack_into("<I", data, length_at, struct.unpack_from("<I", data, length_at)[0] - 10)
    else:
        data[length_at + 4 + 40] ^= 1
    blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = restore_groups_fn(RestoreJob(plan.location, (0, 1), (0, 1), Location(str(out)), plan.codec))
    statuses = {c.group: c.status for c in result.checks}
    bad = plan.index.groups[1].name
    assert statuses[plan.index.groups[0].name] is Status.OK
    assert statuses[bad] in (Status.UNDECODABLE, Status.MISMATCH)
    assert f"group {bad!r}" in [c for c in result.checks if c.group == bad][0].describe()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [f"{plan.index.groups[0].name}/left.png", f"{plan.index.groups[0].name}/right.png"]


def test_groups_of_two_models_decode_each_with_its_own(sample_data, tmp_path):
    """A later run with other weights (here: another seed) grows the archive; restore plans
    one batch per model and every group verifies with the weights that encoded it."""
    from mvarchive.flows.restore import RestoreConfig, plan_restore
    from tests.archive_helpers import subset

    data = subset(sample_data.stereo, sorted(p.name for p in sample_data.stereo.iterdir() if p.is_dir())[:2],
                  tmp_path / "data")
    job = dict(codec="single-view-mbt2018-mean", preset="tiny", untrained=True, shard_size=4, layout="group-folders")
    archive_in_process(ArchiveConfig(str(data), str(tmp_path / "a"), seed=0, **job))
    for extra in sorted(p.name for p in sample_data.stereo.iterdir() if p.is_dir())[2:]:
        subset(sample_data.stereo, [extra], data)
    archive_in_process(ArchiveConfig(str(data), str(tmp_path / "a"), seed=1, **job))
    plan = plan_restore(RestoreConfig(archive=str(tmp_path / "a"), out=str(tmp_path / "out")))
    assert len(plan.reader.meta.all_models()) == 2 and len(plan.codecs) == 2
    batches = plan.batches(8)
    assert sorted(len(b) for _, b in batches) == [2, 2] and len({ref.seed for ref, _ in batches}) == 2
    checks = [c for ref, batch in batches
              for c in restore_groups_fn(RestoreJob(plan.reader.location, batch, (0, 1), None, ref)).checks]
    assert [c.status for c in checks] == [Status.OK] * 4
    # decoding with the other model's weights is caught by the check, not written
    (ref0, batch0), (ref1, _) = batches
    wrong = restore_groups_fn(RestoreJob(plan.reader.location, batch0, (0, 1), None, ref1)).checks
    assert all(c.status.failed for c in wrong)
