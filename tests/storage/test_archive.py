"""Archive layout: writer/reader round trip, completion markers, resume checks."""

from __future__ import annotations

import numpy as np
import pytest

from mvarchive.integrity import Fingerprint
from mvarchive.storage import ArchiveError, ArchiveMeta, ArchiveReader, ArchiveWriter, CodecRecord, GroupRecord, Location


def make_meta(num_groups: int = 5, shard_size: int = 2, digest: str = "d" * 64, dataset_url: str = "/data/set",
              content: str = "c" * 64) -> ArchiveMeta:
    return ArchiveMeta(
        codec=CodecRecord("ldmic-fast", 2, "tiny", {"N": 32}, digest),
        dataset_url=dataset_url, layout="group-folders", cameras=("left", "right"),
        num_groups=num_groups, shard_size=shard_size, content_digest=content,
    )


def record(index: int, rng: np.random.Generator) -> GroupRecord:
    stream = bytes(rng.integers(0, 256, size=20 + index, dtype=np.uint8)) + b"\x00\x00"
    latents = {"y": rng.integers(-5, 5, size=(2, 4, 3, 3)).astype(np.int32)}
    views = rng.integers(0, 256, size=(2, 30 + index, 40, 3), dtype=np.uint8)
    return GroupRecord(
        index=index, name=f"g{index}", sizes=[(30 + index, 40)] * 2, stream=stream, latents=latents,
        fingerprint=Fingerprint.of(views, latents),
        metrics={"bytes": float(len(stream)), "bpp": 0.5, "psnr": 30.0 + index, "ms_ssim": np.nan, "encode_s": 0.1},
    )


def create(location: Location, meta: ArchiveMeta) -> ArchiveWriter:
    names = [f"g{i}" for i in range(meta.num_groups)]
    files = [[f"g{i}/left.png", f"g{i}/right.png"] for i in range(meta.num_groups)]
    return ArchiveWriter.create_or_resume(location, meta, names, files)


def test_round_trip_and_visibility(tmp_path):
    rng = np.random.default_rng(0)
    meta = make_meta()
    location = Location(str(tmp_path / "a"))
    writer = create(location, meta)
    records = {i: record(i, rng) for i in range(meta.num_groups)}
    writer.write_shard(0, [records[0], records[1]])
    writer.write_shard(2, [records[4]])
    reader = ArchiveReader(location)
    assert reader.complete_indices() == [0, 1, 4]
    assert not reader.is_complete()
    with pytest.raises(ArchiveError, match="unfinished shards"):
        reader.select(["g2"])
    with pytest.raises(ArchiveError, match="no group"):
        reader.select(["nope"])
    for stored in reader.read_groups([4, 0, 1]):
        original = records[stored.index]
        assert stored.stream == original.stream  # trailing NULs kept
        assert stored.files == (f"g{stored.index}/left.png", f"g{stored.index}/right.png")
        assert stored.sizes == tuple(original.sizes)
        assert stored.metrics["psnr"] == original.metrics["psnr"]
        assert stored.fingerprint == original.fingerprint
        np.testing.assert_array_equal(reader.read_latents(stored.index)["y"], original.latents["y"])
    writer.write_shard(1, [records[2], records[3]])
    writer.finalize()
    assert ArchiveReader(location).is_complete()
    assert ArchiveWriter(location, meta).completed_shards() == {0, 1, 2}


def test_resume_requires_the_same_job(tmp_path):
    location = Location(str(tmp_path / "a"))
    create(location, make_meta())
    create(location, make_meta())  # same job: reopened for resume
    # paths are provenance: the same content read from another path is the same job
    create(location, make_meta(dataset_url="../set"))
    with pytest.raises(ArchiveError, match=r"different archive job: weights_digest differs \(archive: d{12}…, this run: e{12}…\)"):
        create(location, make_meta(digest="e" * 64))
    with pytest.raises(ArchiveError, match="dataset content .* differs"):
        create(location, make_meta(content="f" * 64))
    with pytest.raises(ArchiveError, match="num_groups differs") as info:
        create(location, make_meta(num_groups=6))
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_refuses_foreign_directories_and_bad_shards(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "plain"), mode="w")
    with pytest.raises(ArchiveError, match="not an mvarchive archive"):
        create(Location(str(tmp_path / "plain")), make_meta())
    with pytest.raises(ArchiveError, match="no archive|not a readable"):
        ArchiveReader(Location(str(tmp_path / "missing")))
    writer = create(Location(str(tmp_path / "b")), make_meta())
    with pytest.raises(ArchiveError, match="expected groups"):
        writer.write_shard(0, [record(0, np.random.default_rng(1))])


def test_archive_on_s3(s3_bucket):
    url, options = s3_bucket
    location = Location(f"{url}/archives/one", options)
    meta = make_meta(num_groups=3, shard_size=2)
    writer = create(location, meta)
    rng = np.random.default_rng(2)
    recs = [record(i, rng) for i in range(3)]
    writer.write_shard(0, recs[:2])
    writer.write_shard(1, recs[2:])
    writer.finalize()
    reader = ArchiveReader(location)
    assert reader.is_complete()
    assert [g.stream for g in reader.read_groups([0, 1, 2])] == [r.stream for r in recs]
