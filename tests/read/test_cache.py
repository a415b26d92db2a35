"""cch: cached answers — computed once under concurrency, stale as soon as ingest applies a batch."""

from __future__ import annotations

import threading
import time

import redis

from data.read import cache as cache_module
from data.read.cache import TOPICS_KEY, VERSION_KEY, Cache, bump_version, data_version


def test_cch001_concurrent_misses_compute_once():
    cache, calls = Cache(), []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", 60, slow))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 10 and len(calls) == 1


def test_cch002_expiry_and_eviction():
    cache = Cache(size=2)
    assert cache.get("a", 60, lambda: 1) == 1
    assert cache.get("a", 60, lambda: 2) == 1
    time.sleep(0.06)
    assert cache.get("a", 0.05, lambda: 2) == 2  # older than this reader accepts: recomputed
    cache.get("b", 60, lambda: 3)
    cache.get("c", 60, lambda: 4)  # evicts the least recently used ("a")
    assert cache.get("a", 60, lambda: 5) == 5


def test_cch003_version_from_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(VERSION_KEY)
    assert data_version(client) == 0 and data_version(None) == 0
    client.incr(VERSION_KEY)
    assert data_version(client) == 1
    assert data_version(redis.Redis(port=1, socket_connect_timeout=0.2)) == -1  # unreachable: no caching


def test_cch004_live_answers_follow_the_data_version_at_most_a_second_late(monkeypatch):
    monkeypatch.setattr(cache_module, "LIVE_STALE_S", 0.2)
    cache, n = Cache(), iter(range(100))
    first = cache.get_live("layer", 1, lambda: next(n))
    assert cache.get_live("layer", 1, lambda: next(n)) == first  # same version: reused
    assert cache.get_live("layer", 2, lambda: next(n)) == first  # newer version, answer < 0.2 s old
    time.sleep(0.25)
    newer = cache.get_live("layer", 2, lambda: next(n))
    assert newer != first  # older than the stale limit: recomputed for version 2
    assert cache.get_live("layer", 2, lambda: next(n)) == newer


def test_cch005_a_client_told_of_a_change_never_gets_an_older_answer():
    cache, n = Cache(), iter(range(100))
    first = cache.get_live("layer", 7, lambda: next(n))
    assert cache.get_live("layer", 8, lambda: next(n)) == first  # a newer version, but nobody asked for it
    assert cache.get_live("layer", 8, lambda: next(n), min_version=8) != first  # the SSE named version 8


def test_cch006_a_layer_is_keyed_by_the_version_of_its_own_topics(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(VERSION_KEY, TOPICS_KEY)
    cases = bump_version(client, {"stream:cases", "kind:gate"})
    checkin = bump_version(client, {"stream:checkins"})
    assert checkin == cases + 1 == data_version(client)
    assert data_version(client, frozenset({"stream:cases", "clock"})) == cases  # a check-in left it alone
    assert data_version(client, frozenset({"kind:gate", "stream:checkins"})) == checkin
    assert data_version(client, frozenset()) == 0 == data_version(client, frozenset({"clock"}))
    assert bump_version(client, set()) == checkin + 1  # a batch with no topic still moves the counter


def test_cch007_an_answer_may_be_kept_longer_than_the_default_age(monkeypatch):
    cache, n = Cache(live_max_age_s=0.05), iter(range(100))
    first = cache.get_live("a", 1, lambda: next(n))
    kept = cache.get_live("b", 1, lambda: next(n), max_age_s=60)
    time.sleep(0.1)
    assert cache.get_live("a", 1, lambda: next(n)) != first  # older than the default: recomputed
    assert cache.get_live("b", 1, lambda: next(n), max_age_s=60) == kept
