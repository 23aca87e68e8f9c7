"""The per-worker model cache: loads once, holds at most its bound, drops the least recently used."""

from __future__ import annotations

import types

import distributed
import pytest

from mvarchive.runtime.checkpoints import CodecRef
from mvarchive.runtime.model_cache import (
    CAPACITY_ENV,
    DEFAULT_CAPACITY,
    ModelCache,
    capacity_from_env,
    codec_on_worker,
    worker_codec_loader,
)


def test_the_bound_holds_and_the_least_recently_used_goes_first():
    builds: list[str] = []
    cache: ModelCache[str] = ModelCache(capacity=2)

    def get(key: str) -> str:
        return cache.get(key, lambda: builds.append(key) or key.upper())

    assert [get("a"), get("b"), get("a")] == ["A", "B", "A"]  # "a" is now the most recently used
    assert builds == ["a", "b"] and cache.keys() == ["b", "a"]
    get("c")  # full: "b", untouched longest, goes
    assert cache.keys() == ["a", "c"] and len(cache) == 2
    get("b")  # built again, and "a" goes
    assert builds == ["a", "b", "c", "b"] and cache.keys() == ["c", "b"]


def test_a_failed_build_leaves_nothing_behind():
    cache: ModelCache[str] = ModelCache(capacity=1)
    with pytest.raises(RuntimeError):
        cache.get("a", lambda: (_ for _ in ()).throw(RuntimeError("no such checkpoint")))
    assert cache.keys() == []
    assert cache.get("a", lambda: "A") == "A"


def test_the_bound_comes_from_the_workers_environment(monkeypatch):
    monkeypatch.delenv(CAPACITY_ENV, raising=False)
    assert capacity_from_env() == DEFAULT_CAPACITY
    monkeypatch.setenv(CAPACITY_ENV, "2")
    assert capacity_from_env() == 2
    monkeypatch.setenv(CAPACITY_ENV, "two")
    with pytest.raises(ValueError, match=CAPACITY_ENV):
        capacity_from_env()
    with pytest.raises(ValueError, match="at least one"):
        ModelCache(capacity=0)


def test_a_worker_keeps_its_codecs_up_to_the_bound(monkeypatch):
    worker = types.SimpleNamespace()
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    monkeypatch.setenv(CAPACITY_ENV, "1")
    first, second = CodecRef("ldmic-fast", "tiny", seed=1), CodecRef("ldmic-fast", "tiny", seed=2)
    codec = codec_on_worker(first)
    assert codec_on_worker(first) is codec and worker_codec_loader()(first) is codec  # one load, shared
    other = codec_on_worker(second)
    assert other is not codec and worker_codec_loader()(second) is other
    assert codec_on_worker(first) is not codec  # evicted by the bound of one: loaded again


def test_outside_a_worker_every_call_loads():
    ref = CodecRef("ldmic-fast", "tiny", seed=1)
    assert codec_on_worker(ref) is not codec_on_worker(ref)
