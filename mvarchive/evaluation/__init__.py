"""Rate-distortion evaluation: learned codecs against classical baselines, BD-rates, plots.

* :mod:`.baselines`: JPEG, WebP, JPEG 2000, AVIF, JPEG XL, HEVC intra and joint HEVC behind one interface;
* :mod:`.bd`: BD-rate / BD-PSNR / BD on MS-SSIM (dB) with the ``bjontegaard`` package;
* :mod:`.planning`: the rate points to measure (checkpoints, untrained codecs, baseline settings);
* :mod:`.measuring`: one rate point coded to real bytes and measured per group and per view;
* :mod:`.results`: curves, BD against an anchor, JSON results;
* :mod:`.runner`: an evaluation in this process;
* :mod:`.matched`: codecs compared at matched quality;
* :mod:`.plots` and :mod:`.tables`: RD curves as PNG, tables for the terminal.

The Prefect flow is :func:`mvarchive.flows.rd_evaluation.evaluate_dataset` (one task per rate
point, :mod:`mvarchive.tasks.evaluate_point`); the command is ``mvarchive eval``.
"""

from importlib import import_module
from typing import Any

#: Where each public name lives; modules load on first use, so ``--help`` and the baseline
#: names do not pay for importing torch and every codec (``planning`` and the rest do).
_HOMES = {
    **dict.fromkeys(("BASELINE_NAMES", "Availability", "Baseline", "BaselineError", "get_baseline", "list_baselines",
                     "parse_baselines"), "baselines"),
    **dict.fromkeys(("BD_METHODS", "DEFAULT_METHOD", "BDResult", "bd_markdown", "bd_quality", "bd_rate",
                     "compare_curves", "ms_ssim_db"), "bd"),
    **dict.fromkeys(("PointSpec", "baseline_points", "learned_points", "parse_codec", "plan_points"), "planning"),
    **dict.fromkeys(("PSNR_CAP", "CodedGroup", "GroupResult", "RatePoint", "ViewResult", "code_group",
                     "evaluate_point", "measure_group", "summarize_groups"), "measuring"),
    **dict.fromkeys(("SCHEMA", "CodecCurve", "EvaluationResult", "anchor_problem", "assemble_result", "bd_against",
                     "compare_results"), "results"),
    "run_evaluation": "runner",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


__all__ = sorted(_HOMES)
