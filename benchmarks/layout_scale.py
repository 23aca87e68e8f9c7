"""Archive layout at scale: format 2 (a Zarr array per group's latents, per-shard chunks) vs
format 3 (one blob per shard + an index), on a real SeaweedFS S3 server, without the codec.

Builds an archive of N small synthetic groups (2 views, ~2 KB stream per view) with each
layout's writer API directly, then times what users wait for: writing, `info` (open + summary)
and reading one group. Prints a Markdown table; ``--out`` also writes it to a file.

    .venv/bin/python benchmarks/layout_scale.py --groups 10000 --shard-size 32 \
        --out benchmarks/results/layout_scale.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvarchive.infra.seaweedfs import SeaweedS3Server  # noqa: E402
from mvarchive.integrity import Fingerprint  # noqa: E402
from mvarchive.reporting import table_summary  # noqa: E402
from mvarchive.storage import ArchiveMeta, ArchiveReader, ArchiveWriter, CodecRecord, GroupRecord, Location, legacy_v2  # noqa: E402

CAMERAS = ("left", "right")


def synthetic(i: int, rng: np.random.Generator) -> dict[str, Any]:
    """One group's parts, sized like a small real group (2 views x ~2 KB)."""
    latents = {"y": rng.integers(-3, 3, size=(2, 16, 4, 4)).astype(np.int32),
               "z": rng.integers(-2, 2, size=(2, 8, 1, 1)).astype(np.int32)}
    views = rng.integers(0, 256, size=(2, 64, 96, 3), dtype=np.uint8)
    stream = bytes(rng.integers(0, 256, size=4096 + int(rng.integers(0, 256)), dtype=np.uint8))
    return dict(name=f"g{i:06d}", sizes=[(480, 640)] * 2, stream=stream, latents=latents,
                fingerprint=Fingerprint.of(views, latents, 1),
                metrics={"bytes": float(len(stream)), "bpp": len(stream) * 8 / (2 * 480 * 640), "psnr": 30.0,
                         "ms_ssim": 0.95, "encode_s": 0.01},
                files=(f"g{i:06d}/left.png", f"g{i:06d}/right.png"))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def count_objects(location: Location) -> int:
    fs, root = location.filesystem()
    fs.invalidate_cache()
    return len(fs.find(root))


def build_v2(location: Location, groups: list[dict[str, Any]], shard_size: int) -> None:
    codec = legacy_v2.CodecRecord("ldmic-fast", 2, "tiny", {}, "d" * 64)
    meta = legacy_v2.ArchiveMeta(codec=codec, dataset_url="/bench", layout="group-folders", cameras=CAMERAS,
                                 num_groups=len(groups), shard_size=shard_size, content_digest="c" * 64)
    writer = legacy_v2.ArchiveWriter.create_or_resume(location, meta, [g["name"] for g in groups],
                                                      [list(g["files"]) for g in groups])
    for shard in range(meta.num_shards):
        records = [legacy_v2.GroupRecord(index=i, **{k: v for k, v in groups[i].items() if k != "files"})
                   for i in meta.shard_range(shard)]
        writer.write_shard(shard, records)
    writer.finalize()


def build_v3(location: Location, groups: list[dict[str, Any]], shard_size: int) -> None:
    codec = CodecRecord("ldmic-fast", 2, "tiny", {}, "d" * 64)
    meta = ArchiveMeta(codec=codec, dataset_url="/bench", layout="group-folders", cameras=CAMERAS,
                       shard_size=shard_size, models=(codec,))
    writer = ArchiveWriter.create_or_resume(location, meta)
    writer.begin_run(codec, planned=len(groups))
    rows = []
    for shard, start in enumerate(range(0, len(groups), shard_size)):
        rows += writer.write_shard(shard, [GroupRecord(index=i, digest=f"digest-{i}", **groups[i])
                                           for i in range(start, min(start + shard_size, len(groups)))])
    writer.append_rows(rows)
    writer.finish_run(added=len(rows))
    writer.finalize()


def info_v2(location: Location) -> dict[str, float]:
    reader = legacy_v2.ArchiveReader(location)
    return table_summary(reader.metrics_table()[reader.complete_indices()], reader.meta.metrics, len(reader.cameras))


def info_v3(location: Location) -> dict[str, float]:
    reader = ArchiveReader(location)
    return table_summary(reader.metrics_table(), reader.meta.metrics, len(reader.cameras))


def one_group(reader_cls: Any, location: Location, name: str) -> bytes:
    reader = reader_cls(location)
    index = reader.select([name])[0]
    stored = reader.read_groups([index])[0]
    reader.read_latents(index)
    return stored.stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--v2-groups", type=int, default=None,
                        help="Groups for the format-2 build (default: --groups); its write time is scaled up to "
                             "--groups linearly and marked as such, because writing 10,000 format-2 groups takes "
                             "hours on a busy machine.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    groups = [synthetic(i, rng) for i in range(args.groups)]
    probe = groups[min(len(groups) - 1, (args.v2_groups or len(groups)) // 2 + 7)]["name"]
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, SeaweedS3Server(Path(tmp), bucket="layout-bench") as server:
        v2_groups = min(args.v2_groups or args.groups, args.groups)
        for label, build, info, reader_cls, n in (("format 2", build_v2, info_v2, legacy_v2.ArchiveReader, v2_groups),
                                                  ("format 3", build_v3, info_v3, ArchiveReader, args.groups)):
            location = Location(f"s3://layout-bench/{label.replace(' ', '')}", server.storage_options)
            write_s, _ = timed(lambda: build(location, groups[:n], args.shard_size))
            objects = count_objects(location)
            if n < args.groups:  # scale the partial build's cost to the full size (linear in groups)
                write_s, objects = write_s * args.groups / n, objects * args.groups / n
                label += f" (built {n}, scaled)"
            info_s = min(timed(lambda: info(location))[0] for _ in range(3))
            read_s, stream = min((timed(lambda: one_group(reader_cls, location, probe)) for _ in range(3)),
                                 key=lambda t: t[0])
            assert stream == groups[int(probe[1:])]["stream"]
            rows[label] = {"objects": objects, "write_s": write_s, "info_s": info_s, "read_s": read_s}
            print(label, rows[label], flush=True)
    a, b = list(rows.values())
    lines = [
        f"# Archive layout at scale ({args.groups} groups, {args.shard_size} groups per shard, SeaweedFS S3)",
        "",
        f"Synthetic groups (2 views, ~4 KB stream, small latents), written sequentially with each layout's writer "
        f"API on one machine ({platform.machine()}, {platform.python_version()}); "
        "`info` = open + summary of all groups; "
        "one group = open + find + read stream, fingerprint and latents. Best of 3 for reads.",
        "",
        "| layout | objects written | write s | info s | one-group read s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r in rows.items():
        lines.append(f"| {label} | {int(r['objects'])} | {r['write_s']:.1f} | {r['info_s']:.3f} | {r['read_s']:.3f} |")
    lines.append(f"| ratio 2/3 | {a['objects'] / b['objects']:.1f}x | {a['write_s'] / b['write_s']:.1f}x | "
                 f"{a['info_s'] / b['info_s']:.1f}x | {a['read_s'] / b['read_s']:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
