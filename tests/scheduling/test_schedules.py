"""Schedules end to end on a real Prefect server: `schedule add/list/run/remove`, `mvarchive serve`
executing a short-interval schedule twice against a growing source, a drift event starting a
triggered deployment, and SIGTERM to `serve` leaving the schedule active."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mvarchive.cli.schedule import schedule_app
from mvarchive.scheduling.deployments import NO_SERVER, prefect_api
from tests.scheduling.trigger_flows import RECORD_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def serve_env(home: Path, api_url: str, dask_address: str) -> dict[str, str]:
    return {
        **os.environ, "PREFECT_API_URL": api_url, "MVARCHIVE_HOME": str(home / "mv"),
        "MVARCHIVE_DASK_ADDRESS": dask_address, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "PYTHONPATH": str(REPO), RECORD_ENV: str(home / "trigger-record.jsonl"),
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
def served(home: Path, serve_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`mvarchive serve` in its own process, polling every second, two runs at a time."""
    log = open(home / "serve.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-u", "-c",
         "import typer; from mvarchive.cli.schedule import serve_command; typer.run(serve_command)",
         "--poll-seconds", "1", "--limit", "2"],
        env=serve_env, stdout=log, stderr=subprocess.STDOUT, cwd=home,
    )
    yield process
    if process.poll() is None:
        process.terminate()
        process.wait(30)
    log.close()


def cli(*args: str, api_url: str | None, home: Path) -> Any:
    env = {"PREFECT_API_URL": api_url or "", "MVARCHIVE_HOME": str(home / "cli-home")}
    return CliRunner().invoke(schedule_app, list(args), env=env, catch_exceptions=False)


