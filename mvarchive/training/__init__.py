"""Training codecs: aligned multi-view crops, the rate-distortion loss, the loop."""

from .data import CropSampler
from .loop import (
    RESUMABLE_FIELDS,
    TrainConfig,
    TrainingConfigMismatch,
    TrainResult,
    check_resume,
    run_settings,
    train_codec_loop,
)
from .loss import RateDistortionLoss, ecsic_lambda
from .schedule import PAPER_SCHEDULES, SCHEDULES

__all__ = [
    "PAPER_SCHEDULES", "RESUMABLE_FIELDS", "SCHEDULES", "CropSampler", "RateDistortionLoss", "TrainConfig",
    "TrainResult", "TrainingConfigMismatch", "check_resume", "ecsic_lambda", "run_settings", "train_codec_loop",
]
