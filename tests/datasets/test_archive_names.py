"""Each view's archive name is computed once, at discovery, from the resolved dataset root."""

from __future__ import annotations

import json
import shutil

import pytest

from mvarchive.datasets import DatasetError, discover_dataset


def names(index) -> list[str]:
    return sorted(v.name for g in index.groups for v in g.views)


def test_relative_and_absolute_roots_give_the_same_names(sample_data, monkeypatch):
    absolute = discover_dataset(str(sample_data.stereo))
    monkeypatch.chdir(sample_data.stereo.parent.parent)
    relative = discover_dataset(f"{sample_data.stereo.parent.name}/stereo")
    assert names(relative) == names(absolute)
    assert "motorcycle/left.png" in names(relative)  # not the bare file name
    assert len(set(names(relative))) == 2 * len(relative.groups)
    assert all(v.size and v.size > 0 for g in relative.groups for v in g.views)


def test_camera_folders_names(sample_data, monkeypatch):
    monkeypatch.chdir(sample_data.rig)
    index = discover_dataset(".")
    assert "cam0/astronaut.png" in names(index)


def test_manifest_paths_outside_the_root_cannot_escape(sample_data, tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    shutil.copy(sample_data.stereo / "coffee" / "left.png", tmp_path / "outside.png")
    shutil.copy(sample_data.stereo / "coffee" / "right.png", root / "r.png")
    manifest = {"groups": [{"name": "../../etc", "views": {"left": "../outside.png", "right": "r.png"}},
                           {"name": "abs", "views": {"left": str(tmp_path / "outside.png"), "right": "r.png"}}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="both map to 'r.png'"):
        discover_dataset(str(root))
    manifest["groups"][1]["views"]["right"] = "./sub/../r2.png"
    shutil.copy(root / "r.png", root / "r2.png")
    (root / "manifest.json").write_text(json.dumps(manifest))
    index = discover_dataset(str(root))
    # outside the manifest's folder -> <group>/<camera><ext>, with separators in names neutralized
    assert names(index) == [".._.._etc/left.png", "abs/left.png", "r.png", "r2.png"]


def test_two_views_with_one_name_are_refused(tmp_path, sample_data):
    root = tmp_path / "set"
    root.mkdir()
    shutil.copy(sample_data.stereo / "coffee" / "left.png", root / "a.png")
    shutil.copy(sample_data.stereo / "coffee" / "right.png", root / "b.png")
    manifest = {"groups": [{"name": "g1", "views": {"left": "a.png", "right": "b.png"}},
                           {"name": "g2", "views": {"left": "a.png", "right": "b.png"}}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="group 'g1' camera 'left' and group 'g2' camera 'left' both map to 'a.png'"):
        discover_dataset(str(root))
