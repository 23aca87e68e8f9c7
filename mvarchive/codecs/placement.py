"""Where the encoder-only analysis transforms run while compressing (docs/gpu.md).

Only modules whose outputs merely decide which symbols the encoder writes may move (found by
:meth:`.base.MultiViewCodec.encoder_only_modules`); their outputs come back as contiguous CPU
float32 before quantization, so the entropy path, the CDF indexes and the stored
reconstruction stay canonical and a CPU decoder recovers exactly what was coded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AnalysisPlacement:
    """Where the encoder-only analysis transforms run while compressing (docs/gpu.md).

    ``precision`` is "fp32" or "bf16" (autocast); ``channels_last`` changes the memory
    format of the accelerator copy. The default (CPU, fp32) is the canonical path.
    """

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"analysis precision {self.precision!r} is not 'fp32' or 'bf16'")
        device = self.device.strip().lower()
        if not (device in ("cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ValueError(f"analysis device {self.device!r} is not one of 'cpu', 'cuda', 'cuda:N'")

    @classmethod
    def for_device(cls, device: str) -> AnalysisPlacement:
        """The placement an encode task uses for ``device``: CUDA runs bf16 and channels_last."""
        if device.strip().lower().startswith("cuda"):
            return cls(device, "bf16", True)
        return cls(device)

    @property
    def canonical(self) -> bool:
        return self.device.strip().lower() == "cpu" and self.precision == "fp32"


class _OffloadedAnalysis(torch.nn.Module):
    """An encoder-only module run elsewhere: inputs go to its device, outputs come back as
    contiguous CPU float32, which is all the canonical entropy path ever sees."""

    def __init__(self, inner: torch.nn.Module, placement: AnalysisPlacement) -> None:
        super().__init__()
        self.inner = inner
        self.device = torch.device(placement.device)
        self.bf16 = placement.precision == "bf16"
        self.channels_last = placement.channels_last

    def _to_device(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        value = value.to(self.device)
        if self.channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        from torch.utils._pytree import tree_map

        args, kwargs = tree_map(self._to_device, (args, kwargs))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.inner(*args, **kwargs)
        return tree_map(_canonical_tensor, out)


def _canonical_tensor(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().to("cpu", torch.float32).contiguous()
    return value


def with_offloaded(module: torch.nn.Module, names: Iterable[str], placement: AnalysisPlacement) -> Any:
    """A shallow copy of ``module`` whose named (dotted) submodules are device copies on
    ``placement``, wrapped to hand back CPU float32; ``module`` itself is never modified."""
    replacements: dict[str, torch.nn.Module] = {}
    for name in names:
        moved = copy.deepcopy(module.get_submodule(name)).to(placement.device)
        if placement.channels_last:
            moved = moved.to(memory_format=torch.channels_last)
        replacements[name] = _OffloadedAnalysis(moved.eval(), placement)
    return _with_modules(module, replacements)


def _with_modules(module: torch.nn.Module, replacements: dict[str, torch.nn.Module]) -> Any:
    """A shallow copy of ``module`` with the named (dotted) submodules replaced; the copies along
    each path get their own child tables, everything else is shared with ``module``."""
    clone = copy.copy(module)
    object.__setattr__(clone, "_modules", dict(module._modules))
    nested: dict[str, dict[str, torch.nn.Module]] = {}
    for name, replacement in replacements.items():
        head, _, rest = name.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = replacement
        else:
            clone._modules[head] = replacement
    for head, inner in nested.items():
        clone._modules[head] = _with_modules(module.get_submodule(head), inner)
    return clone
