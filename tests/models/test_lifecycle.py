"""The model lifecycle on a real SQLite MLflow store: training registers versions, @champion,
the gate (promote, reject, --force), registry URIs wherever checkpoints are read, retraining."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mvarchive.codecs import codec_from_checkpoint_bytes, weights_digest
from mvarchive.flows.rd_evaluation import registry_checkpoints
from mvarchive.flows.train import train_task
from mvarchive.models.lifecycle import promote_version, record_evaluation
from mvarchive.models.rd_figures import EvalSet
from mvarchive.models.registry import ModelRegistryError, resolve_model_uri, version_tags
from mvarchive.runtime.checkpoints import fetch_checkpoint_bytes
from mvarchive.tracking import TrackingConfig
from mvarchive.training import TrainConfig

pytestmark = pytest.mark.slow

NAME = "mvarchive-ldmic-fast"


@pytest.fixture(scope="module")
def store(sample_data, tmp_path_factory):
    """A home with its SQLite store (the default one for that home), and two registered
    versions: v1 trained 20 steps at λ=1024, v2 only 2 steps at λ=4096 (an honest loser: RD cost
    at λ=1024 on the rig sample ~91 vs ~212)."""
    home = tmp_path_factory.mktemp("models-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MVARCHIVE_HOME", str(home))
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracking = TrackingConfig(uri, "tests")
    common = dict(dataset=str(sample_data.stereo), codec="ldmic-fast", preset="tiny", batch_size=2, crop=64,
                  learning_rate=5e-4, checkpoint_every=1000)
    v1 = train_task.fn(TrainConfig(output_dir=str(home / "v1"), steps=20, eval_baselines="jpeg", eval_groups=2,
                                   **common), tracking, False)
    v2 = train_task.fn(TrainConfig(output_dir=str(home / "v2"), steps=2, lmbda=4096, eval_baselines="none",
                                   eval_groups=2, **common),
                       tracking, False)
    yield home, uri, v1, v2
    patch.undo()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MVARCHIVE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    script = Path(sys.executable).parent / "mvarchive"  # the installed console script
    return subprocess.run([str(script), "models", *args], capture_output=True, text=True, env=env, timeout=300)


def test_versions_champion_gate_and_fetch(store, sample_data):
    home, uri, v1, v2 = store
    assert (v1.model_uri, v2.model_uri) == (f"models:/{NAME}/1", f"models:/{NAME}/2")
    tags = version_tags(v1.model_uri, uri)
    assert tags["weights_digest"] == v1.result.weights_digest and tags["training_run_id"] == v1.mlflow_run_id
    assert (tags["codec"], tags["preset"], tags["lmbda"], tags["steps"]) == ("ldmic-fast", "tiny", "1024", "20")
    assert json.loads(tags["config"])["N"] > 0 and tags["eval_dataset"] == str(sample_data.stereo)
    assert float(tags["bpp"]) > 0 and float(tags["psnr"]) > 0 and 0 < float(tags["ms_ssim"]) <= 1
    assert version_tags(v2.model_uri, uri)["lmbda"] == "4096" and tags["eval_groups"] == "2"
    client = MlflowClient(uri)
    # the training run: its point against JPEG as metrics (one series per baseline, step = rate
    # point, rate rising) and as a plot, comparable across runs in the UI
    jpeg = client.get_metric_history(v1.mlflow_run_id, "baseline/jpeg/bpp")
    assert [m.step for m in jpeg] == list(range(8)) and jpeg[0].value < jpeg[-1].value
    assert client.get_run(v1.mlflow_run_id).data.metrics["eval/bpp"] == pytest.approx(float(tags["bpp"]))
    assert {a.path for a in client.list_artifacts(v1.mlflow_run_id, "evaluation")} == {
        "evaluation/rd_psnr.png", "evaluation/rd_table.md"}

    # no champion yet: one line naming the alias; unknown model / version named too
    with pytest.raises(ModelRegistryError, match=rf"model '{NAME}' has no alias @champion \(aliases: none\)"):
        resolve_model_uri(f"models:/{NAME}@champion", uri)
    with pytest.raises(ModelRegistryError, match=r"no registered model 'mvarchive-nope'.*models: mvarchive-ldmic-fast"):
        resolve_model_uri("models:/mvarchive-nope/1", uri)
    with pytest.raises(ModelRegistryError, match=rf"model '{NAME}' has no version 9"):
        resolve_model_uri(f"models:/{NAME}/9", uri)

    rig = EvalSet(str(sample_data.rig), max_groups=2)  # data neither version was trained on
    first = promote_version(v1.model_uri, rig, uri, "tests")
    assert first.promoted and first.decision.method == "no-champion"
    assert resolve_model_uri(f"models:/{NAME}@champion", uri).uri == f"models:/{NAME}/1"

    # through the CLI: v2 (2 steps) loses on RD cost at the champion's λ and the alias stays
    result = _cli(home, "promote", "ldmic-fast", "2", "--dataset", str(sample_data.rig), "--groups", "2")
    assert result.returncode == 0, result.stderr
    assert f"{NAME} v2 rejected: RD cost J=R+λ·D at λ=1024" in result.stdout
    listed = json.loads(_cli(home, "list", "--json").stdout)
    assert [(r["version"], r["aliases"]) for r in listed] == [("1", ["champion"]), ("2", [])]
    assert listed[1]["tags"]["gate.rig"].startswith("rejected")
    promote_runs = client.search_runs([client.get_experiment_by_name("mvarchive").experiment_id],
                                      "tags.mvarchive.job = 'promote'")
    rejected = next(r for r in promote_runs if r.info.run_name == f"promote {NAME} v2 → champion")
    assert rejected.data.params["promote"] == "False" and rejected.data.params["method"] == "rd-cost"
    assert rejected.data.metrics["candidate/rd_cost"] > rejected.data.metrics["champion/rd_cost"]

    forced = promote_version(v2.model_uri, rig, uri, "tests", force=True)
    assert forced.promoted and forced.forced and not forced.decision.promote and "(--force)" in forced.line
    pinned = resolve_model_uri(f"models:/{NAME}@champion", uri)
    assert pinned.uri == f"models:/{NAME}/2" and pinned.version == "2"

    # models:/ wherever checkpoints are read: the exact bytes, digest as tagged, cached per digest
    data = fetch_checkpoint_bytes(f"models:/{NAME}@champion")
    assert data == Path(v2.result.checkpoint).read_bytes()
    champion = codec_from_checkpoint_bytes(data, "champion")
    assert weights_digest(champion) == version_tags(pinned.uri, uri)["weights_digest"]
    run = client.get_run(v2.mlflow_run_id)
    stored = Path(run.info.artifact_uri.removeprefix("file://")) / "checkpoint" / Path(v2.result.checkpoint).name
    stored.unlink()  # a second fetch (another worker process) must not download again
    assert fetch_checkpoint_bytes(pinned.uri) == data
    assert fetch_checkpoint_bytes(pinned.uri, {"mlflow_tracking_uri": uri}) == data  # the store named explicitly
    assert (home / "models-cache" / v2.result.weights_digest / stored.name).is_file()

    # `models evaluate`: a run named after the version and dataset, figures kept as a version tag
    figures, run_id = record_evaluation(f"models:/{NAME}@champion", rig, uri, "tests")
    assert client.get_run(run_id).info.run_name == f"evaluate {NAME} v2 on rig"
    kept = json.loads(version_tags(pinned.uri, uri)["eval.rig"])
    assert kept["bpp"] == pytest.approx(figures["bpp"], rel=1e-5)
    assert kept["run_id"] == run_id and figures["groups"] == 2

    # `mvarchive eval --model models:/…`: planned from the cached file, sent to workers pinned
    checkpoints, pinned_files = registry_checkpoints([f"models:/{NAME}@champion", "other.pt"], uri)
    assert checkpoints[1] == "other.pt" and pinned_files[checkpoints[0]][0] == pinned.uri
    assert pinned_files[checkpoints[0]][1] == f"{NAME} v2 λ=4096"


def test_retrain_registers_child_and_logs_gate(store, sample_data, flow_env, tmp_path):
    from mvarchive.flows.retrain import RetrainConfig, retrain

    home, uri, v1, _ = store
    report = retrain(RetrainConfig(dataset=str(sample_data.stereo), output_dir=str(tmp_path), model=v1.model_uri,
                                   eval_dataset=str(sample_data.rig), steps=4, batch_size=2, crop=64,
                                   eval_groups=2, eval_baselines="none", triggered_by="drift check 42"),
                     TrackingConfig(uri, "tests"))
    assert report.parent.uri == v1.model_uri
    tags = version_tags(report.candidate.uri, uri)
    assert tags["parent_version"] == "1" and tags["triggered_by"] == "drift check 42" and tags["lmbda"] == "1024"
    client = MlflowClient(uri)
    parent_run = client.get_run(report.mlflow_run_id)
    assert parent_run.info.run_name == f"retrain {NAME} v1"
    assert parent_run.data.tags["mvarchive.triggered_by"] == "drift check 42"
    assert parent_run.data.params["reason"] == report.decision.reason
    assert report.decision.method in ("rd-cost", "no-champion")
    for child in (report.train_run_id, report.promote_run_id):
        assert client.get_run(child).data.tags["mvarchive.parent_run"] == report.mlflow_run_id
    champion = resolve_model_uri(f"models:/{NAME}@champion", uri)
    assert (champion.version == report.candidate.version) == report.promoted
