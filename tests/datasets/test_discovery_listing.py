"""Discovery lists a dataset the cheapest way its filesystem allows (one scandir walk on local disk,
one recursive listing on S3, one `ls` per folder elsewhere); every way must find the same index,
with the same safety checks."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import boto3
import fsspec
import pytest

from mvarchive.datasets import DatasetError, DatasetIndex, discover_dataset


def _files(layout: str) -> dict[str, bytes]:
    """A small dataset with everything discovery must skip: hidden files, non-images, a folder
    without images, images one level too deep, a file at the root."""
    if layout == "camera-folders":
        names = [f"{cam}/frame_{i}.png" for cam in ("left", "right") for i in (1, 2, 10)]
    else:
        names = [f"g{i}/{cam}.jpg" for i in (1, 2, 10) for cam in ("left", "right")]
    files = {name: b"x" * (1 + n) for n, name in enumerate(names)}  # distinct sizes: sizes must travel
    first = names[0].split("/")[0]
    files.update({
        "README.txt": b"about",
        ".hidden/a.png": b"x",
        f"{first}/.DS_Store": b"junk",
        f"{first}/notes.txt": b"text",
        f"{first}/thumbs/frame_1.png": b"deeper",  # below a camera/group folder: not a view
        "calib/params.yaml": b"k: 1",  # a folder without images: skipped with a warning
    })
    return files


def _flat(index: DatasetIndex) -> list[tuple[Any, ...]]:
    return [(g.name, v.camera, v.name, v.size) for g in index.groups for v in g.views]


def _write_local(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.mark.parametrize("layout", ["camera-folders", "group-folders"])
def test_local_memory_and_s3_listings_give_one_index(layout, tmp_path, s3_bucket, caplog) -> None:
    files = _files(layout)
    _write_local(tmp_path / "local", files)
    memory_root = f"/mvarchive-listing-{uuid.uuid4().hex}"
    memory = fsspec.filesystem("memory")
    memory.pipe({f"{memory_root}/{name}": data for name, data in files.items()})
    bucket, options = s3_bucket
    s3 = fsspec.filesystem("s3", **options)
    s3.pipe({f"{bucket[len('s3://'):]}/data/{name}": data for name, data in files.items()})
    client = boto3.client("s3", aws_access_key_id=options["key"], aws_secret_access_key=options["secret"],
                          **options["client_kwargs"])
    for marker in ("data/left/", "data/g1/", "data/calib/"):  # folder markers some tools write
        client.put_object(Bucket=bucket[len("s3://"):], Key=marker, Body=b"")
    s3.invalidate_cache()
    try:
        with caplog.at_level(logging.WARNING, logger="mvarchive.datasets"):
            local = discover_dataset(str(tmp_path / "local"))
            in_memory = discover_dataset(f"memory://{memory_root}")
            on_s3 = discover_dataset(f"{bucket}/data", storage_options=options)
    finally:
        memory.rm(memory_root, recursive=True)

    assert local.layout == layout and local.cameras == ("left", "right")
    assert [g.name for g in local.groups] == (["frame_1", "frame_2", "frame_10"] if layout == "camera-folders"
                                              else ["g1", "g2", "g10"])
    expected = sorted((name, len(data)) for name, data in files.items() if name.count("/") == 1
                      and not name.startswith((".", "calib/")) and name.endswith((".png", ".jpg")))
    assert sorted((v.name, v.size) for g in local.groups for v in g.views) == expected
    for other in (in_memory, on_s3):
        assert (other.layout, other.cameras) == (local.layout, local.cameras)
        assert _flat(other) == _flat(local)
    assert all(v.url == str(tmp_path / "local" / v.name) for g in local.groups for v in g.views)
    assert all(v.url == f"{bucket}/data/{v.name}" for g in on_s3.groups for v in g.views)
    assert sum("ignoring sub-folder 'calib'" in r.getMessage() for r in caplog.records) == 3


def test_s3_listing_keeps_the_safety_checks(s3_bucket) -> None:
    bucket, options = s3_bucket
    s3 = fsspec.filesystem("s3", **options)
    root = bucket[len("s3://"):]
    s3.pipe({f"{root}/dup/{cam}/{name}": b"x" for cam in ("a", "b") for name in ("f1.png", "f1.jpg")})
    s3.pipe({f"{root}/case/{cam}/{name}": b"x" for cam in ("a", "A") for name in ("f1.png", "f2.png")})
    s3.pipe({f"{root}/empty/{cam}/f1.png": b"" for cam in ("a", "b")})
    s3.invalidate_cache()
    with pytest.raises(DatasetError, match=r"dup/a: two images with the same name 'f1'"):
        discover_dataset(f"{bucket}/dup", storage_options=options)
    with pytest.raises(DatasetError, match=r"both map to"):
        discover_dataset(f"{bucket}/case", "camera-folders", storage_options=options)
    with pytest.raises(DatasetError, match=r"2 empty file\(s\)"):
        discover_dataset(f"{bucket}/empty", storage_options=options)
    with pytest.raises(DatasetError, match=r"dataset not found"):
        discover_dataset(f"{bucket}/nothing", storage_options=options)


def test_symlinked_camera_folder_is_a_camera(tmp_path) -> None:
    for cam in ("left", "elsewhere"):
        _write_local(tmp_path / cam, {f"f{i}.png": b"x" for i in range(3)})
    os.makedirs(tmp_path / "data")
    os.symlink(tmp_path / "left", tmp_path / "data" / "left")
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "right")
    (tmp_path / "left" / "f3.png").write_bytes(b"x")
    os.symlink(tmp_path / "missing.png", tmp_path / "elsewhere" / "f3.png")  # a broken link reads as empty
    with pytest.raises(DatasetError, match=r"1 empty file\(s\) \(0 bytes\): group 'f3' camera 'right'"):
        discover_dataset(str(tmp_path / "data"))
    os.remove(tmp_path / "left" / "f3.png")
    os.remove(tmp_path / "elsewhere" / "f3.png")
    index = discover_dataset(str(tmp_path / "data"))
    assert index.cameras == ("left", "right") and index.group_names == ("f0", "f1", "f2")
    assert index.groups[0].views[1].name == "right/f0.png"
