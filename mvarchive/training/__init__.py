"""Training codecs: aligned multi-view crops, the rate-distortion loss, the loop."""

from .data import CropSampler
from .loop import TrainConfig, TrainResult, train_codec_loop
from .loss import RateDistortionLoss

__all__ = ["CropSampler", "RateDistortionLoss", "TrainConfig", "TrainResult", "train_codec_loop"]
