"""The whole loop on CPU, as an operator runs it: a champion trained on photographs archives a
source of noise groups on a schedule; the rate-distortion cost drifts for two runs in a row;
the drift event starts `retrain/auto`, which fine-tunes the champion on the recent data,
registers the candidate and gates it; the next scheduled run uses the champion then in force.

Everything is real: the Prefect server (events, automations, deployments), `mvarchive serve`
(the installed script), a Dask worker, the SQLite MLflow store with its Model Registry. The
operator's other commands run the script's entry point in children forked from one warmed
interpreter (``tests/warm_cli.py``): eight fresh interpreters spent ~80 s importing.
The timeline of runs is written to benchmarks/results/drift_retrain_timeline.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mvarchive.scheduling.deployments import prefect_api
from tests.warm_cli import Run, WarmCli

pytestmark = pytest.mark.slow

SCRIPT = str(Path(sys.executable).parent / "mvarchive")
NAME = "mvarchive-ldmic-fast"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
TIMELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "drift_retrain_timeline.md"


def noise_groups(root: Path, first: int, count: int, seed: int = 7) -> None:
    """Groups of two views of coarse colour noise: nothing like the photographs the champion saw."""
    rng = np.random.default_rng(seed + first)
    for g in range(first, first + count):
        folder = root / f"g{g:03d}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        for camera, shift in (("left", 0), ("right", 2)):
            view = np.kron(np.roll(base, shift, axis=1), np.ones((4, 4, 1), dtype=np.uint8))  # 192 x 256
            Image.fromarray(view).save(folder / f"{camera}.png")


@pytest.fixture(scope="module")
def loop_home(home: Path) -> Path:
    path = home / "drift-loop"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def mlflow_uri(loop_home: Path) -> str:
    return f"sqlite:///{loop_home / 'mlflow.db'}"


@pytest.fixture(scope="module")
def loop_env(loop_home: Path, api_url: str, dask_address: str, mlflow_uri: str) -> dict[str, str]:
    return {
        **os.environ, "PREFECT_API_URL": api_url, "MVARCHIVE_HOME": str(loop_home / "mv"),
        "MVARCHIVE_DASK_ADDRESS": dask_address, "MLFLOW_TRACKING_URI": mlflow_uri,
        "MVARCHIVE_DRIFT_THRESHOLD": "0.1", "MVARCHIVE_DRIFT_RUNS": "2", "MVARCHIVE_STACK": "off",
    }


@pytest.fixture(scope="module")
def champion(sample_data, loop_home: Path, loop_env: dict[str, str], mlflow_uri: str) -> str:
    """v1 of mvarchive-ldmic-fast, trained briefly on the photographs and promoted."""
    from mvarchive.flows.train import train_task
    from mvarchive.models.lifecycle import EvalSet, promote_version
    from mvarchive.tracking import TrackingConfig
    from mvarchive.training import TrainConfig

    patch = pytest.MonkeyPatch()
    patch.setenv("MVARCHIVE_HOME", loop_env["MVARCHIVE_HOME"])
    try:
        trained = train_task.fn(TrainConfig(
            dataset=str(sample_data.stereo), output_dir=str(loop_home / "v1"), codec="ldmic-fast", preset="tiny",
            steps=20, batch_size=2, crop=64, learning_rate=5e-4, checkpoint_every=1000, eval_groups=4,
            eval_baselines="none"), TrackingConfig(mlflow_uri, "mvarchive"), False)
        report = promote_version(trained.model_uri, EvalSet(str(sample_data.stereo), max_groups=4), mlflow_uri)
    finally:
        patch.undo()
    assert report.promoted, report.decision.reason
    return trained.model_uri


@pytest.fixture(scope="module")
def served(loop_home: Path, loop_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`mvarchive serve` with a CPU-sized retraining budget."""
    log = open(loop_home / "serve.log", "w")
    process = subprocess.Popen(
        [SCRIPT, "serve", "--poll-seconds", "1", "--retrain-steps", "10", "--retrain-crop", "64",
         "--retrain-batch-size", "2", "--retrain-eval-groups", "4", "--retrain-baselines", "none"],
        env=loop_env, stdout=log, stderr=subprocess.STDOUT, cwd=loop_home,
    )
    yield process
    if process.poll() is None:
        process.terminate()
        process.wait(60)
    log.close()


@pytest.fixture(scope="module")
def cli(loop_env: dict[str, str]) -> Iterator[WarmCli]:
    """The operator's shell: `mvarchive` commands in the loop's environment."""
    with WarmCli(loop_env) as warm:
        yield warm


def mv(cli: WarmCli, cwd: Path, *args: str) -> Run:
    result = cli.run(list(args), cwd, timeout=600)
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


def archive_runs(mlflow_uri: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("mvarchive")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`mvarchive.job` = 'archive'",
                              order_by=["attributes.start_time ASC"])
    return list(runs)


