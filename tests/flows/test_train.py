"""The training flow: checkpoints, resume, MLflow params/metrics/model."""

from __future__ import annotations

import pytest
import torch
from mlflow import MlflowClient

from mvarchive.codecs import load_codec, weights_digest
from mvarchive.flows.train import train_codec
from mvarchive.models.registry import checkpoint_path, version_tags
from mvarchive.tracking import TrackingConfig
from mvarchive.training import CropSampler, TrainConfig, TrainingConfigMismatch
from tests.training.odd_sizes import LAYOUT, make_odd_dataset

pytestmark = pytest.mark.slow


def _load_registered(mlflow_uri: str, model_uri: str, cache):
    """The registered version's checkpoint, downloaded from the store into ``cache``."""
    return load_codec(checkpoint_path(model_uri, mlflow_uri, cache_dir=cache))


def test_train_flow_logs_and_resumes(flow_env, sample_data, tmp_path, mlflow_uri):
    config = TrainConfig(dataset=str(sample_data.stereo), output_dir=str(tmp_path / "ckpt"),
                         codec="ldmic-fast", preset="tiny", steps=12, batch_size=2, crop=64,
                         checkpoint_every=6, log_every=3, eval_baselines="none")
    report = train_codec(config, TrackingConfig(mlflow_uri, "tests"), show_progress=False)
    assert report.result.steps == 12
    codec = load_codec(report.result.checkpoint)
    assert weights_digest(codec) == report.result.weights_digest
    client = MlflowClient(mlflow_uri)
    run = client.get_run(report.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["codec"] == "ldmic-fast" and run.data.params["lmbda"] == "1024.0"
    assert run.data.params["weights_digest"] == report.result.weights_digest
    assert run.data.params["resumed_from"] == "none" and report.result.resumed_from is None
    assert run.data.params["checkpoint_every"] == "6"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [3, 6, 9, 12]
    assert run.info.run_name == "train ldmic-fast λ=1024"
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "checkpoint" in artifacts and "rd_point.md" in artifacts
    assert run.data.metrics["eval/bpp"] > 0 and run.data.metrics["eval/groups"] == 4
    assert run.data.metrics["eval/mse"] == pytest.approx(10 ** (-run.data.metrics["eval/psnr"] / 10), rel=0.5)
    # registered: models:/mvarchive-ldmic-fast/1 with the run's digest and RD point
    assert report.model_uri == "models:/mvarchive-ldmic-fast/1" and run.data.params["model_uri"] == report.model_uri
    tags = version_tags(report.model_uri, mlflow_uri)
    assert tags["weights_digest"] == report.result.weights_digest and tags["training_run_id"] == run.info.run_id
    assert float(tags["bpp"]) == pytest.approx(run.data.metrics["eval/bpp"]) and tags["lmbda"] == "1024"
    registered = _load_registered(mlflow_uri, report.model_uri, tmp_path / "cache")
    x = torch.rand(2, 3, 64, 64)
    assert registered.compress(x).data == codec.compress(x).data

    # resume: a second call with more steps continues from last.pt instead of restarting
    resumed = train_codec(TrainConfig(**{**config.__dict__, "steps": 15}), None, show_progress=False)
    assert resumed.result.steps == 15 and resumed.result.resumed_from == 12


def test_train_flow_on_odd_sizes_finishes_and_refuses_other_settings(flow_env, tmp_path, mlflow_uri):
    """ECSIC (pad multiple 32) on 250x370 and 200x264 groups: the evaluation after training
    pads like compress does, the run ends FINISHED with a model; another lambda in the same
    folder is refused before any MLflow run is opened."""
    data = make_odd_dataset(tmp_path / "odd")
    config = TrainConfig(dataset=str(data), output_dir=str(tmp_path / "ckpt"), codec="ecsic", preset="tiny",
                         steps=2, batch_size=1, crop=64, layout=LAYOUT, eval_baselines="none")
    report = train_codec(config, TrackingConfig(mlflow_uri, "tests"), show_progress=False)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(report.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["eval/groups"] == 2 and run.data.metrics["eval/bpp"] > 0
    assert run.data.params["checkpoint_every"] == "1"  # default for short runs: min(200, max(1, steps // 10))
    registered = _load_registered(mlflow_uri, report.model_uri, tmp_path / "cache")
    x = torch.rand(2, 3, 250, 370)
    assert registered.compress(x).data == load_codec(report.result.checkpoint).compress(x).data

    # resuming with more steps: logged as such
    resumed = train_codec(TrainConfig(**{**config.__dict__, "steps": 3}), TrackingConfig(mlflow_uri, "tests"),
                          show_progress=False)
    assert resumed.result.resumed_from == 2 and resumed.result.steps == 3
    again = client.get_run(resumed.mlflow_run_id)
    assert again.info.status == "FINISHED" and again.data.params["resumed_from"] == "2"
    assert [m.step for m in client.get_metric_history(again.info.run_id, "loss")] == [3]

    with pytest.raises(TrainingConfigMismatch, match=r"was trained with lmbda=1024.0, this run asks lmbda=512.0; "):
        train_codec(TrainConfig(**{**config.__dict__, "lmbda": 512.0, "steps": 4}), TrackingConfig(mlflow_uri, "tests"),
                    show_progress=False)
    runs = client.search_runs([run.info.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted([run.info.run_id, again.info.run_id])


def test_crops_are_aligned_across_views(sample_data):
    from mvarchive.datasets import discover_dataset

    index = discover_dataset(str(sample_data.rig))
    # identical cameras: aligned crops must then be identical across views
    same = index.__class__(index.url, index.layout, index.cameras,
                           tuple(g.__class__(g.name, (g.views[0],) * 3) for g in index.groups))
    batch = CropSampler(same, crop=64, seed=3).sample(6)
    assert batch.shape == (6, 3, 3, 64, 64)
    assert torch.equal(batch[:, 0], batch[:, 1]) and torch.equal(batch[:, 0], batch[:, 2])
