"""Every registered codec trains, archives and restores through the shared machinery."""

from __future__ import annotations

import numpy as np
import pytest

from mvarchive.codecs import CodecRef, list_codecs
from mvarchive.datasets import discover_dataset, load_image
from mvarchive.flows.archive import ArchiveConfig
from mvarchive.storage import ArchiveReader, Location
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from mvarchive.training import TrainConfig, train_codec_loop
from tests.archive_helpers import archive_in_process, subset

CODECS = [spec.name for spec in list_codecs()]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", CODECS)
def test_trains_and_checkpoints(name, sample_data, tmp_path):
    config = TrainConfig(dataset=str(sample_data.stereo), output_dir=str(tmp_path), codec=name, preset="tiny",
                         steps=2, batch_size=1, crop=64, checkpoint_every=1)
    result = train_codec_loop(config)
    assert result.steps == 2 and np.isfinite(result.final["loss"])
    assert CodecRef(name, "tiny", result.checkpoint).load().identity.name == name


@pytest.mark.parametrize("name", CODECS)
def test_archives_and_restores_a_real_group(name, sample_data, tmp_path):
    dataset = subset(sample_data.stereo, ["motorcycle"], tmp_path / "data")
    index = discover_dataset(str(dataset), "group-folders")  # one folder of two images: say which layout
    plan = archive_in_process(ArchiveConfig(str(dataset), str(tmp_path / "archive"), codec=name, preset="tiny",
                                            untrained=True, shard_size=1, layout="group-folders"))
    location = plan.location
    assert ArchiveReader(location).is_complete()
    out = Location(str(tmp_path / "out"))
    result = restore_groups_fn(RestoreJob(location, (0,), (0, 1), out, plan.codec))
    assert result.images == 2
    assert [c.status.value for c in result.checks] == ["ok"]
    for view in index.groups[0].views:
        restored = load_image(str(tmp_path / "out" / "motorcycle" / f"{view.camera}.png"))
        assert restored.shape == load_image(view.url).shape
