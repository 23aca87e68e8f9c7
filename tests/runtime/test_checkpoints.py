"""Checkpoint references: the codecs floor reads paths and URLs, registry URIs are read above it."""

from __future__ import annotations

import pytest

from mvarchive.codecs import load_codec, save_checkpoint, weights_digest
from mvarchive.codecs.checkpoint import CheckpointError, read_checkpoint_bytes
from mvarchive.runtime.checkpoints import CodecRef, fetch_checkpoint_bytes


def test_codecs_refuse_a_registry_uri_and_say_where_it_is_read():
    with pytest.raises(CheckpointError, match="models:/mvarchive-ldmic-fast@champion.*runtime.checkpoints"):
        read_checkpoint_bytes("models:/mvarchive-ldmic-fast@champion")


def test_a_path_reads_the_same_through_either_floor(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(load_codec(name="ldmic-fast", preset="tiny", seed=3), path)
    assert fetch_checkpoint_bytes(path) == read_checkpoint_bytes(path) == path.read_bytes()


def test_a_reference_loads_the_planned_weights_or_refuses(tmp_path):
    path = tmp_path / "ck.pt"
    model = load_codec(name="ldmic-fast", preset="tiny", seed=3)
    save_checkpoint(model, path)
    digest = weights_digest(model)
    assert weights_digest(CodecRef("ldmic-fast", "tiny", str(path), digest=digest).load()) == digest
    with pytest.raises(CheckpointError, match="expected"):
        CodecRef("ldmic-fast", "tiny", str(path), digest="0" * 64).load()
