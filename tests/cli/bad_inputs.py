"""Helpers for the bad-input matrix (tests/cli/test_bad_input.py): broken files, tree
snapshots, running the installed ``mvarchive`` script, and the markdown matrix."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tests.warm_cli import Run

SCRIPT = str(Path(sys.executable).parent / "mvarchive")
CAMERAS = ("left", "right")


# ---------------------------------------------------------------- running the script


def cli_env(home: Path, **extra_env: str) -> dict[str, str]:
    """The environment of a user's shell: no services reachable unless ``extra_env`` names them."""
    env = dict(os.environ)
    for key in ("PREFECT_API_URL", "MVARCHIVE_DASK_ADDRESS", "MLFLOW_TRACKING_URI", "MVARCHIVE_DEBUG"):
        env.pop(key, None)  # by default every command starts its own services, as on a fresh machine
    env.update({
        "MVARCHIVE_HOME": str(home),
        "MVARCHIVE_DASK_WORKERS": "1",  # a 2-core machine: one worker process is enough here
        "COLUMNS": "200",
        **extra_env,
    })
    return env


def run_cli(args: list[str], cwd: Path, home: Path, timeout: float = 600, **extra_env: str) -> Run:
    """The installed script, as a user runs it: from ``cwd``, with the paths as given."""
    started = time.perf_counter()
    proc = subprocess.run([SCRIPT, *args], cwd=cwd, env=cli_env(home, **extra_env), capture_output=True, text=True,
                          timeout=timeout)
    return Run(args, proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)



# ---------------------------------------------------------------- snapshots


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (folders as 'dir'); {} if absent."""
    root = Path(root)
    if not root.exists():
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------- images


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def rgb(h: int, w: int, seed: int) -> Image.Image:
    """A smooth, textured test picture (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 127 // max(h + w, 1))], -1)
    noise = rng.integers(-12, 12, size=(h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def truncated(png: bytes) -> bytes:
    """The first half of a PNG: signature and header fine, pixel data cut off."""
    return png[: len(png) // 2]


def corrupt_pixels(png: bytes) -> bytes:
    """Header intact, compressed pixel data overwritten (bad CRC / zlib stream)."""
    data = bytearray(png)
    start = png.index(b"IDAT") + 8
    for i in range(start, min(start + 64, len(data) - 12)):
        data[i] ^= 0x5A
    return bytes(data)


def sixteen_bit(h: int, w: int) -> bytes:
    arr = (np.arange(h * w, dtype=np.uint32).reshape(h, w) * 37 % 65536).astype(np.uint16)
    return png_bytes(Image.fromarray(arr))


def huge_black_png(side: int = 10_000) -> bytes:
    """A side x side black RGB PNG: 300 MB of pixels in a file of a few hundred KB."""
    return png_bytes(Image.new("RGB", (side, side)))


# ---------------------------------------------------------------- datasets


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def make_group(root: Path, group: str, images: dict[str, bytes | Image.Image], ext: str = ".png") -> None:
    folder = root / group
    folder.mkdir(parents=True, exist_ok=True)
    for camera, content in images.items():
        data = content if isinstance(content, bytes) else png_bytes(content)
        (folder / f"{camera}{ext}").write_bytes(data)


# ---------------------------------------------------------------- archives


def set_stream(archive: Path, index: int, data: bytes) -> None:
    """Replace group ``index``'s bitstream in a local (format 3) archive: a new record is
    appended to the group's blob and its index row pointed at it; then re-consolidate."""
    import zarr

    from mvarchive.storage import ArchiveReader, Location
    from mvarchive.storage.blob import pack_record

    reader = ArchiveReader(Location(str(archive)))
    stored = reader.read_groups([index])[0]
    row = reader.row(index)
    blob = archive / "shards" / f"{row.blob}.bin"
    offset = blob.stat().st_size
    record = pack_record(data, stored.fingerprint)
    with open(blob, "ab") as f:
        f.write(record)
    root = zarr.open_group(str(archive), mode="r+", use_consolidated=False)
    rows = [str(n) for n in root["index/name"][:]]
    row_index = max(i for i, n in enumerate(rows) if n == stored.name)  # the newest row is the one read
    root["index/record"][row_index : row_index + 1] = np.array([[offset, len(record)]], dtype=np.int64)
    zarr.consolidate_metadata(str(archive))


def get_stream(archive: Path, index: int) -> bytes:
    from mvarchive.storage import ArchiveReader, Location

    return ArchiveReader(Location(str(archive))).read_groups([index])[0].stream


def group_names(archive: Path) -> list[str]:
    from mvarchive.storage import ArchiveReader, Location

    return ArchiveReader(Location(str(archive))).names


# ---------------------------------------------------------------- the matrix


@dataclass
class Matrix:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, case: str, expected: str, message: str) -> None:
        self.rows.append((case, expected, message))

    def markdown(self) -> str:
        def cell(text: str) -> str:
            text = re.sub(r"\s+", " ", text).strip()
            return text.replace("|", "\\|")

        lines = ["| case | expected | message |", "|---|---|---|"]
        lines += [f"| {cell(c)} | {cell(e)} | {cell(m)} |" for c, e, m in self.rows]
        return "\n".join(lines) + "\n"
