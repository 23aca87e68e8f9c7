"""Restore on demand: wall time of ``mvarchive restore ARCHIVE OUT --groups ONE`` (a benchmark, not a test).

    .venv/bin/python benchmarks/restore_latency.py [--runs 3] [--baseline-rev REV] [--no-stack] [--out FILE]

Builds the sample stereo dataset once, archives it (``--untrained``, ``paper`` preset: timing only),
then times the installed command as a user runs it, as a subprocess from a fresh working folder:

- ``embedded``: embedded defaults (a fresh ``MVARCHIVE_HOME``, no stack running);
- ``stack``: with ``mvarchive services up --workers 2`` running under that home (the first call
  after ``up`` warms the workers: it is shown separately and left out of the median).

``restore`` and ``verify`` of one group, ``--runs`` times each. With ``--baseline-rev`` the same
commands run first with the code of that git revision (``git archive`` into a temporary folder put
first on ``PYTHONPATH``; its stack is started from that code too) and every row gets the ratio
current / baseline measured in this run. The baseline also writes the archive, so the current code
is shown restoring an archive written by the earlier code. Also prints the import times that make
the floor of a Python command here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLI = [PYTHON, "-c", "import sys; from mvarchive.cli import main; sys.argv[0] = 'mvarchive'; main()"]


@dataclass
class Code:
    """One version of mvarchive: the working tree, or a revision unpacked on PYTHONPATH."""

    label: str
    path: Path | None = None  # None: the installed (working tree) package

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MVARCHIVE_", "PREFECT_", "MLFLOW_TRACKING"))}
        env.update({"MVARCHIVE_HOME": str(home), "DO_NOT_TRACK": "true", **extra})
        if self.path is not None:
            env["PYTHONPATH"] = str(self.path) + os.pathsep + env.get("PYTHONPATH", "")
        else:
            env.pop("PYTHONPATH", None)
        return env


@dataclass
class Row:
    code: str
    placement: str
    command: str
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of the command and the processes it waited for
    first: float | None = None  # the call that warmed the stack's workers
    note: str = ""
    decode: list[float] = field(default_factory=list)  # the decode seconds the command reported

    def add_decode(self, last_lines: str) -> None:
        found = re.search(r"decode ([0-9.]+) s", last_lines)
        if found:
            self.decode.append(float(found.group(1)))

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def add(self, wall: float, cpu: float) -> None:
        self.times.append(wall)
        self.cpu.append(cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(code: Code, args: list[str], cwd: Path, home: Path, timeout: float = 900) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the command plus the processes it started and reaped: a
    measure that the load of other users changes less) and the command's last output line."""
    cwd.mkdir(parents=True, exist_ok=True)
    cpu = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run([*CLI, *args], cwd=cwd, env=code.env(home), capture_output=True, text=True,
                            timeout=timeout)
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"{code.label}: mvarchive {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout}\n{result.stderr}")
    lines = result.stdout.strip().splitlines()
    return wall, cpu, " / ".join(lines[-2:])


def unpack(rev: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "mvarchive"], capture_output=True, check=True)
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def import_times(runs: int) -> list[tuple[str, float]]:
    """Seconds to start Python and import each module (best of ``runs``, fresh process each)."""
    modules = ["pass", "import typer", "import mvarchive.cli", "import zarr", "import distributed",
               "import prefect", "import mlflow", "import torch", "import compressai", "import mvarchive.codecs"]
    rows = []
    for statement in modules:
        best = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([PYTHON, "-c", statement], check=True, env={**os.environ, "PYTHONPATH": ""})
            best = min(best, time.perf_counter() - started)
        rows.append((statement, best))
    return rows


def measure(code: Code, work: Path, archive: Path, group: str, runs: int, stack: bool) -> list[Row]:
    rows = []
    home = work / f"home-{code.label}"
    for n in range(runs):
        wall, cpu, last = run_cli(code, ["restore", str(archive), f"out-{n}", "--groups", group],
                                  work / f"e-{code.label}", home)
        print(f"  {code.label} embedded restore {n}: {wall:.2f} s, CPU {cpu:.2f} s  [{last}]", flush=True)
        if n == 0:
            rows.append(Row(code.label, "embedded", "restore"))
        rows[-1].add(wall, cpu)
        rows[-1].add_decode(last)
    rows.append(Row(code.label, "embedded", "verify"))
    for n in range(runs):
        wall, cpu, last = run_cli(code, ["verify", str(archive), "--groups", group], work, home)
        print(f"  {code.label} embedded verify {n}: {wall:.2f} s, CPU {cpu:.2f} s  [{last}]", flush=True)
        rows[-1].add(wall, cpu)
        rows[-1].add_decode(last)
    if not stack:
        return rows
    stack_home = work / f"stack-{code.label}"
    started = time.perf_counter()
    run_cli(code, ["services", "up", "--workers", "2"], work, stack_home, timeout=300)
    print(f"  {code.label} services up: {time.perf_counter() - started:.1f} s", flush=True)
    try:
        for command in ("restore", "verify"):
            row = Row(code.label, "stack", command)
            for n in range(runs + 1):
                args = (["restore", str(archive), f"out-{n}", "--groups", group] if command == "restore"
                        else ["verify", str(archive), "--groups", group])
                wall, cpu, last = run_cli(code, args, work / f"s-{code.label}", stack_home)
                print(f"  {code.label} stack {command} {n}: {wall:.2f} s, CPU {cpu:.2f} s  [{last}]", flush=True)
                if n == 0 and command == "restore":
                    row.first = wall
                else:
                    row.add(wall, cpu)
                    row.add_decode(last)
            rows.append(row)
        answered = time.perf_counter()
        done = records_done(stack_home, 2 * (runs + 1))  # the first restore after up included
        print(f"  {code.label} stack records: {done} ({time.perf_counter() - answered:.1f} s after the last answer)",
              flush=True)
        rows[-1].note = f"{done}"
    finally:
        run_cli(code, ["services", "down"], work, stack_home, timeout=300)
    return rows


