"""Dataset discovery in every layout, selection, group loading and every bad-input error."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from mvarchive.datasets import (
    LAYOUTS,
    DatasetError,
    DatasetIndex,
    discover_dataset,
    load_group,
    load_image,
    save_image,
)


def _write(path: Path, h: int = 8, w: int = 12, seed: int = 0) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _camera_folders(root: Path, cameras: list[str], frames: list[str]) -> None:
    for i, cam in enumerate(cameras):
        for j, frame in enumerate(frames):
            _write(root / cam / f"{frame}.png", seed=10 * i + j)


def _group_folders(root: Path, groups: list[str], cameras: list[str]) -> None:
    for i, group in enumerate(groups):
        for j, cam in enumerate(cameras):
            _write(root / group / f"{cam}.png", seed=10 * i + j)


def _error(exc: pytest.ExceptionInfo[DatasetError]) -> str:
    return str(exc.value)


# --- camera-folders ----------------------------------------------------------------


def test_camera_folders_layout(tmp_path: Path) -> None:
    _camera_folders(tmp_path, ["cam10", "cam2", "cam1"], ["f_10", "f_2", "f_1"])
    (tmp_path / "cam1" / "notes.txt").write_text("not an image")
    (tmp_path / "cam1" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "rig.yaml").write_text("k: 1")

    index = discover_dataset(str(tmp_path), layout="camera-folders")
    assert index.layout == "camera-folders"
    assert index.cameras == ("cam1", "cam2", "cam10")
    assert index.group_names == ("f_1", "f_2", "f_10")
    for group in index.groups:
        assert group.cameras == index.cameras
        assert group.views[0].url == str(tmp_path / "cam1" / f"{group.name}.png")
    stack = load_group(index.groups[1])
    assert stack.shape == (3, 8, 12, 3) and stack.dtype == np.uint8
    np.testing.assert_array_equal(stack[2], load_image(str(tmp_path / "cam10" / "f_2.png")))


def test_camera_folders_missing_frame_names_group_and_camera(tmp_path: Path) -> None:
    _camera_folders(tmp_path, ["cam0", "cam1", "cam2"], ["a", "b", "c", "d"])
    (tmp_path / "cam1" / "c.png").unlink()
    (tmp_path / "cam2" / "c.png").unlink()
    for layout in ("camera-folders", "auto"):
        with pytest.raises(DatasetError) as exc:
            discover_dataset(str(tmp_path), layout=layout)
        assert "'c'" in _error(exc) and "cam1, cam2" in _error(exc)


def test_duplicate_stem_in_one_folder(tmp_path: Path) -> None:
    _camera_folders(tmp_path, ["cam0", "cam1"], ["a", "b", "c"])
    _write(tmp_path / "cam0" / "a.jpg")
    with pytest.raises(DatasetError, match=r"cam0.*a\.(png|jpg) and a\.(png|jpg)"):
        discover_dataset(str(tmp_path), layout="camera-folders")


def test_single_camera_is_not_a_multi_camera_dataset(tmp_path: Path) -> None:
    _camera_folders(tmp_path, ["only_cam"], ["a", "b"])
    with pytest.raises(DatasetError, match="only_cam.*at least 2"):
        discover_dataset(str(tmp_path), layout="camera-folders")


# --- group-folders -----------------------------------------------------------------


def test_group_folders_stereo_order_is_left_right(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["scene_b", "scene_a", "scene_c"], ["right", "left"])
    index = discover_dataset(str(tmp_path), layout="group-folders")
    assert index.layout == "group-folders"
    assert index.cameras == ("left", "right")
    assert index.group_names == ("scene_a", "scene_b", "scene_c")
    assert index.groups[0].views[1].url == str(tmp_path / "scene_a" / "right.png")
    assert load_group(index.groups[0]).shape == (2, 8, 12, 3)


def test_group_folders_other_cameras_sorted(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["g1", "g2"], ["top", "center", "bottom"])
    index = discover_dataset(str(tmp_path), layout="group-folders")
    assert index.cameras == ("bottom", "center", "top")


def test_group_folders_missing_camera_names_group_and_camera(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["g1", "g2", "g3", "g4"], ["left", "right"])
    (tmp_path / "g3" / "right.png").unlink()
    for layout in ("group-folders", "auto"):
        with pytest.raises(DatasetError) as exc:
            discover_dataset(str(tmp_path), layout=layout)
        assert "'g3'" in _error(exc) and "right" in _error(exc)


# --- auto-detection ----------------------------------------------------------------


def test_auto_detects_camera_folders(tmp_path: Path) -> None:
    _camera_folders(tmp_path, ["cam0", "cam1"], ["a", "b", "c"])
    index = discover_dataset(str(tmp_path))
    assert index.layout == "camera-folders"
    assert (index.cameras, len(index.groups)) == (("cam0", "cam1"), 3)


def test_auto_detects_group_folders(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["g1", "g2", "g3"], ["left", "right"])
    index = discover_dataset(str(tmp_path))
    assert index.layout == "group-folders"
    assert (index.cameras, len(index.groups)) == (("left", "right"), 3)


def test_auto_refuses_to_guess_a_square_layout(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["g1", "g2"], ["left", "right"])
    with pytest.raises(DatasetError) as exc:
        discover_dataset(str(tmp_path))
    msg = _error(exc)
    assert "ambiguous" in msg and "2 folders with 2 images" in msg
    assert "layout='camera-folders'" in msg and "'group-folders'" in msg
    assert discover_dataset(str(tmp_path), layout="group-folders").cameras == ("left", "right")


def test_no_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("x")
    with pytest.raises(DatasetError, match=f"no images found under {tmp_path}"):
        discover_dataset(str(tmp_path))
    _write(tmp_path / "flat.png")
    with pytest.raises(DatasetError, match="directly in the folder"):
        discover_dataset(str(tmp_path))


def test_missing_dataset_and_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not-there"):
        discover_dataset(str(tmp_path / "not-there"))
    with pytest.raises(ValueError, match="auto, camera-folders, group-folders, manifest"):
        discover_dataset(str(tmp_path), layout="by-camera")
    assert LAYOUTS == ("auto", "camera-folders", "group-folders", "manifest")


def test_file_url_gives_file_urls(tmp_path: Path) -> None:
    _camera_folders(tmp_path, ["cam0", "cam1"], ["a", "b", "c"])
    index = discover_dataset(tmp_path.as_uri())
    assert index.groups[0].views[0].url == (tmp_path / "cam0" / "a.png").as_uri()
    assert load_group(index.groups[0]).shape == (2, 8, 12, 3)


# --- manifest ----------------------------------------------------------------------


def _manifest_tree(root: Path) -> None:
    _write(root / "pairs" / "g1_l.png", seed=1)
    _write(root / "other" / "g1_r.png", seed=2)
    _write(root / "pairs" / "g2_l.png", seed=3)
    _write(root / "other" / "g2_r.png", seed=4)
    _write(root / "pairs" / "g2_c.png", seed=5)
    _write(root / "pairs" / "g1_c.png", seed=6)


def test_manifest_json_relative_and_absolute_paths(tmp_path: Path) -> None:
    _manifest_tree(tmp_path / "data")
    outside = tmp_path / "elsewhere" / "g2_centre.png"
    _write(outside, seed=9)
    doc = {
        "groups": [
            {"name": "g2", "views": {"right": "other/g2_r.png", "left": "pairs/g2_l.png",
                                     "centre": str(outside)}},
            {"name": "g1", "views": {"left": "pairs/../pairs/g1_l.png",
                                     "centre": "pairs/g1_c.png", "right": "other/g1_r.png"}},
        ]
    }
    (tmp_path / "data" / "manifest.json").write_text(json.dumps(doc))
    for url, layout in [
        (str(tmp_path / "data"), "auto"),
        (str(tmp_path / "data"), "manifest"),
        (str(tmp_path / "data" / "manifest.json"), "auto"),
    ]:
        index = discover_dataset(url, layout=layout)
        assert index.layout == "manifest"
        assert index.cameras == ("right", "left", "centre")  # order of first appearance
        assert index.group_names == ("g2", "g1")  # manifest order
        g1 = index.groups[1]
        assert g1.view("left").url == str(tmp_path / "data" / "pairs" / "g1_l.png")
        assert index.groups[0].view("centre").url == str(outside)
    stack = load_group(index.groups[0])
    np.testing.assert_array_equal(stack[2], load_image(str(outside)))


def test_manifest_csv(tmp_path: Path) -> None:
    _manifest_tree(tmp_path)
    with open(tmp_path / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", "camera", "path"])
        writer.writerow(["g1", "left", "pairs/g1_l.png"])
        writer.writerow(["g1", "right", "other/g1_r.png"])
        writer.writerow(["g2", "right", "other/g2_r.png"])
        writer.writerow(["g2", "left", "pairs/g2_l.png"])
    index = discover_dataset(str(tmp_path))
    assert index.layout == "manifest"
    assert index.cameras == ("left", "right")
    assert index.group_names == ("g1", "g2")
    assert index.groups[1].views[0].url == str(tmp_path / "pairs" / "g2_l.png")
    assert load_group(index.groups[1]).shape == (2, 8, 12, 3)


def test_manifest_missing_camera_names_the_group(tmp_path: Path) -> None:
    _manifest_tree(tmp_path)
    doc = {"groups": [
        {"name": "g1", "views": {"left": "pairs/g1_l.png", "right": "other/g1_r.png"}},
        {"name": "lonely", "views": {"left": "pairs/g2_l.png"}},
    ]}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as exc:
        discover_dataset(str(tmp_path))
    assert "manifest.json" in _error(exc) and "'lonely'" in _error(exc)
    assert "right" in _error(exc)


def test_manifest_missing_file_names_group_camera_and_path(tmp_path: Path) -> None:
    _manifest_tree(tmp_path)
    doc = {"groups": [
        {"name": "g1", "views": {"left": "pairs/g1_l.png", "right": "other/g1_r.png"}},
        {"name": "g2", "views": {"left": "pairs/g2_l.png", "right": "gone/ghost.png"}},
    ]}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as exc:
        discover_dataset(str(tmp_path))
    msg = _error(exc)
    assert "'g2'" in msg and "'right'" in msg and "gone/ghost.png" in msg


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("manifest.json", "{not json", "invalid JSON"),
        ("manifest.json", json.dumps({"views": []}), "expected an object"),
        ("manifest.csv", "group,cam,file\ng1,left,a.png\n", "group,camera,path"),
        ("manifest.json", json.dumps({"groups": [{"name": "g1", "views": {"left": "a.txt"}}]}),
         "not an image"),
    ],
)
def test_malformed_manifest_names_the_manifest(
    tmp_path: Path, name: str, content: str, needle: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError) as exc:
        discover_dataset(str(tmp_path))
    assert name in _error(exc) and needle in _error(exc)


def test_both_manifests_is_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "manifest.csv").write_text("group,camera,path\n")
    with pytest.raises(DatasetError, match="manifest.json and manifest.csv"):
        discover_dataset(str(tmp_path))


# --- select and load_group ---------------------------------------------------------


def _index(tmp_path: Path) -> DatasetIndex:
    _camera_folders(tmp_path, ["cam0", "cam1", "cam2"], ["a", "b", "c", "d"])
    return discover_dataset(str(tmp_path))


def test_select_groups_and_cameras(tmp_path: Path) -> None:
    index = _index(tmp_path)
    sub = index.select(groups=["c", "a"], cameras=["cam2", "cam0"])
    assert sub.group_names == ("c", "a")
    assert sub.cameras == ("cam2", "cam0")
    assert all(g.cameras == ("cam2", "cam0") for g in sub.groups)
    assert sub.groups[0].views[0].url == str(tmp_path / "cam2" / "c.png")
    assert index.select() == index
    assert index.select(groups="b").group_names == ("b",)
    assert index.select(cameras=["cam1", "cam2"]).group_names == index.group_names


def test_select_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    index = _index(tmp_path)
    with pytest.raises(DatasetError, match=r"'zz'.*known groups: a, b, c, d"):
        index.select(groups=["a", "zz"])
    with pytest.raises(DatasetError, match=r"'cam9'.*known cameras: cam0, cam1, cam2"):
        index.select(cameras=["cam9"])
    with pytest.raises(DatasetError, match="more than once"):
        index.select(cameras=["cam0", "cam0"])


def test_load_group_mismatched_sizes(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["g1", "g2", "g3"], ["left", "right"])
    _write(tmp_path / "g3" / "right.png", h=8, w=10)
    index = discover_dataset(str(tmp_path))  # discovery never opens images
    assert load_group(index.groups[0]).shape == (2, 8, 12, 3)
    with pytest.raises(DatasetError) as exc:
        load_group(index.groups[2])
    assert _error(exc) == "group 'g3': views differ in size: left 8x12, right 8x10"


def test_load_group_corrupt_view_names_the_file(tmp_path: Path) -> None:
    _group_folders(tmp_path, ["g1", "g2", "g3"], ["left", "right"])
    (tmp_path / "g2" / "left.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    index = discover_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="g2/left.png"):
        load_group(index.groups[1])


# --- other filesystems -------------------------------------------------------------


def test_memory_filesystem_dataset() -> None:
    fs = fsspec.filesystem("memory")
    prefix = f"/mvarchive-test-layouts-{uuid.uuid4().hex}"
    root = f"memory://{prefix}/rig"
    try:
        rng = np.random.default_rng(11)
        for cam in ("cam0", "cam1"):
            for frame in ("t0", "t1", "t2"):
                arr = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
                save_image(arr, f"{root}/{cam}/{frame}.png")
        fs.pipe(f"{prefix}/rig/cam0/.DS_Store", b"junk")
        index = discover_dataset(root)
        assert index.layout == "camera-folders"
        assert index.cameras == ("cam0", "cam1")
        assert index.group_names == ("t0", "t1", "t2")
        url = index.groups[2].views[1].url
        assert url.startswith("memory://") and url.endswith(f"{prefix}/rig/cam1/t2.png")
        assert load_group(index.groups[2]).shape == (2, 6, 7, 3)

        manifest = {"groups": [{"name": "m1", "views": {"a": "rig/cam0/t0.png",
                                                        "b": f"{root}/cam1/t0.png"}}]}
        fs.pipe(f"{prefix}/list.json", json.dumps(manifest).encode())
        mindex = discover_dataset(f"memory://{prefix}/list.json")
        assert mindex.cameras == ("a", "b")
        assert load_group(mindex.groups[0]).shape == (2, 6, 7, 3)
    finally:
        if fs.exists(prefix):
            fs.rm(prefix, recursive=True)
    assert not fs.exists(prefix)
