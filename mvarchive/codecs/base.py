"""The interface every mvarchive codec implements.

A codec works on groups of K views of equal size, with an explicit view axis:

* ``forward(x)`` with ``x`` of shape ``(B, K, 3, H, W)`` in [0, 1] (training mode) returns
  ``{"x_hat": (B, K, 3, H, W), "likelihoods": {name: (B, K, ...)}}``; the rate is
  ``-log2(likelihoods)``.
* ``compress(views)`` with ``views`` of shape ``(K, 3, H, W)`` returns a
  :class:`CompressedGroup`: one self-describing byte string (see :mod:`.bitstream`), the
  quantized latents as integer arrays, and the encoder-side reconstruction.
* ``decompress(data)`` parses and checks the container and returns a :class:`DecodedGroup`.

Images of any size are accepted: they are replicate-padded to ``pad_multiple`` and the
decoder crops back using the sizes stored in the header.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import CompressionModel

from . import bitstream
from .padding import crop_to, pad_to_multiple, padded_size
from .placement import AnalysisPlacement, with_offloaded


@dataclass(frozen=True)
class CodecIdentity:
    """What a bitstream records about the codec that wrote it."""

    name: str
    codec_id: int
    preset: str
    config: dict[str, Any]


@dataclass(frozen=True)
class ViewRange:
    """How many views a codec takes: ``minimum`` up to ``maximum`` (None: no upper bound)."""

    minimum: int
    maximum: int | None = None

    def accepts(self, num_views: int) -> bool:
        return num_views >= self.minimum and (self.maximum is None or num_views <= self.maximum)

    def __str__(self) -> str:
        if self.maximum is None:
            return f"{self.minimum}+"
        return f"{self.minimum}" if self.maximum == self.minimum else f"{self.minimum}-{self.maximum}"


class ViewCountError(ValueError):
    """A codec was given a view count it does not take. Callers that know every codec (the
    registry's :func:`.registry.check_view_count`, the CLI, the flows) add the alternatives."""

    def __init__(self, codec: str, views: ViewRange, got: int, alternatives: list[str] | None = None) -> None:
        message = f"codec {codec!r} takes {views} views, got {got}"
        if alternatives is not None:
            message += f"; codecs that take {got} views: {', '.join(alternatives) or 'none'}"
        super().__init__(message)
        self.codec, self.views, self.got = codec, views, got

    def with_alternatives(self, alternatives: list[str]) -> ViewCountError:
        return ViewCountError(self.codec, self.views, self.got, alternatives)


@dataclass(frozen=True)
class Registration:
    """One name a codec class is registered under (written on the class by
    :func:`.registry.register_codec`), so that a codec built from a config knows its identity."""

    name: str
    codec_id: int
    presets: Mapping[str, Any]

    def shared(self) -> dict[str, Any]:
        """The config values all presets of this name have in common (e.g. LDMIC's context model)."""
        fields = [config_dict(config) for config in self.presets.values()]
        return {k: v for k, v in fields[0].items() if all(f.get(k) == v for f in fields)} if fields else {}

    def identify(self, config: Any, required: Mapping[str, Any]) -> CodecIdentity | None:
        """This name's identity for ``config``, or None when ``config`` is of another type or
        lacks one of the ``required`` values (those that tell this name from the class's others).

        The preset recorded is the one closest to ``config`` (fewest differing fields), so
        ``create_codec(name, preset, **config)`` rebuilds it.
        """
        if any(type(preset) is not type(config) for preset in self.presets.values()):
            return None
        values = config_dict(config)
        if any(values.get(k) != v for k, v in required.items()):
            return None

        def distance(item: tuple[str, Any]) -> int:
            return sum(values[k] != v for k, v in config_dict(item[1]).items())

        preset = min(self.presets.items(), key=distance)[0]
        return CodecIdentity(self.name, self.codec_id, preset, values)


class CompressedGroup(NamedTuple):
    data: bytes
    latents: dict[str, np.ndarray]
    x_hat: torch.Tensor | None  # (K, 3, H, W) in [0, 1], cropped to the original size; None: not asked for
    payload_bytes: int


class DecodedGroup(NamedTuple):
    x_hat: torch.Tensor  # (K, 3, H, W) in [0, 1]
    latents: dict[str, np.ndarray]
    header: dict[str, Any]


class CodedStreams(NamedTuple):
    """What a codec's padded-domain coder produces or recovers."""

    streams: list[bytes]
    latents: dict[str, torch.Tensor]  # integer tensors with a leading view axis
    x_hat: torch.Tensor | None  # (K, 3, Hp, Wp); None when the encoder was asked for no reconstruction


class MultiViewCodec(CompressionModel):
    """Base class: padding, container, validation; subclasses code padded groups."""

    pad_multiple: int = 64
    #: The view counts this codec takes.
    views: ClassVar[ViewRange] = ViewRange(2)
    #: Names of the encoder-only modules (analysis transforms) that may run on an accelerator;
    #: None: found by :meth:`encoder_only_modules`'s probe.
    analysis_modules: tuple[str, ...] | None = None
    #: The names this class is registered under (set by :func:`.registry.register_codec`).
    registrations: tuple[Registration, ...] = ()

    def __init__(self, config: Any, identity: CodecIdentity | None = None) -> None:
        """A codec complete at construction: ``identity`` (what its bitstreams record) is the
        one given, else the one registered name whose presets ``config`` agrees with."""
        super().__init__()
        self.config = config
        self.identity: CodecIdentity | None = identity if identity is not None else self._identify(config)

    @classmethod
    def _identify(cls, config: Any) -> CodecIdentity | None:
        """The identity of the one registered name ``config`` belongs to (LDMIC's ``context``
        tells ``ldmic`` from ``ldmic-fast``); None when there is no such single name."""
        found = []
        for registration in cls.registrations:
            others = [other.shared() for other in cls.registrations if other is not registration]
            required = {k: v for k, v in registration.shared().items() if any(o.get(k) != v for o in others)}
            identity = registration.identify(config, required)
            if identity is not None:
                found.append(identity)
        return found[0] if len(found) == 1 else None


    # --- to implement -------------------------------------------------------------------
    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        raise NotImplementedError

    def _decode_padded(self, streams: tuple[bytes, ...], num_views: int, size: tuple[int, int]) -> CodedStreams:
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts, at least ``total``; codecs add encoder/decoder sides."""
        return {"total": parameter_count(self)}

    # --- shared -------------------------------------------------------------------------
    def check_views(self, num_views: int) -> None:
        """Reject view counts the codec cannot take (:class:`ViewCountError`)."""
        if not self.views.accepts(num_views):
            name = self.identity.name if self.identity else type(self).__name__
            raise ViewCountError(name, self.views, num_views)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"expected (B, K, 3, H, W) input, got shape {tuple(x.shape)}")
        self.check_views(x.shape[1])

    def require_tables(self) -> None:
        """Coding needs CDF tables; say how to build them instead of failing deep inside."""
        for module in self.modules():
            if isinstance(module, (EntropyBottleneck, GaussianConditional)) and module._offset.numel() == 0:
                raise RuntimeError(
                    "entropy coder tables are not built: call codec.update(force=True) after "
                    "training or loading weights (mvarchive.codecs.load_codec does this)"
                )

    # --- analysis on an accelerator (docs/gpu.md) ----------------------------------------
    def encoder_only_modules(self) -> tuple[str, ...]:
        """The largest submodules the decoder never runs and the entropy path never calls.

        Their outputs only decide which symbols the encoder writes (e.g. ``y`` in
        ``round(y - mu)``); everything a decoder recomputes (entropy parameters, CDF
        indexes, synthesis) comes from other modules, so these may run anywhere, in any
        precision, without breaking exact decoding. Unless the class declares
        :attr:`analysis_modules`, they are found once per instance by coding and decoding a
        small random group with forward hooks on every submodule.
        """
        if self.analysis_modules is not None:
            return self.analysis_modules
        cached = self.__dict__.get("_encoder_only_modules")
        if cached is None:
            cached = self._probe_encoder_only()
            self.__dict__["_encoder_only_modules"] = cached
        return cached

    @torch.no_grad()
    def _probe_encoder_only(self) -> tuple[str, ...]:
        from .entropy import exact_entropy_active

        self.require_tables()
        named = [(name, module) for name, module in self.named_modules(remove_duplicate=False) if name]
        seen: dict[str, set[int]] = {"encode": set(), "decode": set(), "exact": set()}
        phase = ["encode"]

        def hook(module: torch.nn.Module, *_: Any) -> None:
            seen[phase[0]].add(id(module))
            if exact_entropy_active():
                seen["exact"].add(id(module))

        handles = [module.register_forward_pre_hook(hook) for _, module in {id(m): (n, m) for n, m in named}.values()]
        try:
            generator = torch.Generator().manual_seed(0)
            size = self.pad_multiple
            x = torch.rand(self.views.minimum, 3, size, size, generator=generator)
            coded = self._encode_padded(x)
            phase[0] = "decode"
            self._decode_padded(tuple(coded.streams), self.views.minimum, (size, size))
        finally:
            for handle in handles:
                handle.remove()
        shared = seen["decode"] | seen["exact"]

        def encoder_only(module: torch.nn.Module) -> bool:
            return id(module) in seen["encode"] and not any(id(m) in shared for m in module.modules())

        chosen: list[str] = []
        for name, module in named:
            if encoder_only(module) and not any(name.startswith(c + ".") for c in chosen):
                chosen.append(name)
        return tuple(chosen)

    def analysis_encoder(self, placement: AnalysisPlacement) -> MultiViewCodec:
        """An encoder of this codec whose encoder-only modules run on ``placement`` (e.g. CUDA, bf16).

        A shallow copy sharing every parameter and buffer, in which copies of the encoder-only
        modules on the device are wrapped so that their outputs come back as CPU float32 before
        quantization; the entropy path, the CDF indexes, the symbols' decoding and the
        synthesis (the stored reconstruction) stay canonical CPU float32, so a CPU decoder
        recovers exactly what was coded. This codec is never modified (other threads of a
        worker may code with it meanwhile); the copy must not be trained. For the canonical
        placement the encoder is this codec.
        """
        if placement.canonical:
            return self
        return with_offloaded(self, self.encoder_only_modules(), placement)

    @contextlib.contextmanager
    def analysis_on(self, placement: AnalysisPlacement) -> Iterator[MultiViewCodec]:
        """``with codec.analysis_on(p) as encoder: encoder.compress(views)``: :meth:`analysis_encoder`
        for the block (the device copies are released after it)."""
        encoder = self.analysis_encoder(placement)
        try:
            yield encoder
        finally:
            del encoder

    def _header(self, num_views: int, height: int, width: int) -> tuple[int, dict[str, Any]]:
        if self.identity is None:
            raise RuntimeError(
                "codec has no identity: its config matches no single registered name; "
                "build it with mvarchive.codecs.create_codec"
            )
        header = {
            "codec": self.identity.name,
            "preset": self.identity.preset,
            "config": self.identity.config,
            "views": num_views,
            "sizes": [[height, width]] * num_views,
            "padded": list(padded_size(height, width, self.pad_multiple)),
        }
        return self.identity.codec_id, header

    @torch.no_grad()
    def compress(self, views: torch.Tensor, *, reconstruct: bool = True) -> CompressedGroup:
        """Code one group ``(K, 3, H, W)`` in [0, 1] into a container byte string.

        ``reconstruct=False`` skips the synthesis transform (often most of the encode time):
        the bytes and latents are the same, ``x_hat`` is None. Callers that need no
        encoder-side reconstruction (no pixel digest, no quality metric) use it.
        """
        if views.dim() != 4 or views.shape[1] != 3:
            raise ValueError(f"expected (K, 3, H, W) views, got shape {tuple(views.shape)}")
        self.check_views(views.shape[0])
        self.require_tables()
        num_views, _, height, width = views.shape
        codec_id, header = self._header(num_views, height, width)
        coded = self._encode_padded(pad_to_multiple(views, self.pad_multiple), reconstruct=reconstruct)
        data = bitstream.pack(codec_id, header, coded.streams)
        return CompressedGroup(
            data=data,
            latents={k: v.cpu().numpy().astype(np.int32) for k, v in coded.latents.items()},
            x_hat=None if coded.x_hat is None else crop_to(coded.x_hat, height, width).clamp_(0, 1),
            payload_bytes=sum(len(s) for s in coded.streams),
        )

    @torch.no_grad()
    def decompress(self, data: bytes, *, where: str = "bitstream") -> DecodedGroup:
        """Decode a container written by this codec; ``where`` names the group in errors."""
        container = bitstream.unpack(data, where=where)
        header = container.header
        if self.identity is None:
            raise RuntimeError(
                "codec has no identity: its config matches no single registered name; "
                "build it with mvarchive.codecs.create_codec"
            )
        if container.codec_id != self.identity.codec_id or header.get("codec") != self.identity.name:
            raise bitstream.BitstreamError(
                f"{where}: written by codec {header.get('codec')!r} (id {container.codec_id}), "
                f"this decoder is {self.identity.name!r} (id {self.identity.codec_id})"
            )
        if header.get("config") != self.identity.config:
            raise bitstream.BitstreamError(
                f"{where}: written with config {header.get('config')}, this decoder has {self.identity.config}"
            )
        try:
            num_views = int(header["views"])
            height, width = (int(v) for v in header["sizes"][0])
            padded = tuple(int(v) for v in header["padded"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise bitstream.BitstreamError(f"{where}: header lacks a field: {exc}") from exc
        if padded != padded_size(height, width, self.pad_multiple):
            raise bitstream.BitstreamError(f"{where}: header sizes are inconsistent: {header}")
        self.require_tables()
        try:
            coded = self._decode_padded(container.streams, num_views, (padded[0], padded[1]))
        except (IndexError, ValueError, RuntimeError) as exc:
            raise bitstream.BitstreamError(f"{where}: payload does not decode: {exc}") from exc
        if coded.x_hat is None:
            raise RuntimeError(f"{type(self).__name__} decoded no reconstruction")
        return DecodedGroup(
            x_hat=crop_to(coded.x_hat, height, width).clamp_(0, 1),
            latents={k: v.cpu().numpy().astype(np.int32) for k, v in coded.latents.items()},
            header=header,
        )


def parameter_count(*parts: torch.nn.Module | torch.Tensor | None) -> int:
    """Parameters of modules and of loose tensors (a parameter held outside a submodule), for
    the breakdowns of ``parameter_counts``; None counts nothing."""
    total = 0
    for part in parts:
        if isinstance(part, torch.nn.Module):
            total += sum(p.numel() for p in part.parameters())
        elif part is not None:
            total += part.numel()
    return total


def config_dict(config: Any) -> dict[str, Any]:
    """A codec config dataclass as a JSON-ready dict."""
    return dataclasses.asdict(config)
