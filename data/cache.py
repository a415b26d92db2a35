"""A small in-process cache of computed answers (layers, summaries), keyed by data version.

Why: twenty screens asking for the same layer should cost one computation. Live answers
are keyed by the data version ingest bumps after every applied batch (so an event shows
at once) and by a 30-second time bucket (time alone changes overdue flags and alert windows);
answers about a past moment never change and live until evicted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import redis

T = TypeVar("T")
VERSION_KEY = "opsmap:version"


class Cache:
    """Thread-safe LRU with per-entry expiry; concurrent misses on one key compute once."""

    def __init__(self, size: int = 512) -> None:
        self._items: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, ttl_s: float, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._items.get(key)
            if hit and hit[0] > time.monotonic():
                self._items.move_to_end(key)
                return hit[1]  # type: ignore[return-value]
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:  # one computation per key; the others wait for it and then hit
            with self._lock:
                hit = self._items.get(key)
                if hit and hit[0] > time.monotonic():
                    return hit[1]  # type: ignore[return-value]
            value = compute()
            with self._lock:
                self._items[key] = (time.monotonic() + ttl_s, value)
                self._items.move_to_end(key)
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
                self._computing.pop(key, None)
            return value


def data_version(client: redis.Redis | None) -> int:
    """The counter ingest increments after each applied batch (0 without Redis)."""
    if client is None:
        return 0
    try:
        return int(client.get(VERSION_KEY) or 0)
    except (redis.RedisError, OSError):
        return -1  # unknown: callers should not serve live answers from the cache


def live_key(version: int, bucket_s: float = 30.0) -> tuple[int, int]:
    """The part of a cache key that makes a live answer expire: data version and time bucket."""
    return version, int(time.time() // bucket_s)
