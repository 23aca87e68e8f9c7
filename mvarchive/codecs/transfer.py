"""Building a codec from another model's weights (VEMIC from MLIC++ or ELIC, CAMSIC from ELIC).

:func:`source_state` reads what the user points at (a checkpoint path or payload, a bare state
dict, a module); :func:`load_layers` copies whole layers whose tensors all fit and fills a
:class:`LoadReport` saying what loaded, what is fresh and what did not fit, so nothing is
silently half-initialized.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .base import MultiViewCodec

#: CDF-table buffers: rebuilt from the loaded weights (``update(force=True)``), never compared.
TABLE_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table")


@dataclass
class LoadReport:
    """Which tensors of a codec built from another model's weights came from the source,
    which are fresh, which did not fit.

    ``loaded``, ``new`` and ``skipped`` partition the target's state-dict names: ``skipped`` ones had
    a mapped source tensor of another shape (``reasons`` says which) and keep their fresh
    initialization, as ``new`` ones do. ``unused`` lists source tensors that fed nothing.
    CDF-table buffers are rebuilt from the loaded weights afterwards (``update(force=True)``).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    target: str = "VEMIC"

    def summary(self) -> str:
        def groups(names: list[str]) -> str:
            counts: dict[str, int] = {}
            for name in names:
                key = ".".join(name.split(".")[:2])
                counts[key] = counts.get(key, 0) + 1
            return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items())) or "-"

        lines = [
            f"{self.target} weights from {self.source}:",
            f"  loaded  {len(self.loaded):5d} tensors: {groups(self.loaded)}",
            f"  new     {len(self.new):5d} tensors: {groups(self.new)}",
            f"  skipped {len(self.skipped):5d} tensors: {groups(self.skipped)}",
        ]
        lines += [f"    {name}: {self.reasons[name]}" for name in self.skipped]
        lines.append(f"  unused source tensors: {len(self.unused)} ({groups(self.unused)})")
        return "\n".join(lines)


def source_state(source: Any, codec: str | None = None) -> Mapping[str, torch.Tensor]:
    """The state dict of ``source``: a checkpoint path (read with ``weights_only``), a payload
    written by ``save_checkpoint`` (which must hold ``codec`` when given), a dict with a
    ``state_dict`` entry, a bare state dict, or a module."""
    if isinstance(source, (str, Path)):
        source = torch.load(Path(source), map_location="cpu", weights_only=True)
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, Mapping):
        written_by = source.get("codec")
        if codec is not None and isinstance(written_by, str) and written_by != codec:
            raise ValueError(f"checkpoint holds codec {written_by!r}, not {codec!r}")
        if isinstance(source.get("state_dict"), Mapping):
            return source["state_dict"]
        return source
    raise TypeError(f"expected a state dict, a checkpoint dict or path, or a module; got {type(source).__name__}")


def load_layers(
    model: MultiViewCodec,
    state: Mapping[str, torch.Tensor],
    layers: list[list[tuple[str | None, str]]],
    report: LoadReport,
) -> None:
    """Copy every layer (pairs of source and target state-dict names; None: no source tensor)
    whose tensors all exist and match in shape, fill ``report``, and leave ``model`` in eval
    mode with its CDF tables rebuilt from the loaded weights."""
    target = model.state_dict()
    new_state = dict(target)
    covered: set[str] = set()
    used: set[str] = set()
    for members in layers:
        mismatch = []
        for src, dst in members:
            if src is None or src not in state:
                mismatch.append(f"{src or dst}: no source tensor")
            elif not dst.endswith(TABLE_BUFFERS) and state[src].shape != target[dst].shape:
                mismatch.append(f"{src} {tuple(state[src].shape)} vs {tuple(target[dst].shape)}")
        for src, dst in members:
            covered.add(dst)
            if src is not None and src in state:
                used.add(src)
            if mismatch or src is None:
                report.skipped.append(dst)
                report.reasons[dst] = "shape mismatch: " + "; ".join(mismatch)
            else:
                new_state[dst] = state[src].detach().clone()
                report.loaded.append(dst)
    report.new = [k for k in target if k not in covered]
    report.unused = [k for k in state if k not in used]
    model.load_state_dict(new_state)  # CompressionModel resizes CDF-table buffers
    model.eval()
    model.update(force=True)
