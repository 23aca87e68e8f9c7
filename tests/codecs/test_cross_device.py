"""Archives encoded with the analysis on an accelerator decode exactly on CPU (docs/gpu.md).

No GPU here: bf16 autocast on CPU with channels_last stands in for the GPU's different
arithmetic. It changes some coded symbols compared with the canonical fp32 analysis (so the
stand-in really perturbs the analysis); a canonical CPU decoder must still recover exactly
the symbols that were coded and the reconstruction whose digest the encoder stores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvarchive.codecs import load_codec, weights_digest
from mvarchive.codecs.placement import AnalysisPlacement
from mvarchive.integrity import Fingerprint
from mvarchive.metrics import to_uint8

from .helpers import random_views

STAND_IN = AnalysisPlacement("cpu", "bf16", channels_last=True)
EXPECTED_ANALYSIS = {"ldmic-fast": ("g_a", "h_a"), "ecsic": ("encoder", "hyper_encoder")}


def _codec_with_live_latents(name: str):
    """A tiny codec whose analysis output is scaled up, so that most symbols are non-zero
    (an untrained codec codes all zeros, which would prove nothing)."""
    codec = load_codec(name=name, preset="tiny")
    with torch.no_grad():
        for module_name in codec.encoder_only_modules():
            convs = [m for m in codec.get_submodule(module_name).modules() if isinstance(m, torch.nn.Conv2d)]
            convs[-1].weight.mul_(20.0)
            convs[-1].bias.mul_(20.0)
    return codec


@pytest.mark.parametrize("name", sorted(EXPECTED_ANALYSIS))
def test_accelerated_analysis_decodes_exactly_on_cpu(name: str) -> None:
    codec = _codec_with_live_latents(name)
    assert codec.encoder_only_modules() == EXPECTED_ANALYSIS[name]
    digest = weights_digest(codec)
    x = random_views(2, 96, 128, seed=1)

    canonical = codec.compress(x)
    names = codec.encoder_only_modules()
    with codec.analysis_on(STAND_IN) as encoder:
        assert {type(encoder.get_submodule(n)).__name__ for n in names} == {"_OffloadedAnalysis"}
        # the codec itself is untouched (other threads of a worker may code with it meanwhile)
        assert not any(type(codec.get_submodule(n)).__name__ == "_OffloadedAnalysis" for n in names)
        offloaded_tops = {n.split(".")[0] for n in names}
        kept = [(top, module) for top, module in codec.named_children() if top not in offloaded_tops]
        assert all(getattr(encoder, top) is module for top, module in kept)
        accelerated = encoder.compress(x)
    assert weights_digest(codec) == digest

    for key in ("y", "z"):
        assert np.count_nonzero(accelerated.latents[key]) > accelerated.latents[key].size // 10, key
    changed = sum(int(np.count_nonzero(canonical.latents[k] != accelerated.latents[k])) for k in ("y", "z"))
    assert changed > 0, "bf16 analysis coded the same symbols as fp32: the stand-in tests nothing"

    decoded = codec.decompress(accelerated.data)  # the canonical CPU decoder
    for key in ("y", "z"):
        np.testing.assert_array_equal(decoded.latents[key], accelerated.latents[key])
    assert torch.equal(decoded.x_hat, accelerated.x_hat)
    threads = torch.get_num_threads()
    stored = Fingerprint.of(to_uint8(accelerated.x_hat), accelerated.latents, threads)
    assert Fingerprint.of(to_uint8(decoded.x_hat), decoded.latents, threads) == stored


def test_placement_validation() -> None:
    assert AnalysisPlacement().canonical
    assert AnalysisPlacement.for_device("cuda:1") == AnalysisPlacement("cuda:1", "bf16", True)
    assert AnalysisPlacement.for_device("cpu").canonical
    with pytest.raises(ValueError, match="analysis precision"):
        AnalysisPlacement("cpu", "fp16")
    with pytest.raises(ValueError, match="analysis device"):
        AnalysisPlacement("gpu")
