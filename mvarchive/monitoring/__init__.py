"""Watching archive runs: does the champion codec still fit the data it archives?"""

from .drift import DriftDecision, DriftPolicy, RDFigures, assess_drift

__all__ = ["DriftDecision", "DriftPolicy", "RDFigures", "assess_drift"]
