"""`mvarchive codecs` answers from a cache that is rebuilt whenever its inputs change."""

from __future__ import annotations

import json

import pytest

from mvarchive.cli import codec_catalog
from mvarchive.cli.codec_catalog import catalog, catalog_digest


@pytest.fixture(scope="module")
def built() -> list[dict]:
    return codec_catalog.build_catalog()


def test_catalog_is_cached_and_rebuilt_when_stale(tmp_path, monkeypatch, built) -> None:
    calls = []
    monkeypatch.setattr(codec_catalog, "build_catalog", lambda: calls.append(1) or built)
    first = catalog(tmp_path)
    assert calls == [1] and first == built
    assert catalog(tmp_path) == built and calls == [1]  # answered from the cache
    (cached,) = tmp_path.glob("codecs-*.json")
    assert cached.name == f"codecs-{catalog_digest()[:16]}.json"
    cached.write_text("{not json")  # a damaged cache is rebuilt, not trusted
    assert catalog(tmp_path) == built and calls == [1, 1]
    monkeypatch.setattr(codec_catalog, "catalog_digest", lambda: "f" * 64)  # sources changed
    assert catalog(tmp_path) == built and calls == [1, 1, 1]
    assert [p.name for p in tmp_path.glob("codecs-*.json")] == ["codecs-ffffffffffffffff.json"]


def test_digest_follows_the_codec_sources(tmp_path) -> None:
    before = catalog_digest()
    fake = tmp_path / "codecs"
    fake.mkdir()
    (fake / "ldmic.py").write_text("x = 1\n")
    one = catalog_digest(fake)
    (fake / "ldmic.py").write_text("x = 2\n")
    assert len({before, one, catalog_digest(fake)}) == 3


def test_catalog_counts_are_the_models(built) -> None:
    from mvarchive.codecs import create_codec

    row = next(r for r in built if r["name"] == "ldmic-fast")
    model = create_codec("ldmic-fast", "tiny")
    assert row["presets"]["tiny"]["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert row["min_views"] == 2 and row["max_views"] is None and row["views"] == "2+"
    json.dumps(built)  # what the cache stores
