"""The one checkpoint format: save a codec, read it back (tensors and plain data only), and
a weights digest that names the trained weights.

A checkpoint is a ``torch.save`` dict: a header (``codec``, ``preset``, ``config``, ``extra``,
``weights_digest``) and the ``state_dict``. Every reader goes through :func:`parse_checkpoint`,
which loads with ``weights_only=True`` (a checkpoint never unpickles code) and checks the
header's digest against the tensors, so a corrupted checkpoint fails loudly instead of coding
with other weights. Checkpoints written before the digest was recorded still load.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .base import MultiViewCodec
from .registry import create_codec

#: Buffers that ``update()`` derives from the weights (entropy-coder CDF tables): not part of a
#: model's identity, so the digest of a checkpoint does not change when tables are rebuilt.
DERIVED_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table")

HEADER_KEYS = frozenset({"codec", "preset", "config", "state_dict"})


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another codec, or not the expected weights."""


def state_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict (names, dtypes, shapes, values) without the derived CDF tables."""
    digest = hashlib.sha256()
    for key, tensor in sorted(state_dict.items()):
        if key.rsplit(".", 1)[-1] in DERIVED_BUFFERS:
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    """The digest of a model's weights: identifies trained weights, whether or not CDF tables
    were built and by which code."""
    return state_digest(model.state_dict())


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds; ``digest`` is the header's weights digest, already checked
    against ``state_dict`` (None for checkpoints written before digests were recorded)."""

    codec: str
    preset: str
    config: dict[str, Any]
    extra: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    digest: str | None = None

    @property
    def held(self) -> str:
        return f"{self.codec}:{self.preset}"


def save_checkpoint(model: MultiViewCodec, path: str | Path, extra: dict[str, Any] | None = None) -> str:
    """Write weights plus identity (with CDF tables built); returns the weights digest."""
    if model.identity is None:
        raise RuntimeError("codec has no identity: build it with create_codec")
    model.update(force=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = model.state_dict()
    digest = state_digest(state)
    payload = {
        "codec": model.identity.name,
        "preset": model.identity.preset,
        "config": model.identity.config,
        "state_dict": state,
        "extra": extra or {},
        "weights_digest": digest,
    }
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a killed save never leaves a torn checkpoint
    return digest


def read_checkpoint_bytes(checkpoint: str | Path, storage_options: dict[str, Any] | None = None) -> bytes:
    """The raw bytes of a checkpoint at a local path or fsspec URL. A registry URI
    (``models:/…``) needs MLflow, which codecs never import: read those with
    :func:`mvarchive.runtime.checkpoints.fetch_checkpoint_bytes`."""
    import fsspec

    if str(checkpoint).startswith("models:/"):
        raise CheckpointError(
            f"{checkpoint} is a model-registry URI: read it with mvarchive.runtime.checkpoints.fetch_checkpoint_bytes "
            "(the codecs package does not talk to MLflow)"
        )
    try:
        with fsspec.open(str(checkpoint), "rb", **(storage_options or {})) as handle:
            return handle.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {checkpoint}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {checkpoint}: {exc}") from None


def _load_failure(exc: BaseException) -> str:
    """torch.load's failure in a few words (its own messages run to a paragraph)."""
    text = str(exc)
    markers = ("invalid load key", "central directory", "zip archive", "Unsupported operand")
    if any(m in text for m in markers) or isinstance(exc, EOFError):
        return "not a file written by torch.save"
    if "Weights only load failed" in text:
        return "it holds objects other than tensors and plain data, which are never unpickled"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:160]


def parse_checkpoint(data: bytes, where: str) -> Checkpoint:
    """The checkpoint in ``data`` (``where`` names it in errors), loaded with ``weights_only``
    and checked against its header digest."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where} is not an mvarchive checkpoint ({_load_failure(exc)})") from None
    if not isinstance(payload, dict) or not HEADER_KEYS <= set(payload):
        raise CheckpointError(
            f"{where} is not an mvarchive checkpoint (expected codec, preset, config and state_dict; "
            "train one with `mvarchive train`)"
        )
    state = dict(payload["state_dict"])
    recorded = payload.get("weights_digest")
    if recorded is not None and state_digest(state) != recorded:
        raise CheckpointError(f"checkpoint {where} is corrupted: its weights do not match the digest "
                              f"{str(recorded)[:12]} in its header")
    return Checkpoint(payload["codec"], payload["preset"], dict(payload["config"]), dict(payload.get("extra") or {}),
                      state, recorded)


def read_checkpoint(checkpoint: str | Path, storage_options: dict[str, Any] | None = None) -> Checkpoint:
    """The checkpoint at a local path or fsspec URL (see :func:`read_checkpoint_bytes`)."""
    return parse_checkpoint(read_checkpoint_bytes(checkpoint, storage_options), str(checkpoint))


def codec_from_checkpoint(checkpoint: Checkpoint, where: str, name: str | None = None) -> MultiViewCodec:
    """The codec a checkpoint holds with its weights loaded; ``name``, when given, must match.
    ``where`` starts the error messages (e.g. ``"checkpoint PATH"``, ``"--init PATH"``)."""
    if name is not None and name != checkpoint.codec:
        raise CheckpointError(f"{where} holds codec {checkpoint.codec!r}, not {name!r}")
    model = create_codec(checkpoint.codec, checkpoint.preset, **checkpoint.config)
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"{where} does not fit codec {checkpoint.codec!r}: {str(exc)[:200]}") from None
    return model


def codec_from_checkpoint_bytes(data: bytes, where: str, name: str | None = None) -> MultiViewCodec:
    """Build a codec from checkpoint bytes (tensors and plain data only: ``weights_only``)."""
    return codec_from_checkpoint(parse_checkpoint(data, where), f"checkpoint {where}", name)


def load_codec(
    checkpoint: str | Path | None = None, *, name: str | None = None, preset: str = "paper", seed: int = 0,
    storage_options: dict[str, Any] | None = None, data: bytes | None = None,
) -> MultiViewCodec:
    """Build a codec ready to code: from a checkpoint (path, fsspec URL, or its bytes), or
    freshly initialized from a seed.

    An untrained codec made from ``seed`` is deterministic, so the same name/preset/seed gives
    the same weights in every process (used by tests; archives refuse it unless asked).
    """
    if data is not None or checkpoint is not None:
        if data is None:
            data = read_checkpoint_bytes(checkpoint, storage_options)  # type: ignore[arg-type]
        model = codec_from_checkpoint_bytes(data, str(checkpoint or "checkpoint"), name)
    else:
        if name is None:
            raise ValueError("give a codec name or a checkpoint")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = create_codec(name, preset)
    return ready_to_code(model)


def ready_to_code(model: MultiViewCodec) -> MultiViewCodec:
    """Eval mode with its CDF tables built: what coding needs after the weights are in place."""
    model.eval()
    model.update(force=True)
    return model
