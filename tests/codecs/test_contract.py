"""One contract over every registered codec (tiny presets)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from mvarchive.codecs import BitstreamError, create_codec, list_codecs, load_codec
from mvarchive.training.loss import RateDistortionLoss
from tests.codecs.helpers import random_views

CODECS = [spec.name for spec in list_codecs()]


def views_for(name: str) -> int:
    return 3 if name.startswith("ldmic") else 2


@pytest.mark.parametrize("name", CODECS)
def test_forward_is_finite_and_every_parameter_learns(name):
    torch.manual_seed(0)
    codec = create_codec(name, "tiny").train()
    x = random_views(views_for(name), 64, 64, seed=1)[None].repeat(2, 1, 1, 1, 1)
    out = codec(x)
    assert out["x_hat"].shape == x.shape
    assert torch.isfinite(out["x_hat"]).all()
    for lik in out["likelihoods"].values():
        assert lik.shape[:2] == x.shape[:2]
        assert torch.isfinite(lik).all() and (lik > 0).all() and (lik <= 1).all()
    loss = RateDistortionLoss(1024)(out, x)["loss"] + codec.aux_loss()
    loss.backward()
    missing = [n for n, p in codec.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert any(p.grad.abs().sum() > 0 for p in codec.parameters())


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
def test_round_trip_is_exact(name, size):
    codec = load_codec(name=name, preset="tiny")
    x = random_views(views_for(name), *size, seed=2)
    encoded = codec.compress(x)
    decoded = codec.decompress(encoded.data)
    assert decoded.x_hat.shape == x.shape
    assert torch.equal(decoded.x_hat, encoded.x_hat)
    assert encoded.latents.keys() == decoded.latents.keys()
    for key in encoded.latents:
        assert encoded.latents[key].dtype == np.int32
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])
        assert encoded.latents[key].shape[0] == x.shape[0]  # leading view axis
    assert decoded.header["sizes"] == [list(size)] * x.shape[0]


@pytest.mark.parametrize("name", CODECS)
def test_corrupted_truncated_and_foreign_streams_raise(name):
    codec = load_codec(name=name, preset="tiny")
    data = codec.compress(random_views(views_for(name), 64, 64, seed=3)).data
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(BitstreamError, match="group 'g7'"):
        codec.decompress(bytes(flipped), where="group 'g7'")
    with pytest.raises(BitstreamError, match="truncated"):
        codec.decompress(data[: len(data) - 9], where="group 'g7'")
    other = next(n for n in CODECS if n != name)
    with pytest.raises(BitstreamError, match="written by codec"):
        load_codec(name=other, preset="tiny").decompress(data)


@pytest.mark.parametrize("name", CODECS)
def test_model_pickles_and_codes_identically(name):
    codec = load_codec(name=name, preset="tiny")
    x = random_views(views_for(name), 64, 64, seed=4)
    clone = pickle.loads(pickle.dumps(codec))
    assert clone.compress(x).data == codec.compress(x).data


def test_fresh_process_decodes_bit_for_bit(tmp_path):
    for name in CODECS:
        codec = load_codec(name=name, preset="tiny")
        encoded = codec.compress(random_views(views_for(name), 97, 131, seed=5))
        (tmp_path / f"{name}.bin").write_bytes(encoded.data)
        np.save(tmp_path / f"{name}.npy", encoded.x_hat.numpy())
    script = (
        "import sys, numpy as np, torch\n"
        "from mvarchive.codecs import load_codec, list_codecs\n"
        "d = sys.argv[1]\n"
        "torch.set_num_threads(int(sys.argv[2]))  # the reconstruction is bit-exact at equal thread counts\n"
        "for spec in list_codecs():\n"
        "    codec = load_codec(name=spec.name, preset='tiny')\n"
        "    out = codec.decompress(open(f'{d}/{spec.name}.bin','rb').read())\n"
        "    ref = np.load(f'{d}/{spec.name}.npy')\n"
        "    assert np.array_equal(out.x_hat.numpy(), ref), spec.name\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(torch.get_num_threads())],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_view_count_errors_name_alternatives():
    ldmic = load_codec(name="ldmic-fast", preset="tiny")
    with pytest.raises(ValueError, match="takes 2\\+ views, got 1.*single-view-mbt2018-mean"):
        ldmic.compress(random_views(1, 64, 64, seed=6))


def test_ldmic_takes_any_number_of_views():
    codec = load_codec(name="ldmic-fast", preset="tiny")
    for k in (2, 4):
        x = random_views(k, 64, 64, seed=7)
        encoded = codec.compress(x)
        assert torch.equal(codec.decompress(encoded.data).x_hat, encoded.x_hat)


def test_paper_presets_match_ldmic_table_2():
    for name in ("ldmic", "ldmic-fast"):
        counts = create_codec(name, "paper").parameter_counts()
        assert abs(counts["encoder"] / 11.24e6 - 1) < 0.02, counts
        assert abs(counts["decoder"] / 15.24e6 - 1) < 0.02, counts


def test_coding_without_tables_says_how_to_fix():
    codec = create_codec("ldmic-fast", "tiny").eval()
    with pytest.raises(RuntimeError, match="update"):
        codec.compress(random_views(2, 64, 64, seed=8))


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(KeyError, match="registered codecs"):
        create_codec("nope")
    with pytest.raises(KeyError, match="presets"):
        create_codec("ldmic", "huge")
    with pytest.raises(TypeError, match="no option"):
        create_codec("ldmic", "tiny", channels=3)


@pytest.mark.parametrize("name", CODECS)
def test_latents_decode_exactly_across_thread_counts(name):
    codec = load_codec(name=name, preset="tiny")
    x = random_views(views_for(name), 128, 192, seed=9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        encoded = codec.compress(x)
        torch.set_num_threads(1)
        decoded = codec.decompress(encoded.data)
    finally:
        torch.set_num_threads(threads)
    for key in encoded.latents:
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])
    assert (decoded.x_hat - encoded.x_hat).abs().max() < 1e-4
