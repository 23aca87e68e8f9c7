"""Format 2 archives: `mvarchive migrate` copies them into format 3 without re-encoding."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from mvarchive.cli import app
from mvarchive.flows.archive import ArchiveConfig
from mvarchive.integrity import Status
from mvarchive.storage import ArchiveError, ArchiveReader, Location, legacy_v2
from mvarchive.storage.migrate import migrate_v2
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from tests.archive_helpers import archive_in_process


def format2_copy(reader: ArchiveReader, dest: Location, shard_size: int = 3) -> legacy_v2.ArchiveMeta:
    """The same groups written by the format-2 writer (the code of commit f2d54ba)."""
    c = reader.meta.codec
    meta = legacy_v2.ArchiveMeta(
        codec=legacy_v2.CodecRecord(c.name, c.codec_id, c.preset, c.config, c.weights_digest, seed=c.seed),
        dataset_url=reader.meta.dataset_url, layout=reader.meta.layout, cameras=reader.cameras,
        num_groups=len(reader.names), shard_size=shard_size, content_digest=reader.meta.content_digest,
        environment=reader.meta.environment,
    )
    groups = reader.read_groups(range(len(reader.names)))
    writer = legacy_v2.ArchiveWriter.create_or_resume(
        dest, meta, [g.name for g in groups], [list(g.files) for g in groups]
    )
    for shard in range(meta.num_shards):
        writer.write_shard(shard, [
            legacy_v2.GroupRecord(index=i, name=groups[i].name, sizes=list(groups[i].sizes), stream=groups[i].stream,
                                  latents=reader.read_latents(i), fingerprint=groups[i].fingerprint,
                                  metrics=groups[i].metrics)
            for i in meta.shard_range(shard)])
    writer.finalize()
    return meta


def test_migrated_archive_holds_the_same_groups_and_verifies(sample_data, tmp_path):
    plan = archive_in_process(ArchiveConfig(str(sample_data.stereo), str(tmp_path / "v3"),
                                            codec="single-view-mbt2018-mean", preset="tiny", untrained=True,
                                            shard_size=4))
    original = ArchiveReader(plan.location)
    old = Location(str(tmp_path / "v2"))
    format2_copy(original, old)
    with pytest.raises(ArchiveError, match="archive format 2, this build reads format 3 .*mvarchive migrate"):
        ArchiveReader(old)

    result = CliRunner().invoke(app, ["migrate", str(tmp_path / "v2"), str(tmp_path / "new"), "--shard-size", "3"])
    assert result.exit_code == 0, result.output
    assert "migrated 4 groups" in result.output
    new = ArchiveReader(Location(str(tmp_path / "new")))
    assert new.names == original.names and new.meta.format == 3
    for a, b in zip(new.read_groups(range(4)), original.read_groups(range(4))):
        assert (a.name, a.files, a.sizes, a.stream, a.fingerprint) == (
            b.name, b.files, b.sizes, b.stream, b.fingerprint)
        np.testing.assert_array_equal(new.read_latents(a.index)["y"], original.read_latents(b.index)["y"])
    assert len(list((tmp_path / "new" / "shards").glob("*.bin"))) == 2
    # the migrated archive decodes and verifies like the original
    checked = restore_groups_fn(RestoreJob(new.location, (0, 1, 2, 3), (0, 1), None, plan.codec))
    assert [c.status for c in checked.checks] == [Status.OK] * 4
    with pytest.raises(ArchiveError, match="already holds an archive"):
        migrate_v2(old, Location(str(tmp_path / "new")))
