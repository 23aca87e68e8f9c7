"""The flow ``retrain/auto`` runs when a drift event arrives: plain event values in, the
``retrain-codec`` flow (mvarchive.flows.retrain) run as a subflow.

Deployment-trigger parameters are rendered from the event payload as strings, so this wrapper
takes strings only; service locations, the MLflow store and storage keys come from the
serving process's environment, and checkpoints go under MVARCHIVE_HOME (a flow run's working
directory is temporary).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

RETRAIN_WRAPPER_NAME = "retrain"


@flow(name=RETRAIN_WRAPPER_NAME, log_prints=True, persist_result=True)
def triggered_retrain(
    dataset: str, codec: str = "ldmic-fast", model: str = "", eval_dataset: str = "", triggered_by: str = "",
    archive: str = "", steps: int = 200, crop: int = 256, batch_size: int = 8, eval_groups: int = 8,
    eval_baselines: str = "jpeg,x265-intra",
) -> dict[str, Any]:
    """Fine-tune ``model`` (default: the codec's champion) on ``dataset``, gate, promote.

    The event fills the first six parameters; the training budget comes from the deployment's
    defaults (``mvarchive serve --retrain-steps …``)."""
    from mvarchive.flows.retrain import RetrainConfig, retrain
    from mvarchive.flows.runtime import prefect_session
    from mvarchive.infra import ServicesConfig
    from mvarchive.tracking import TrackingConfig

    if not dataset:
        raise ValueError(f"drift event for {archive or 'an archive'} names no dataset to retrain on")
    services = ServicesConfig.from_env()
    remote = "://" in dataset and not dataset.startswith("file://")
    config = RetrainConfig(
        dataset=dataset, codec=codec, model=model or None, eval_dataset=eval_dataset or None,
        triggered_by=triggered_by or f"drift on {archive}", output_dir=str(services.home / "retrain"),
        steps=steps, crop=crop, batch_size=batch_size, eval_groups=eval_groups, eval_baselines=eval_baselines,
        storage_options=dict(services.storage_options) if remote else {},
    )
    with prefect_session(services):
        report = retrain(config, TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    keys = ("parent", "candidate", "decision", "promoted", "mlflow_run_id")
    summary = {key: str(getattr(report, key, None)) for key in keys}
    print(f"retrain after drift on {archive or dataset}: {summary}")
    return summary
