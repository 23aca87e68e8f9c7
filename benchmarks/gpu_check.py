"""One prepared check of a GPU machine (< 8 minutes on one H100/H200); results as files.

    python benchmarks/gpu_check.py             # on the GPU machine; results in $OUT (default ./gpu-check-out)
    python benchmarks/gpu_check.py --smoke     # tiny sizes on CPU in about a minute: proves the script runs

Sections (each time-limited; an error or a timeout is written into the results, never fatal):

1. ``environment``: torch, CUDA device, cores.
2. ``train``: steps/s of ``ldmic-fast`` and ``ecsic`` (``paper`` presets, 256² crops, batch 16) with
   the project's loop (``train_codec_loop``) in fp32 and in bf16 autocast + channels_last, plus a
   plain CompressAI-style step of the same model for reference; the bf16/fp32 ratio.
3. ``codec``: encode and decode pairs/s at 832×1024 (untrained paper weights). Encoding runs the
   analysis on the device as the encode task does (docs/gpu.md); decoding is the canonical CPU path.
   Each decode is checked against the encoder's symbols and reconstruction.
4. ``archive``: a small tiny-codec model trained on the device for a few seconds, then a
   GPU-encoded archive of the sample data (model embedded) in ``$OUT/archive`` through the real
   archive flow (Prefect + a LocalCluster whose workers advertise the GPU), verified here by CPU
   decoding. Copy ``$OUT/archive`` to a CPU machine and run ``mvarchive verify`` there too.

Writes ``$OUT/gpu_check.json`` and ``$OUT/gpu_check.md`` (rewritten after every section).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_speed's step helpers

import torch  # noqa: E402
from train_speed import loop_step_rate, plain_step_rate  # noqa: E402


class SectionTimeout(Exception):
    """A section ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in this (main) thread after ``seconds`` (checked between Python steps)."""

    def expire(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"time limit of {seconds:.0f} s reached")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Sizes:
    preset: str
    crop: int
    batch: int
    height: int
    width: int
    train_s: float  # budget per training measurement
    archive_steps: int
    limits: dict[str, float]  # per section, seconds


FULL = Sizes("paper", 256, 16, 832, 1024, 16.0, 400,  # limits add up to 7 min 30 s
             {"environment": 10, "train": 190, "codec": 140, "archive": 110})
SMOKE = Sizes("tiny", 64, 2, 128, 128, 1.0, 4,
              {"environment": 30, "train": 120, "codec": 60, "archive": 120})
CODECS = ("ldmic-fast", "ecsic")


class Results:
    """What the run found so far; rewritten to disk after every section."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out = out
        self.data: dict[str, Any] = {"meta": meta, "sections": {}}

    def run(self, name: str, limit_s: float, body: Callable[[dict[str, Any]], None]) -> None:
        section: dict[str, Any] = {"status": "running"}
        self.data["sections"][name] = section
        started = time.perf_counter()
        print(f"== {name} (limit {limit_s:.0f} s)", flush=True)
        try:
            with time_limit(limit_s):
                body(section)
            section["status"] = "ok"
        except SectionTimeout as exc:
            section["status"] = "timeout"
            section["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - record and go on with the next section
            section["status"] = "error"
            section["error"] = f"{type(exc).__name__}: {exc}"
            section["traceback"] = traceback.format_exc(limit=8)
        section["seconds"] = round(time.perf_counter() - started, 1)
        print(f"   {name}: {section['status']} in {section['seconds']} s {section.get('error', '')}", flush=True)
        self.write()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.data))


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else ("" if value is None else str(value))


def _table(section: dict[str, Any], title: str, columns: dict[str, str]) -> list[str]:
    """A section's rows as a markdown table (nothing when the section has no rows)."""
    if not section.get("rows"):
        return []
    lines = [f"## {title} ({section.get('setting', '')})", "", "| " + " | ".join(columns.values()) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(k)) for k in columns) + " |" for row in section["rows"]]
    return lines + [""]


