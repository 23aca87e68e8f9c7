"""Every registered codec trains, archives and restores through the shared machinery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvarchive.codecs import list_codecs, save_checkpoint
from mvarchive.datasets import discover_dataset, load_group, load_image
from mvarchive.flows.archive import ArchiveConfig
from mvarchive.integrity import pixel_digest
from mvarchive.metrics import to_tensor, to_uint8
from mvarchive.runtime.checkpoints import CodecRef
from mvarchive.storage import ArchiveReader, Location
from mvarchive.tasks.restore import RestoreJob, restore_groups_fn
from mvarchive.training import TrainConfig, train_codec_loop
from tests.archive_helpers import archive_in_process, subset
from tests.codecs.test_golden import GAINS, lively

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
    """Restored files hold exactly the encoder's reconstruction, view by view. The weights are
    the golden test's lively ones: an untrained codec codes all zeros, whose flat grey
    reconstruction would match whatever went wrong on the way."""
    dataset = subset(sample_data.stereo, ["motorcycle"], tmp_path / "data")
    index = discover_dataset(str(dataset), "group-folders")  # one folder of two images: say which layout
    codec = lively(name, GAINS[name])
    checkpoint = tmp_path / f"{name}.pt"
    save_checkpoint(codec, checkpoint)
    plan = archive_in_process(ArchiveConfig(str(dataset), str(tmp_path / "archive"), codec=name, preset="tiny",
                                            checkpoint=str(checkpoint), shard_size=1, layout="group-folders"))
    location = plan.location
    assert ArchiveReader(location).is_complete()
    stored = ArchiveReader(location).read_groups([0])[0]
    out = Location(str(tmp_path / "out"))
    result = restore_groups_fn(RestoreJob(location, (0,), (0, 1), out, plan.codec))
    assert result.images == 2
    assert [c.status.value for c in result.checks] == ["ok"]

    threads = torch.get_num_threads()
    torch.set_num_threads(stored.fingerprint.threads)  # the encoder's count: its pixels, bit for bit
    try:
        encoded = codec.compress(to_tensor(load_group(index.groups[0])))
    finally:
        torch.set_num_threads(threads)
    assert float((encoded.latents["y"] != 0).mean()) >= 0.2, "too few non-zero symbols to prove anything"
    expected = to_uint8(encoded.x_hat)
    assert len({pixel_digest(view) for view in expected}) == 2  # two distinct views, neither flat:
    assert all(len(np.unique(view)) > 1 for view in expected)  # (lively LDMIC saturates: few levels)
    for k, view in enumerate(index.groups[0].views):
        restored = load_image(str(tmp_path / "out" / "motorcycle" / f"{view.camera}.png"))
        assert restored.shape == load_image(view.url).shape
        assert pixel_digest(restored) == stored.fingerprint.pixels[k], f"{view.camera}: not what the encoder recorded"
        np.testing.assert_array_equal(restored, expected[k], err_msg=f"view {view.camera}")
