"""Training from given weights (``TrainConfig.init``): fine-tuning and retraining start there."""

from __future__ import annotations

import pytest
import torch

from mvarchive.codecs import create_codec, load_codec, save_checkpoint, weights_digest
from mvarchive.training import TrainConfig, TrainingConfigMismatch, train_codec_loop


def _start(tmp_path):
    torch.manual_seed(7)  # other weights than the loop's seed 0 would draw
    model = create_codec("ldmic-fast", "tiny")
    return str(tmp_path / "start.pt"), save_checkpoint(model, tmp_path / "start.pt")


def test_init_starts_from_the_checkpoint_and_is_part_of_the_run(sample_data, tmp_path):
    path, digest = _start(tmp_path)
    common = dict(dataset=str(sample_data.stereo), codec="ldmic-fast", preset="tiny", batch_size=1, crop=64)
    zero = train_codec_loop(TrainConfig(output_dir=str(tmp_path / "a"), steps=0, init=path, **common))
    assert zero.weights_digest == digest  # no step taken: exactly the given weights
    fresh = train_codec_loop(TrainConfig(output_dir=str(tmp_path / "b"), steps=0, **common))
    assert fresh.weights_digest != digest
    one = train_codec_loop(TrainConfig(output_dir=str(tmp_path / "c"), steps=1, init=path, **common))
    assert weights_digest(load_codec(one.checkpoint)) not in (digest, fresh.weights_digest)
    # a resume must start from the same weights: another init in that folder is refused
    with pytest.raises(TrainingConfigMismatch, match="init"):
        train_codec_loop(TrainConfig(output_dir=str(tmp_path / "c"), steps=2, **common))


def test_init_of_another_preset_is_refused(sample_data, tmp_path):
    path, _ = _start(tmp_path)
    with pytest.raises(ValueError, match=r"--init .*start\.pt holds ldmic-fast:tiny, this run trains ldmic-fast:paper"):
        train_codec_loop(TrainConfig(dataset=str(sample_data.stereo), output_dir=str(tmp_path / "x"),
                                     codec="ldmic-fast", preset="paper", steps=1, batch_size=1, crop=64, init=path))
