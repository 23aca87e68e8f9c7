"""Thin helpers over CompressAI's rANS coder: symbols and CDF-table indexes in, bytes out."""

from __future__ import annotations

import contextlib
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
    def of(cls, model: EntropyModel) -> "CdfTables":
        return cls(
            cdfs=model.quantized_cdf.tolist(),
            lengths=model.cdf_length.reshape(-1).int().tolist(),
            offsets=model.offset.reshape(-1).int().tolist(),
        )


def encode_symbols(
    encoder: BufferedRansEncoder, symbols: torch.Tensor, indexes: torch.Tensor, tables: CdfTables
) -> None:
    """Queue integer symbols, each coded with the CDF its index selects."""
    encoder.encode_with_indexes(
        symbols.reshape(-1).int().tolist(),
        indexes.reshape(-1).int().tolist(),
        tables.cdfs,
        tables.lengths,
        tables.offsets,
    )


def decode_symbols(decoder: RansDecoder, indexes: torch.Tensor, tables: CdfTables) -> torch.Tensor:
    """Decode as many symbols as ``indexes`` has entries, returned in its shape."""
    values = decoder.decode_stream(
        indexes.reshape(-1).int().tolist(), tables.cdfs, tables.lengths, tables.offsets
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


class SymbolCoder:
    """The rANS side of one group: one stream per view; encoder and decoder call :meth:`code` alike.

    Encoding queues every symbol and its CDF index and hands them to the rANS encoder once per
    view at the end (:meth:`flush`): CompressAI's coder converts the full CDF tables on every
    call, which would dominate a serial scan. Decoding, which must go step by step, passes
    only the tables a step uses (indexes remapped); the coded bytes depend on a table's
    content, not on its position in the list.
    """

    def __init__(self, tables: CdfTables, views: int, decoders: list[RansDecoder] | None = None) -> None:
        if decoders is not None and len(decoders) != views:
            raise ValueError(f"{views} views need {views} decoders, got {len(decoders)}")
        self.tables = tables
        self.views = views
        self.decoders = decoders
        self.queued: list[tuple[list[int], list[int]]] = [([], []) for _ in range(views)]

    @property
    def decoding(self) -> bool:
        return self.decoders is not None

    def code(self, indexes: torch.Tensor, means: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Code row v of ``indexes`` (and of ``y`` when encoding) in view v's stream; returns
        the integer symbols ``round(y - means)``, decoded or computed."""
        if self.decoders is None:
            if y is None:
                raise ValueError("encoding needs the latent values")
            q = torch.round(y - means).int()
            for view in range(self.views):
                symbols, idx = self.queued[view]
                symbols.extend(q[view].reshape(-1).tolist())
                idx.extend(indexes[view].reshape(-1).int().tolist())
            return q
        return torch.stack(
            [self._decode(decoder, indexes[view]) for view, decoder in enumerate(self.decoders)]
        ).to(means.device)

    def _decode(self, decoder: RansDecoder, indexes: torch.Tensor) -> torch.Tensor:
        flat = indexes.reshape(-1).int().tolist()
        used = sorted(set(flat))
        position = {index: i for i, index in enumerate(used)}
        t = self.tables
        values = decoder.decode_stream(
            [position[i] for i in flat],
            [t.cdfs[i] for i in used], [t.lengths[i] for i in used], [t.offsets[i] for i in used],
        )
        return torch.tensor(values, dtype=torch.int32).reshape(indexes.shape)

    def flush(self) -> list[bytes]:
        """The encoded streams, one per view (encoding only)."""
        if self.decoders is not None:
            raise RuntimeError("flush() is for encoding")
        streams = []
        for symbols, idx in self.queued:
            encoder = BufferedRansEncoder()
            encoder.encode_with_indexes(symbols, idx, self.tables.cdfs, self.tables.lengths, self.tables.offsets)
            streams.append(encoder.flush())
        return streams
