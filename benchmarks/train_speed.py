"""Training throughput per codec: the project's loop against a plain CompressAI-style step.

    .venv/bin/python benchmarks/train_speed.py [--preset tiny] [--crop 128] [--batch 4] [--seconds 20]

For each codec, steps/s of ``mvarchive.training.train_codec_loop`` (real crops of the sample
stereo/rig data, the RD loss with per-view metrics, clipping, the aux step, logging) and of a
plain reference step for the same model measured in the same run: a random crop of a tensor
already in memory, forward, λ·MSE + bpp, backward, Adam step, aux step. The ratio (loop /
plain) is the loop's overhead; 1.0 would mean none. Writes benchmarks/results/train_speed.md.

``plain_step_rate`` and ``loop_step_rate`` are also used by ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

LAMBDA = 1024.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(step: Callable[[], None], device: torch.device, *, warmup: int, steps: int,
               budget_s: float) -> tuple[float, int]:
    """(steps/s, steps timed) of ``step`` after ``warmup`` calls: stops at ``steps`` or ``budget_s``."""
    for _ in range(warmup):
        step()
    _sync(device)
    started = time.perf_counter()
    done = 0
    while done < steps and (done < 2 or time.perf_counter() - started < budget_s):
        step()
        done += 1
    _sync(device)
    return done / (time.perf_counter() - started), done


def plain_step_rate(
    name: str, preset: str, *, views: int = 2, crop: int = 128, batch: int = 4, device: str = "cpu",
    bf16: bool = False, channels_last: bool = False, warmup: int = 2, steps: int = 1000, budget_s: float = 20.0,
) -> tuple[float, int]:
    """Steps/s of a plain CompressAI-style training step (the reference)."""
    from mvarchive.codecs import create_codec

    torch.manual_seed(0)
    dev = torch.device(device)
    model = create_codec(name, preset).to(dev).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main, lr=1e-4)
    aux_optimizer = torch.optim.Adam(aux, lr=1e-3) if aux else None  # ECSIC has no factorized prior
    pool = torch.rand(max(8, batch), views, 3, crop + 32, crop + 32, device=dev)
    generator = torch.Generator().manual_seed(0)
    pixels = batch * views * crop * crop

    def step() -> None:
        pick = torch.randint(0, pool.shape[0], (batch,), generator=generator)
        top, left = (int(v) for v in torch.randint(0, 33, (2,), generator=generator))
        x = pool[pick.to(dev)][..., top : top + crop, left : left + crop]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        bpp = sum(torch.log(lik.float()).sum() for lik in out["likelihoods"].values()) / (-math.log(2) * pixels)
        loss = LAMBDA * torch.nn.functional.mse_loss(out["x_hat"].float(), x) + bpp
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        optimizer.step()
        if aux_optimizer is not None:
            aux_optimizer.zero_grad(set_to_none=True)
            model.aux_loss().backward()
            aux_optimizer.step()

    return timed_rate(step, dev, warmup=warmup, steps=steps, budget_s=budget_s)


def loop_step_rate(
    name: str, preset: str, dataset: str | Path, *, crop: int = 128, batch: int = 4, device: str = "cpu",
    precision: str = "fp32", channels_last: bool | None = False, steps: int = 20, out_dir: str | Path | None = None,
    **extra: Any,
) -> tuple[float, int]:
    """Steps/s of ``train_codec_loop`` from its 3rd logged step to its last (start-up and the
    first, compiling/allocating steps excluded; one checkpoint, at the end, after the timing)."""
    from mvarchive.training import TrainConfig, train_codec_loop

    if steps < 4:
        raise ValueError("loop_step_rate needs at least 4 steps")
    stamps: list[tuple[int, float]] = []
    dev = torch.device(device)

    def on_log(step: int, _metrics: dict[str, float]) -> None:
        _sync(dev)
        stamps.append((step, time.perf_counter()))

    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        config = TrainConfig(
            dataset=str(dataset), output_dir=str(out_dir or tmp), codec=name, preset=preset, steps=steps,
            batch_size=batch, crop=crop, device=device, precision=precision, channels_last=channels_last,
            log_every=1, checkpoint_every=steps, lr_schedule="constant", **extra,
        )
        train_codec_loop(config, on_log=on_log)
    (s0, t0), (s1, t1) = stamps[2], stamps[-1]
    return (s1 - s0) / (t1 - t0), s1 - s0


def measure(name: str, preset: str, crop: int, batch: int, seconds: float, data_root: str) -> dict[str, Any]:
    """One codec's row: plain and loop steps/s (run in its own process by :func:`main`)."""
    from mvarchive.codecs import get_spec
    from mvarchive.datasets import build_sample_datasets

    spec = get_spec(name)
    views = 2 if spec.accepts(2) else spec.min_views
    sample = build_sample_datasets(data_root)
    # plain before and after the loop: a shared machine's load drifts, bracketing evens it out
    before, n_before = plain_step_rate(name, preset, views=views, crop=crop, batch=batch, budget_s=seconds / 2)
    steps = max(6, min(200, int(before * seconds) + 3))
    loop, _ = loop_step_rate(name, preset, sample.stereo if views == 2 else sample.rig, crop=crop, batch=batch,
                             steps=steps)
    after, n_after = plain_step_rate(name, preset, views=views, crop=crop, batch=batch, budget_s=seconds / 2)
    plain = (n_before + n_after) / (n_before / before + n_after / after)
    return {"codec": name, "views": views, "plain": plain, "loop": loop, "plain_before": before,
            "plain_after": after}


