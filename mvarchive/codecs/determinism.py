"""What decoding depends on, and what the determinism policy guarantees (docs/determinism.md).

* The entropy path (hyper-synthesis, context models, entropy-parameter networks, CDF-index
  computation) runs under :func:`mvarchive.codecs.entropy.exact_entropy` on both sides: one
  thread, every accumulating or transcendental operation in float64 and rounded back to
  float32. The decoded *symbols* therefore do not depend on the thread count, on the ISA
  oneDNN/MKL/ATen pick, or on whether oneDNN is used at all.
* The synthesis transform (latents -> pixels) runs in float32 with the worker's kernels.
  With symbols exact, its pixels equal the encoder's at equal thread count and CPU kernels,
  and otherwise differ by at most :data:`PIXEL_TOLERANCE_LSB` (8-bit levels).

:func:`decode_policy` returns the facts a restore should compare with those recorded when
the archive was written; :func:`policy_differences` lists what changed.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

import torch

#: Largest |difference| in 8-bit levels between restored pixels and the encoder's
#: reconstruction that the policy allows once the decoded symbols are exact (another thread
#: count, ISA or oneDNN on/off). Measured: see docs/determinism.md.
PIXEL_TOLERANCE_LSB = 1

#: Environment variables that cap the instruction set of torch's CPU kernels.
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def pixel_tolerance_lsb() -> int:
    """The max LSB difference guaranteed when the symbols are exact (:data:`PIXEL_TOLERANCE_LSB`)."""
    return PIXEL_TOLERANCE_LSB


def decode_policy() -> dict[str, Any]:
    """The facts decoding depends on, as a JSON-ready dict (recorded by the archive).

    ``synthesis_threads`` is the torch thread count the synthesis runs with (the caller's
    current setting); the entropy path always runs with ``entropy_threads`` = 1 in float64.
    """
    return {
        "mvarchive": _version("mvarchive"),
        "torch": torch.__version__,
        "compressai": _version("compressai"),
        "entropy_path": "float64, 1 thread",
        "entropy_threads": 1,
        "synthesis_threads": torch.get_num_threads(),
        "synthesis_precision": "float32",
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "isa_cap": {name: os.environ[name] for name in ISA_VARIABLES if os.environ.get(name)},
    }


def policy_differences(recorded: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, tuple]:
    """``{key: (recorded, current)}`` for every fact that differs; empty when they agree.

    A difference in torch/compressai/mvarchive versions may change the symbols as well; a
    difference in threads, ISA or oneDNN only moves pixels, by at most the tolerance.
    """
    current = decode_policy() if current is None else current
    return {
        key: (recorded.get(key), current.get(key))
        for key in sorted(set(recorded) | set(current))
        if recorded.get(key) != current.get(key)
    }


__all__ = ["ISA_VARIABLES", "PIXEL_TOLERANCE_LSB", "decode_policy", "pixel_tolerance_lsb", "policy_differences"]
