"""`mvarchive codecs` answers from a cache that is rebuilt whenever its inputs change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    """Every codec's tiny preset, and one paper preset with GDN, counted as the catalog counts
    them (meta device; CPU with centred fills) equal the counts of the model built as usual."""
    from mvarchive.cli.codec_counts import cpu_parameter_counts
    from mvarchive.codecs import create_codec

    for row in built:
        model = create_codec(row["name"], "tiny")
        assert row["presets"]["tiny"]["parameters"] == model.parameter_counts(), row["name"]
        assert cpu_parameter_counts(row["name"], "tiny") == model.parameter_counts(), row["name"]
        assert row["presets"]["tiny"]["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    ldmic = next(r for r in built if r["name"] == "ldmic-fast")
    assert ldmic["presets"]["paper"]["parameters"] == create_codec("ldmic-fast", "paper").parameter_counts()
    assert ldmic["min_views"] == 2 and ldmic["max_views"] is None and ldmic["views"] == "2+"
    json.dumps(built)  # what the cache stores


def test_first_call_leaves_the_point_cloud_stack_unimported(tmp_path) -> None:
    """``mvarchive codecs`` with an empty home builds the catalog without torch_geometric,
    scipy.stats or pandas (run as a user runs it; the interpreter's import log names every
    module it imported). torch._dynamo still comes, with GDN's init on the meta device."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "MVARCHIVE_STACK": "off"}
    command = [str(Path(sys.executable).parent / "mvarchive"), "--home", str(tmp_path / "home"), "codecs", "--json"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {row["name"] for row in json.loads(proc.stdout)} >= {"ldmic", "ldmic-fast"}
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and "compressai" in imported
    assert not imported & {"torch_geometric", "scipy.stats", "pandas"}
