"""The one registry of codecs: stable hyphenated names, never-renumbered ids, presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

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
