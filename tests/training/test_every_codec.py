"""Every registered codec trains, archives and restores through the shared machinery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvarchive.codecs import CodecRef, list_codecs
from mvarchive.datasets import discover_dataset, load_image
from mvarchive.flows.archive import ArchiveConfig, plan_archive, relative_file
from mvarchive.storage import ArchiveReader, ArchiveWriter, Location
from mvarchive.tasks.encode import EncodeShardJob, encode_shard_fn
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from mvarchive.training import TrainConfig, train_codec_loop

CODECS = [spec.name for spec in list_codecs()]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", CODECS)
def test_trains_and_checkpoints(name, sample_data, tmp_path):
    config = TrainConfig(dataset=str(sample_data.stereo), output_dir=str(tmp_path), codec=name, preset="tiny",
                         steps=2, batch_size=1, crop=64, checkpoint_every=1)
    result = train_codec_loop(config)
    assert result.steps == 2 and np.isfinite(result.final["loss"])
    assert CodecRef(name, "tiny", result.checkpoint).load().identity.name == name


@pytest.mark.parametrize("name", CODECS)
def test_archives_and_restores_a_real_group(name, sample_data, tmp_path):
    index = discover_dataset(str(sample_data.stereo)).select(groups=["motorcycle"])
    ref = CodecRef(name, "tiny")
    location = Location(str(tmp_path / "archive"))
    meta = plan_archive(ArchiveConfig(str(sample_data.stereo), location.url, codec=name, preset="tiny", shard_size=1),
                        index, ref.load())
    ArchiveWriter.create_or_resume(location, meta, [g.name for g in index.groups],
                                   [[relative_file(v.url, index.url) for v in g.views] for g in index.groups])
    encode_shard_fn(EncodeShardJob(location, meta, 0, index.groups, ref))
    assert ArchiveReader(location).is_complete()
    out = Location(str(tmp_path / "out"))
    result = restore_groups_fn(RestoreJob(location, (0,), (0, 1), out, ref))
    assert result.images == 2
    for view in index.groups[0].views:
        restored = load_image(str(tmp_path / "out" / "motorcycle" / f"{view.camera}.png"))
        assert restored.shape == load_image(view.url).shape