def wait_for(check, timeout_s: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            pytest.fail(f"serve exited ({process.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}" + (f"\n{log.read_text()[-3000:]}" if log else ""))


def runs_of(api_url: str, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_api(api_url) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                                     sort=FlowRunSort.START_TIME_DESC)


def copy_groups(sample: Path, dest: Path, names: list[str]) -> None:
    for name in names:
        shutil.copytree(sample / name, dest / name)


def test_add_refuses_bad_requests_in_one_line(
    home: Path, api_url: str, sample_data, served: subprocess.Popen, tmp_path: Path,
) -> None:
    """(Starts `serve` too, so that it boots while these run.)"""
    src = str(sample_data.stereo)
    cases = [
        (("--every", "1h"), "no model given"),
        (("--untrained", "--every", "1h", "--cron", "0 2 * * *"), "exactly one of --cron or --every"),
        (("--untrained", "--every", "1 fortnight"), "--every '1 fortnight'"),
        (("--untrained", "--cron", "61 * * * *"), "invalid --cron"),
        (("--model", str(tmp_path / "missing.pt"), "--every", "1h"), "no such checkpoint file"),
    ]
    for extra, message in cases:
        result = cli("add", "bad", "--source", src, "--dest", str(tmp_path / "a"), *extra, api_url=api_url, home=home)
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output and "Traceback" not in result.output, (extra, result.output)
    missing = cli("add", "bad", "--source", str(tmp_path / "nothing"), "--dest", str(tmp_path / "a"), "--untrained",
                  "--every", "1h", api_url=api_url, home=home)
    assert missing.exit_code == 2 and "nothing" in missing.output
    unknown = cli("run", "nosuch", api_url=api_url, home=home)
    assert unknown.exit_code == 2 and "no schedule named 'nosuch'" in unknown.output
    offline = cli("list", api_url=None, home=home)
    assert offline.exit_code == 2 and NO_SERVER in offline.output.replace("\n", " ")


def test_drift_event_starts_the_triggered_deployment_with_its_payload(
    home: Path, api_url: str, served: subprocess.Popen, serve_env: dict[str, str],
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from mvarchive.scheduling.events import emit_drift_event
    from mvarchive.scheduling.serve import apply_triggered_deployment
    from tests.scheduling.trigger_flows import record_drift

    log = home / "serve.log"
    wait_for(lambda: "started!" in log.read_text(), 120, "serve to start polling", served, log)
    with prefect_api(api_url) as client:  # serve deployed retrain/auto with the drift trigger
        assert client.read_deployment_by_name("retrain/auto").work_pool_name == "mvarchive"
        assert len(client.read_automations_by_name("retrain/auto on drift")) == 1
    deployment_id = apply_triggered_deployment(api_url, record_drift, "on-drift")
    with prefect_api(api_url) as client:
        automations = client.read_automations_by_name("record-drift/on-drift on drift")
    assert len(automations) == 1 and automations[0].enabled
    time.sleep(2)  # the triggers service loads new automations every few seconds
    expected = {"codec": "ldmic-fast", "model": "models:/mvarchive-ldmic-fast@champion", "dataset": "s3://fleet/recent",
                "eval_dataset": "s3://fleet/eval", "triggered_by": "mlflow-run-0123"}
    with temporary_settings({PREFECT_API_URL: api_url}):
        emit_drift_event("s3://fleet/archive", "ldmic-fast", {"bpp": 0.41, "psnr": 27.5, "cost_ratio": 1.18},
                         model=expected["model"], dataset=expected["dataset"], eval_dataset=expected["eval_dataset"],
                         triggered_by=expected["triggered_by"], related_run_ids=["mlflow-run-0123"])
    run = wait_for(lambda: [r for r in runs_of(api_url, deployment_id) if r.state_type.value in FINAL],
                   90, "the triggered run", served, log)[0]
    assert run.parameters == expected
    with prefect_api(api_url) as client:
        retrain = client.read_deployment_by_name("retrain/auto")
    # the same event started retrain/auto with the payload too (it fails fast: no champion registered here)
    started = wait_for(lambda: runs_of(api_url, retrain.id), 30, "the retrain/auto run")
    parameters = started[0].parameters
    assert {k: parameters[k] for k in (*expected, "archive")} == {**expected, "archive": "s3://fleet/archive"}
    assert parameters["steps"] >= 1  # the training budget comes from the deployment's defaults (serve's options)
    assert run.state_type.value == "COMPLETED", (run.state_name, log.read_text()[-3000:])
    recorded = [json.loads(line) for line in Path(serve_env[RECORD_ENV]).read_text().splitlines()]
    assert recorded == [expected]  # executed once, by the served worker, with the event's values


def test_served_schedule_runs_twice_and_appends_only_new_groups(
    home: Path, api_url: str, sample_data, served: subprocess.Popen, tmp_path: Path,
) -> None:
    source, dest = tmp_path / "fleet", tmp_path / "archive"
    source.mkdir()
    names = sorted(p.name for p in Path(sample_data.stereo).iterdir() if p.is_dir())
    copy_groups(Path(sample_data.stereo), source, names[:2])
    added = cli("add", "fleet", "--source", str(source), "--dest", str(dest), "--untrained", "--codec", "ldmic-fast",
                "--preset", "tiny", "--layout", "group-folders", "--shard-size", "1", "--every", "5s",
                api_url=api_url, home=home)
    assert added.exit_code == 0, added.output
    with prefect_api(api_url) as client:
        deployment = client.read_deployment_by_name("archive-dataset/fleet")
    assert [s.schedule.interval.total_seconds() for s in deployment.schedules] == [5.0]
    assert deployment.schedules[0].active and not deployment.paused
    assert {"mvarchive", "schedule:fleet"} <= set(deployment.tags) and deployment.work_pool_name == "mvarchive"
    assert deployment.parameters["source"] == str(source) and deployment.parameters["untrained"] is True
    assert deployment.entrypoint == "mvarchive.scheduling.flow.scheduled_archive"

    listed = json.loads(cli("list", "--json", api_url=api_url, home=home).output)
    rows = [(r["name"], r["schedule"], r["active"], r["dest"]) for r in listed]
    assert rows == [("fleet", "every 5s", True, str(dest))]
    # the server's scheduler service creates the runs on its next loop (every second here)
    wait_for(lambda: json.loads(cli("list", "--json", api_url=api_url, home=home).output)[0]["next_run"], 60,
             "the schedule's next run")

    log = home / "serve.log"
    def finished_runs(after: float = 0.0) -> list[Any]:
        return [r for r in runs_of(api_url, deployment.id)
                if r.state_type.value in FINAL and r.state_type.value != "CANCELLED"
                and r.start_time is not None and r.start_time.timestamp() > after]

    first = wait_for(lambda: finished_runs(), 150, "the first scheduled run", served, log)[-1]
    assert first.state_type.value == "COMPLETED", (first.state_name, log.read_text()[-3000:])
    first_summary = _summary(api_url, first.id)
    counts = (first_summary["groups"], first_summary["groups_added"], first_summary["shards_written"])
    assert counts == (2, 2, 2), first_summary

    grown_at = time.time()
    copy_groups(Path(sample_data.stereo), source, names[2:])
    second = wait_for(lambda: finished_runs(grown_at), 150, "a run after the source grew", served, log)[-1]
    assert second.state_type.value == "COMPLETED", (second.state.message, log.read_text()[-3000:])
    second_summary = _summary(api_url, second.id)
    new = len(names) - 2
    assert second_summary["groups"] == len(names), second_summary
    # only the new groups
    assert (second_summary["groups_added"], second_summary["shards_written"]) == (new, new), second_summary



def test_stopping_serve_leaves_schedules_active_and_remove_keeps_past_runs(
    home: Path, api_url: str, served: subprocess.Popen,
) -> None:
    log = home / "serve.log"
    with prefect_api(api_url) as client:
        deployment = client.read_deployment_by_name("archive-dataset/fleet")
    past = runs_of(api_url, deployment.id)
    served.send_signal(signal.SIGTERM)
    assert served.wait(60) == 0, log.read_text()[-3000:]
    assert "schedules stay active" in log.read_text()
    running = [r.name for r in runs_of(api_url, deployment.id) if r.state_type.value == "RUNNING"]
    assert not running, running  # a run in flight at SIGTERM is marked Crashed, not left "Running"
    with prefect_api(api_url) as client:
        after = client.read_deployment_by_name("archive-dataset/fleet")
        assert after.schedules[0].active and not after.paused
    listed = json.loads(cli("list", "--json", api_url=api_url, home=home).output)
    assert [(r["name"], r["active"]) for r in listed] == [("fleet", True)]
    started = cli("run", "fleet", api_url=api_url, home=home)  # nobody serves now: it waits, scheduled
    assert started.exit_code == 0 and "started run" in started.output, started.output
    manual = [r for r in runs_of(api_url, deployment.id) if "manual" in r.tags]
    assert len(manual) == 1 and manual[0].state_type.value == "SCHEDULED"
    removed = cli("remove", "fleet", api_url=api_url, home=home)
    assert removed.exit_code == 0, removed.output
    with prefect_api(api_url) as client:
        from prefect.exceptions import ObjectNotFound

        with pytest.raises(ObjectNotFound):
            client.read_deployment_by_name("archive-dataset/fleet")
        kept = [client.read_flow_run(r.id) for r in past if r.state_type.value in FINAL]
        assert kept and all(r.state_type.value in FINAL for r in kept)  # past runs stay after the deployment is gone
        with pytest.raises(ObjectNotFound):
            client.read_flow_run(manual[0].id)  # its future runs are deleted with it
    assert json.loads(cli("list", "--json", api_url=api_url, home=home).output) == []
    assert cli("remove", "fleet", api_url=api_url, home=home).exit_code == 2


def _summary(api_url: str, flow_run_id: Any) -> dict[str, Any]:
    """The wrapper flow's returned summary (a persisted result)."""
    with prefect_api(api_url) as client:
        state = client.read_flow_run(flow_run_id).state
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        return state.result()
