"""The flow a schedule's deployment runs: plain JSON parameters in, the CLI's archive path out.

A deployment stores its parameters as JSON and a worker process runs them later, elsewhere;
so this thin wrapper takes only strings, numbers and booleans, takes storage options and
service locations from the serving process's environment (never from parameters), and runs
the archive flow on Dask exactly as ``mvarchive archive`` does (``run_on_dask``), which also
logs the MLflow run.

Importing this module imports only Prefect: the archive flow (and torch) load when a run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prefect import flow

from mvarchive.scheduling.spec import ARCHIVE_FLOW_NAME

if TYPE_CHECKING:
    from mvarchive.storage.options import StorageOptions


def _options_for(url: str, storage_options: Mapping[str, Any]) -> StorageOptions:
    from mvarchive.storage.options import StorageOptions

    return StorageOptions(storage_options) if "://" in url and not url.startswith("file://") else StorageOptions()


@flow(name=ARCHIVE_FLOW_NAME, log_prints=True, persist_result=True)  # summary readable in the UI and by `run --wait`
def scheduled_archive(
    source: str,
    dest: str,
    model: str | None = None,
    untrained: bool = False,
    codec: str = "ldmic-fast",
    preset: str = "paper",
    layout: str = "auto",
    shard_size: int = 4,
    schedule: str | None = None,
) -> dict[str, Any]:
    """Archive SOURCE into DEST with MODEL (a schedule's run); returns a small summary."""
    from mvarchive.flows.archive import ArchiveConfig, archive_dataset, plan_archive
    from mvarchive.flows.runtime import prefect_session, run_on_dask
    from mvarchive.infra import ServicesConfig
    from mvarchive.tracking import TrackingConfig

    services = ServicesConfig.from_env()
    config = ArchiveConfig(
        source=source, dest=dest, codec=codec, preset=preset, checkpoint=model, untrained=untrained,
        layout=layout, shard_size=shard_size,
        wait=True,  # another writer's lease (a CLI run, a killed run's until it expires): wait, don't fail
        source_options=_options_for(source, services.storage_options),
        dest_options=_options_for(dest, services.storage_options),
    )
    plan_archive(config)  # a user error fails the run with its one line, before Dask starts
    with prefect_session(services) as api_url:
        report = run_on_dask(
            archive_dataset, services, api_url, config=config, show_progress=False,
            tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment,
                                    tags={"mvarchive.schedule": schedule} if schedule else {}),
        )
    result = {
        "schedule": schedule, "archive": report.archive, "shards_written": report.shards_written,
        "shards_skipped": report.shards_skipped, "groups": int(report.summary.get("groups", 0)),
        "groups_added": getattr(report, "groups_added", None), "archive_run_id": getattr(report, "run_id", None),
        "wall_s": round(report.wall_s, 3), "mlflow_run_id": report.mlflow_run_id,
    }
    print(f"schedule {schedule}: {result}")
    return result
