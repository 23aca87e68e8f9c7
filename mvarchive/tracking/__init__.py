"""MLflow tracking through an explicit client and run id (never the fluent global run)."""

from .runs import RunLogger, environment_params, log_codec_model

__all__ = ["RunLogger", "environment_params", "log_codec_model"]
