"""How close the archive pipeline comes to its codec: wall time against encode-only time (a benchmark).

    .venv/bin/python benchmarks/archive_pipeline.py [--groups 52] [--size 256x384] [--workers 2]
        [--shard-size 4] [--metrics-fraction F] [--home DIR] [--json OUT.json]

1. Builds ``--groups`` stereo pairs (group-folders layout, PNG) cut from scikit-image's colour
   photographs, the right view shifted 6 % like the sample data's pairs.
2. **Encode-only**: in this process, with the workers' torch thread count, the codec's
   ``compress`` alone on every group (images already decoded): the floor the pipeline is
   measured against.
3. **Profile of one shard**: ``encode_shard_fn`` run in this process on the first shard of a real
   archive, with timers around each step (read/decode images, ``compress`` split into analysis +
   coding and the synthesis for the digest, digest, metrics, blob write) and the orchestrator's
   index append.
4. **Pipeline**: the real ``archive_dataset`` flow on a fresh Prefect server and LocalCluster
   (``--workers`` processes), with an SQLite MLflow store, as ``mvarchive archive`` runs it.
   The fixed start-up (server + cluster) is timed apart from the flow itself (steady state).
   With ``--home`` pointing at a running ``mvarchive services up`` stack, the stack is used
   and nothing is started.

Efficiency = (encode-only sum / workers) / wall. Untrained weights (speed does not depend on
training). Runs with the code it imports, so the same script measures the code before and after
a change (``PYTHONPATH=<old checkout>``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def build_dataset(root: Path, groups: int, height: int, width: int) -> Path:
    """``groups`` stereo pairs ``root/gNNN/{left,right}.png``: windows of the photographs
    (scaled so that several windows fit), the right view 6 % to the right of the left one."""
    from PIL import Image
    from skimage import data, transform

    shift = int(round(0.06 * width))
    windows: list[np.ndarray] = []
    for name in PHOTOS:
        image = getattr(data, name)()
        if image.ndim != 3 or image.shape[2] < 3:
            continue
        image = image[..., :3]
        scale = max((height + 1) / image.shape[0], (width + shift + 1) / image.shape[1], 0.5)
        if scale != 1.0:
            image = (transform.rescale(image, scale, channel_axis=2, anti_aliasing=True) * 255).round().astype(np.uint8)
        rows = range(0, image.shape[0] - height + 1, max(1, height // 3))
        cols = range(0, image.shape[1] - width - shift + 1, max(1, width // 3))
        windows += [image[r:r + height, c:c + width + shift] for r in rows for c in cols]
    if not windows:
        raise SystemExit("no photograph fits the requested size")
    for i in range(groups):
        window = windows[i % len(windows)]
        if i >= len(windows):  # reuse a window flipped, so no two groups are byte-identical
            window = window[:, ::-1] if (i // len(windows)) % 2 else window[::-1]
        folder = root / f"g{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(window[:, :width])).save(folder / "left.png")
        Image.fromarray(np.ascontiguousarray(window[:, shift:shift + width])).save(folder / "right.png")
    return root


class Timers:
    """Accumulated seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.time(name):
                return fn(*args, **kwargs)
        return timed


def worker_threads(workers: int) -> int:
    """The torch threads each of ``workers`` worker processes gets (as the workers compute it)."""
    from mvarchive.infra.dask_cluster import WORKERS_PER_HOST_ENV, torch_threads_for_worker

    saved = os.environ.get(WORKERS_PER_HOST_ENV)
    os.environ[WORKERS_PER_HOST_ENV] = str(workers)
    try:
        return torch_threads_for_worker()
    finally:
        if saved is None:
            os.environ.pop(WORKERS_PER_HOST_ENV, None)
        else:
            os.environ[WORKERS_PER_HOST_ENV] = saved


def encode_only(source: Path, codec_name: str, preset: str, threads: int, every: int = 1,
                offset: int = 0) -> list[float]:
    """Seconds of ``compress`` per group (every ``every``-th group from ``offset``), images decoded
    beforehand, ``threads`` torch threads."""
    import torch

    from mvarchive.codecs import load_codec
    from mvarchive.datasets import discover_dataset, load_group
    from mvarchive.metrics import to_tensor

    torch.set_num_threads(threads)
    codec = load_codec(name=codec_name, preset=preset, seed=0)
    codec.eval()
    index = discover_dataset(str(source), "group-folders", {})
    seconds = []
    for group in index.groups[offset::every]:
        x = to_tensor(load_group(group, {}, None))
        started = time.perf_counter()
        codec.compress(x)
        seconds.append(time.perf_counter() - started)
    return seconds


