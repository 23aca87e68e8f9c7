"""One shard's groups as one object: the unit a worker writes and the truth the index is built from.

Layout of ``shards/<run>-<shard>.bin``::

    b"MVA3BLOB"  uint64 little-endian header length  header (UTF-8 JSON)  payload

The header lists the shard's groups with everything the index needs (names, files, sizes,
metrics, content digest, model) and, per group, two byte ranges of the payload (relative to
the payload's start): the *record* (stream + fingerprint, what a decode needs, fetched with one
range read) and the *latents* (quantized symbols as an uncompressed ``.npz``).

A record is ``uint32 n`` + JSON (pixel/symbol digests, threads) + ``uint32 m`` + stream +
per-view thumbnails (``uint32`` length before each).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mvarchive.integrity import Fingerprint

MAGIC = b"MVA3BLOB"
PREFIX = len(MAGIC) + 8


class BlobError(ValueError):
    """A shard object that is not a complete blob."""


@dataclass(frozen=True)
class BlobGroup:
    """What one encoded group puts in a blob (the writer's input)."""

    name: str
    files: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    stream: bytes
    latents: Mapping[str, np.ndarray]
    fingerprint: Fingerprint
    metrics: Mapping[str, float]
    digest: str  # the source group's content digest (names, file names, byte sizes)


def pack_record(stream: bytes, fingerprint: Fingerprint) -> bytes:
    head = json.dumps({"pixels": list(fingerprint.pixels), "symbols": list(fingerprint.symbols),
                       "threads": int(fingerprint.threads)}, separators=(",", ":")).encode()
    thumbs = b"".join(struct.pack("<I", len(t)) + bytes(t) for t in fingerprint.thumbnails)
    return struct.pack("<I", len(head)) + head + struct.pack("<I", len(stream)) + bytes(stream) + thumbs


def unpack_record(data: bytes) -> tuple[bytes, Fingerprint]:
    """(stream, fingerprint) of one record; keeps every byte of the stream (trailing NULs too).
    Raises :class:`BlobError` for a record that does not parse."""
    try:
        n = struct.unpack_from("<I", data, 0)[0]
        head = json.loads(data[4 : 4 + n])
        pos = 4 + n
        m = struct.unpack_from("<I", data, pos)[0]
        stream = bytes(data[pos + 4 : pos + 4 + m])
        pos += 4 + m
        thumbs = []
        while pos < len(data):
            k = struct.unpack_from("<I", data, pos)[0]
            thumbs.append(bytes(data[pos + 4 : pos + 4 + k]))
            pos += 4 + k
        fingerprint = Fingerprint(tuple(head["pixels"]), tuple(head["symbols"]), tuple(thumbs), int(head["threads"]))
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise BlobError(f"damaged group record ({exc})") from exc
    return stream, fingerprint


def pack_latents(latents: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(a, dtype=np.int32) for name, a in latents.items()})
    return buffer.getvalue()


def unpack_latents(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as npz:
        return {name: np.asarray(npz[name]) for name in npz.files}


def pack_blob(groups: Sequence[BlobGroup], info: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The blob's bytes and its header (``info`` plus the group table, offsets absolute)."""
    parts: list[bytes] = []
    table: list[dict[str, Any]] = []
    pos = 0
    for g in groups:
        record, latents = pack_record(g.stream, g.fingerprint), pack_latents(g.latents)
        table.append({
            "name": g.name, "files": list(g.files), "sizes": [list(s) for s in g.sizes],
            "metrics": {k: float(v) for k, v in g.metrics.items()}, "digest": g.digest,
            "record": [pos, len(record)], "latents": [pos + len(record), len(latents)],
        })
        parts += [record, latents]
        pos += len(record) + len(latents)
    header = {**info, "groups": table}
    raw = json.dumps(header, separators=(",", ":")).encode()
    base = PREFIX + len(raw)
    # offsets in the header stay payload-relative (the header cannot contain its own length);
    # the returned copy is absolute, as the index stores them
    absolute = {**header, "groups": [{**g, "record": [g["record"][0] + base, g["record"][1]],
                                      "latents": [g["latents"][0] + base, g["latents"][1]]} for g in table]}
    return MAGIC + struct.pack("<Q", len(raw)) + raw + b"".join(parts), absolute


def read_header(fs: Any, path: str) -> dict[str, Any]:
    """A blob's header with absolute offsets, in two range reads."""
    prefix = fs.cat_file(path, start=0, end=PREFIX)
    if len(prefix) != PREFIX or prefix[: len(MAGIC)] != MAGIC:
        raise BlobError(f"{path}: not a shard blob")
    n = struct.unpack("<Q", prefix[len(MAGIC):])[0]
    raw = fs.cat_file(path, start=PREFIX, end=PREFIX + n)
    header = json.loads(raw)
    base = PREFIX + n
    for g in header["groups"]:
        g["record"] = [g["record"][0] + base, g["record"][1]]
        g["latents"] = [g["latents"][0] + base, g["latents"][1]]
    return header
