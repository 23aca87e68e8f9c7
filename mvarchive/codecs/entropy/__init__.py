"""Entropy-coding parts shared by codecs: rANS helpers, the hyperprior z path,
quantizers and schedules, spatial context models."""

from .coding import CdfTables, SymbolCoder, decode_symbols, encode_symbols, open_decoders, single_threaded, ste_round
from .context import (
    AutoregressiveGaussianContext,
    CheckerboardGaussianContext,
    GaussianContextModel,
    MaskedConv2d,
    make_context_model,
)
from .exact import PROMOTED, Float64Mode, exact_entropy, exact_entropy_active
from .hyperprior import HYPERPRIOR_MULTIPLE, HyperCode, Hyperprior, hyper_analysis, hyper_synthesis
from .quantizer import Quantizer, RansQuantizer, STEQuantizer
from .schedules import anchor_mask, channel_slices, checkerboard, masked_steps, raster

__all__ = [
    "anchor_mask",
    "AutoregressiveGaussianContext",
    "CdfTables",
    "channel_slices",
    "checkerboard",
    "CheckerboardGaussianContext",
    "decode_symbols",
    "encode_symbols",
    "exact_entropy",
    "exact_entropy_active",
    "Float64Mode",
    "GaussianContextModel",
    "hyper_analysis",
    "hyper_synthesis",
    "HyperCode",
    "Hyperprior",
    "HYPERPRIOR_MULTIPLE",
    "make_context_model",
    "masked_steps",
    "MaskedConv2d",
    "open_decoders",
    "PROMOTED",
    "Quantizer",
    "RansQuantizer",
    "raster",
    "single_threaded",
    "ste_round",
    "STEQuantizer",
    "SymbolCoder",
]