def parallel_encode_only(source: Path, codec_name: str, preset: str, threads: int, workers: int) -> tuple[float, float]:
    """(wall, summed compress seconds) of ``workers`` plain processes running ``compress`` at once on
    their share of the groups (no Prefect, no Dask): what the workers could do on this machine
    as loaded now, CPU contention included."""
    import multiprocessing

    jobs = [(source, codec_name, preset, threads, workers, i) for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.apply(time.sleep, (0,))  # processes up before the clock starts
        warm = [(source, codec_name, preset, threads, len(jobs) * 1000, 0)] * workers
        pool.starmap(encode_only, warm)  # warm imports
        started = time.perf_counter()
        seconds = pool.starmap(encode_only, jobs)
        wall = time.perf_counter() - started
    return wall, float(sum(sum(s) for s in seconds))


def archive_config(source: Path, dest: Path, args: argparse.Namespace) -> Any:
    from mvarchive.flows.archive import ArchiveConfig

    extra = {}
    names = {f.name for f in fields(ArchiveConfig)}
    if args.metrics_fraction is not None:
        if "metrics_fraction" not in names:
            raise SystemExit("this code has no ArchiveConfig.metrics_fraction")
        extra["metrics_fraction"] = args.metrics_fraction
    return ArchiveConfig(source=str(source), dest=str(dest), codec=args.codec, preset=args.preset, untrained=True,
                         layout="group-folders", shard_size=args.shard_size, **extra)


def profile_shard(source: Path, dest: Path, args: argparse.Namespace, threads: int) -> dict[str, float]:
    """Time every step of one shard's encode task, run in this process (no Dask, no Prefect)."""
    import torch

    import mvarchive.tasks.encode as encode

    torch.set_num_threads(threads)
    saved = dict(vars(encode))
    try:
        return _profile_shard(encode, source, dest, args, threads)
    finally:  # the flow's tasks must find the module as it was
        vars(encode).update(saved)


def _profile_shard(encode: Any, source: Path, dest: Path, args: argparse.Namespace, threads: int) -> dict[str, float]:
    from mvarchive.flows.archive import plan_archive
    from mvarchive.storage import ArchiveWriter

    config = archive_config(source, dest, args)
    plan = plan_archive(config, check_lease=False)
    writer = ArchiveWriter.create_or_resume(plan.location, plan.meta)
    run_id = writer.begin_run(plan.meta.codec, planned=args.shard_size, dataset_url=plan.meta.dataset_url,
                              content_digest=plan.meta.content_digest, shard_size=args.shard_size,
                              environment=plan.meta.environment, num_groups=args.shard_size)
    members = list(plan.growth.todo[: args.shard_size])
    job_fields = {f.name for f in fields(encode.EncodeShardJob)}
    job_kwargs = dict(archive=plan.location, meta=writer.meta, shard_id=0, run_id=run_id,
                      groups=tuple(plan.index.groups[i] for i in members),
                      digests=tuple(plan.digests[i] for i in members), codec=plan.codec,
                      max_pixels=config.max_pixels)
    if "metrics_fraction" in job_fields:
        job_kwargs["metrics_fraction"] = getattr(config, "metrics_fraction", 1.0)
    job = encode.EncodeShardJob(**job_kwargs)
    encode.prepare_torch = lambda: threads  # the workers' thread count, in this process
    codec = plan.codec.load()
    timers = Timers()
    codec.synthesize = timers.wrap("synthesis (x_hat for the digest)", codec.synthesize)
    codec.compress = timers.wrap("compress (total)", codec.compress)
    encode.codec_on_worker = lambda ref, device="cpu": codec
    patched = {"load_group": "read + decode images", "group_metrics": "metrics (PSNR, MS-SSIM, bpp)",
               "to_uint8": "x_hat -> uint8"}
    for name, label in patched.items():
        setattr(encode, name, timers.wrap(label, getattr(encode, name)))
    encode.Fingerprint = type("TimedFingerprint", (), {"of": staticmethod(timers.wrap("digest (SHA-256, tiles)",
                                                                                       encode.Fingerprint.of))})
    encode.ArchiveWriter = type("TimedWriter", (encode.ArchiveWriter,), {
        "write_shard": timers.wrap("blob write", encode.ArchiveWriter.write_shard)})
    with timers.time("task total"):
        result = encode.encode_shard_fn(job)
    with timers.time("index append (orchestrator)"):
        writer.append_rows(list(result.rows))
    seconds = dict(timers.seconds)
    synthesis = seconds.get("synthesis (x_hat for the digest)", 0.0)
    seconds["analysis + coding"] = seconds.get("compress (total)", 0.0) - synthesis
    seconds["groups"] = float(len(members))
    return seconds


def run_pipeline(source: Path, warm_source: Path, dest: Path, home: Path, args: argparse.Namespace) -> dict[str, float]:
    """The archive flow as the CLI runs it. Timed apart: the start-up (Prefect server +
    LocalCluster), a first flow of two groups on the fresh workers (their imports, the codec's
    first load, the MLflow store's creation: what one cold command pays once), then the measured
    flow on the warm workers (the steady state, what a persistent stack gives every run)."""
    from mvarchive.flows.archive import archive_dataset
    from mvarchive.flows.runtime import dask_session, prefect_session, run_on_dask
    from mvarchive.infra import ServicesConfig
    from mvarchive.infra.log_levels import quiet_cluster_logs
    from mvarchive.tracking import TrackingConfig

    quiet_cluster_logs()
    services = ServicesConfig.from_env(home=home, dask_workers=args.workers)
    started = time.perf_counter()
    with prefect_session(services) as api_url:
        prefect_s = time.perf_counter() - started
        with dask_session(services, api_url) as cluster:
            startup_s = time.perf_counter() - started
            tracking = TrackingConfig(cluster.resolved_mlflow_uri(), cluster.mlflow_experiment)
            warm_started = time.perf_counter()
            warm_config = archive_config(warm_source, dest.with_name("warm.zarr"), args)
            run_on_dask(archive_dataset, cluster, api_url, config=warm_config, tracking=tracking, show_progress=False)
            warm_s = time.perf_counter() - warm_started
            flow_started = time.perf_counter()
            report = run_on_dask(archive_dataset, cluster, api_url, config=archive_config(source, dest, args),
                                 tracking=tracking, show_progress=False)
            flow_s = time.perf_counter() - flow_started
    return {"prefect_start_s": prefect_s, "startup_s": startup_s, "warm_flow_s": warm_s, "flow_s": flow_s,
            "flow_inner_s": report.wall_s, "total_s": time.perf_counter() - started,
            "in_task_encode_s": report.run_summary.get("encode_s", math.nan),
            "groups_archived": float(report.groups_added),
            "ms_ssim_groups": float(report.summary.get("ms_ssim_groups", math.nan)),
            "psnr": report.summary.get("psnr", math.nan), "ms_ssim": report.summary.get("ms_ssim", math.nan),
            "bpp": report.summary.get("bpp", math.nan)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=52)
    parser.add_argument("--size", default="256x384", help="HxW of every view")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=4)
    parser.add_argument("--metrics-fraction", type=float, default=None, help="default: the code's default")
    parser.add_argument("--codec", default="ldmic-fast")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--home", default=None, help="MVARCHIVE_HOME (a running stack is used); default: a temp dir")
    parser.add_argument("--label", default="", help="a name for this run in the tables")
    parser.add_argument("--skip", nargs="*", default=[], choices=["profile", "pipeline"])
    parser.add_argument("--json", default=None, help="write the figures here too")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("MVARCHIVE_STACK", "off" if args.home is None else "on")
    work = Path(tempfile.mkdtemp(prefix="archive-pipeline-"))
    figures: dict[str, Any] = {"label": args.label, "groups": args.groups, "size": args.size, "workers": args.workers,
                               "shard_size": args.shard_size, "load_before": load_avg()}
    try:
        source = build_dataset(work / "data", args.groups, height, width)
        warm_source = build_dataset(work / "warm", 2, height, width)
        threads = worker_threads(args.workers)
        figures["threads"] = threads
        per_group = encode_only(source, args.codec, args.preset, threads)
        figures["encode_only_first_s"] = sum(per_group)
        if "profile" not in args.skip:
            figures["profile"] = profile_shard(source, work / "profile.zarr", args, threads)
        if "pipeline" not in args.skip:
            home = Path(args.home) if args.home else work / "home"
            figures.update(run_pipeline(source, warm_source, work / "archive.zarr", home, args))
            # the machine's load changes: encode-only again (every 2nd group) after the pipeline
            again = encode_only(source, args.codec, args.preset, threads, every=2)
            figures["encode_only_again_s_per_group"] = sum(again) / len(again)
            figures["encode_only_s"] = args.groups * (sum(per_group) / len(per_group) + sum(again) / len(again)) / 2
            floor = figures["encode_only_s"] / args.workers
            figures["efficiency_flow"] = floor / figures["flow_s"]
            figures["efficiency_cold"] = floor / (figures["startup_s"] + figures["warm_flow_s"] + figures["flow_s"])
            figures["efficiency_in_run"] = figures["in_task_encode_s"] / args.workers / figures["flow_s"]
            wall, summed = parallel_encode_only(source, args.codec, args.preset, threads, args.workers)
            figures["parallel_encode_wall_s"], figures["parallel_encode_sum_s"] = wall, summed
            figures["efficiency_parallel"] = wall / figures["flow_s"]
        else:
            figures["encode_only_s"] = sum(per_group)
        figures["load_after"] = load_avg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_tables(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def print_tables(f: dict[str, Any]) -> None:
    print(f"\n{f['label'] or 'run'}: {f['groups']} stereo groups of {f['size']}, {f['workers']} workers x "
          f"{f.get('threads')} thread(s), shard size {f['shard_size']}; {platform.machine()}, "
          f"load average before {f['load_before']}, after {f.get('load_after')}")
    first = f["encode_only_first_s"] / f["groups"]
    print(f"encode-only (compress alone, one process, {f.get('threads')} thread(s)): {first:.2f} s/group before the "
          f"pipeline" + (f", {f['encode_only_again_s_per_group']:.2f} s/group after it" if "flow_s" in f else ""))
    if "flow_s" in f:
        floor = f["encode_only_s"] / f["workers"]
        print("\n| part | seconds | efficiency = encode-only / workers / part |\n|---|---|---|")
        print(f"| encode-only / workers (the floor; mean of both measurements) | {floor:.1f} | 100 % |")
        print(f"| start-up: Prefect server | {f['prefect_start_s']:.1f} | |")
        print(f"| start-up: Prefect server + LocalCluster | {f['startup_s']:.1f} | |")
        print("| first flow on fresh workers (2 groups: imports, codec load, MLflow store) | "
              f"{f['warm_flow_s']:.1f} | |")
        print(f"| **flow, steady state ({f['groups']} groups)** | {f['flow_s']:.1f} | **{f['efficiency_flow']:.1%}** |")
        print(f"| cold: start-up + first-flow costs + flow | {f['startup_s'] + f['warm_flow_s'] + f['flow_s']:.1f} | "
              f"{f['efficiency_cold']:.1%} |")
        print(f"| flow against the compress time its own tasks measured ({f['in_task_encode_s']:.1f} s) | "
              f"{f['flow_s']:.1f} | {f['efficiency_in_run']:.1%} |")
        print(f"| {f['workers']} plain processes running compress at once on their halves (no Prefect, no Dask; "
              f"compress {f['parallel_encode_sum_s'] / f['groups']:.2f} s/group) | {f['parallel_encode_wall_s']:.1f} | "
              f"{f['efficiency_parallel']:.1%} (this wall / flow) |")
        print(f"\narchive: {int(f['groups_archived'])} groups, bpp {f['bpp']:.4f}, PSNR {f['psnr']:.2f} dB, "
              f"MS-SSIM {f['ms_ssim']:.4f} over {f['ms_ssim_groups']:g} groups")
    if "profile" in f:
        p = f["profile"]
        total = p["task total"]
        print(f"\nprofile of one shard ({int(p['groups'])} groups, in-process encode task):\n")
        print("| step | seconds | share of the task |\n|---|---|---|")
        order = ["read + decode images", "analysis + coding", "synthesis (x_hat for the digest)", "x_hat -> uint8",
                 "digest (SHA-256, tiles)", "metrics (PSNR, MS-SSIM, bpp)", "blob write"]
        for name in order:
            if name in p:
                print(f"| {name} | {p[name]:.3f} | {p[name] / total:.1%} |")
        accounted = sum(p.get(n, 0.0) for n in order)
        print(f"| other (task code) | {total - accounted:.3f} | {(total - accounted) / total:.1%} |")
        print(f"| **task total** | {total:.3f} | 100 % |")
        print(f"| index append (orchestrator, after the task) | {p['index append (orchestrator)']:.3f} | |")


if __name__ == "__main__":
    main()
