"""Checkpoints by reference: a path, an fsspec URL or a registry URI, read as bytes or as a codec.

The codecs floor reads paths and URLs only (:mod:`mvarchive.codecs.checkpoint`); a registry URI
(``models:/NAME/VERSION``, ``models:/NAME@champion``) needs MLflow, which codecs never import, so
it is resolved here, one floor up, for the tasks, flows, training and evaluation that accept any
of the three.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvarchive.codecs import MultiViewCodec
from mvarchive.codecs.checkpoint import (
    Checkpoint,
    CheckpointError,
    codec_from_checkpoint,
    load_codec,
    parse_checkpoint,
    read_checkpoint_bytes,
    ready_to_code,
    weights_digest,
)
from mvarchive.storage.options import StorageOptions, as_options

REGISTRY_SCHEME = "models:/"


def fetch_checkpoint_bytes(checkpoint: str | Path, storage_options: dict[str, Any] | None = None) -> bytes:
    """The raw bytes of the checkpoint at a local path, fsspec URL or registry URI (fetched from
    MLflow and cached; the store is ``storage_options["mlflow_tracking_uri"]`` if given, else the
    environment's)."""
    if str(checkpoint).startswith(REGISTRY_SCHEME):
        from mvarchive.models.registry import fetch_checkpoint  # lazy: imports mlflow

        return fetch_checkpoint(str(checkpoint), (storage_options or {}).get("mlflow_tracking_uri"))
    return read_checkpoint_bytes(checkpoint, storage_options)


def fetch_checkpoint(checkpoint: str | Path, storage_options: dict[str, Any] | None = None) -> Checkpoint:
    """The parsed checkpoint at a path, URL or registry URI (see :func:`fetch_checkpoint_bytes`)."""
    return parse_checkpoint(fetch_checkpoint_bytes(checkpoint, storage_options), str(checkpoint))


@dataclass(frozen=True)
class CodecRef:
    """A picklable reference to a ready codec: what tasks receive instead of a model.

    ``checkpoint`` is a local path, fsspec URL or registry URI that every worker can read (with
    ``storage_options``), or None for an untrained codec from ``seed``; ``digest``, when set, is
    checked after loading so a worker never codes with other weights than planned.
    """

    name: str
    preset: str = "paper"
    checkpoint: str | None = None
    seed: int = 0
    digest: str | None = None
    storage_options: StorageOptions = dataclasses.field(default_factory=StorageOptions)

    def load(self) -> MultiViewCodec:
        if self.checkpoint is None:
            model = load_codec(name=self.name, preset=self.preset, seed=self.seed)
            recorded = None
        else:
            held = fetch_checkpoint(self.checkpoint, as_options(self.storage_options).reveal())
            model = ready_to_code(codec_from_checkpoint(held, f"checkpoint {self.checkpoint}", self.name))
            recorded = held.digest  # already checked against these tensors while parsing: not hashed twice
        if self.digest is not None:
            actual = recorded or weights_digest(model)
            if actual != self.digest:
                raise CheckpointError(
                    f"{self.checkpoint or 'untrained ' + self.name} has weights {actual[:12]}, "
                    f"expected {self.digest[:12]}"
                )
        return model
