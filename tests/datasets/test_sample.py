"""The bundled sample datasets: real photographs, both layouts, deterministic and idempotent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mvarchive.datasets import (
    SampleDatasets,
    build_sample_datasets,
    discover_dataset,
    load_group,
    load_image,
)


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file under ``root``."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleDatasets:
    return build_sample_datasets(tmp_path_factory.mktemp("sample"))


def test_stereo_is_group_folders_with_two_views(sample: SampleDatasets) -> None:
    index = discover_dataset(str(sample.stereo), layout="auto")
    assert index.layout == "group-folders"
    assert index.cameras == ("left", "right")
    assert "motorcycle" in index.group_names and len(index.groups) >= 3
    for group in index.groups:
        stack = load_group(group)
        assert stack.shape[0] == 2 and stack.dtype == np.uint8
    moto = load_group(index.select(groups=["motorcycle"]).groups[0])
    h, w = moto.shape[1:3]
    assert (h, w) == (250, 370) and h % 2 == 0 and w % 2 == 0
    assert not np.array_equal(moto[0], moto[1])  # a real pair, not a copy


def test_rig_is_camera_folders_with_three_views(sample: SampleDatasets) -> None:
    index = discover_dataset(str(sample.rig), layout="auto")
    assert index.layout == "camera-folders"
    assert index.cameras == ("cam0", "cam1", "cam2")
    assert len(index.groups) >= 3
    for group in index.groups:
        assert load_group(group).shape[0] == 3


def test_synthetic_views_overlap_as_documented(sample: SampleDatasets) -> None:
    prov = json.loads(sample.provenance.read_text())
    for dataset, root in (("stereo", sample.stereo), ("rig", sample.rig)):
        for group, views in prov["datasets"][dataset]["groups"].items():
            first = next(iter(views.values()))
            if first["scale"] != 1.0:
                continue
            ref = load_image(str(root.parent / first["file"]))
            for entry in views.values():
                dy = entry["crop"]["top"] - first["crop"]["top"]
                dx = entry["crop"]["left"] - first["crop"]["left"]
                assert dx > 0 or entry is first, f"{group}: views must be shifted"
                img = load_image(str(root.parent / entry["file"]))
                h, w = img.shape[:2]
                # Same scene content, displaced by the recorded crop offsets.
                np.testing.assert_array_equal(img[: h - dy, : w - dx], ref[dy:, dx:])


def test_provenance_describes_every_file(sample: SampleDatasets) -> None:
    root = sample.provenance.parent
    prov = json.loads(sample.provenance.read_text())
    described = set()
    for dataset in ("stereo", "rig"):
        for views in prov["datasets"][dataset]["groups"].values():
            for entry in views.values():
                assert entry["source"].startswith("skimage.data.")
                assert set(entry["crop"]) == {"top", "left", "height", "width"}
                assert entry["scale"] > 0
                img = load_image(str(root / entry["file"]))
                assert img.shape[:2] == (entry["size"]["height"], entry["size"]["width"])
                described.add(entry["file"])
    pngs = {str(p.relative_to(root)) for p in root.rglob("*.png")}
    assert pngs == described
    assert "scikit-image" in (root / "README.txt").read_text()


def test_build_is_deterministic(tmp_path: Path, sample: SampleDatasets) -> None:
    other = build_sample_datasets(tmp_path / "again")
    first = {k: v[0] for k, v in _snapshot(sample.provenance.parent).items()}
    second = {k: v[0] for k, v in _snapshot(other.provenance.parent).items()}
    assert first == second


def test_build_is_idempotent_and_never_deletes(tmp_path: Path) -> None:
    root = tmp_path / "s"
    build_sample_datasets(root)
    (root / "rig" / "my_notes.txt").write_text("keep me")
    before = _snapshot(root)
    build_sample_datasets(str(root))
    assert _snapshot(root) == before  # complete: nothing rewritten

    victim = root / "rig" / "cam1" / "coffee.png"
    victim.unlink()
    build_sample_datasets(root)
    after = _snapshot(root)
    assert after.keys() == before.keys()
    for name, (digest, mtime) in before.items():
        assert after[name][0] == digest
        if name != "rig/cam1/coffee.png":
            assert after[name][1] == mtime  # only the missing file was written


def test_reading_never_modifies_the_source(sample: SampleDatasets) -> None:
    root = sample.provenance.parent
    before = _snapshot(root)
    for url in (sample.stereo, sample.rig):
        index = discover_dataset(str(url))
        for group in index.groups:
            load_group(group)
    assert _snapshot(root) == before


def test_the_demo_recipe_trains_every_demo_codec_on_the_sample(sample: SampleDatasets, tmp_path: Path) -> None:
    """The demo's training runs (its recipe, a few steps) are valid runs on the stereo sample."""
    import torch

    from mvarchive.codecs import load_codec
    from mvarchive.flows.demo import DemoConfig
    from mvarchive.training import train_codec_loop

    demo = DemoConfig(steps=3)
    for codec in demo.codecs:
        config = demo.train_config(str(sample.stereo), str(tmp_path / codec), codec)
        assert (config.batch_size, config.crop, config.lr_schedule) == (demo.batch_size, demo.crop, "paper")
        result = train_codec_loop(config)
        assert result.steps == 3 and torch.isfinite(torch.tensor(result.final["loss"]))
        assert load_codec(result.checkpoint).identity.name == codec
