"""The λ sweep through the installed script, on embedded defaults (the command starts its own
Prefect server, LocalCluster and SQLite MLflow store under MVARCHIVE_HOME): one parent run with
a child per λ trained on a Dask worker, two registered versions, the RD curve on the parent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mvarchive.flows.sweep import SweepConfig, reusable_version, sweep_point_task
from mvarchive.models.registry import version_tags
from mvarchive.tracking import TrackingConfig
from mvarchive.training import TrainConfig

pytestmark = pytest.mark.slow

SCRIPT = str(Path(sys.executable).parent / "mvarchive")
#: What the session's services would otherwise hand the command: it must start its own.
_SERVICE_VARIABLES = ("PREFECT_API_URL", "MVARCHIVE_DASK_ADDRESS", "MLFLOW_TRACKING_URI", "MVARCHIVE_MLFLOW_EXPERIMENT")


def test_sweep_trains_each_lambda_on_a_worker_under_one_parent_run(sample_data, tmp_path):
    shutil.copytree(sample_data.stereo, tmp_path / "data" / "stereo")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
    env.update({"MVARCHIVE_HOME": str(home), "MVARCHIVE_STACK": "off", "MVARCHIVE_DASK_WORKERS": "2"})
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    # a high constant learning rate, so that 3 steps already move the two λ apart
    args = ["train", "../data/stereo", "--codec", "ldmic-fast", "--preset", "tiny", "--steps", "3", "--batch-size", "2",
            "--crop", "64", "--learning-rate", "1e-2", "--lr-schedule", "constant", "--lmbda", "16", "--lmbda", "16384",
            "--eval-groups", "2", "--eval-baselines", "jpeg", "--out", "sweep"]
    done = subprocess.run([SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "models:/mvarchive-ldmic-fast/1" in done.stdout and "BD-rate against jpeg" in done.stdout

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.data.tags.get("mvarchive.job") == "train-sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "sweep ldmic-fast 2 λ" and parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.info.run_name for c in children) == ["train ldmic-fast λ=16", "train ldmic-fast λ=16384"]
    assert len(runs) == 3 and all(c.info.status == "FINISHED" for c in children)
    # trained on Dask workers, not in the command's process
    for child in children:
        assert child.data.tags["mvarchive.worker"].startswith("tcp://127.0.0.1:")
        assert child.data.tags["mvarchive.pid"] != parent.data.tags["mvarchive.pid"]

    versions = client.search_model_versions("name='mvarchive-ldmic-fast'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    by_run = {v.run_id: v for v in versions}
    assert set(by_run) == {c.info.run_id for c in children}
    bpp = {c.data.params["lmbda"]: c.data.metrics["eval/bpp"] for c in children}
    assert bpp["16.0"] != bpp["16384.0"] and min(bpp.values()) > 0

    # the parent holds the curve: both points (as the children measured them) beside JPEG
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "evaluation")}
    assert {"evaluation/rd_psnr.png", "evaluation/rd_table.md", "evaluation/bd_table.md"} <= artifacts
    assert [m.value for m in client.get_metric_history(parent.info.run_id, "rd/bpp")] == [bpp["16.0"], bpp["16384.0"]]
    assert parent.data.params["lmbdas"] == "16,16384"
    assert "baseline/jpeg/bpp" in parent.data.metrics
    # an untrained curve far below JPEG has no PSNR overlap with it: the note says so instead of a number
    assert "bd/jpeg/bd_rate_psnr" in parent.data.metrics or "bd.jpeg.note" in parent.data.params
    table = client.download_artifacts(parent.info.run_id, "evaluation/rd_table.md", str(tmp_path / "dl"))
    text = Path(table).read_text(encoding="utf-8")
    assert "| ldmic-fast | λ=16 |" in text and "| ldmic-fast | λ=16384 |" in text and "| jpeg |" in text

    # each λ's folder resumes on its own; a re-run reuses the registered versions instead of
    # registering them twice, unless more steps are asked for
    base = TrainConfig(dataset=str(tmp_path / "data" / "stereo"), output_dir=str(cwd / "sweep"), codec="ldmic-fast",
                       preset="tiny", steps=3, batch_size=2, crop=64, learning_rate=1e-2, lr_schedule="constant",
                       eval_groups=2, eval_baselines="jpeg")
    sweep = SweepConfig(base, (16.0, 16384.0))
    reused = {p.lmbda: reusable_version(p, uri) for p in sweep.points()}
    assert sorted(reused.values()) == ["models:/mvarchive-ldmic-fast/1", "models:/mvarchive-ldmic-fast/2"]
    for lmbda, model_uri in reused.items():
        assert version_tags(model_uri, uri)["lmbda"] == f"{lmbda:g}"
        assert (cwd / "sweep" / f"lmbda-{lmbda:g}" / "last.pt").is_file()
    other_steps = SweepConfig(TrainConfig(**{**base.__dict__, "steps": 4}), (16.0, 32.0))
    assert reusable_version(other_steps.point(16.0), uri) is None
    assert reusable_version(sweep.point(16.0), f"sqlite:///{tmp_path / 'other.db'}") is None
    # the re-run's task for a finished λ: measured again (same bytes), nothing trained or registered
    again = sweep_point_task.fn(sweep.point(16384.0), TrackingConfig(uri), parent.info.run_id)
    assert again.reused and again.model_uri == reused[16384.0] and again.run_id is None
    assert again.figures["bpp"] == pytest.approx(bpp["16384.0"])
    assert len(client.search_runs([parent.info.experiment_id])) == 3
    assert len(client.search_model_versions("name='mvarchive-ldmic-fast'")) == 2


def test_sweep_config_gives_each_lambda_its_folder_and_refuses_bad_lambdas(tmp_path):
    base = TrainConfig(dataset="data", output_dir=str(tmp_path / "out"), codec="ldmic-fast", preset="tiny")
    sweep = SweepConfig(base, (2048.0, 128.0, 0.5))
    assert [(c.lmbda, Path(c.output_dir).name) for c in sweep.points()] == [
        (0.5, "lmbda-0.5"), (128.0, "lmbda-128"), (2048.0, "lmbda-2048")]
    assert all(c.codec == "ldmic-fast" and c.preset == "tiny" for c in sweep.points())
    for lmbdas, message in (((128.0,), "at least two"), ((128.0, -1.0), "must be > 0"), ((128.0, 128.0), "repeat")):
        with pytest.raises(ValueError, match=message):
            SweepConfig(base, lmbdas)
    assert reusable_version(sweep.point(128.0), None) is None  # nothing trained there yet