def markdown(data: dict[str, Any]) -> str:
    meta, sections = data["meta"], data["sections"]
    lines = [f"# GPU check ({'smoke' if meta.get('smoke') else 'full'}, device {meta.get('device')})", ""]
    env = sections.get("environment", {})
    lines += [f"- {k}: {v}" for k, v in env.items() if k not in ("status", "seconds")] + [""]
    lines += _table(sections.get("train", {}), "Training steps/s", {
        "codec": "codec", "loop_fp32": "loop fp32", "loop_bf16_cl": "loop bf16+CL", "loop_ratio": "bf16+CL / fp32",
        "plain_fp32": "plain fp32", "plain_bf16_cl": "plain bf16+CL", "plain_ratio": "plain ratio"})
    lines += _table(sections.get("codec", {}), "Encode / decode pairs/s", {
        "codec": "codec", "encode_device": "encode pairs/s (analysis on device)", "encode_cpu": "encode pairs/s (CPU)",
        "decode_cpu": "decode pairs/s (CPU)", "exact": "exact"})
    archive = sections.get("archive", {})
    if archive:
        lines += ["## GPU-encoded archive", ""]
        lines += [f"- {k}: {v}" for k, v in archive.items() if k not in ("traceback",)] + [""]
    lines += ["## Sections", "", "| section | status | seconds | error |", "|---|---|---|---|"]
    for name, section in sections.items():
        error = str(section.get("error", "")).replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {name} | {section.get('status')} | {section.get('seconds')} | {error} |")
    return "\n".join(lines) + "\n"


# --- sections ------------------------------------------------------------------------------
def environment(section: dict[str, Any], device: str) -> None:
    from mvarchive.infra.gpu import cuda_device_count, worker_resources

    section.update({
        "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
        "cuda_devices": cuda_device_count(), "worker_resources": worker_resources(),
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor(),
        "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "host": platform.node(),
    })


def train(section: dict[str, Any], sizes: Sizes, device: str, dataset: Path) -> None:
    section["setting"] = f"{sizes.preset} presets, {sizes.crop}² crops, batch {sizes.batch}, {device}"
    rows: list[dict[str, Any]] = []
    section["rows"] = rows
    for name in CODECS:
        row: dict[str, Any] = {"codec": name}
        rows.append(row)
        for key, bf16 in (("fp32", False), ("bf16_cl", True)):
            try:
                rate, steps = plain_step_rate(name, sizes.preset, crop=sizes.crop, batch=sizes.batch, device=device,
                                              bf16=bf16, channels_last=bf16, budget_s=sizes.train_s / 2)
                row[f"plain_{key}"], row[f"plain_{key}_steps"] = rate, steps
            except SectionTimeout:
                raise
            except Exception as exc:  # noqa: BLE001
                row[f"plain_{key}_error"] = f"{type(exc).__name__}: {exc}"[:300]
            try:
                guess = row.get(f"plain_{key}", 1.0)
                steps = max(5, min(400, int(guess * sizes.train_s) + 3))
                rate, timed = loop_step_rate(name, sizes.preset, dataset, crop=sizes.crop, batch=sizes.batch,
                                             device=device, precision="bf16" if bf16 else "fp32",
                                             channels_last=bf16, steps=steps)
                row[f"loop_{key}"], row[f"loop_{key}_steps"] = rate, timed
            except SectionTimeout:
                raise
            except Exception as exc:  # noqa: BLE001
                row[f"loop_{key}_error"] = f"{type(exc).__name__}: {exc}"[:300]
        for kind in ("loop", "plain"):
            if row.get(f"{kind}_fp32") and row.get(f"{kind}_bf16_cl"):
                row[f"{kind}_ratio"] = row[f"{kind}_bf16_cl"] / row[f"{kind}_fp32"]


