"""Validation during training: real bytes on held-out groups, best.pt, val/ metrics."""

from __future__ import annotations

import logging

import pytest
import torch

from mvarchive.codecs import load_codec
from mvarchive.datasets import discover_dataset
from mvarchive.training import TrainConfig, TrainingConfigMismatch, train_codec_loop
from mvarchive.training.rd_point import rd_point
from mvarchive.training.validation import rd_cost, split_validation

from .odd_sizes import LAYOUT

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(data, out, **changes) -> TrainConfig:
    return TrainConfig(**{**dict(dataset=str(data), output_dir=str(out), codec="ldmic-fast", preset="tiny", steps=4,
                                 batch_size=1, crop=64, layout=LAYOUT, val_every=2, val_groups=1,
                                 learning_rate=1e-3), **changes})


def test_held_out_split(odd_data, caplog):
    index = discover_dataset(str(odd_data), LAYOUT)
    with caplog.at_level(logging.INFO, logger="mvarchive.training"):
        train, val = split_validation(index, None, 1, LAYOUT)
    assert train.group_names == ("astronaut",) and val.group_names == ("coffee",)
    assert "the last 1 of 2 groups" in caplog.text and "held out of training" in caplog.text
    with caplog.at_level(logging.WARNING, logger="mvarchive.training"):
        train, val = split_validation(index, None, 4, LAYOUT)
    assert train == val == index and "validation uses training groups" in caplog.text


def test_validation_keeps_the_best_checkpoint(odd_data, tmp_path):
    logged: dict[int, dict] = {}
    result = train_codec_loop(_config(odd_data, tmp_path), on_log=lambda step, m: logged.__setitem__(step, m))
    costs = {step: m["val/cost"] for step, m in logged.items() if "val/cost" in m}
    assert sorted(costs) == [2, 4]
    for step, metrics in logged.items():
        if step in costs:
            assert metrics["val/groups"] == 1.0 and metrics["val/bpp"] > 0
            assert metrics["val/cost"] == pytest.approx(metrics["val/bpp"] + 1024.0 * metrics["val/mse"])
    best_step = min(costs, key=costs.get)
    assert result.best_checkpoint == str(tmp_path / "best.pt")
    payload = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    assert payload["extra"]["steps"] == best_step and payload["extra"]["val_cost"] == pytest.approx(costs[best_step])
    # best.pt holds the weights measured then: measuring it again gives the same real bytes
    again = rd_point(load_codec(result.best_checkpoint), discover_dataset(str(odd_data), LAYOUT).select(["coffee"]))
    assert rd_cost(again, 1024.0, "mse") == pytest.approx(costs[best_step], rel=1e-6)
    assert set(result.per_view) == {"view0", "view1"}
    assert result.per_view["view1"]["psnr"] == pytest.approx(logged[4]["val/view1/psnr"])


def test_validation_does_not_change_what_is_trained(odd_data, tmp_path):
    plain = train_codec_loop(_config(odd_data, tmp_path / "plain", val_every=None, val_groups=1))
    validated = train_codec_loop(_config(odd_data, tmp_path / "val", val_dataset=str(odd_data)))
    assert plain.best_checkpoint is None and validated.best_checkpoint is not None
    assert validated.weights_digest == plain.weights_digest  # validation leaves the random stream alone


def test_validation_may_be_switched_on_when_resuming(odd_data, tmp_path):
    train_codec_loop(_config(odd_data, tmp_path, steps=1, val_every=None, val_groups=1))
    resumed = train_codec_loop(_config(odd_data, tmp_path, steps=2, val_dataset=str(odd_data)))
    assert resumed.resumed_from == 1 and resumed.best_checkpoint == str(tmp_path / "best.pt")
    # validating on held-out groups would train on fewer groups from here on: another run
    with pytest.raises(TrainingConfigMismatch, match="with held_out_groups=0, this run asks held_out_groups=1;"):
        train_codec_loop(_config(odd_data, tmp_path, steps=3))


def test_validation_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="val_dataset is set but val_every is not"):
        TrainConfig(dataset="d", output_dir="o", val_dataset="v")
    with pytest.raises(ValueError, match="val_every must be an integer >= 1"):
        TrainConfig(dataset="d", output_dir="o", val_every=0)
