"""Parameter counts of a codec preset without computing its initial weights (for ``mvarchive codecs``).

Counting needs shapes only. Each preset is built on the meta device (no memory, no values), under
:class:`MetaOnMixedDevices`: CompressAI's GDN mixes a CPU constant into its init, which used to
fail there, so four codecs were built a second time on the CPU, drawing every random weight
(``uniform_`` alone was 2.9 of 3.6 s for the three largest paper presets). Where meta still fails
(a codec that needs values while it is built), the CPU build runs under :class:`CentredFills`.
GDN's init on meta still imports ``torch._dynamo`` (torch's meta ``maximum`` is a Python
reference wrapped in ``torch._disable_dynamo``): about 1.4 s idle, once per process.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

__all__ = ["CentredFills", "MetaOnMixedDevices", "cpu_parameter_counts", "parameter_counts"]


class MetaOnMixedDevices(TorchFunctionMode):
    """A call mixing meta tensors with tensors elsewhere gets all of them on meta."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if any(t.is_meta for t in tensors) and not all(t.is_meta for t in tensors):
            args, kwargs = tree_map(_to_meta, args), tree_map(_to_meta, kwargs)
        return func(*args, **kwargs)


def _to_meta(value: Any) -> Any:
    return value.to("meta") if isinstance(value, torch.Tensor) and not value.is_meta else value


class CentredFills(TorchFunctionMode):
    """While active, ``Tensor.uniform_(a, b)`` fills with ``(a + b) / 2`` and
    ``Tensor.normal_(mean, std)`` with ``mean`` (what ``torch.nn.init`` and layers'
    ``reset_parameters`` end in): a plain ``fill_`` with a value the initialiser could have drawn
    (not leaving weights unwritten: ``trunc_normal_`` redraws out-of-range values in a loop)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.Tensor.uniform_:
            low, high = _arguments(args, kwargs, ("from", "to"), (0.0, 1.0))
            return args[0].fill_((low + high) / 2)
        if func is torch.Tensor.normal_:
            mean, _ = _arguments(args, kwargs, ("mean", "std"), (0.0, 1.0))
            return args[0].fill_(mean)
        return func(*args, **kwargs)


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, str],
               defaults: tuple[float, float]) -> tuple[float, float]:
    values = [args[i + 1] if len(args) > i + 1 else kwargs.get(name, default)
              for i, (name, default) in enumerate(zip(names, defaults, strict=True))]
    return float(values[0]), float(values[1])


def parameter_counts(name: str, preset: str) -> dict[str, int]:
    """``create_codec(name, preset).parameter_counts()``, built on meta, else on the CPU with
    centred fills."""
    from mvarchive.codecs import create_codec

    try:
        with torch.device("meta"), MetaOnMixedDevices():
            return create_codec(name, preset).parameter_counts()
    except (RuntimeError, NotImplementedError):
        return cpu_parameter_counts(name, preset)


def cpu_parameter_counts(name: str, preset: str) -> dict[str, int]:
    """The same counts from a CPU build under :class:`CentredFills`."""
    from mvarchive.codecs import create_codec

    with CentredFills():
        return create_codec(name, preset).parameter_counts()
