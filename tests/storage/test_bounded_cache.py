"""The in-process caches forget their oldest entries first and never grow past their limit."""

from __future__ import annotations

from openplatform.storage.cache import BoundedCache


def test_oldest_entries_go_first() -> None:
    cache = BoundedCache(3)
    for key in "abcde":
        cache.put(key, key.upper())
    assert list(cache) == ["c", "d", "e"]
    cache.put("c", "again")  # an update keeps its place and evicts nothing
    assert list(cache.items()) == [("c", "again"), ("d", "D"), ("e", "E")]


def test_zero_limit_caches_nothing() -> None:
    cache = BoundedCache(0)
    cache.put("a", 1)
    assert not cache
