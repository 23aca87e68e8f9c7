"""MLflow tracking through an explicit client and run id (never the fluent global run)."""

from .runs import RunLogger, TrackingConfig, environment_params, log_codec_model, tracked_run

__all__ = ["RunLogger", "TrackingConfig", "environment_params", "log_codec_model", "tracked_run"]
