"""Self-describing container for one group's bitstreams.

Pure bytes-in/bytes-out module (no torch), so any tool can inspect an archive.

Layout (all integers big-endian)::

    magic      4 bytes  b"MVAC"
    version    u8       container format version (FORMAT_VERSION)
    codec_id   u16      the codec's registry id, never renumbered
    header_len u32      length of the JSON header
    header     bytes    UTF-8 JSON: codec name, preset, config, view count, sizes
    n_streams  u16      number of payload streams
    repeated n_streams times:
        length u32
        data   bytes
    crc32      u32      zlib.crc32 of everything before it

Decoding checks every field, that the lengths fit, that nothing trails the checksum and that
the checksum matches; each failure raises :class:`BitstreamError` naming the group.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

MAGIC = b"MVAC"
FORMAT_VERSION = 1
_FIXED = struct.Struct(">4sBHI")  # magic, version, codec id, header length
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class BitstreamError(ValueError):
    """A bitstream is truncated, corrupted, of another format, or written by another codec."""


@dataclass(frozen=True)
class Container:
    """The parsed content of one container."""

    codec_id: int
    header: dict[str, Any]
    streams: tuple[bytes, ...]

    @property
    def payload_bytes(self) -> int:
        """Bytes of entropy-coded payload, without container overhead."""
        return sum(len(s) for s in self.streams)


def pack(codec_id: int, header: dict[str, Any], streams: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Serialize a header and payload streams into one checksummed byte string."""
    if not 0 <= codec_id < 2**16:
        raise ValueError(f"codec_id must fit in 16 bits, got {codec_id}")
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    if len(streams) >= 2**16:
        raise ValueError(f"too many streams: {len(streams)}")
    parts = [_FIXED.pack(MAGIC, FORMAT_VERSION, codec_id, len(header_bytes)), header_bytes]
    parts.append(_U16.pack(len(streams)))
    for stream in streams:
        parts.append(_U32.pack(len(stream)))
        parts.append(bytes(stream))
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def unpack(data: bytes, *, where: str = "bitstream") -> Container:
    """Parse and verify a container; ``where`` names the group in error messages."""
    data = bytes(data)
    if len(data) < _FIXED.size + _U16.size + _U32.size:
        raise BitstreamError(f"{where}: truncated: only {len(data)} bytes, not a complete container")
    magic, version, codec_id, header_len = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError(
            f"{where}: not an mvarchive bitstream (magic {magic!r}, expected {MAGIC!r})"
        )
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"{where}: unsupported container version {version} (this build reads {FORMAT_VERSION})"
        )
    offset = _FIXED.size
    body_end = len(data) - _U32.size
    if offset + header_len + _U16.size > body_end:
        raise BitstreamError(f"{where}: truncated or corrupted: header declares {header_len} bytes")
    header_bytes = data[offset : offset + header_len]
    offset += header_len
    (n_streams,) = _U16.unpack_from(data, offset)
    offset += _U16.size
    streams: list[bytes] = []
    for index in range(n_streams):
        if offset + _U32.size > body_end:
            raise BitstreamError(f"{where}: truncated: stream {index} of {n_streams} is missing")
        (length,) = _U32.unpack_from(data, offset)
        offset += _U32.size
        if offset + length > body_end:
            raise BitstreamError(
                f"{where}: truncated or corrupted: stream {index} declares {length} bytes, "
                f"{max(body_end - offset, 0)} remain"
            )
        streams.append(data[offset : offset + length])
        offset += length
    if offset != body_end:
        raise BitstreamError(
            f"{where}: corrupted: {body_end - offset} unexpected bytes after the last stream"
        )
    (stored_crc,) = _U32.unpack_from(data, body_end)
    actual_crc = zlib.crc32(data[:body_end])
    if stored_crc != actual_crc:
        raise BitstreamError(
            f"{where}: corrupted: checksum mismatch (stored {stored_crc:08x}, computed {actual_crc:08x})"
        )
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # only reachable with a forged crc
        raise BitstreamError(f"{where}: corrupted header: {exc}") from exc
    return Container(codec_id=codec_id, header=header, streams=tuple(streams))