def records_done(stack_home: Path, expected: int, deadline_s: float = 60.0) -> str:
    """How many of the stack jobs have an ended MLflow run and a final Prefect flow run (the
    current code records them after answering: waits up to ``deadline_s`` for them)."""
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    services = json.loads((stack_home / "stack" / "stack.json").read_text())["services"]
    mlflow = MlflowClient(services["mlflow"]["url"])
    api = services["prefect"].get("extra", {}).get("api_url", services["prefect"]["url"] + "/api")
    deadline = time.monotonic() + deadline_s
    while True:
        experiment = mlflow.get_experiment_by_name("mvarchive")
        runs = mlflow.search_runs([experiment.experiment_id]) if experiment else []
        ended = sum(r.info.status in ("FINISHED", "FAILED") for r in runs)
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            flow_runs = client.read_flow_runs()
        final = sum(r.state is not None and r.state.is_final() for r in flow_runs)
        if (ended >= expected and final >= expected) or time.monotonic() > deadline:
            return f"MLflow runs ended {ended}/{expected}, Prefect flow runs final {final}/{expected}"
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rev", default=None,
                        help="git revision to compare with (e.g. the commit before the change)")
    parser.add_argument("--no-stack", action="store_true", help="skip the runs with `services up`")
    parser.add_argument("--baseline-only", action="store_true", help="measure only the baseline revision")
    parser.add_argument("--codec", default="ldmic-fast")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--out", default=None, help="also write the Markdown to this file")
    args = parser.parse_args()
    if args.baseline_rev is None:
        print("(no --baseline-rev: no ratios)")
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="restore-latency-"))
    try:
        from mvarchive.datasets import build_sample_datasets

        data = build_sample_datasets(work / "sample")
        codes = [] if args.baseline_only else [Code("current")]
        if args.baseline_rev:
            codes.insert(0, Code(f"baseline {args.baseline_rev[:10]}", unpack(args.baseline_rev, work / "baseline")))
        archive = work / "arch"
        started = time.perf_counter()
        run_cli(codes[0], ["archive", str(data.stereo), str(archive), "--codec", args.codec, "--preset", args.preset,
                           "--untrained", "--shard-size", "2"], work, work / "home-archive")
        print(f"archived {data.stereo} with {codes[0].label} code in {time.perf_counter() - started:.1f} s", flush=True)
        group = sorted(p.name for p in data.stereo.iterdir() if p.is_dir())[0]
        rows: list[Row] = []
        for code in codes:
            try:
                rows += measure(code, work, archive, group, args.runs, stack=not args.no_stack)
            except RuntimeError as exc:  # report what was measured, and why the rest is missing
                print(f"{code.label}: {exc}", flush=True)
                rows.append(Row(code.label, "failed", str(exc).splitlines()[0][:120], [float("nan")], [float("nan")]))
        imports = import_times(3)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    lines = [f"Restore of one group ({group!r}: a stereo pair from the sample data) with `{args.codec}` "
             f"({args.preset}, untrained), {os.cpu_count()} CPUs, load average (1/5/15 min) before "
             f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wall time of the `mvarchive` subprocess, "
             f"{args.runs} runs.", "",
             "| code | placement | command | wall, each run (s) | median wall (s) | median decode (s) "
             "| median CPU (s) | vs baseline (wall) |",
             "|---|---|---|---|---|---|---|---|"]
    baseline = {(r.placement, r.command): r.median for r in rows if r.code.startswith("baseline")}
    for r in rows:
        ref = baseline.get((r.placement, r.command))
        compared = ref and not r.code.startswith("baseline")
        ratio = f"{r.median / ref:.2f}x ({ref / r.median:.1f}x faster)" if compared else ""
        runs = ", ".join(f"{t:.2f}" for t in r.times) + (f" (first after up: {r.first:.2f})" if r.first else "")
        decode = f"{statistics.median(r.decode):.2f}" if r.decode else ""
        lines.append(f"| {r.code} | {r.placement} | {r.command} | {runs} | {r.median:.2f} | {decode} | "
                     f"{statistics.median(r.cpu):.2f} | {ratio} |")
    lines += [""] + [f"- {r.code}, stack records after {r.command}: {r.note}" for r in rows if r.note]
    lines += ["", "Import floor (fresh process, best of 3):", "", "| statement | s |", "|---|---|"]
    lines += [f"| `python -c \"{s}\"` | {t:.2f} |" for s, t in imports]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
