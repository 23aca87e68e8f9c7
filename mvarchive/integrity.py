"""What an archive records about each encoded group so a decode can be checked, and the check.

At encode time every view gets three fingerprints:

* ``symbols``: SHA-256 of its quantized latent symbols (what the entropy coder wrote);
* ``pixels``: SHA-256 of the encoder-side uint8 reconstruction (what restore must write);
* a *thumbnail*: the mean of every 64x64 tile per channel, rounded to uint8 (~0.1 % of the
  pixels' size), which lets a check tell a rounding difference from a wrong picture;

and the group records the torch thread count its reconstruction was computed with: a decoder
runs the synthesis with the same count, so pixels are exact whatever the worker's own setting
(on the same CPU kernels; see docs/determinism.md).

A decode is then classified (:class:`Status`):

* ``ok``: symbols and pixels identical to the encoder's;
* ``close``: symbols identical, pixels differ but every tile mean is within
  :data:`CLOSE_TILE_LSB` levels — the synthesis transform rounded differently (another CPU ISA,
  thread count or torch build; see docs/determinism.md), not a coding error;
* ``mismatch``: symbols differ, or the picture is visibly different;
* ``undecodable``: the bitstream does not decode at all.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

THUMB_TILE = 64
CLOSE_TILE_LSB = 2  # a tile mean moves by at most 1 LSB when each pixel does; +1 for rounding the means


class Status(str, enum.Enum):
    OK = "ok"
    CLOSE = "close"
    MISMATCH = "mismatch"
    UNDECODABLE = "undecodable"

    @property
    def failed(self) -> bool:
        return self in (Status.MISMATCH, Status.UNDECODABLE)


def pixel_digest(view: np.ndarray) -> str:
    """SHA-256 of one (H, W, 3) uint8 view, shape included."""
    view = np.ascontiguousarray(view, dtype=np.uint8)
    digest = hashlib.sha256(f"{view.shape}|".encode())
    digest.update(view.tobytes())
    return digest.hexdigest()


def symbol_digests(latents: Mapping[str, np.ndarray], num_views: int) -> list[str]:
    """SHA-256 per view over every latent (leading view axis), names and shapes included."""
    out = []
    for k in range(num_views):
        digest = hashlib.sha256()
        for name in sorted(latents):
            symbols = np.ascontiguousarray(np.asarray(latents[name])[k], dtype=np.int32)
            digest.update(f"{name}|{symbols.shape}|".encode())
            digest.update(symbols.tobytes())
        out.append(digest.hexdigest())
    return out


def thumbnail(view: np.ndarray, tile: int = THUMB_TILE) -> np.ndarray:
    """Per-tile channel means of one (H, W, 3) uint8 view as uint8 (ceil(H/t), ceil(W/t), 3);
    edge tiles average the pixels they have."""
    h, w, _ = view.shape
    th, tw = -(-h // tile), -(-w // tile)
    padded = np.zeros((th * tile, tw * tile, 3), dtype=np.float64)
    padded[:h, :w] = view
    count = np.zeros((th * tile, tw * tile, 1), dtype=np.float64)
    count[:h, :w] = 1
    sums = padded.reshape(th, tile, tw, tile, 3).sum(axis=(1, 3))
    counts = count.reshape(th, tile, tw, tile, 1).sum(axis=(1, 3))
    return np.round(sums / counts).astype(np.uint8)


@dataclass(frozen=True)
class Fingerprint:
    """One group's fingerprints, one entry per view."""

    pixels: tuple[str, ...]
    symbols: tuple[str, ...]
    thumbnails: tuple[bytes, ...]
    threads: int = 0  # torch threads of the encoder's synthesis (0: unknown)

    @classmethod
    def of(cls, views: np.ndarray, latents: Mapping[str, np.ndarray], threads: int = 0) -> Fingerprint:
        """Fingerprints of (K, H, W, 3) uint8 views and their latent symbols."""
        return cls(
            pixels=tuple(pixel_digest(v) for v in views),
            symbols=tuple(symbol_digests(latents, len(views))),
            thumbnails=tuple(thumbnail(v).tobytes() for v in views),
            threads=threads,
        )


@dataclass(frozen=True)
class ViewCheck:
    camera: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class GroupCheck:
    """The verdict on one decoded group: its worst view decides."""

    group: str
    status: Status
    views: tuple[ViewCheck, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        if self.status is Status.OK:
            return f"group {self.group!r}: ok"
        bad = [v for v in self.views if v.status is not Status.OK]
        parts = "; ".join(f"view {v.camera!r}: {v.detail}" for v in bad) or self.detail
        return f"group {self.group!r}: {self.status.value}: {parts}"


def check_group(
    group: str, cameras: tuple[str, ...], expected: Fingerprint, views: np.ndarray,
    latents: Mapping[str, np.ndarray],
) -> GroupCheck:
    """Compare a decoded group (uint8 views, latent symbols) with the encoder's fingerprints;
    thumbnails are only computed for views whose pixel digest differs."""
    symbols = symbol_digests(latents, len(views))
    checks = []
    for k, camera in enumerate(cameras):
        if symbols[k] != expected.symbols[k]:
            checks.append(ViewCheck(camera, Status.MISMATCH, "decoded symbols differ from the encoded ones"))
        elif pixel_digest(views[k]) == expected.pixels[k]:
            checks.append(ViewCheck(camera, Status.OK))
        else:
            shape = views[k].shape
            want = np.frombuffer(expected.thumbnails[k], dtype=np.uint8)
            have = thumbnail(views[k]).reshape(-1)
            if want.shape != have.shape:
                checks.append(ViewCheck(camera, Status.MISMATCH, f"decoded size {shape[:2]} differs"))
                continue
            worst = float(np.abs(want.astype(np.int16) - have.astype(np.int16)).max())
            if worst <= CLOSE_TILE_LSB:
                checks.append(ViewCheck(
                    camera, Status.CLOSE,
                    f"symbols exact, pixels differ by rounding (tile means within {worst:.0f} LSB)",
                ))
            else:
                checks.append(ViewCheck(
                    camera, Status.MISMATCH, f"symbols exact but pixels differ (a tile mean is off by {worst:.0f} LSB)"
                ))
    order = [Status.OK, Status.CLOSE, Status.MISMATCH]
    status = max((c.status for c in checks), key=order.index, default=Status.OK)
    return GroupCheck(group, status, tuple(checks))
