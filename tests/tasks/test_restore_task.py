"""Restore of a damaged archive names the group and the problem."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from mvarchive.codecs import BitstreamError, CodecRef
from mvarchive.storage import Location
from mvarchive.tasks.encode import EncodeShardJob, encode_shard_fn
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from mvarchive.flows.archive import ArchiveConfig, plan_archive, relative_file
from mvarchive.datasets import discover_dataset
from mvarchive.storage import ArchiveWriter


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_stream_fails_with_group_name(sample_data, tmp_path, damage):
    index = discover_dataset(str(sample_data.stereo))
    ref = CodecRef("single-view-mbt2018-mean", "tiny")
    meta = plan_archive(ArchiveConfig(str(sample_data.stereo), str(tmp_path / "a"), shard_size=4), index, ref.load())
    location = Location(str(tmp_path / "a"))
    ArchiveWriter.create_or_resume(location, meta, [g.name for g in index.groups],
                                   [[relative_file(v.url, index.url) for v in g.views] for g in index.groups])
    encode_shard_fn(EncodeShardJob(location, meta, 0, index.groups, ref))
    streams = zarr.open_group(str(tmp_path / "a"), mode="r+")["groups/stream"]
    original = streams[1:2][0]
    broken = original[:-10] if damage == "truncate" else original[:40] + bytes([original[40] ^ 1]) + original[41:]
    value = np.empty(1, dtype=object)
    value[0] = broken
    streams[1:2] = value
    with pytest.raises(BitstreamError, match=f"group '{index.groups[1].name}'.*(truncated|corrupted)"):
        restore_groups_fn(RestoreJob(location, (0, 1), (0, 1), Location(str(tmp_path / "out")), ref))
