"""MLflow store helpers: local SQLite store, experiments, UI command."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from mvarchive.infra.mlflow_store import (
    ensure_experiment,
    mlflow_client,
    mlflow_ui_command,
    sqlite_store_path,
)
from mvarchive.infra.settings import ServicesConfig, offline_environment


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in offline_environment().items():
        monkeypatch.setenv(name, value)


def test_sqlite_store_and_experiment(tmp_path: Path, offline: None) -> None:
    import mlflow

    config = ServicesConfig(home=tmp_path / "home")
    tracking_before = mlflow.get_tracking_uri()
    client = mlflow_client(config)
    assert (tmp_path / "home").is_dir()
    assert client.tracking_uri == config.resolved_mlflow_uri()
    assert mlflow.get_tracking_uri() == tracking_before  # nothing global was set

    exp_id = ensure_experiment(client, "codecs")
    assert ensure_experiment(client, "codecs") == exp_id
    experiment = client.get_experiment(exp_id)
    assert experiment.artifact_location == (tmp_path / "home" / "mlruns-artifacts").as_uri()

    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "bpp", 0.25)
    client.log_text(run.info.run_id, "hello", "notes/hello.txt")
    client.set_terminated(run.info.run_id)
    assert (tmp_path / "home" / "mlflow.db").exists()
    assert list((tmp_path / "home" / "mlruns-artifacts").rglob("hello.txt"))

    client.delete_experiment(exp_id)
    assert ensure_experiment(client, "codecs") == exp_id  # restored, same id

    other = ensure_experiment(client, "elsewhere", artifact_location=(tmp_path / "a").as_uri())
    assert client.get_experiment(other).artifact_location == (tmp_path / "a").as_uri()


def test_ui_command(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = mlflow_ui_command(uri)
    parts = shlex.split(command)
    assert Path(parts[0]).name == "mlflow"
    assert parts[1:] == ["ui", "--backend-store-uri", uri, "--port", "5000"]
    assert mlflow_ui_command(uri, port=5055).endswith("--port 5055")
    with pytest.raises(ValueError):
        mlflow_ui_command("http://127.0.0.1:5000")


def test_sqlite_store_path() -> None:
    assert sqlite_store_path("sqlite:////abs/mlflow.db") == Path("/abs/mlflow.db")
    assert sqlite_store_path("http://host:5000") is None
