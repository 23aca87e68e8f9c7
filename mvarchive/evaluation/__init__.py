"""Rate-distortion evaluation: learned codecs against classical baselines, BD-rates, plots.

* :mod:`.baselines`: JPEG, WebP, JPEG 2000, AVIF, JPEG XL, HEVC intra and joint HEVC behind one interface;
* :mod:`.bd`: BD-rate / BD-PSNR / BD on MS-SSIM (dB) with the ``bjontegaard`` package;
* :mod:`.evaluate`: rate points, per group and per view records, JSON results;
* :mod:`.plots`: RD curves as PNG.

The Prefect flow is :func:`mvarchive.flows.evaluate.evaluate_dataset`; the command is ``mvarchive eval``.
"""

from importlib import import_module
from typing import Any

#: Where each public name lives; modules load on first use, so ``--help`` and the baseline
#: names do not pay for importing torch and every codec (``evaluate`` does).
_HOMES = {
    **dict.fromkeys(("BASELINE_NAMES", "Availability", "Baseline", "BaselineError", "get_baseline", "list_baselines",
                     "parse_baselines"), "baselines"),
    **dict.fromkeys(("BD_METHODS", "DEFAULT_METHOD", "BDResult", "bd_markdown", "bd_quality", "bd_rate",
                     "compare_curves", "ms_ssim_db"), "bd"),
    **dict.fromkeys(("CodecCurve", "EvaluationResult", "GroupResult", "PointSpec", "RatePoint", "ViewResult",
                     "assemble_result", "compare_results", "evaluate_point", "plan_points", "run_evaluation"), "evaluate"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BASELINE_NAMES",
    "BD_METHODS",
    "DEFAULT_METHOD",
    "Availability",
    "BDResult",
    "Baseline",
    "BaselineError",
    "CodecCurve",
    "EvaluationResult",
    "GroupResult",
    "PointSpec",
    "RatePoint",
    "ViewResult",
    "assemble_result",
    "bd_markdown",
    "bd_quality",
    "bd_rate",
    "compare_curves",
    "compare_results",
    "evaluate_point",
    "get_baseline",
    "list_baselines",
    "ms_ssim_db",
    "parse_baselines",
    "plan_points",
    "run_evaluation",
]
