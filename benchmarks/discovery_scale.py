"""Dataset discovery at scale: the `discover_dataset` of a baseline revision vs the working tree, on
100,000-file datasets on local disk and on a real SeaweedFS S3 server.

`archive` (plan_archive), `eval` and `train` list a dataset's groups with `discover_dataset`; this
times exactly that call. Files hold one byte each (discovery refuses 0-byte views; images are never
opened). The baseline is `mvarchive/datasets/layouts.py` as of ``--baseline-rev``, imported from git
next to the current one, so both run in the same process on the same files. Prints a Markdown
table; ``--out`` also writes it to a file.

    .venv/bin/python benchmarks/discovery_scale.py --out benchmarks/results/discovery_scale.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvarchive.datasets import layouts as current  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One dataset to discover: where it lies, its layout, its file count."""

    where: str
    layout: str
    files: int
    url: str
    options: dict[str, Any]
    scaled_from: int | None = None  # the baseline ran on this many files; its time is scaled


def baseline_module(rev: str) -> ModuleType:
    """layouts.py as of ``rev``, importable beside the current one."""
    source = subprocess.run(["git", "show", f"{rev}:mvarchive/datasets/layouts.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="discovery-baseline-")) / "layouts_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("layouts_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def file_names(layout: str, files: int) -> list[str]:
    """Relative names: 2 cameras x files/2 frames, or files/2 groups x 2 cameras."""
    half = files // 2
    if layout == "camera-folders":
        return [f"{cam}/frame_{i:06d}.png" for cam in ("left", "right") for i in range(half)]
    return [f"g{i:06d}/{cam}.png" for i in range(half) for cam in ("left", "right")]


def write_local(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
        path.write_bytes(b"x")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def discover(module: ModuleType, case: Case, url: str | None = None) -> tuple[float, Any]:
    """One cold discovery (S3 listings cached by s3fs are dropped first)."""
    if case.options:
        from fsspec.core import url_to_fs

        url_to_fs(url or case.url, **case.options)[0].invalidate_cache()
    return timed(lambda: module.discover_dataset(url or case.url, case.layout, case.options))


def best_of(repeat: int, baseline: ModuleType, case: Case, url: str | None = None) -> tuple[float, float]:
    """Best times of the baseline and the current code, run alternately (a load spike on a shared
    machine then hits both, not one)."""
    before, after = [], []
    for _ in range(repeat):
        before.append(discover(baseline, case, url)[0])
        after.append(discover(current, case, url)[0])
    return min(before), min(after)


def same_index(a: Any, b: Any) -> bool:
    """The two implementations found the same groups, views, names and sizes."""
    def flat(index: Any) -> list[tuple[Any, ...]]:
        return [(g.name, v.camera, v.url, v.name, v.size) for g in index.groups for v in g.views]
    return (a.layout, tuple(a.cameras)) == (b.layout, tuple(b.cameras)) and flat(a) == flat(b)


def row(case: Case, before: float, after: float, agree: bool) -> str:
    note = f" (baseline on {case.scaled_from:,} files, scaled)" if case.scaled_from else ""
    return (f"| {case.where} | {case.layout} | {case.files:,} | {before:.2f}{note} | {after:.2f} | "
            f"{case.files / before:,.0f} | {case.files / after:,.0f} | {after / before:.3f} | "
            f"{'yes' if agree else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000, help="files per local dataset")
    parser.add_argument("--s3-files", type=int, default=100_000, help="files per S3 dataset (0: skip S3)")
    parser.add_argument("--s3-baseline-group-files", type=int, default=10_000,
                        help="the baseline lists every group folder on its own (one request each): run it on "
                             "this many files of the S3 group-folders dataset and scale its time")
    parser.add_argument("--baseline-rev", default="HEAD", help="git revision of layouts.py to compare against")
    parser.add_argument("--repeat", type=int, default=3, help="best of N, baseline and current alternately")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    baseline = baseline_module(args.baseline_rev)
    rows: list[str] = []
    load = os.getloadavg()
    notes: list[str] = [f"load average at the start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"]
    with tempfile.TemporaryDirectory(prefix="discovery-scale-") as tmp:
        for layout in ("camera-folders", "group-folders"):
            root = Path(tmp) / layout
            seconds, _ = timed(lambda: write_local(root, file_names(layout, args.files)))
            notes.append(f"local {layout}: {args.files:,} files written in {seconds:.1f} s")
            case = Case("local disk", layout, args.files, str(root), {})
            before, after = best_of(args.repeat, baseline, case)
            agree = same_index(discover(baseline, case)[1], discover(current, case)[1])
            rows.append(row(case, before, after, agree))
            print(rows[-1], flush=True)
        if args.s3_files:
            rows += s3_rows(Path(tmp), args, baseline, notes)
        report(args, rows, notes)  # before 200,000 files are deleted


def report(args: argparse.Namespace, rows: list[str], notes: list[str]) -> None:
    load = os.getloadavg()
    table = "\n".join([
        f"# Dataset discovery at scale (`discover_dataset`, baseline {args.baseline_rev} vs working tree)",
        "",
        f"One machine ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}); "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. Times are the best of "
        f"{args.repeat}, baseline and current run alternately; S3 runs are cold (s3fs listing cache dropped).",
        "",
        "| where | layout | files | before s | after s | before files/s | after files/s | after/before | same index |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        *[f"- {n}" for n in notes],
    ])
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


def s3_rows(tmp: Path, args: argparse.Namespace, baseline: ModuleType, notes: list[str]) -> list[str]:
    """Upload both layouts to a fresh SeaweedFS bucket (concurrent PUTs through s3fs) and time them."""
    import s3fs

    from mvarchive.infra.seaweedfs import SeaweedS3Server

    rows = []
    with SeaweedS3Server(tmp / "seaweedfs", bucket="discovery") as server:
        opts = server.storage_options
        fs = s3fs.S3FileSystem(**opts, skip_instance_cache=True)
        for layout in ("camera-folders", "group-folders"):
            prefix = f"discovery/{layout}"
            names = file_names(layout, args.s3_files)
            seconds, _ = timed(lambda: fs.pipe({f"{prefix}/{n}": b"x" for n in names}, batch_size=64))
            notes.append(f"S3 {layout}: {len(names):,} objects uploaded in {seconds:.0f} s "
                         f"({len(names) / seconds:,.0f} PUT/s)")
            case = Case("SeaweedFS S3", layout, args.s3_files, f"s3://{prefix}", opts)
            small = args.s3_baseline_group_files
            if layout == "group-folders" and small and small < args.s3_files:
                sub = f"discovery/{layout}-small"
                fs.pipe({f"{sub}/{n}": b"x" for n in file_names(layout, small)}, batch_size=64)
                small_case = Case("SeaweedFS S3", layout, small, f"s3://{sub}", opts)
                part, _ = best_of(args.repeat, baseline, small_case)
                before = part * args.s3_files / small
                after = min(discover(current, case)[0] for _ in range(args.repeat))
                agree = same_index(discover(baseline, small_case)[1], discover(current, small_case)[1])
                case = Case(case.where, layout, case.files, case.url, opts, scaled_from=small)
            else:
                before, after = best_of(args.repeat, baseline, case)
                agree = same_index(discover(baseline, case)[1], discover(current, case)[1])
            rows.append(row(case, before, after, agree))
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
