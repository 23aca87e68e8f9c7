"""Archive layout (format 3): blobs, the index, adoption of unindexed blobs, growth rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mvarchive.integrity import Fingerprint
from mvarchive.storage import (
    ArchiveError,
    ArchiveMeta,
    ArchiveReader,
    ArchiveWriter,
    CodecRecord,
    GroupRecord,
    Location,
)
from mvarchive.storage.archive import list_blobs


def make_meta(num_groups: int = 5, shard_size: int = 2, digest: str = "d" * 64, dataset_url: str = "/data/set",
              content: str = "c" * 64, codec: str = "ldmic-fast",
              cameras: tuple[str, ...] = ("left", "right")) -> ArchiveMeta:
    return ArchiveMeta(
        codec=CodecRecord(codec, 2, "tiny", {"N": 32}, digest),
        dataset_url=dataset_url, layout="group-folders", cameras=cameras,
        num_groups=num_groups, shard_size=shard_size, content_digest=content,
    )


def record(index: int, rng: np.random.Generator, name: str | None = None, digest: str = "") -> GroupRecord:
    stream = bytes(rng.integers(0, 256, size=20 + index, dtype=np.uint8)) + b"\x00\x00"
    latents = {"y": rng.integers(-5, 5, size=(2, 4, 3, 3)).astype(np.int32)}
    views = rng.integers(0, 256, size=(2, 30 + index, 40, 3), dtype=np.uint8)
    name = name or f"g{index}"
    return GroupRecord(
        index=index, name=name, sizes=[(30 + index, 40)] * 2, stream=stream, latents=latents,
        fingerprint=Fingerprint.of(views, latents),
        metrics={"bytes": float(len(stream)), "bpp": 0.5, "psnr": 30.0 + index, "ms_ssim": np.nan, "encode_s": 0.1},
        files=(f"{name}/left.png", f"{name}/right.png"), digest=digest or f"digest-{name}",
    )


def create(location: Location, meta: ArchiveMeta) -> ArchiveWriter:
    """A new (or reopened) archive with a run begun, as the flow does."""
    writer = ArchiveWriter.create_or_resume(location, meta)
    writer.begin_run(meta.codec, planned=meta.num_groups)
    return writer


def test_round_trip_index_and_unindexed_blobs(tmp_path):
    rng = np.random.default_rng(0)
    location = Location(str(tmp_path / "a"))
    writer = create(location, make_meta())
    records = {i: record(i, rng) for i in range(5)}
    rows = writer.write_shard(0, [records[0], records[1]])
    writer.append_rows(rows)
    writer.write_shard(1, [records[4]])  # a blob the orchestrator has not indexed yet
    reader = ArchiveReader(location)
    assert reader.names == ["g0", "g1", "g4"] and reader.indexed_rows == 2 and len(reader.orphans) == 1
    assert not reader.is_complete()  # the run planned 5 groups
    with pytest.raises(ArchiveError, match="no group"):
        reader.select(["nope"])
    for stored in reader.read_groups(reader.select(["g4", "g0", "g1"])):
        original = records[int(stored.name[1:])]
        assert stored.stream == original.stream  # trailing NULs kept
        assert stored.files == original.files
        assert stored.sizes == tuple(original.sizes)
        assert stored.metrics["psnr"] == original.metrics["psnr"]
        assert stored.fingerprint == original.fingerprint
        assert stored.model == "d" * 64
        np.testing.assert_array_equal(reader.read_latents(stored.index)["y"], original.latents["y"])
    # the next run adopts the unindexed blob: rows, never a second copy
    adopted = ArchiveWriter.create_or_resume(location, make_meta()).adopt_orphans()
    assert [r.name for r in adopted] == ["g4"]
    assert ArchiveWriter.create_or_resume(location, make_meta()).adopt_orphans() == []
    again = ArchiveReader(location)
    assert again.names == ["g0", "g1", "g4"] and again.indexed_rows == 3 and again.orphans == []
    # a retried shard task finds its blob and does not write it again
    shards = tmp_path / "a" / "shards"
    before = shards.stat().st_mtime_ns, sorted(p.name for p in shards.iterdir())
    assert [(r.blob, r.record, r.latents) for r in writer.write_shard(0, [records[0], records[1]])] == \
        [(r.blob, r.record, r.latents) for r in rows]
    assert (shards.stat().st_mtime_ns, sorted(p.name for p in shards.iterdir())) == before


def test_reencoded_group_newest_row_wins_and_old_bytes_stay(tmp_path):
    rng = np.random.default_rng(1)
    location = Location(str(tmp_path / "a"))
    writer = create(location, make_meta())
    first = record(0, rng, "g0")
    writer.append_rows(writer.write_shard(0, [first, record(1, rng, "g1")]))
    blobs = list_blobs(location)
    old_bytes = {b: (tmp_path / "a" / "shards" / f"{b}.bin").read_bytes() for b in blobs}
    newer_model = CodecRecord("ldmic-fast", 2, "tiny", {"N": 32}, "e" * 64)
    writer = ArchiveWriter.create_or_resume(location, dataclasses.replace(make_meta(), codec=newer_model))
    writer.begin_run(newer_model, planned=1)  # a newer model: the same archive
    newer = record(3, rng, "g0", digest="digest-g0-v2")
    writer.append_rows(writer.write_shard(0, [newer]))
    reader = ArchiveReader(location)
    assert reader.names == ["g0", "g1"] and reader.indexed_rows == 3
    assert reader.read_groups([0])[0].stream == newer.stream
    assert reader.digests() == {"g0": "digest-g0-v2", "g1": "digest-g1"}
    assert reader.models_of([0, 1]) == {"e" * 64: [0], "d" * 64: [1]}
    assert [m.weights_digest for m in reader.meta.all_models()] == ["d" * 64, "e" * 64]
    assert [r.status for r in reader.runs] == ["interrupted", "running"]
    assert {b: (tmp_path / "a" / "shards" / f"{b}.bin").read_bytes() for b in blobs} == old_bytes


def test_identity_is_cameras_codec_layout_and_metrics_not_content(tmp_path):
    location = Location(str(tmp_path / "a"))
    create(location, make_meta())
    # growth: other group counts, content, weights, shard sizes and paths are the same archive
    create(location, make_meta(num_groups=9, content="f" * 64, digest="e" * 64, shard_size=3, dataset_url="../x"))
    differs = r"different archive job: codec differs \(archive: ldmic-fast, this run: ldmic\)"
    with pytest.raises(ArchiveError, match=differs):
        create(location, make_meta(codec="ldmic"))
    with pytest.raises(ArchiveError, match="cameras differs") as info:
        create(location, make_meta(cameras=("a", "b")))
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_refuses_foreign_directories_and_other_formats(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "plain"), mode="w")
    with pytest.raises(ArchiveError, match="not an mvarchive archive"):
        create(Location(str(tmp_path / "plain")), make_meta())
    with pytest.raises(ArchiveError, match="no archive|not a readable"):
        ArchiveReader(Location(str(tmp_path / "missing")))
    old = zarr.open_group(str(tmp_path / "v1"), mode="w")
    old.attrs["mvarchive"] = {"format": 1}
    with pytest.raises(ArchiveError, match="format 1 archives have no integrity digests"):
        ArchiveReader(Location(str(tmp_path / "v1")))
    writer = create(Location(str(tmp_path / "b")), make_meta())
    bad = record(0, np.random.default_rng(1))
    with pytest.raises(ArchiveError, match="3 views, cameras are 2"):
        writer.write_shard(0, [dataclasses.replace(bad, sizes=[(1, 1)] * 3)])


def test_archive_on_s3(s3_bucket):
    url, options = s3_bucket
    location = Location(f"{url}/archives/one", options)
    writer = create(location, make_meta(num_groups=3, shard_size=2))
    rng = np.random.default_rng(2)
    recs = [record(i, rng) for i in range(3)]
    writer.append_rows(writer.write_shard(0, recs[:2]))
    writer.write_shard(1, recs[2:])  # unindexed: read from the blob's header
    reader = ArchiveReader(location)
    assert reader.is_complete()
    assert [g.stream for g in reader.read_groups([0, 1, 2])] == [r.stream for r in recs]
    writer.adopt_orphans()
    writer.finish_run(added=3)
    writer.finalize()
    reader = ArchiveReader(location)
    assert reader.indexed_rows == 3 and [r.status for r in reader.runs] == ["finished"]
    assert [g.stream for g in reader.read_groups([2, 0])] == [recs[2].stream, recs[0].stream]
