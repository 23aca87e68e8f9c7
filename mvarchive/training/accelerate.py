"""The GPU path: bf16 autocast with fp32 entropy models, channels_last, ``torch.compile``.

* ``precision="auto"`` is bf16 autocast on CUDA and fp32 elsewhere; ``"bf16"`` forces autocast
  (on CPU too, which is how it is tested); ``"fp32"`` turns it off. Under autocast the
  entropy models (CompressAI's ``EntropyBottleneck``/``GaussianConditional``, the Laplace
  models) run in float32 on float32 inputs: likelihoods of 1e-9 and the bits summed from them
  are beyond bf16's 8-bit mantissa. The loss is computed in float32 from there.
* ``channels_last`` (default on CUDA) converts the model's 4-D weights (:func:`to_channels_last`;
  ``Module.to(memory_format=...)`` refuses BiSIC's 5-D 3-D-conv weights); the codecs fold the
  views into the batch, so their 2-D convolutions see NCHW tensors the format applies to.
* ``compile=True`` wraps the forward in ``torch.compile``; compilation happens on the first
  batch, and a failure there is reported as one :class:`CompileError` line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from compressai.entropy_models import EntropyModel


class CompileError(RuntimeError):
    """``torch.compile`` could not compile the codec's forward."""


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bfloat16 when the forward runs under autocast, None for plain fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    return device.type == "cuda" if setting is None else setting


def to_channels_last(model: torch.nn.Module) -> None:
    """Store every 4-D parameter and buffer channels-last, in place (others are left as they are)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _is_entropy_model(module: torch.nn.Module) -> bool:
    return isinstance(module, EntropyModel) or type(module).__name__ in ("FactorizedLaplace",)


def _to_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    if isinstance(value, tuple):
        return tuple(_to_float(v) for v in value)
    return value


def fp32_entropy_models(model: torch.nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Run every entropy model of ``model`` outside autocast, on float32 inputs.

    Forward pre-/post-hooks (so the codec classes stay untouched); remove the returned
    handles to undo. Nested entropy models share the outer model's state.
    """
    handles = []
    for module in model.modules():
        if not _is_entropy_model(module):
            continue
        stack: list[contextlib.ExitStack] = []

        def enter(
            _: torch.nn.Module, args: tuple, kwargs: dict, stack: list[contextlib.ExitStack] = stack
        ) -> tuple[tuple, dict]:
            exits = contextlib.ExitStack()
            exits.enter_context(torch.autocast(device_type=_device_of(args), enabled=False))
            stack.append(exits)
            return _to_float(args), {k: _to_float(v) for k, v in kwargs.items()}

        def leave(
            _: torch.nn.Module, args: tuple, kwargs: dict, output: Any, stack: list[contextlib.ExitStack] = stack
        ) -> None:
            stack.pop().close()

        handles.append(module.register_forward_pre_hook(enter, with_kwargs=True))
        handles.append(module.register_forward_hook(leave, with_kwargs=True, always_call=True))
    return handles


def _device_of(args: tuple) -> str:
    for value in args:
        if isinstance(value, torch.Tensor):
            return value.device.type
    return "cpu"


def compiled_forward(model: torch.nn.Module, enabled: bool) -> Callable[..., Any]:
    """``model`` itself, or its ``torch.compile``-d forward."""
    if not enabled:
        return model
    try:
        return torch.compile(model)
    except Exception as exc:  # raised eagerly only for unsupported platforms/versions
        raise CompileError(f"torch.compile is not available here: {str(exc).splitlines()[0]}; "
                           "train without --compile") from exc


def first_call(forward: Callable[..., Any], batch: torch.Tensor, compiled: bool, codec: str) -> Any:
    """The first forward of a run; a compile failure becomes one :class:`CompileError` line."""
    if not compiled:
        return forward(batch)
    try:
        return forward(batch)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompileError(f"torch.compile failed for codec {codec}: {first}; train without --compile") from exc
