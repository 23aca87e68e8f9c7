"""ServicesConfig: defaults, environment overrides, explicit overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mvarchive.infra.settings import ServicesConfig, offline_environment


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No config variables set, working directory in a temp dir."""
    for var in ServicesConfig.env_vars().values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults(clean_env: Path) -> None:
    config = ServicesConfig.from_env()
    assert config.home == (clean_env / ".mvarchive").resolve()
    assert config.home.is_absolute()
    assert config.dask_address is None
    assert config.dask_workers == 2
    assert config.threads_per_worker == 1
    assert config.prefect_api_url is None
    assert config.mlflow_tracking_uri is None
    assert config.mlflow_experiment == "mvarchive"
    assert config.storage_options == {}
    assert config.resolved_mlflow_uri() == f"sqlite:///{config.home}/mlflow.db"
    assert config.resolved_mlflow_uri().startswith("sqlite:////")
    assert not config.home.exists()  # building a config creates nothing


def test_environment_overrides(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"key": "k", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    monkeypatch.setenv("MVARCHIVE_HOME", str(clean_env / "state"))
    monkeypatch.setenv("MVARCHIVE_DASK_ADDRESS", "tcp://10.0.0.1:8786")
    monkeypatch.setenv("MVARCHIVE_DASK_WORKERS", "4")
    monkeypatch.setenv("MVARCHIVE_DASK_THREADS_PER_WORKER", "3")
    monkeypatch.setenv("PREFECT_API_URL", "http://10.0.0.2:4200/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://10.0.0.3:5000")
    monkeypatch.setenv("MVARCHIVE_MLFLOW_EXPERIMENT", "exp")
    monkeypatch.setenv("MVARCHIVE_STORAGE_OPTIONS", json.dumps(options))
    config = ServicesConfig.from_env()
    assert config.home == clean_env / "state"
    assert config.dask_address == "tcp://10.0.0.1:8786"
    assert (config.dask_workers, config.threads_per_worker) == (4, 3)
    assert config.prefect_api_url == "http://10.0.0.2:4200/api"
    assert config.resolved_mlflow_uri() == "http://10.0.0.3:5000"
    assert config.mlflow_experiment == "exp"
    assert config.storage_options == options


def test_relative_home_is_resolved(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MVARCHIVE_HOME", "rel/home")
    assert ServicesConfig.from_env().home == clean_env / "rel" / "home"
    assert ServicesConfig(home=Path("other")).home == clean_env / "other"


def test_explicit_overrides_win_and_none_is_dropped(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MVARCHIVE_DASK_WORKERS", "4")
    monkeypatch.setenv("PREFECT_API_URL", "http://env:4200/api")
    config = ServicesConfig.from_env(dask_workers=6, prefect_api_url=None, home="h")
    assert config.dask_workers == 6
    assert config.prefect_api_url == "http://env:4200/api"
    assert config.home == clean_env / "h"


def test_empty_variables_count_as_unset(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "")
    monkeypatch.setenv("MVARCHIVE_DASK_WORKERS", " ")
    config = ServicesConfig.from_env()
    assert config.prefect_api_url is None and config.dask_workers == 2


def test_explicit_environ_mapping(clean_env: Path) -> None:
    config = ServicesConfig.from_env({"MVARCHIVE_MLFLOW_EXPERIMENT": "given"})
    assert config.mlflow_experiment == "given"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MVARCHIVE_DASK_WORKERS", "two"),
        ("MVARCHIVE_DASK_WORKERS", "0"),
        ("MVARCHIVE_STORAGE_OPTIONS", "{not json"),
        ("MVARCHIVE_STORAGE_OPTIONS", "[1, 2]"),
    ],
)
def test_invalid_values_name_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=var):
        ServicesConfig.from_env()


def test_unknown_override_is_rejected(clean_env: Path) -> None:
    with pytest.raises(TypeError, match="dask_wrokers"):
        ServicesConfig.from_env(dask_wrokers=3)


def test_every_field_documents_its_variable() -> None:
    env_vars = ServicesConfig.env_vars()
    assert env_vars["home"] == "MVARCHIVE_HOME"
    assert env_vars["prefect_api_url"] == "PREFECT_API_URL"
    assert env_vars["mlflow_tracking_uri"] == "MLFLOW_TRACKING_URI"
    assert len(set(env_vars.values())) == len(env_vars)


def test_offline_environment() -> None:
    env = offline_environment()
    assert env["DO_NOT_TRACK"] == "true"  # MLflow accepts only "true"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert int(env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 120
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
