"""MLIC++'s configuration (presets in :mod:`.codec`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MLICPPConfig:
    N: int = 192  # channels of the transforms and of z
    M: int = 320  # channels of y
    slices: int = 10  # channel slices of y (M / slices channels each)
    window: int = 5  # local-context window
    local_heads: int = 2
    intra_heads: int = 2
