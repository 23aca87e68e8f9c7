"""Thin helpers over CompressAI's rANS coder: symbols and CDF-table indexes in, bytes out."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyModel

from .exact import exact_entropy


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient (mixed quantization, Minnen & Singh 2020)."""
    return x + (torch.round(x) - x).detach()


@dataclass(frozen=True)
class CdfTables:
    """The quantized CDF tables of an entropy model as plain lists, ready for the coder."""

    cdfs: list[list[int]]
    lengths: list[int]
    offsets: list[int]

    @classmethod
    def of(cls, model: EntropyModel) -> CdfTables:
        return cls(
            cdfs=model.quantized_cdf.tolist(),
            lengths=model.cdf_length.reshape(-1).int().tolist(),
            offsets=model.offset.reshape(-1).int().tolist(),
        )


def encode_symbols(
    encoder: BufferedRansEncoder, symbols: Sequence[int], indexes: Sequence[int], tables: CdfTables
) -> None:
    """Queue integer symbols, each coded with the CDF its index selects."""
    encoder.encode_with_indexes(list(symbols), list(indexes), tables.cdfs, tables.lengths, tables.offsets)


def decode_symbols(decoder: RansDecoder, indexes: torch.Tensor, tables: CdfTables) -> torch.Tensor:
    """Decode as many symbols as ``indexes`` has entries, returned in its shape (int32).

    Only the tables the indexes use are handed to the coder (indexes remapped): CompressAI
    converts every table it is given on each call, and a serial scan calls it thousands of
    times; the decoded values depend on a table's content, not on its position in the list.
    """
    flat = indexes.reshape(-1).int().tolist()
    used = sorted(set(flat))
    position = {index: i for i, index in enumerate(used)}
    values = decoder.decode_stream(
        [position[i] for i in flat],
        [tables.cdfs[i] for i in used], [tables.lengths[i] for i in used], [tables.offsets[i] for i in used],
    )
    return torch.tensor(values, dtype=torch.int32).reshape(indexes.shape)


def single_threaded() -> contextlib.AbstractContextManager[None]:
    """The entropy-parameter path's arithmetic policy while coding: :func:`.exact.exact_entropy`.

    (The historical name: it first only pinned one CPU thread. It now also computes every
    accumulating operation in float64, rounded back to float32, so encoder and decoder
    derive the same CDF indexes and means whatever their thread count, instruction set or
    kernel library; see docs/determinism.md.) Every codec wraps its coding path in it.
    """
    return exact_entropy()


def open_decoders(streams: Sequence[bytes]) -> list[RansDecoder]:
    """One rANS decoder per stream, positioned at its start."""
    decoders = []
    for stream in streams:
        decoder = RansDecoder()
        decoder.set_stream(stream)
        decoders.append(decoder)
    return decoders


class SymbolCoder:
    """The rANS side of a coding run: several streams; encoder and decoder call it alike.

    :meth:`code` writes row v of its tensors to stream v (one stream per view, views in a
    batch); :meth:`code_stream` writes a whole tensor to one stream (one variable or one view
    at a time). Both return the integer symbols ``round(y - means)``, computed when encoding,
    read when decoding, so a schedule runs the very same operations on both sides.

    Encoding queues every symbol and its CDF index and hands them to the rANS encoder once per
    stream at the end (:meth:`flush`): CompressAI's coder converts the full CDF tables on every
    call, which would dominate a serial scan. Decoding must go step by step
    (:func:`decode_symbols`).
    """

    def __init__(self, tables: CdfTables, views: int, decoders: list[RansDecoder] | None = None) -> None:
        if decoders is not None and len(decoders) != views:
            raise ValueError(f"{views} views need {views} decoders, got {len(decoders)}")
        self.tables = tables
        self.views = views
        self.decoders = decoders
        self.queued: list[tuple[list[int], list[int]]] = [([], []) for _ in range(views)]

    @classmethod
    def reading(cls, tables: CdfTables, streams: Sequence[bytes]) -> SymbolCoder:
        """A decoding coder over ``streams`` (:func:`open_decoders`)."""
        return cls(tables, len(streams), open_decoders(streams))

    @property
    def decoding(self) -> bool:
        return self.decoders is not None

    def code(self, indexes: torch.Tensor, means: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Code row v of ``indexes`` (and of ``y`` when encoding) in stream v; returns the
        integer symbols ``round(y - means)``, decoded or computed."""
        if indexes.shape[0] != self.views:
            raise ValueError(f"code() takes one row per stream: {indexes.shape[0]} rows for {self.views} streams")
        if self.decoders is None:
            q = self._symbols(means, y)
            for view in range(self.views):
                self._queue(view, q[view], indexes[view])
            return q
        return torch.stack(
            [decode_symbols(decoder, indexes[view], self.tables) for view, decoder in enumerate(self.decoders)]
        ).to(means.device)

    def code_stream(
        self, stream: int, indexes: torch.Tensor, means: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        """Code all of ``indexes`` (and ``y`` when encoding) in stream ``stream``; returns the
        integer symbols ``round(y - means)``, decoded or computed."""
        if self.decoders is None:
            q = self._symbols(means, y)
            self._queue(stream, q, indexes)
            return q
        return decode_symbols(self.decoders[stream], indexes, self.tables).to(means.device)

    @staticmethod
    def _symbols(means: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("encoding needs the latent values")
        return torch.round(y - means).int()

    def _queue(self, stream: int, symbols: torch.Tensor, indexes: torch.Tensor) -> None:
        queued_symbols, queued_indexes = self.queued[stream]
        queued_symbols.extend(symbols.reshape(-1).tolist())
        queued_indexes.extend(indexes.reshape(-1).int().tolist())

    def flush(self) -> list[bytes]:
        """The encoded streams, one per view (encoding only)."""
        if self.decoders is not None:
            raise RuntimeError("flush() is for encoding")
        streams = []
        for symbols, indexes in self.queued:
            encoder = BufferedRansEncoder()
            encode_symbols(encoder, symbols, indexes, self.tables)
            streams.append(encoder.flush())
        return streams
