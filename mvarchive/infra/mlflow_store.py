"""MLflow tracking store access without touching MLflow's global state.

The fluent MLflow API keeps a process-global active run and tracking URI,
which breaks when flows log from several threads; mvarchive passes an
explicit MlflowClient (and run ids) around instead.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mvarchive.infra.settings import ServicesConfig

if TYPE_CHECKING:  # importing mlflow takes seconds; do it only when used
    import mlflow

__all__ = [
    "ensure_experiment",
    "mlflow_client",
    "mlflow_ui_command",
    "sqlite_store_path",
]

ARTIFACTS_DIRNAME = "mlruns-artifacts"


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


def mlflow_client(config: ServicesConfig) -> mlflow.MlflowClient:
    """An MlflowClient for the configured store (creating ``home`` for SQLite).

    Sets no global tracking URI, so several stores can be used side by side.
    """
    config.home.mkdir(parents=True, exist_ok=True)
    uri = config.resolved_mlflow_uri()
    db_path = sqlite_store_path(uri)
    if db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _default_artifact_location(tracking_uri: str) -> str | None:
    """``<dir of the SQLite db>/mlruns-artifacts`` as a file URI, for SQLite stores.

    Without it MLflow puts artifacts of a SQLite store in ``./mlruns`` of
    whatever directory the process happens to run in.
    """
    db_path = sqlite_store_path(tracking_uri)
    if db_path is None:
        return None
    return (db_path.resolve().parent / ARTIFACTS_DIRNAME).as_uri()


def ensure_experiment(
    client: mlflow.MlflowClient, name: str, artifact_location: str | None = None
) -> str:
    """Return the id of experiment ``name``, creating (or restoring) it.

    New experiments on a SQLite store keep their artifacts next to the
    database unless ``artifact_location`` says otherwise; an existing
    experiment keeps the location it was created with.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    location = artifact_location or _default_artifact_location(client.tracking_uri)
    return str(client.create_experiment(name, artifact_location=location))


def mlflow_ui_command(tracking_uri: str, port: int = 5000) -> str:
    """The shell command that opens the MLflow UI on ``tracking_uri``.

    Uses the ``mlflow`` script of this interpreter's environment so the UI
    runs with the same MLflow version that wrote the store. A tracking
    server (http/https URI) serves its own UI, so it raises ValueError.
    """
    if urlsplit(tracking_uri).scheme in ("http", "https"):
        raise ValueError(f"{tracking_uri} is a tracking server: open it in a browser")
    script = Path(sys.executable).parent / "mlflow"
    program = str(script) if script.exists() else "mlflow"
    parts = [program, "ui", "--backend-store-uri", tracking_uri, "--port", str(port)]
    return shlex.join(parts)
