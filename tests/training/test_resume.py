"""Resuming from last.pt: exact continuation, refused on other settings, weights_only loads."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from mvarchive.codecs import load_codec, weights_digest
from mvarchive.training import TrainConfig, TrainingConfigMismatch, check_resume, train_codec_loop

from .odd_sizes import LAYOUT

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(data: Path, out: Path, **changes) -> TrainConfig:
    base = TrainConfig(dataset=str(data), output_dir=str(out), codec="ldmic-fast", preset="tiny", steps=6,
                       batch_size=1, crop=64, layout=LAYOUT, checkpoint_every=3, log_every=1)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("codec", ["ldmic-fast", "ecsic"])  # with and without an aux optimizer
def test_resumed_run_equals_uninterrupted_run(codec, odd_data, tmp_path, caplog):
    # an extended run equals an uninterrupted one under a constant learning rate (the paper
    # schedule is mapped onto `steps`, so extending a run changes it: see the next test)
    whole = train_codec_loop(_config(odd_data, tmp_path / "whole", codec=codec, lr_schedule="constant"))
    assert whole.resumed_from is None and whole.steps == 6

    first = train_codec_loop(_config(odd_data, tmp_path / "split", codec=codec, steps=3, lr_schedule="constant"))
    assert first.resumed_from is None and first.steps == 3
    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="mvarchive.training"):
        second = train_codec_loop(_config(odd_data, tmp_path / "split", codec=codec, lr_schedule="constant"),
                                  on_resume=seen.append)
    assert second.resumed_from == 3 and seen == [3] and second.steps == 6
    assert "resumed from step 3" in caplog.text
    assert second.weights_digest == whole.weights_digest
    assert second.final == pytest.approx(whole.final)
    assert weights_digest(load_codec(second.checkpoint)) == whole.weights_digest


def test_killed_run_with_paper_schedule_resumes_exactly(odd_data, tmp_path, caplog):
    rates: dict[int, float] = {}
    whole = train_codec_loop(_config(odd_data, tmp_path / "whole", steps=8, checkpoint_every=2),
                             on_log=lambda step, m: rates.__setitem__(step, m["lr"]))
    # LDMIC: halved at 1/4, 1/2 and 3/4 of the run
    assert rates == {1: 1e-4, 2: 1e-4, 3: 5e-5, 4: 5e-5, 5: 2.5e-5, 6: 2.5e-5, 7: 1.25e-5, 8: 1.25e-5}

    def killed(step: int, metrics: dict) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_codec_loop(_config(odd_data, tmp_path / "split", steps=8, checkpoint_every=2), on_log=killed)
    resumed: dict[int, float] = {}
    with caplog.at_level(logging.WARNING, logger="mvarchive.training"):
        second = train_codec_loop(_config(odd_data, tmp_path / "split", steps=8, checkpoint_every=2),
                                  on_log=lambda step, m: resumed.__setitem__(step, m["lr"]))
    assert second.resumed_from == 4 and resumed == {k: v for k, v in rates.items() if k > 4}
    assert second.weights_digest == whole.weights_digest
    assert "re-mapped" not in caplog.text
    state = torch.load(tmp_path / "split" / "last.pt", map_location="cpu", weights_only=True)
    assert state["schedule"] == {"name": "paper", "steps": 8, "base": [1e-4]}
    assert state["settings"]["lr_schedule"] == "paper"


def test_last_pt_is_plain_data(odd_data, tmp_path):
    train_codec_loop(_config(odd_data, tmp_path, steps=2, checkpoint_every=1))
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 2
    assert state["settings"]["lmbda"] == 1024.0 and "steps" not in state["settings"]
    assert state["rng"]["sampler"]["bit_generator"] == "PCG64"
    assert isinstance(state["rng"]["torch"]["cpu"], torch.Tensor)


def test_every_torch_load_in_training_is_weights_only():
    import ast

    import mvarchive.training

    calls = 0
    for source in Path(mvarchive.training.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                calls += 1
                flags = {k.arg: k.value for k in node.keywords}
                assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, (
                    f"{source.name}:{node.lineno}")
    assert calls >= 1


def test_resume_with_other_lambda_is_refused(odd_data, tmp_path):
    train_codec_loop(_config(odd_data, tmp_path, steps=2, lmbda=512.0))
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(TrainingConfigMismatch) as info:
        train_codec_loop(_config(odd_data, tmp_path, steps=4, lmbda=1024.0))
    assert str(info.value) == (f"{tmp_path / 'last.pt'} was trained with lmbda=512.0, this run asks lmbda=1024.0; "
                               "use another --out or the same settings")
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert (tmp_path / "last.pt").read_bytes() == before  # nothing trained on the other run's weights
    with pytest.raises(TrainingConfigMismatch, match=r"with crop=64, seed=0, this run asks crop=96, seed=1;"):
        check_resume(_config(odd_data, tmp_path, crop=96, seed=1, lmbda=512.0))


def test_resume_may_change_steps_cadence_and_device(odd_data, tmp_path):
    assert check_resume(_config(odd_data, tmp_path)) is None
    train_codec_loop(_config(odd_data, tmp_path, steps=2))
    changed = _config(odd_data, tmp_path, steps=3, checkpoint_every=None, log_every=7, device="cpu",
                      storage_options={"anon": True})
    assert check_resume(changed) == 2
    assert train_codec_loop(changed).resumed_from == 2


def test_relative_and_absolute_dataset_paths_are_one_dataset(odd_data, tmp_path, monkeypatch):
    train_codec_loop(_config(odd_data, tmp_path / "out", steps=1))
    monkeypatch.chdir(odd_data.parent)
    assert check_resume(_config(Path(odd_data.name), tmp_path / "out", steps=2)) == 1


def test_legacy_last_pt_is_refused(odd_data, tmp_path):
    # what older versions wrote: the numpy Generator object itself (needs weights_only=False)
    torch.save({"model": {}, "step": 5, "rng": np.random.default_rng(0)}, tmp_path / "last.pt")
    with pytest.raises(TrainingConfigMismatch, match="older mvarchive.*use another --out or delete it"):
        train_codec_loop(_config(odd_data, tmp_path))
    torch.save({"model": {}, "step": 5}, tmp_path / "last.pt")
    with pytest.raises(TrainingConfigMismatch, match="older mvarchive"):
        check_resume(_config(odd_data, tmp_path))


def test_killed_short_run_resumes_with_default_checkpoints(odd_data, tmp_path):
    config = _config(odd_data, tmp_path, steps=10, checkpoint_every=None)
    assert config.checkpoint_interval == 1

    def killed(step: int, metrics: dict) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_codec_loop(dataclasses.replace(config), on_log=killed)
    assert check_resume(config) == 3


def test_checkpoint_interval_defaults():
    def interval(**kw) -> int:
        return TrainConfig(dataset="d", output_dir="o", **kw).checkpoint_interval

    assert interval(steps=240) == 24
    assert interval(steps=5) == 1
    assert interval(steps=1000) == 100
    assert interval(steps=100_000) == 200
    assert interval(steps=240, checkpoint_every=7) == 7
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(dataset="d", output_dir="o", checkpoint_every=0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(dataset="d", output_dir="o", batch_size=0)
