"""cch: cached answers — computed once under concurrency, stale as soon as ingest applies a batch."""

from __future__ import annotations

import threading
import time

import redis

from data.cache import VERSION_KEY, Cache, data_version, live_key


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
    assert cache.get("a", 0.05, lambda: 1) == 1
    time.sleep(0.06)
    assert cache.get("a", 60, lambda: 2) == 2  # expired: recomputed
    cache.get("b", 60, lambda: 3)
    cache.get("c", 60, lambda: 4)  # evicts the least recently used ("a")
    assert cache.get("a", 60, lambda: 5) == 5


def test_cch003_version_from_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(VERSION_KEY)
    assert data_version(client) == 0 and data_version(None) == 0
    client.incr(VERSION_KEY)
    assert data_version(client) == 1
    assert live_key(1)[0] == 1 and live_key(1) != live_key(2)
    assert data_version(redis.Redis(port=1, socket_connect_timeout=0.2)) == -1  # unreachable: no caching
