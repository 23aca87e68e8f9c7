"""Exact arithmetic for the entropy path: one thread, accumulations in float64.

Why: the decoder must derive the very same CDF-table indexes (and means) as the encoder, or
it loses the rest of the stream. In float32 a convolution's result depends on the order in
which its products are summed, and that order depends on the kernel library (oneDNN, MKL,
ATen), on the instruction set it picked (AVX-512, AVX2, ...) and on the thread count. A scale
that lands on the other side of a table boundary selects another table.

How: inside :func:`exact_entropy` a :class:`torch.overrides.TorchFunctionMode` intercepts every
operation that accumulates (convolutions, matrix products, normalizations, reductions) or
evaluates a transcendental function (exp, tanh, erf, softmax, GELU, ...). When all of its
floating-point inputs are float32 it runs the operation in float64 on exactly upcast inputs and
rounds the result back to float32. A float64 result differs between kernels by a few float64
ulps (~1e-16 relative), far below float32's resolution (~6e-8), so after rounding every
configuration gets the same float32 bits, unless a result falls within that tiny distance of a
float32 rounding midpoint (odds of order 1e-9 per value, and even then the one-ulp change must
also move a scale across a table boundary to matter). Element-wise float32 arithmetic (+, -, *,
/, comparisons, rounding, ReLU) is correctly rounded by IEEE 754 on every CPU and stays as is.
Values keep their float32 dtype outside the operations, so codec code needs no change.

Since float64 kernels are not oneDNN kernels, oneDNN's ISA choice does not enter at all.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.base import CompressionModel
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

#: Operations computed in float64 (by ``__name__``: matches torch.*, Tensor.* and F.* alike).
PROMOTED: frozenset[str] = frozenset(
    {
        # convolutions and products
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
        "convolution", "_convolution", "linear", "bilinear", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm",
        "mv", "dot", "vdot", "inner", "tensordot", "einsum", "addmm", "addmv", "addbmm", "baddbmm", "cdist",
        "scaled_dot_product_attention", "multi_head_attention_forward", "_native_multi_head_attention",
        "_transformer_encoder_layer_fwd",
        # normalizations and reductions
        "layer_norm", "group_norm", "batch_norm", "instance_norm", "rms_norm", "local_response_norm",
        "normalize", "sum", "mean", "nansum", "nanmean", "var", "std", "var_mean", "std_mean", "norm",
        "vector_norm", "cumsum", "cumprod", "prod", "logsumexp", "softmax", "log_softmax", "softmin",
        # resampling and pooling (weighted sums)
        "interpolate", "upsample", "grid_sample", "avg_pool1d", "avg_pool2d", "avg_pool3d",
        "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
        # transcendental and fused element-wise functions (vectorized approximations differ per ISA)
        "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "__pow__", "__rpow__", "sqrt",
        "rsqrt", "tanh", "sigmoid", "logsigmoid", "gelu", "silu", "mish", "softplus", "elu", "selu", "celu",
        "erf", "erfc", "erfinv", "sin", "cos", "tan", "atan", "atan2", "sinh", "cosh", "hardswish",
        "addcmul", "addcdiv", "lerp",
    }
)


#: Factories whose float32 values are computed (linspace: start + step * i); made in float64.
CREATED: frozenset[str] = frozenset({"linspace", "logspace"})


def _floating(values: list[Any]) -> list[torch.Tensor]:
    return [v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]


class Float64Mode(TorchFunctionMode):
    """Runs :data:`PROMOTED` operations on float32 inputs in float64, returning float32.

    Operations with any non-float32 floating input (already float64, half, ...) are left
    alone. Parameters are upcast once per mode (cached by identity and version).
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}

    def _up(self, value: Any) -> Any:
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.float32):
            return value
        if isinstance(value, torch.nn.Parameter):
            hit = self._cache.get(id(value))
            if hit is not None and hit[0] is value and hit[1] == value._version:
                return hit[2]
            up = value.detach().double()
            self._cache[id(value)] = (value, value._version, up)
            return up
        return value.double()

    @staticmethod
    def _down(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dtype == torch.float64:
            return value.float()
        return value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", None)
        if name in CREATED and "out" not in kwargs and kwargs.get("dtype", torch.get_default_dtype()) == torch.float32:
            return func(*args, **{**kwargs, "dtype": torch.float64}).float()
        if name in PROMOTED and "out" not in kwargs:
            leaves, _ = tree_flatten((args, kwargs))
            floats = _floating(leaves)
            if floats and all(t.dtype == torch.float32 for t in floats):
                result = func(*tree_map(self._up, args), **tree_map(self._up, kwargs))
                return tree_map(self._down, result)
        return func(*args, **kwargs)


_state = threading.local()  # per thread (torch's mode stack is per thread): nesting depth


@contextlib.contextmanager
def exact_entropy() -> Iterator[None]:
    """Run the enclosed entropy-parameter path deterministically (see the module doc).

    Encoder and decoder must both use it around everything that determines CDF indexes,
    means and symbols: hyper-synthesis, context models, entropy-parameter networks and
    the index computation. Re-entrant.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        if depth:
            yield
        else:
            with Float64Mode():
                yield
    finally:
        _state.depth = depth
        torch.set_num_threads(threads)


def exact_entropy_active() -> bool:
    """Whether the calling code runs inside :func:`exact_entropy`."""
    return getattr(_state, "depth", 0) > 0


class PromotedRows:
    """A stack of 1x1 convolutions / linear layers and activations on feature rows ``(n, C)``,
    computed exactly as under :class:`Float64Mode` but without its per-operation dispatch.

    For serial context models, which run such a stack thousands of times per group: the
    weights are upcast once (the mode caches parameters, not derived weights such as a
    flattened or masked one), every promoted operation (linear, GELU) runs the same float64
    ATen call on the same values and is rounded to float32, element-wise activations stay
    float32: the same bits as the plain modules inside :func:`exact_entropy`.
    """

    def __init__(self, layers: Any) -> None:
        self.steps: list[tuple[str, Any, Any]] = []
        for layer in layers:
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                if isinstance(layer, torch.nn.Conv2d) and (layer.kernel_size != (1, 1) or layer.groups != 1):
                    raise ValueError(f"PromotedRows takes 1x1 convolutions, got {layer}")
                bias = None if layer.bias is None else layer.bias.detach().double()
                self.steps.append(("linear", layer.weight.detach().flatten(1).double(), bias))
            elif isinstance(layer, torch.nn.GELU):
                self.steps.append(("gelu", layer.approximate, None))
            elif isinstance(layer, (torch.nn.LeakyReLU, torch.nn.ReLU)):
                self.steps.append(("elementwise", layer, None))
            else:
                raise ValueError(f"PromotedRows cannot run {layer}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch._C.DisableTorchFunction():
            for kind, a, b in self.steps:
                if kind == "linear":
                    x = torch.nn.functional.linear(x.double(), a, b).float()
                elif kind == "gelu":
                    x = torch.nn.functional.gelu(x.double(), approximate=a).float()
                else:
                    x = a(x)
        return x


def promoted_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` with float64 ``weight``/``bias`` (upcast once by the caller) on float32
    ``x``, rounded to float32: what :class:`Float64Mode` computes, without its dispatch."""
    with torch._C.DisableTorchFunction():
        return torch.nn.functional.linear(x.double(), weight, bias).float()


# --- CDF-table index search -----------------------------------------------------------------
_loop_build_indexes = GaussianConditional.build_indexes


def build_indexes(gc: GaussianConditional, scales: torch.Tensor) -> torch.Tensor:
    """CompressAI's ``GaussianConditional.build_indexes`` as one sorted search.

    CompressAI counts, in a Python loop over the scale table, the entries ``s`` with
    ``scale <= s``; the index is ``len(table) - 1`` minus that count, i.e. the number of
    entries of ``table[:-1]`` below the scale: ``bucketize(scale, table[:-1])``. Same
    comparisons, so the same int32 indexes bit for bit (NaN and inf included), but one
    operation instead of ~200: the loop dominated the serial context models' coding steps,
    all the more under :class:`Float64Mode`, which adds a little to every torch call.
    Tables that are not strictly increasing fall back to CompressAI's loop.
    """
    table = gc.scale_table
    if table.dim() != 1 or table.numel() < 2 or not bool((table[1:] > table[:-1]).all()):
        return _loop_build_indexes(gc, scales)
    scales = gc.lower_bound_scale(scales)
    dtype = torch.promote_types(scales.dtype, table.dtype)
    boundaries = table[:-1].to(device=scales.device, dtype=dtype)
    return torch.bucketize(scales.to(dtype).contiguous(), boundaries, out_int32=True)


# Installed once for every GaussianConditional (and subclasses such as the Laplace one that
# inherit it): codecs call ``gc.build_indexes`` directly; results are unchanged.
GaussianConditional.build_indexes = build_indexes


# --- CDF tables -----------------------------------------------------------------------------
_plain_update = CompressionModel.update


def update(model: CompressionModel, *args: Any, **kwargs: Any) -> bool:
    """CompressAI's ``CompressionModel.update`` (builds every CDF table) under :func:`exact_entropy`.

    The tables are rebuilt in every process that loads a codec (``load_codec`` calls
    ``update(force=True)``), from float32 ``exp``/``erfc``/``softplus``/matmul results whose
    last bit depends on the kernels (measured: ``MKL_ENABLE_INSTRUCTIONS=AVX2`` changes a
    scale-table entry by one ulp). Tables that differ between encoder and decoder corrupt
    the stream, so they are built with the same float64-then-float32 policy.
    """
    with exact_entropy():
        return _plain_update(model, *args, **kwargs)


update.__doc__ = (_plain_update.__doc__ or "") + "\n\n(mvarchive: " + (update.__doc__ or "").strip() + ")"
CompressionModel.update = update
