"""How long the commands that should answer at once take, before and after (a benchmark).

    .venv/bin/python benchmarks/cli_latency.py [--before 9891edf] [--repeat 3]

Checks out ``--before`` (default: the commit before issue 10's CLI work) in a temporary git
worktree and runs the same commands from it and from this checkout, alternating, with this
environment's interpreter; prints the median wall time of each and the ratio. Both trees read
the same small format-3 archive for ``info``. ``codecs`` is timed with an empty home (first
call) and again (answered from the cache where the tree has one); the last row is the bare
``import mvarchive.codecs`` that restore, verify and every worker pay.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ("--help", ["--help"]),
    ("archive --help", ["archive", "--help"]),
    ("restore --help", ["restore", "--help"]),
    ("train --help", ["train", "--help"]),
    ("eval --help", ["eval", "--help"]),
    ("models --help", ["models", "--help"]),
    ("info ARCHIVE", ["info", "{archive}"]),
    ("codecs (first call)", ["--home", "{fresh_home}", "codecs"]),
    ("codecs (again)", ["--home", "{home}", "codecs"]),
    ("python -c 'import mvarchive.codecs'", ["-c", "import mvarchive.codecs"]),
]


def make_archive(folder: Path) -> Path:
    """A two-group format-3 archive written with the storage API (no codec run needed)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from mvarchive.storage import Location
    from tests.storage.test_archive import create, make_meta, record

    writer = create(Location(str(folder / "archive")), make_meta(num_groups=2, shard_size=2))
    rng = np.random.default_rng(0)
    writer.write_shard(0, [record(0, rng), record(1, rng)])
    return folder / "archive"


def run(tree: Path, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "MVARCHIVE_STACK": "off", "COLUMNS": "80"}
    started = time.perf_counter()
    command = argv if argv[0] == "-c" else ["-m", "mvarchive.cli", *argv]  # a bare import, or the CLI
    proc = subprocess.run([sys.executable, *command], env=env, cwd=tree,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: mvarchive {' '.join(argv)} failed: {proc.stderr.strip()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="9891edf", help="git revision measured as 'before'")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mvarchive-cli-latency-") as tmp:
        tmp_path = Path(tmp)
        before = tmp_path / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            archive = make_archive(tmp_path)
            trees = {"before": before, "after": ROOT}
            times: dict[tuple[str, str], list[float]] = {}
            for i in range(args.repeat):
                for label, argv in COMMANDS:
                    for name, tree in trees.items():
                        home = tmp_path / f"home-{name}"
                        fresh = tmp_path / f"fresh-{name}-{i}"
                        filled = [a.format(archive=archive, home=home, fresh_home=fresh) for a in argv]
                        if label == "codecs (again)" and i == 0:
                            run(tree, filled)  # fill the cache first (a no-op where there is none)
                        times.setdefault((label, name), []).append(run(tree, filled))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    load = os.getloadavg()[0]
    print(f"# CLI latency: median of {args.repeat} runs, before = {args.before}, after = working tree; "
          f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}")
    print("| command | before s | after s | before / after |")
    print("|---|---:|---:|---:|")
    for label, _ in COMMANDS:
        b = statistics.median(times[(label, "before")])
        a = statistics.median(times[(label, "after")])
        print(f"| {label} | {b:.2f} | {a:.2f} | {b / a:.1f}x |")


if __name__ == "__main__":
    main()
