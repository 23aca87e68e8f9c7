"""The one registry of codecs: stable hyphenated names, never-renumbered ids, presets."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from mvarchive.storage.options import StorageOptions, as_options

from .base import CodecIdentity, MultiViewCodec, config_dict


@dataclass(frozen=True)
class CodecSpec:
    """Registry entry: how to build a codec and what it accepts."""

    name: str
    codec_id: int
    model_class: type[MultiViewCodec]
    presets: Mapping[str, Any]  # preset name -> config dataclass instance
    description: str

    @property
    def min_views(self) -> int:
        return self.model_class.min_views

    @property
    def max_views(self) -> int | None:
        return self.model_class.max_views

    def accepts(self, num_views: int) -> bool:
        return num_views >= self.min_views and (self.max_views is None or num_views <= self.max_views)


_REGISTRY: dict[str, CodecSpec] = {}


def register_codec(
    name: str, codec_id: int, presets: Mapping[str, Any], description: str
) -> Callable[[type[MultiViewCodec]], type[MultiViewCodec]]:
    """Class decorator adding a codec under a stable name and id."""

    def decorate(cls: type[MultiViewCodec]) -> type[MultiViewCodec]:
        for other in _REGISTRY.values():
            if other.name == name or other.codec_id == codec_id:
                raise ValueError(f"codec {name!r} (id {codec_id}) clashes with {other.name!r} (id {other.codec_id})")
        _REGISTRY[name] = CodecSpec(name, codec_id, cls, dict(presets), description)
        return cls

    return decorate


def list_codecs() -> list[CodecSpec]:
    return sorted(_REGISTRY.values(), key=lambda spec: spec.codec_id)


def get_spec(name: str) -> CodecSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(spec.name for spec in list_codecs())
        raise KeyError(f"unknown codec {name!r}; registered codecs: {known}") from None


def codecs_accepting(num_views: int) -> list[str]:
    return [spec.name for spec in list_codecs() if spec.accepts(num_views)]


def create_codec(name: str, preset: str = "paper", **overrides: Any) -> MultiViewCodec:
    """Build a codec from a preset; ``None`` overrides are ignored, unknown ones rejected."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise KeyError(f"codec {name!r} has no preset {preset!r}; presets: {', '.join(spec.presets)}")
    base = spec.presets[preset]
    fields = {f.name for f in dataclasses.fields(base)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise TypeError(f"codec {name!r} has no option(s) {unknown}; options: {sorted(fields)}")
    config = dataclasses.replace(base, **given)
    model = spec.model_class(config)
    model.identity = CodecIdentity(name, spec.codec_id, preset, config_dict(config))
    return model


#: Buffers that ``update()`` derives from the weights (entropy-coder CDF tables): not part of a
#: model's identity, so the digest of a checkpoint does not change when tables are rebuilt.
DERIVED_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table")


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes, values) without the derived CDF
    tables: identifies trained weights, whether or not tables were built and by which code."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        if key.rsplit(".", 1)[-1] in DERIVED_BUFFERS:
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(model: MultiViewCodec, path: str | Path, extra: dict[str, Any] | None = None) -> str:
    """Write weights plus identity (with CDF tables built); returns the weights digest."""
    if model.identity is None:
        raise RuntimeError("codec has no identity: build it with create_codec")
    model.update(force=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    payload = {
        "codec": model.identity.name,
        "preset": model.identity.preset,
        "config": model.identity.config,
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a killed save never leaves a torn checkpoint
    return weights_digest(model)


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another codec, or not the expected weights."""


def read_checkpoint_bytes(checkpoint: str | Path, storage_options: dict[str, Any] | None = None) -> bytes:
    """The raw bytes of a checkpoint at a local path, fsspec URL or registry URI
    (``models:/NAME/VERSION``, ``models:/NAME@champion``: fetched from MLflow and cached; the
    store is ``storage_options["mlflow_tracking_uri"]`` if given, else the environment's)."""
    import fsspec

    if str(checkpoint).startswith("models:/"):
        from mvarchive.models.registry import fetch_checkpoint  # lazy: imports mlflow

        return fetch_checkpoint(str(checkpoint), (storage_options or {}).get("mlflow_tracking_uri"))
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


def codec_from_checkpoint_bytes(data: bytes, where: str, name: str | None = None) -> MultiViewCodec:
    """Build a codec from checkpoint bytes (tensors and plain data only: ``weights_only``)."""
    import io
    import pickle
    import zipfile

    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where} is not an mvarchive checkpoint ({_load_failure(exc)})") from None
    if not isinstance(payload, dict) or not {"codec", "preset", "config", "state_dict"} <= set(payload):
        raise CheckpointError(
            f"{where} is not an mvarchive checkpoint (expected codec, preset, config and state_dict; "
            "train one with `mvarchive train`)"
        )
    if name is not None and name != payload["codec"]:
        raise CheckpointError(f"checkpoint {where} holds codec {payload['codec']!r}, not {name!r}")
    model = create_codec(payload["codec"], payload["preset"], **payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {where} does not fit codec {payload['codec']!r}: {str(exc)[:200]}") from None
    return model


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
    model.eval()
    model.update(force=True)
    return model


@dataclass(frozen=True)
class CodecRef:
    """A picklable reference to a ready codec: what tasks receive instead of a model.

    ``checkpoint`` is a local path or fsspec URL that every worker can read (with
    ``storage_options``), or None for an untrained codec from ``seed``; ``digest``, when set,
    is checked after loading so a worker never codes with other weights than planned.
    """

    name: str
    preset: str = "paper"
    checkpoint: str | None = None
    seed: int = 0
    digest: str | None = None
    storage_options: StorageOptions = dataclasses.field(default_factory=StorageOptions)

    def load(self) -> MultiViewCodec:
        model = load_codec(self.checkpoint, name=self.name, preset=self.preset, seed=self.seed,
                           storage_options=as_options(self.storage_options).reveal())
        if self.digest is not None:
            actual = weights_digest(model)
            if actual != self.digest:
                raise CheckpointError(
                    f"{self.checkpoint or 'untrained ' + self.name} has weights {actual[:12]}, "
                    f"expected {self.digest[:12]}"
                )
        return model