def wait_for(check, timeout_s: float, what: str, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{log.read_text()[-4000:]}")


def test_drift_retrains_gates_and_the_next_run_uses_the_champion(
    champion: str, served: subprocess.Popen, loop_home: Path, cli: WarmCli, mlflow_uri: str, api_url: str,
) -> None:
    from mlflow import MlflowClient

    source, log = loop_home / "fleet", loop_home / "serve.log"
    noise_groups(source, 0, 2)
    mv(cli, loop_home, "schedule", "add", "nightly", "--source", "fleet", "--dest", "archive",
       "--model", f"models:/{NAME}@champion", "--codec", "ldmic-fast", "--preset", "tiny",
       "--layout", "group-folders", "--shard-size", "2", "--cron", "0 3 1 1 *")

    # run 1: the noise costs far more than the photographs did, but one run is not a trend
    mv(cli, loop_home, "schedule", "run", "nightly", "--wait")
    first = archive_runs(mlflow_uri)[-1]
    assert first.data.tags["mvarchive.model"] == f"models:/{NAME}/1"
    assert first.data.tags["mvarchive.schedule"] == "nightly"  # a schedule's runs group by this tag in the UI
    drift_flags = (first.data.tags["mvarchive.drift.exceeded"], first.data.tags["mvarchive.drift.triggered"])
    assert drift_flags == ("true", "false")
    assert first.data.metrics["drift/ratio"] > 0.1 and first.data.metrics["drift/streak"] == 1

    # run 2 on the grown source: second drifted run in a row -> event -> retrain/auto
    noise_groups(source, 2, 2)
    mv(cli, loop_home, "schedule", "run", "nightly", "--wait")
    second = archive_runs(mlflow_uri)[-1]
    assert second.data.tags["mvarchive.drift.triggered"] == "true", second.data.tags
    assert second.data.metrics["drift/streak"] == 2

    with prefect_api(api_url) as client:
        retrain_deployment = client.read_deployment_by_name("retrain/auto")

    def retrain_done() -> list[Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        with prefect_api(api_url) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[retrain_deployment.id])))
        return [r for r in runs if r.state_type.value in FINAL]

    retrain_run = wait_for(retrain_done, 600, "the triggered retrain/auto run", log)[0]
    assert retrain_run.state_type.value == "COMPLETED", (retrain_run.state_name, log.read_text()[-4000:])
    assert retrain_run.parameters["triggered_by"] == second.info.run_id
    assert retrain_run.parameters["model"] == f"models:/{NAME}@champion"

    client = MlflowClient(tracking_uri=mlflow_uri)
    candidate = client.get_model_version(NAME, "2")
    assert candidate.tags["parent_version"] == "1" and candidate.tags["triggered_by"] == second.info.run_id
    gate = [value for key, value in candidate.tags.items() if key.startswith("gate.")]
    assert len(gate) == 1 and gate[0].startswith(("promoted", "rejected")), candidate.tags
    in_force = str(client.get_model_version_by_alias(NAME, "champion").version)
    assert (in_force == "2") == gate[0].startswith("promoted")

    # run 3: whatever the gate decided, the schedule encodes with the champion in force now
    noise_groups(source, 4, 2)
    mv(cli, loop_home, "schedule", "run", "nightly", "--wait")
    third = archive_runs(mlflow_uri)[-1]
    assert third.data.tags["mvarchive.model"] == f"models:/{NAME}/{in_force}"
    info = json.loads(mv(cli, loop_home, "info", "archive", "--json").stdout)
    assert info["groups"] == 6 and len(info["runs"]) == 3, info.get("runs")

    # an archive without an embedded model restores with weights the Dask workers fetch from the registry
    mv(cli, loop_home, "archive", "fleet", "direct", "--model", f"models:/{NAME}@champion",
       "--no-embed-model", "--preset", "tiny", "--layout", "group-folders")
    record = json.loads(mv(cli, loop_home, "info", "direct", "--json").stdout)
    registered = [m.get("registered") for m in record["models"]]
    assert registered == [f"models:/{NAME}/{in_force}"], record["models"]
    assert not any(m.get("embedded") for m in record["models"])
    restored = mv(cli, loop_home / "fleet", "restore", "../direct", "../restored", "--groups", "g001,g004")
    written = sorted(p.relative_to(loop_home / "restored").as_posix() for p in (loop_home / "restored").rglob("*.png"))
    assert written == ["g001/left.png", "g001/right.png", "g004/left.png", "g004/right.png"], restored.stdout

    _write_timeline(client, [first, second, third], retrain_run, candidate, gate[0], in_force)


def _write_timeline(
    client: Any, archive: list[Any], retrain_run: Any, candidate: Any, gate: str, in_force: str,
) -> None:
    experiment = archive[0].info.experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    lines = ["# Drift → retraining → gate: one end-to-end run (tests/scheduling/test_drift_retrain.py)", "",
             "| MLflow run | job | started (UTC) | s | what it shows |", "|---|---|---|---:|---|"]
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        what = tags.get("mvarchive.drift.reason") or tags.get("mvarchive.triggered_by", "")
        if tags.get("mvarchive.job") == "archive":
            what = (f"model {tags.get('mvarchive.model')}, groups added {metrics.get('groups_added', 0):.0f}, "
                    f"run bpp {metrics.get('run_bpp', float('nan')):.3f}; {what}")
        elif what:
            what = f"triggered by {what}"
        seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
        started = time.strftime("%H:%M:%S", time.gmtime(run.info.start_time / 1000))
        lines.append(f"| {run.info.run_name} | {tags.get('mvarchive.job', '')} | {started} | {seconds:.1f} | {what} |")
    shown = {k: v for k, v in retrain_run.parameters.items() if k in ("model", "dataset", "triggered_by")}
    lines += ["", f"Prefect flow run of retrain/auto: {retrain_run.name} ({retrain_run.state_name}), parameters "
              f"{json.dumps(shown)}",
              f"Candidate {NAME} v{candidate.version}: {gate}", f"Champion in force for the next run: v{in_force}", ""]
    TIMELINE.parent.mkdir(parents=True, exist_ok=True)
    TIMELINE.write_text("\n".join(lines))
