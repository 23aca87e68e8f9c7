"""Restoring one group on demand from a 10,000-group archive on S3, as a user does it.

Builds two format-3 archives on a real SeaweedFS S3 server whose groups are copies (under
different names) of one really encoded group, so every group decodes and verifies: a small one
(the baseline, same run) and a large one. Then times the installed `mvarchive` script on each:
`info`, and `restore --groups ONE` on embedded defaults (the command starts its own Prefect server
and LocalCluster), plus the in-process read of that group. The ratio large/small shows whether
restore cost depends on the archive's size.

    .venv/bin/python benchmarks/restore_at_scale.py --groups 10000 --out benchmarks/results/restore_at_scale.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvarchive.infra.seaweedfs import SeaweedS3Server  # noqa: E402
from mvarchive.storage import ArchiveReader, ArchiveWriter, GroupRecord, Location  # noqa: E402

SCRIPT = str(Path(sys.executable).parent / "mvarchive")


def one_real_group(folder: Path, height: int, width: int) -> tuple[object, GroupRecord]:
    """Encode one stereo group with the seeded untrained `tiny` codec; return the plan's meta and the record."""
    import torch

    from mvarchive.flows.archive import ArchiveConfig, plan_archive
    from mvarchive.integrity import Fingerprint
    from mvarchive.metrics import group_metrics, to_tensor, to_uint8

    rng = np.random.default_rng(1)
    base = (np.indices((height, width)).sum(axis=0) % 255).astype(np.uint8)
    for camera, shift in (("left", 0), ("right", 3)):
        (folder / "src" / "g0").mkdir(parents=True, exist_ok=True)
        view = np.stack([np.roll(base, shift, axis=1), base, rng.integers(0, 256, (height, width), dtype=np.uint8)],
                        axis=-1)
        Image.fromarray(view).save(folder / "src" / "g0" / f"{camera}.png")
    plan = plan_archive(ArchiveConfig(source=str(folder / "src"), dest=str(folder / "unused"), preset="tiny",
                                      untrained=True, layout="group-folders"))
    torch.set_num_threads(1)
    from mvarchive.codecs import load_codec

    codec = load_codec(name="ldmic-fast", preset="tiny", seed=plan.meta.codec.seed or 0)
    views = np.stack([np.asarray(Image.open(folder / "src" / "g0" / f"{c}.png").convert("RGB"))
                      for c in ("left", "right")])
    compressed = codec.compress(to_tensor(views))
    reconstruction = to_uint8(compressed.x_hat)
    record = GroupRecord(
        index=0, name="g0", sizes=[(height, width)] * 2, stream=compressed.data, latents=compressed.latents,
        fingerprint=Fingerprint.of(reconstruction, compressed.latents, 1),
        metrics={**group_metrics(views, reconstruction, len(compressed.data)), "encode_s": 0.0},
        files=("g0/left.png", "g0/right.png"), digest="d",
    )
    return plan.meta, record


def build(location: Location, meta: object, record: GroupRecord, groups: int, shard_size: int) -> float:
    began = time.perf_counter()
    writer = ArchiveWriter.create_or_resume(location, replace(meta, shard_size=shard_size))
    writer.begin_run(meta.codec, planned=groups)
    rows = []
    for shard, start in enumerate(range(0, groups, shard_size)):
        members = [replace(record, index=i, name=f"g{i:06d}", files=(f"g{i:06d}/left.png", f"g{i:06d}/right.png"),
                           digest=f"d{i}") for i in range(start, min(start + shard_size, groups))]
        rows += writer.write_shard(shard, members)
    writer.append_rows(rows)
    writer.finish_run(added=len(rows))
    writer.finalize()
    return time.perf_counter() - began


def cli_seconds(*args: str, env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    result = subprocess.run([SCRIPT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"mvarchive {' '.join(args)} failed: {result.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=10, help="groups of the baseline archive")
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--size", default="192x256", help="view size HxW of the encoded group")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, SeaweedS3Server(Path(tmp) / "s3", bucket="restore-bench") as server:
        work = Path(tmp)
        meta, record = one_real_group(work, height, width)
        env = {**os.environ, "MVARCHIVE_HOME": str(work / "home"), "MVARCHIVE_STACK": "off"}
        options = json.dumps(server.storage_options)
        for label, groups in (("small", args.small), ("large", args.groups)):
            url = f"s3://restore-bench/{label}"
            location = Location(url, server.storage_options)
            build_s = build(location, meta, record, groups, args.shard_size)
            probe = f"g{groups // 2:06d}"
            began = time.perf_counter()
            reader = ArchiveReader(location)
            stored = reader.read_groups(reader.select([probe]))[0]
            read_s = time.perf_counter() - began
            assert stored.stream == record.stream
            info_s = cli_seconds("info", url, "--options", options, env=env, cwd=work)
            restore_s = cli_seconds("restore", url, f"out-{label}", "--groups", probe, "--archive-options", options,
                                    env=env, cwd=work)
            out_dir = work / f"out-{label}"
            restored = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.png"))
            assert restored == [f"{probe}/left.png", f"{probe}/right.png"], restored
            rows[label] = {"groups": groups, "build_s": build_s, "read_s": read_s, "info_s": info_s,
                           "restore_s": restore_s}
            print(label, rows[label], flush=True)
    small, large = rows["small"], rows["large"]
    lines = [
        f"# One-group restore from a {args.groups}-group archive on SeaweedFS S3 (format 3)",
        "",
        f"Every group is a copy of one group really encoded ({height}x{width}, 2 views, `ldmic-fast` tiny, seeded "
        f"weights), so restores decode and verify. Installed `mvarchive` script on embedded defaults (each command "
        f"starts its own Prefect server and LocalCluster); {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Baseline: a {args.small}-group archive, same run.",
        "",
        "| archive | groups | build s | read one group in-process s | `mvarchive info` s "
        "| `mvarchive restore --groups ONE` s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['groups']} | {r['build_s']:.1f} | {r['read_s']:.3f} | {r['info_s']:.1f} "
                     f"| {r['restore_s']:.1f} |")
    lines.append(f"| ratio large/small | {large['groups'] / small['groups']:.0f}x "
                 f"| {large['build_s'] / small['build_s']:.0f}x | "
                 f"{large['read_s'] / small['read_s']:.2f}x | {large['info_s'] / small['info_s']:.2f}x | "
                 f"{large['restore_s'] / small['restore_s']:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
