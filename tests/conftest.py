"""Shared fixtures: sample data, a Prefect test API with a real LocalCluster, MLflow stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.s3_server"]

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# a stack someone left running under ./.mvarchive must not capture the tests (tests/infra start their own)
os.environ.setdefault("MVARCHIVE_STACK", "off")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one torch thread, like a Dask worker on a 2-core machine: two spinning
    threads on a busy 2-core CI made small convolutions several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory):
    """The demo's sample datasets (stereo K=2, rig K=3), built once per session."""
    from mvarchive.datasets import build_sample_datasets

    return build_sample_datasets(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def flow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    """Prefect's test harness plus one real process-based LocalCluster (2 workers) whose
    workers report to the harness API. Yields (ServicesConfig, api_url)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from mvarchive.flows.runtime import dask_session
    from mvarchive.infra import ServicesConfig
    from mvarchive.infra.log_levels import quiet_cluster_logs

    quiet_cluster_logs()
    home = tmp_path_factory.mktemp("home")
    with prefect_test_harness(server_startup_timeout=120):
        api_url = PREFECT_API_URL.value()
        services = ServicesConfig.from_env(home=home, dask_workers=2, prefect_api_url=api_url)
        with dask_session(services, api_url) as cluster:
            yield cluster, api_url


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store per test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def trained_checkpoint(sample_data, tmp_path_factory: pytest.TempPathFactory) -> str:
    """LDMIC-fast (tiny) trained briefly on the stereo sample: realistic latents, in ~20 s."""
    from mvarchive.training import TrainConfig, train_codec_loop

    config = TrainConfig(
        dataset=str(sample_data.stereo), output_dir=str(tmp_path_factory.mktemp("ckpt")), codec="ldmic-fast",
        preset="tiny", steps=150, batch_size=4, crop=128, lmbda=1024, checkpoint_every=1000, learning_rate=5e-4,
    )
    return train_codec_loop(config).checkpoint
