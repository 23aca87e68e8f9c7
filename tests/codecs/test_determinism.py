"""Decoding on "another CPU": symbols exact, pixels within the documented tolerance.

Another CPU is simulated by decoding in fresh processes with oneDNN capped at AVX2 and with
oneDNN disabled and 2 threads (docs/determinism.md; the full study is
``benchmarks/determinism.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mvarchive.codecs import load_codec
from mvarchive.codecs.checkpoint import save_checkpoint
from mvarchive.codecs.determinism import PIXEL_TOLERANCE_LSB, decode_policy, policy_differences
from mvarchive.codecs.entropy import exact_entropy, exact_entropy_active
from mvarchive.metrics import to_tensor, to_uint8

DECODE = r"""
import json, sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
torch.backends.mkldnn.enabled = sys.argv[3] == "1"
from mvarchive.codecs import load_codec
from mvarchive.metrics import to_uint8
d = sys.argv[1]
codec = load_codec(f"{d}/codec.pt")
tables = {k: v.numpy() for k, v in codec.state_dict().items() if k.endswith(("_quantized_cdf", "scale_table"))}
ref_tables = np.load(f"{d}/tables.npz")
out = codec.decompress(open(f"{d}/stream.bin", "rb").read())
ref = np.load(f"{d}/latents.npz")
diff = np.abs(to_uint8(out.x_hat).astype(np.int16) - np.load(f"{d}/pixels.npy").astype(np.int16))
print(json.dumps({"tables_equal": sorted(tables) == sorted(ref_tables.files)
                  and all(np.array_equal(tables[k], ref_tables[k]) for k in tables),
                  "symbols_exact": all(np.array_equal(out.latents[k], ref[k]) for k in ref.files),
                  "max_lsb": int(diff.max()), "differing": int((diff > 0).sum())}))
"""


def _views() -> torch.Tensor:
    import skimage.data

    image = skimage.data.astronaut()
    return to_tensor(np.stack([image[20:156, 40:240], image[20:156, 56:256]]))  # 2 x 136 x 200


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """ldmic-fast tiny with its analysis outputs amplified (non-trivial latents, no training),
    encoded in this process with 1 thread and default kernels."""
    folder = tmp_path_factory.mktemp("determinism")
    codec = load_codec(name="ldmic-fast", preset="tiny", seed=0)
    with torch.no_grad():
        for layer, gain in ((codec.g_a[-1], 40.0), (codec.h_a[-1], 8.0)):
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
    save_checkpoint(codec, folder / "codec.pt")
    codec = load_codec(folder / "codec.pt")
    tables = {k: v.numpy() for k, v in codec.state_dict().items() if k.endswith(("_quantized_cdf", "scale_table"))}
    assert tables
    np.savez(folder / "tables.npz", **tables)
    result = codec.compress(_views())
    (folder / "stream.bin").write_bytes(result.data)
    np.savez(folder / "latents.npz", **result.latents)
    np.save(folder / "pixels.npy", to_uint8(result.x_hat))
    return folder, result


def _decode_elsewhere(folder, threads: int, onednn: bool, env: dict[str, str]) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY") and not k.endswith("_CPU_ISA")}
    environment.update(env)
    run = subprocess.run(
        [sys.executable, "-c", DECODE, str(folder), str(threads), "1" if onednn else "0"],
        env=environment, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_latents_are_not_trivial(encoded):
    _, result = encoded
    assert np.mean(result.latents["y"] != 0) > 0.2
    assert np.any(result.latents["z"] != 0)


@pytest.mark.parametrize(
    "threads, onednn, env",
    [
        (1, True, {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}),
        (2, False, {}),
        (1, True, {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
    ],
    ids=["onednn-avx2", "no-onednn-2-threads", "all-avx2"],
)
def test_symbols_exact_pixels_within_tolerance_on_another_cpu(encoded, threads, onednn, env):
    folder, _ = encoded
    report = _decode_elsewhere(folder, threads, onednn, env)
    assert report["tables_equal"], report  # CDF tables are rebuilt at load: same on every CPU
    assert report["symbols_exact"], report
    assert report["max_lsb"] <= PIXEL_TOLERANCE_LSB, report


def test_exact_entropy_rounds_float64_results_to_float32():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 9, 9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.nn.functional.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1).float()
        with exact_entropy():
            assert exact_entropy_active() and torch.get_num_threads() == 1
            got = conv(x)
    assert not exact_entropy_active()
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_build_indexes_matches_compressai_loop():
    from compressai.entropy_models import GaussianConditional

    from mvarchive.codecs.entropy import exact
    from mvarchive.codecs.laplace import LaplaceConditional, laplace_scale_table

    gaussian, laplace = GaussianConditional(None), LaplaceConditional()
    gaussian.update_scale_table(torch.exp(torch.linspace(-2.2, 5.5, 64)))
    laplace.update_scale_table(laplace_scale_table())
    for gc in (gaussian, laplace):
        t = gc.scale_table
        special = torch.tensor([float("nan"), float("inf"), -float("inf"), -1.0, 0.0])
        scales = torch.cat([torch.rand(5000, generator=torch.Generator().manual_seed(1)) * 300, t,
                            torch.nextafter(t, torch.zeros(())), torch.nextafter(t, torch.full((), 1e9)), special])
        for x in (scales.reshape(1, -1)[:, ::2], scales.double()):  # non-contiguous; float64
            assert torch.equal(exact._loop_build_indexes(gc, x), gc.build_indexes(x))


def test_decode_policy_records_what_decoding_depends_on():
    policy = decode_policy()
    for key in ("mvarchive", "torch", "compressai", "synthesis_threads", "mkldnn_available", "mkldnn_enabled",
                "isa_cap"):
        assert key in policy
    json.dumps(policy)
    assert policy_differences(policy) == {}
    assert policy_differences({**policy, "synthesis_threads": 99})["synthesis_threads"][0] == 99
