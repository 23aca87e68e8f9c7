"""The GPU path on CPU: gradient accumulation, bf16 autocast with fp32 entropy models,
channels_last, DataLoader workers, torch.compile's error message."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from mvarchive.codecs import create_codec
from mvarchive.training import TrainConfig, train_codec_loop
from mvarchive.training.accelerate import CompileError, first_call, fp32_entropy_models, to_channels_last
from mvarchive.training.distributed import Rank
from mvarchive.training.loader import sampler_seed
from mvarchive.training.loop import split_parameters
from mvarchive.training.loss import RateDistortionLoss
from mvarchive.training.step import compute_gradients

from .odd_sizes import LAYOUT

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(data, out, **changes) -> TrainConfig:
    return TrainConfig(**{**dict(dataset=str(data), output_dir=str(out), codec="ldmic-fast", preset="tiny", steps=2,
                                 batch_size=1, crop=64, layout=LAYOUT, clip_grad_norm=0.0), **changes})


class _Fixed:
    def __init__(self, batches: list[torch.Tensor]) -> None:
        self.batches = list(batches)

    def next(self) -> torch.Tensor:
        return self.batches.pop(0)


def _gradients(model, batches, grad_accum: int) -> dict[str, torch.Tensor]:
    config = _config("d", "o", grad_accum=grad_accum, batch_size=batches[0].shape[0])
    main, aux = split_parameters(model)
    optimizer, aux_optimizer = torch.optim.Adam(main), torch.optim.Adam(aux)
    compute_gradients(model, model, _Fixed(batches), RateDistortionLoss(1024.0), optimizer, aux_optimizer, main, aux,
                      config, torch.device("cpu"), None, Rank(), first=True)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_two_accumulated_batches_give_the_gradient_of_one_twice_as_large():
    torch.manual_seed(0)
    model = create_codec("ldmic-fast", "tiny").eval()  # rounding instead of noise: no random draws
    x = torch.rand(4, 2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    whole = _gradients(model, [x], 1)
    accumulated = _gradients(model, [x[:2], x[2:]], 2)
    assert whole.keys() == accumulated.keys() and len(whole) > 10
    for name, grad in whole.items():
        torch.testing.assert_close(accumulated[name], grad, rtol=1e-4, atol=1e-7, msg=name)
    single = _gradients(model, [x[:2]], 1)
    assert any(not torch.allclose(single[n], whole[n], rtol=1e-3) for n in whole)  # the check can fail


def _entropy_model_dtypes(model, x) -> set[torch.dtype]:
    """Dtypes of every tensor going into or out of the entropy models in a bf16 forward."""
    from compressai.entropy_models import EntropyModel

    seen: set[torch.dtype] = set()

    def record(_, args, output) -> None:
        outputs = output if isinstance(output, tuple) else (output,)
        seen.update(t.dtype for t in (*args, *outputs) if isinstance(t, torch.Tensor))

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, EntropyModel)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    for handle in handles:
        handle.remove()
    return seen


def test_bf16_autocast_keeps_entropy_models_in_float32():
    torch.manual_seed(0)
    model = create_codec("ldmic-fast", "tiny")
    x = torch.rand(1, 2, 3, 64, 64)
    # bf16 latents: y + U(-1/2, 1/2) has a resolution of 0.5 once |y| > 64
    assert torch.bfloat16 in _entropy_model_dtypes(model, x)
    handles = fp32_entropy_models(model)
    assert _entropy_model_dtypes(model, x) == {torch.float32}
    for handle in handles:
        handle.remove()
    assert not any(m._forward_pre_hooks for m in model.modules())
    assert torch.bfloat16 in _entropy_model_dtypes(model, x)


def test_bf16_channels_last_and_accumulation_train_on_cpu(odd_data, tmp_path):
    result = train_codec_loop(_config(odd_data, tmp_path, precision="bf16", channels_last=True, grad_accum=2))
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(v)) for v in result.final.values())


def test_channels_last_leaves_3d_convolutions_alone():
    model = create_codec("bisic", "tiny")  # 3-D convolutions: 5-D weights
    to_channels_last(model)
    four = [p for p in model.parameters() if p.dim() == 4]
    five = [p for p in model.parameters() if p.dim() == 5]
    assert four and five
    assert all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in four
               if p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1)
    assert all(p.is_contiguous() for p in five)


def test_loader_workers_are_seeded_deterministically(odd_data, tmp_path):
    first = train_codec_loop(_config(odd_data, tmp_path / "a", loader_workers=2))
    second = train_codec_loop(_config(odd_data, tmp_path / "b", loader_workers=2))
    in_process = train_codec_loop(_config(odd_data, tmp_path / "c"))
    assert first.weights_digest == second.weights_digest != in_process.weights_digest
    seeds = {sampler_seed(0, rank, worker, start) for rank in (0, 1) for worker in (None, 0, 1) for start in (0, 5)}
    assert len(seeds) == 12 and sampler_seed(7) == 7


def test_compile_failure_is_one_line():
    def broken(_: torch.Tensor) -> None:
        raise RuntimeError("backend exploded\nlong traceback")

    with pytest.raises(CompileError, match=r"^torch.compile failed for codec ecsic: backend exploded; "
                                           r"train without --compile$"):
        first_call(broken, torch.zeros(1), compiled=True, codec="ecsic")
    with pytest.raises(RuntimeError, match="backend exploded"):
        first_call(broken, torch.zeros(1), compiled=False, codec="ecsic")


def test_gpu_settings_may_change_on_resume(odd_data, tmp_path):
    config = _config(odd_data, tmp_path, steps=1)
    train_codec_loop(config)
    resumed = train_codec_loop(dataclasses.replace(config, steps=2, precision="bf16", loader_workers=1))
    assert resumed.resumed_from == 1


@pytest.mark.skipif(not os.environ.get("MVARCHIVE_TEST_COMPILE"),
                    reason="torch.compile of even a tiny codec takes minutes on CPU (239 s for 2 steps of "
                           "ldmic-fast tiny, measured); set MVARCHIVE_TEST_COMPILE=1 to run it")
def test_compiled_training_runs(odd_data, tmp_path):
    result = train_codec_loop(_config(odd_data, tmp_path, compile=True))
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.final["loss"]))
