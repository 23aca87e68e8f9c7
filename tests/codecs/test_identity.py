"""A codec is complete at construction: built from its config alone it knows the registered
name its bitstreams record, and views outside its range are refused with a ViewCountError."""

from __future__ import annotations

import pytest
import torch

from mvarchive.codecs import ViewCountError, ViewRange, check_view_count, create_codec
from mvarchive.codecs.ldmic import LDMIC, LDMICConfig


def test_a_codec_built_from_its_config_writes_what_the_registered_codec_reads():
    torch.manual_seed(0)
    bare = LDMIC(LDMICConfig(32, 32, "checkerboard")).eval()
    bare.update(force=True)
    assert bare.identity == create_codec("ldmic-fast", "tiny").identity
    views = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    data = bare.compress(views).data
    registered = create_codec("ldmic-fast", "tiny").eval()
    registered.load_state_dict(bare.state_dict())
    registered.update(force=True)
    assert torch.equal(registered.decompress(data).x_hat, bare.decompress(data).x_hat)


def test_the_context_model_tells_ldmic_from_ldmic_fast_and_options_keep_the_name():
    assert LDMIC(LDMICConfig(32, 32, "autoregressive", attention_heads=4)).identity.name == "ldmic"
    identity = LDMIC(LDMICConfig(64, 64, "checkerboard")).identity
    assert identity.name == "ldmic-fast" and identity.config["N"] == 64
    assert create_codec("ldmic-fast", identity.preset, **identity.config).identity == identity


def test_view_ranges_read_as_users_write_them():
    assert [str(ViewRange(2)), str(ViewRange(2, 2)), str(ViewRange(1, 3))] == ["2+", "2", "1-3"]
    assert ViewRange(2).accepts(7) and not ViewRange(2, 2).accepts(3) and not ViewRange(2).accepts(1)


def test_a_refused_view_count_names_alternatives_only_where_all_codecs_are_known():
    codec = create_codec("bisic-fast", "tiny")
    with pytest.raises(ViewCountError, match="takes 2 views, got 3$"):
        codec.check_views(3)
    with pytest.raises(ViewCountError, match="got 3; codecs that take 3 views: ldmic, ldmic-fast, vemic"):
        check_view_count(codec, 3)
