"""Data-parallel training with the gloo backend: 2 processes on CPU."""

from __future__ import annotations

import pytest
import torch

from mvarchive.codecs import load_codec
from mvarchive.training import TrainConfig, TrainingConfigMismatch, TrainResult, train_codec_loop
from mvarchive.training.distributed import Rank, gather, launch
from mvarchive.training.loop import _train

from .odd_sizes import LAYOUT


def _config(data, out, **changes) -> TrainConfig:
    return TrainConfig(**{**dict(dataset=str(data), output_dir=str(out), codec="ldmic-fast", preset="tiny", steps=2,
                                 batch_size=1, crop=64, layout=LAYOUT, checkpoint_every=1), **changes})


def _train_and_gather(rank: Rank, queue, config: TrainConfig) -> tuple[TrainResult, list[str]]:
    """Runs in each spawned process: train (as ``train_codec_loop`` does), then collect every
    rank's weights digest."""
    result = _train(rank, queue, config, None, None, None)
    return result, gather(result.weights_digest, rank)


@pytest.mark.slow
def test_two_gloo_ranks_train_identical_weights_on_twice_the_data(odd_data, tmp_path):
    logged: list[tuple] = []
    config = _config(odd_data, tmp_path / "ddp", world_size=2, log_every=1)
    result, digests = launch(2, "cpu", _train_and_gather, (config,), on_message=logged.append)
    assert len(digests) == 2 and digests[0] == digests[1] == result.weights_digest
    assert [(kind, step) for kind, step, _ in logged] == [("log", 1), ("log", 2)]  # rank 0 alone logs
    assert result.steps == 2 and load_codec(result.checkpoint) is not None
    single = train_codec_loop(_config(odd_data, tmp_path / "single"))
    assert single.weights_digest != digests[0]  # each step averaged two ranks' different crops
    # the public entry point resumes a distributed run (every rank from its own random state)
    seen: list[int] = []
    resumed = train_codec_loop(_config(odd_data, tmp_path / "ddp", world_size=2, steps=3), on_resume=seen.append)
    assert resumed.resumed_from == 2 and seen == [2] and resumed.steps == 3
    state = torch.load(tmp_path / "ddp" / "last.pt", map_location="cpu", weights_only=True)
    ranks = state["rng"]["ranks"]
    assert len(ranks) == 2 and ranks[0]["sampler"] != ranks[1]["sampler"]
    # another run's last.pt is refused before any process starts
    with pytest.raises(TrainingConfigMismatch, match=r"with world_size=1, this run asks world_size=2;"):
        train_codec_loop(_config(odd_data, tmp_path / "single", world_size=2, steps=3))
