"""Starting and connecting the services a run needs.

S3 storage (SeaweedFS), the Prefect API server, the Dask cluster and the
MLflow tracking store: each is either reached at a configured address,
provided by the persistent stack (``stack_up``, ``mvarchive services up``),
or started locally on free loopback ports for the duration of a run.
Importing this package starts nothing and imports no heavy dependencies.
"""

from mvarchive.infra.dask_cluster import (
    WORKERS_PER_HOST_ENV,
    dask_task_runner,
    torch_threads_for_worker,
)
from mvarchive.infra.gpu import (
    GPU_RESOURCE,
    NoGpuWorkerError,
    cuda_device_count,
    gpu_placement,
    require_gpu_for_flow,
    require_gpu_workers,
    worker_resources,
)
from mvarchive.infra.mlflow_store import (
    ensure_experiment,
    mlflow_client,
    mlflow_ui_command,
    sqlite_store_path,
)
from mvarchive.infra.ports import (
    ServiceStartError,
    free_port,
    free_port_pairs,
    free_ports,
    log_tail,
    stop_process,
    wait_for_http,
    wait_until,
)
from mvarchive.infra.prefect_server import PrefectServer, connect_prefect, prefect_env
from mvarchive.infra.seaweedfs import SeaweedS3Server, find_weed_binary, validate_bucket_name
from mvarchive.infra.settings import ServicesConfig, offline_environment
from mvarchive.infra.stack import StackOptions, stack_down, stack_status, stack_up
from mvarchive.infra.stack_state import StackState

__all__ = [
    "GPU_RESOURCE",
    "WORKERS_PER_HOST_ENV",
    "NoGpuWorkerError",
    "PrefectServer",
    "SeaweedS3Server",
    "ServiceStartError",
    "ServicesConfig",
    "StackOptions",
    "StackState",
    "connect_prefect",
    "cuda_device_count",
    "dask_task_runner",
    "ensure_experiment",
    "find_weed_binary",
    "free_port",
    "free_port_pairs",
    "free_ports",
    "gpu_placement",
    "log_tail",
    "mlflow_client",
    "mlflow_ui_command",
    "offline_environment",
    "prefect_env",
    "require_gpu_for_flow",
    "require_gpu_workers",
    "sqlite_store_path",
    "stack_down",
    "stack_status",
    "stack_up",
    "stop_process",
    "torch_threads_for_worker",
    "validate_bucket_name",
    "wait_for_http",
    "wait_until",
    "worker_resources",
]
