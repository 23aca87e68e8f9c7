"""The one checkpoint format (:mod:`mvarchive.codecs.checkpoint`): what training writes is what
every reader gets back, and a checkpoint whose weights were altered is refused, not used."""

from __future__ import annotations

import io

import pytest
import torch

from mvarchive.codecs import CheckpointError, create_codec, load_codec, save_checkpoint, weights_digest
from mvarchive.codecs.checkpoint import parse_checkpoint, read_checkpoint


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(3)
    model = create_codec("ldmic-fast", "tiny")
    path = tmp_path / "model.pt"
    return path, save_checkpoint(model, path, extra={"lmbda": 256.0}), model


def test_the_header_names_the_codec_and_its_digest(saved):
    path, digest, model = saved
    held = read_checkpoint(path)
    assert (held.codec, held.preset, held.held) == ("ldmic-fast", "tiny", "ldmic-fast:tiny")
    assert held.extra == {"lmbda": 256.0} and held.config == model.identity.config
    assert held.digest == digest == weights_digest(model)
    assert weights_digest(load_codec(path)) == digest


def test_altered_weights_are_refused(saved):
    path, digest, _ = saved
    payload = torch.load(path, map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel())
    payload["state_dict"][name] = payload["state_dict"][name] + 1e-3  # a flipped bit, say
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with pytest.raises(CheckpointError, match=rf"model\.pt is corrupted: .* digest {digest[:12]}"):
        parse_checkpoint(buffer.getvalue(), str(path))


def test_a_checkpoint_without_a_recorded_digest_still_loads(saved):
    path, digest, _ = saved
    payload = torch.load(path, map_location="cpu", weights_only=True)
    del payload["weights_digest"]  # as written before the header carried one
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    held = parse_checkpoint(buffer.getvalue(), "old.pt")
    assert held.digest is None
    assert weights_digest(load_codec(data=buffer.getvalue())) == digest


def test_objects_other_than_tensors_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"codec": "ldmic-fast", "preset": "tiny", "config": {}, "state_dict": {}, "x": object()}, path)
    with pytest.raises(CheckpointError, match="evil.pt is not an mvarchive checkpoint .*never unpickled"):
        read_checkpoint(path)
