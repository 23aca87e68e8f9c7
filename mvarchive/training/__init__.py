"""Training codecs: aligned multi-view crops, the rate-distortion loss, the loop."""

from .data import CropSampler
from .loop import TrainConfig, TrainingConfigMismatch, TrainResult, check_resume, run_settings, train_codec_loop
from .loss import RateDistortionLoss

__all__ = [
    "CropSampler", "RateDistortionLoss", "TrainConfig", "TrainResult", "TrainingConfigMismatch", "check_resume",
    "run_settings", "train_codec_loop",
]