def _row(name: str, args: argparse.Namespace, data_root: str) -> str:
    """Measure one codec in a child process: a crash (e.g. a segfault in a backward) is a row."""
    command = [sys.executable, __file__, "--one", name, "--preset", args.preset, "--crop", str(args.crop),
               "--batch", str(args.batch), "--seconds", str(args.seconds), "--threads", str(args.threads),
               "--data", data_root]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(120.0, 20 * args.seconds))
    except subprocess.TimeoutExpired:
        return f"| {name} | | timed out | | |"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [""])[-1][:160].replace("|", "/")
        how = f"crashed (signal {-done.returncode})" if done.returncode < 0 else f"failed (exit {done.returncode})"
        return f"| {name} | | {how} {tail} | | |"
    row = json.loads(lines[-1])
    if "error" in row:
        return f"| {name} | {row.get('views', '')} | error: {row['error'][:160]} | | |"
    return f"| {name} | {row['views']} | {row['loop']:.2f} | {row['plain']:.2f} | {row['loop'] / row['plain']:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable on a shared machine)")
    parser.add_argument("--codecs", nargs="+", default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_speed.md"))
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process: one codec, JSON out
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        try:
            row = measure(args.one, args.preset, args.crop, args.batch, args.seconds, args.data)
        except Exception as exc:  # noqa: BLE001 - reported as the codec's row
            row = {"codec": args.one, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(row), flush=True)
        return

    from mvarchive.codecs import list_codecs
    from mvarchive.datasets import build_sample_datasets

    names = [s.name for s in list_codecs() if args.codecs is None or s.name in args.codecs]
    lines = [
        f"# Training throughput (CPU): `{args.preset}` presets, {args.crop}² crops, batch {args.batch}",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} torch thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "`loop`: `train_codec_loop` (fp32, real crops of the sample data, steps/s from its 3rd logged step); "
        "`plain`: a CompressAI-style step (random crop of an in-memory tensor, forward, λ·MSE + bpp, backward, "
        f"Adam, aux step) of the same model, measured in the same process. About {args.seconds:.0f} s each "
        "after warm-up (plain: half before, half after the loop); each codec in its own process.",
        "",
        "| codec | views | loop steps/s | plain steps/s | loop / plain |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="train-speed-data-") as tmp:
        build_sample_datasets(tmp)
        for name in names:
            row = _row(name, args, tmp)
            lines.append(row)
            print(row, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
