"""The one registry of codecs: stable hyphenated names, never-renumbered ids, presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .base import CodecIdentity, MultiViewCodec, Registration, ViewCountError, ViewRange, config_dict


@dataclass(frozen=True)
class CodecSpec:
    """Registry entry: how to build a codec and what it accepts."""

    name: str
    codec_id: int
    model_class: type[MultiViewCodec]
    presets: Mapping[str, Any]  # preset name -> config dataclass instance
    description: str

    @property
    def views(self) -> ViewRange:
        return self.model_class.views

    @property
    def min_views(self) -> int:
        return self.views.minimum

    @property
    def max_views(self) -> int | None:
        return self.views.maximum

    def accepts(self, num_views: int) -> bool:
        return self.views.accepts(num_views)


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
        cls.registrations = (*cls.__dict__.get("registrations", ()), Registration(name, codec_id, dict(presets)))
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


def check_view_count(codec: MultiViewCodec, num_views: int) -> None:
    """``codec.check_views`` for callers that face users: a refusal names the codecs that take
    ``num_views`` views (the codec itself knows no other codec)."""
    try:
        codec.check_views(num_views)
    except ViewCountError as error:
        raise error.with_alternatives(codecs_accepting(num_views)) from None


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
    return spec.model_class(config, CodecIdentity(name, spec.codec_id, preset, config_dict(config)))