def codec_speed(section: dict[str, Any], sizes: Sizes, device: str) -> None:
    import numpy as np

    from mvarchive.codecs import load_codec
    from mvarchive.codecs.base import AnalysisPlacement

    if device.startswith("cuda"):
        placement = AnalysisPlacement.for_device(device)
    else:
        placement = AnalysisPlacement("cpu", "bf16", True)
    section["setting"] = (f"{sizes.preset} presets, 2 views of {sizes.height}x{sizes.width}, untrained weights, "
                          f"analysis {placement}, {torch.get_num_threads()} CPU threads")
    rows: list[dict[str, Any]] = []
    section["rows"] = rows
    x = torch.rand(2, 3, sizes.height, sizes.width, generator=torch.Generator().manual_seed(0))
    for name in CODECS:
        row: dict[str, Any] = {"codec": name}
        rows.append(row)
        try:
            codec = load_codec(name=name, preset=sizes.preset)
            with codec.analysis_on(placement) as encoder:
                encoder.compress(x[..., :64, :64])  # warm-up (kernels, allocator)
                started = time.perf_counter()
                encoded = encoder.compress(x)
                row["encode_device"] = 1.0 / (time.perf_counter() - started)
            started = time.perf_counter()
            decoded = codec.decompress(encoded.data)
            row["decode_cpu"] = 1.0 / (time.perf_counter() - started)
            row["exact"] = bool(torch.equal(decoded.x_hat, encoded.x_hat) and all(
                np.array_equal(decoded.latents[k], encoded.latents[k]) for k in encoded.latents))
            row["analysis_modules"] = list(codec.encoder_only_modules())
            started = time.perf_counter()
            codec.compress(x)
            row["encode_cpu"] = 1.0 / (time.perf_counter() - started)
        except SectionTimeout:
            raise
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]


