"""One contract over every registered codec (tiny presets).

The coding tests use the golden test's *lively* weights (``tests/codecs/test_golden.py``):
seeded tiny weights scaled up so that a good share of the latent symbols are non-zero. An
untrained tiny codec codes (almost) all zeros, and a round trip of zeros proves nothing, so
every round trip here also asserts the share of non-zero ``y`` symbols.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mvarchive.codecs import BitstreamError, MultiViewCodec, create_codec, list_codecs, load_codec
from mvarchive.codecs.bitstream import pack, unpack
from mvarchive.integrity import Fingerprint, check_group
from mvarchive.metrics import to_uint8
from mvarchive.training.loss import RateDistortionLoss
from tests.codecs.helpers import random_views
from tests.codecs.test_golden import GAINS, lively

CODECS = [spec.name for spec in list_codecs()]
REPO = Path(__file__).resolve().parents[2]
MIN_NONZERO = 0.2  # share of non-zero y symbols a coding test needs to prove anything


def views_for(name: str) -> int:
    return 3 if name.startswith("ldmic") else 2


def nonzero_share(latents: dict[str, np.ndarray], key: str = "y") -> float:
    return float((latents[key] != 0).mean())


@pytest.fixture(scope="module")
def lively_codec() -> Callable[[str], MultiViewCodec]:
    """name -> its lively tiny codec, built once per module (building updates the CDF tables)."""
    built: dict[str, MultiViewCodec] = {}

    def get(name: str) -> MultiViewCodec:
        if name not in built:
            built[name] = lively(name, GAINS[name])
        return built[name]

    return get


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
def test_round_trip_is_exact(name, size, lively_codec):
    codec = lively_codec(name)
    x = random_views(views_for(name), *size, seed=2)
    encoded = codec.compress(x)
    assert nonzero_share(encoded.latents) >= MIN_NONZERO, f"{name}: too few non-zero symbols to prove anything"
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
def test_payload_corrupted_under_a_valid_checksum_fails_loudly(name, lively_codec):
    """The container's CRC catches damage after packing; a payload damaged before (or a
    forged checksum) passes it. The decode must still not hand back other pixels silently:
    it raises :class:`BitstreamError`, or restore's check against the encoder's fingerprints
    (what an archive stores per group) fails. The byte flipped is in the middle of a stream:
    an rANS decoder may never use a stream's last bits, whose flip then changes nothing."""
    codec = lively_codec(name)
    x = random_views(views_for(name), 64, 64, seed=3)
    encoded = codec.compress(x)
    assert nonzero_share(encoded.latents) >= MIN_NONZERO
    expected = Fingerprint.of(to_uint8(encoded.x_hat), encoded.latents)
    cameras = tuple(f"view{k}" for k in range(x.shape[0]))
    container = unpack(encoded.data)
    largest = max(range(len(container.streams)), key=lambda i: len(container.streams[i]))
    for index in sorted({0, largest}):  # the first stream (side information) and the largest (y)
        streams = list(container.streams)
        damaged = bytearray(streams[index])
        damaged[len(damaged) // 2] ^= 0x01
        streams[index] = bytes(damaged)
        forged = pack(container.codec_id, container.header, streams)
        assert unpack(forged).streams[index] == bytes(damaged)  # the container accepts it
        try:
            decoded = codec.decompress(forged, where="group 'g7'")
        except BitstreamError as error:
            assert "group 'g7'" in str(error)
            continue
        verdict = check_group("g7", cameras, expected, to_uint8(decoded.x_hat), decoded.latents)
        assert verdict.status.failed, f"{name} stream {index}: a damaged payload passed as {verdict.describe()}"


@pytest.mark.parametrize("name", CODECS)
def test_model_pickles_and_codes_identically(name, lively_codec):
    codec = lively_codec(name)
    x = random_views(views_for(name), 64, 64, seed=4)
    clone = pickle.loads(pickle.dumps(codec))
    encoded = codec.compress(x)
    assert nonzero_share(encoded.latents) >= MIN_NONZERO
    assert clone.compress(x).data == encoded.data


def test_fresh_process_decodes_bit_for_bit(tmp_path, lively_codec):
    for name in CODECS:
        encoded = lively_codec(name).compress(random_views(views_for(name), 97, 131, seed=5))
        assert nonzero_share(encoded.latents) >= MIN_NONZERO, name
        (tmp_path / f"{name}.bin").write_bytes(encoded.data)
        np.save(tmp_path / f"{name}.npy", encoded.x_hat.numpy())
    script = (
        "import sys, numpy as np, torch\n"
        "from mvarchive.codecs import list_codecs\n"
        "from tests.codecs.test_golden import GAINS, lively\n"
        "d = sys.argv[1]\n"
        "torch.set_num_threads(int(sys.argv[2]))  # the reconstruction is bit-exact at equal thread counts\n"
        "for spec in list_codecs():\n"
        "    codec = lively(spec.name, GAINS[spec.name])\n"
        "    out = codec.decompress(open(f'{d}/{spec.name}.bin','rb').read())\n"
        "    ref = np.load(f'{d}/{spec.name}.npy')\n"
        "    assert np.array_equal(out.x_hat.numpy(), ref), spec.name\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(torch.get_num_threads())],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_view_count_errors_name_the_codec_and_the_counts():
    """(Codecs that do accept the count are suggested at the command-line boundary.)"""
    ldmic = load_codec(name="ldmic-fast", preset="tiny")
    with pytest.raises(ValueError, match="'ldmic-fast' takes 2\\+ views, got 1"):
        ldmic.compress(random_views(1, 64, 64, seed=6))


def test_ldmic_takes_any_number_of_views(lively_codec):
    codec = lively_codec("ldmic-fast")
    for k in (2, 4):
        x = random_views(k, 64, 64, seed=7)
        encoded = codec.compress(x)
        assert nonzero_share(encoded.latents) >= MIN_NONZERO
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
def test_latents_decode_exactly_across_thread_counts(name, lively_codec):
    codec = lively_codec(name)
    x = random_views(views_for(name), 128, 192, seed=9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        encoded = codec.compress(x)
        torch.set_num_threads(1)
        decoded = codec.decompress(encoded.data)
    finally:
        torch.set_num_threads(threads)
    assert nonzero_share(encoded.latents) >= MIN_NONZERO
    for key in encoded.latents:
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])
    # the synthesis may round differently at another thread count: restore's rule tells a rounding
    # difference ("close") from a wrong picture (docs/determinism.md)
    expected = Fingerprint.of(to_uint8(encoded.x_hat), encoded.latents)
    cameras = tuple(f"view{k}" for k in range(x.shape[0]))
    verdict = check_group("g", cameras, expected, to_uint8(decoded.x_hat), decoded.latents)
    assert not verdict.status.failed, verdict.describe()
