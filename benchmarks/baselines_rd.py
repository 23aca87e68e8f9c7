"""Rate-distortion of the classical baselines on the demo's sample datasets (a benchmark, not a test).

    .venv/bin/python benchmarks/baselines_rd.py [--data DIR] [--datasets stereo rig]
        [--baselines all] [--anchor x265-intra] [--method akima] [--out DIR]

Builds the sample datasets (``mvarchive.datasets.build_sample_datasets``) if needed, runs every
available baseline over all their groups in this process (one thread, no Prefect/Dask), and
prints per dataset: the RD table (bpp from real bytes, PSNR, MS-SSIM, per-view PSNR gap, encode
and decode seconds per megapixel), BD-rates against the anchor (interpolation named), and each
baseline's mean encode/decode time per megapixel on this machine. Baselines that cannot run are
listed with the reason. Times include starting the tool process for ffmpeg/cjxl/djxl (about
0.1 s per call), which dominates on these 0.08-0.09 MP views.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch

from mvarchive.datasets import build_sample_datasets
from mvarchive.evaluation import EvaluationResult, RatePoint, plan_points, run_evaluation
from mvarchive.evaluation.bd import BD_METHODS, DEFAULT_METHOD


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def timing_markdown(result: EvaluationResult) -> str:
    lines = ["| baseline | points | bpp range | enc s/MP | dec s/MP | implementation |", "|---|---|---|---|---|---|"]
    for curve in result.curves:
        s = curve.series()
        impl = curve.points[0].info.get("implementation", "") if curve.points else ""
        lines.append(f"| {curve.name} | {len(curve.points)} | {min(s['bpp']):.3f}–{max(s['bpp']):.3f} "
                     f"| {_mean(s['encode_s_per_mpix']):.3f} | {_mean(s['decode_s_per_mpix']):.3f} | {impl} |")
    for name, reason in result.unavailable.items():
        lines.append(f"| {name} | unavailable | | | | {reason} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=".mvarchive/sample", help="where the sample datasets are (built if missing)")
    parser.add_argument("--datasets", nargs="+", default=["stereo", "rig"], choices=["stereo", "rig"])
    parser.add_argument("--baselines", default="all", help="all or a comma-separated list")
    parser.add_argument("--anchor", default="x265-intra")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=BD_METHODS, help="BD interpolation")
    parser.add_argument("--out", default=None, help="also write results-<dataset>.json here")
    args = parser.parse_args()

    torch.set_num_threads(1)  # MS-SSIM; the baselines themselves run single-threaded
    sample = build_sample_datasets(args.data)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"# classical baselines on the sample datasets: {_cpu()}, {os.cpu_count()} cores, "
          f"load average {load:.2f} at start, single-threaded codecs\n")
    specs, unavailable = plan_points([], [], args.baselines)
    for name in args.datasets:
        root = getattr(sample, name)
        started = time.perf_counter()
        done = [0]

        def progress(point: RatePoint) -> None:
            done[0] += 1
            print(f"\r  {name}: {done[0]}/{len(specs)} rate points ({point.codec} {point.label})".ljust(80),
                  end="", flush=True)

        result = run_evaluation(str(root), specs, unavailable, anchor=args.anchor, bd_method=args.method,
                                on_point=progress)
        print("\r".ljust(82), end="\r")
        views = len(result.groups) * len(result.cameras)
        print(f"## {name}: {len(result.groups)} groups × {len(result.cameras)} views ({views} views), "
              f"{time.perf_counter() - started:.0f} s\n")
        print("### RD points\n")
        print(result.rd_markdown())
        print("### BD against the anchor\n")
        print(result.bd_markdown())
        print("### Time per megapixel (mean over the rate points)\n")
        print(timing_markdown(result))
        if args.out:
            path = result.save(Path(args.out) / f"results-{name}.json")
            print(f"(results: {path})\n")


if __name__ == "__main__":
    main()