def archive(section: dict[str, Any], sizes: Sizes, device: str, sample: Any, out: Path, work: Path,
            use_flow: bool) -> None:
    from mvarchive.flows.archive import ArchiveConfig
    from mvarchive.training import TrainConfig, train_codec_loop

    result = train_codec_loop(TrainConfig(
        dataset=str(sample.stereo), output_dir=str(work / "model"), codec="ldmic-fast", preset="tiny",
        steps=sizes.archive_steps, batch_size=4, crop=min(sizes.crop, 128), device=device, lr_schedule="constant",
        learning_rate=1e-3, log_every=max(1, sizes.archive_steps // 4), checkpoint_every=sizes.archive_steps,
    ))
    section["model"] = {"steps": result.steps, "seconds": round(result.seconds, 1), "final": result.final}
    dest = out / "archive"
    if dest.exists():  # an earlier run's: this run writes its own
        shutil.rmtree(dest)
    config = ArchiveConfig(source=str(sample.stereo), dest=str(dest), codec="ldmic-fast", preset="tiny",
                           checkpoint=result.checkpoint, shard_size=2, device=device)
    section["archive"] = str(dest)
    written = False
    if use_flow:
        try:
            summary = _archive_with_flow(config, work)
            section["written_by"] = "archive flow on a LocalCluster" + (
                " (encode tasks placed on its GPU workers)" if device.startswith("cuda") else "")
            section["summary"] = summary
            written = True
        except SectionTimeout:
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to encoding in this process
            section["flow_error"] = f"{type(exc).__name__}: {exc}"[:500]
    if not written:
        section["summary"] = _archive_in_process(config)
        section["written_by"] = "encode tasks' function in this process"
    checks = _verify_in_process(str(dest))
    section["verify"] = checks
    section["verify_ok"] = bool(checks) and all(status in ("ok", "close") for status in checks.values())
    section["next"] = f"copy {dest} to a CPU machine and run `mvarchive verify {dest.name}` there"


def _archive_with_flow(config: Any, work: Path) -> dict[str, Any]:
    from mvarchive.flows.archive import archive_dataset
    from mvarchive.flows.runtime import prefect_session, quiet_cluster_logs, run_on_dask
    from mvarchive.infra import ServicesConfig

    quiet_cluster_logs()
    services = ServicesConfig.from_env(home=work / "home", dask_workers=2, use_stack=False)
    with prefect_session(services) as api_url:
        report = run_on_dask(archive_dataset, services, api_url, config=config, show_progress=False)
    return {k: v for k, v in report.summary.items()}


def _archive_in_process(config: Any) -> dict[str, Any]:
    from mvarchive.flows.archive import plan_archive
    from mvarchive.reporting import archive_summary
    from mvarchive.storage import ArchiveReader, ArchiveWriter
    from mvarchive.tasks.encode import EncodeShardJob, encode_shard_fn

    plan = plan_archive(config)
    writer = ArchiveWriter.create_or_resume(plan.location, plan.meta)
    run_id = writer.begin_run(plan.meta.codec, planned=len(plan.growth.todo))
    if plan.checkpoint_bytes is not None and plan.meta.codec.embedded:
        writer.embed_checkpoint(plan.checkpoint_bytes, plan.meta.codec.weights_digest)
    todo = list(plan.growth.todo)
    rows = []
    for shard, start in enumerate(range(0, len(todo), config.shard_size)):
        members = todo[start : start + config.shard_size]
        rows += encode_shard_fn(EncodeShardJob(
            plan.location, writer.meta, shard, tuple(plan.index.groups[i] for i in members), plan.codec,
            run_id=run_id, digests=tuple(plan.digests[i] for i in members), device=config.device,
        )).rows
    writer.append_rows(rows)
    writer.finish_run(added=len(rows))
    writer.finalize()
    return archive_summary(ArchiveReader(plan.location))


def _verify_in_process(archive_url: str) -> dict[str, str]:
    """Decode every group on the CPU with the restore task's function; group -> verdict."""
    from mvarchive.flows.restore import VerifyConfig, plan_verify
    from mvarchive.tasks.restore import RestoreJob, restore_groups_fn

    plan = plan_verify(VerifyConfig(archive=archive_url))
    verdicts: dict[str, str] = {}
    for ref, batch in plan.batches(4):
        result = restore_groups_fn(RestoreJob(plan.reader.location, batch, plan.cameras, None, ref,
                                              overwrite=False, accept_close=True))
        verdicts.update({check.group: check.status.value for check in result.checks})
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds, CPU unless --device says otherwise")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out")
    parser.add_argument("--archive-via", choices=("flow", "process"), default=None,
                        help="write the archive with the archive flow (Prefect + LocalCluster; default without "
                             "--smoke) or in this process (default with --smoke)")
    parser.add_argument("--sections", nargs="+", default=["environment", "train", "codec", "archive"])
    args = parser.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    sizes = SMOKE if args.smoke else FULL
    if args.smoke:
        torch.set_num_threads(1)  # tiny models gain nothing from threads; shared CPUs lose a lot
    if device == "cpu" and not args.smoke:
        print("warning: no CUDA device: the full check on CPU takes far longer than 8 minutes; use --smoke", flush=True)
    out = Path(args.out).resolve()
    results = Results(out, {"smoke": args.smoke, "device": device,
                            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "sizes": sizes.__dict__, "argv": sys.argv[1:]})
    started = time.perf_counter()
    from mvarchive.datasets import build_sample_datasets

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        sample = build_sample_datasets(work / "sample")
        use_flow = (args.archive_via or ("process" if args.smoke else "flow")) == "flow"
        sections = {
            "environment": lambda s: environment(s, device),
            "train": lambda s: train(s, sizes, device, sample.stereo),
            "codec": lambda s: codec_speed(s, sizes, device),
            "archive": lambda s: archive(s, sizes, device, sample, out, work, use_flow=use_flow),
        }
        for name in args.sections:
            results.run(name, sizes.limits[name], sections[name])
    results.data["meta"]["total_s"] = round(time.perf_counter() - started, 1)
    results.write()
    print(f"written {out / 'gpu_check.md'} and gpu_check.json in {results.data['meta']['total_s']} s")


if __name__ == "__main__":
    main()
