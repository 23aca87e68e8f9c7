"""Thin helpers over CompressAI's rANS coder: symbols and CDF-table indexes in, bytes out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyModel


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


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the entropy-parameter path on one CPU thread while coding.

    CPU convolutions may round differently with different thread counts; a scale that
    lands on the other side of a CDF-table boundary would make the decoder pick another
    table and lose the rest of the stream. With one thread on both sides, an encoder on a
    16-core worker and a decoder on a laptop compute the same indexes (same torch build).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
