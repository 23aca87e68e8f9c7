"""Where a training run's weights start: a fresh codec, or ``--init`` weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mvarchive.codecs import MultiViewCodec, create_codec

if TYPE_CHECKING:  # loop.py imports this module; the config type is only needed for annotations
    from .loop import TrainConfig


def initial_model(config: TrainConfig) -> MultiViewCodec:
    """A fresh codec from its preset, or the weights of ``config.init`` (same codec and preset)."""
    if config.init is None:
        return create_codec(config.codec, config.preset)
    from mvarchive.codecs.registry import codec_from_checkpoint_bytes, read_checkpoint_bytes

    model = codec_from_checkpoint_bytes(read_checkpoint_bytes(config.init, config.storage_options), config.init)
    identity = model.identity
    if identity is None or (identity.name, identity.preset) != (config.codec, config.preset):
        held = f"{identity.name}:{identity.preset}" if identity else "unknown"
        raise ValueError(f"--init {config.init} holds {held}, this run trains {config.codec}:{config.preset}")
    return model
