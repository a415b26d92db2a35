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
LIVE_MAX_AGE_S = 30.0
LIVE_STALE_S = 1.0


class Cache:
    """Thread-safe LRU with per-entry expiry; concurrent misses on one key compute once."""

    def __init__(self, size: int = 512) -> None:
        self._items: OrderedDict[Hashable, tuple[float, object, object]] = OrderedDict()  # made, tag, value
        self._size = size
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, ttl_s: float, compute: Callable[[], T]) -> T:
        """The value under ``key`` if younger than ``ttl_s``, else computed (once) and kept."""
        return self._get(key, lambda made, _: time.monotonic() - made < ttl_s, compute, None)

    def get_live(self, key: Hashable, version: int, compute: Callable[[], T], min_version: int = 0) -> T:
        """A live answer: fresh for its data version up to LIVE_MAX_AGE_S; after a newer
        version, still served while younger than LIVE_STALE_S — unless it predates
        ``min_version`` (a client that was told of a change must see it)."""
        def fresh(made: float, made_version: object) -> bool:
            if not isinstance(made_version, int) or made_version < min_version:
                return False
            age = time.monotonic() - made
            return age < (LIVE_MAX_AGE_S if made_version == version else LIVE_STALE_S)
        return self._get(key, fresh, compute, version)

    def _get(self, key: Hashable, fresh: Callable[[float, object], bool], compute: Callable[[], T],
             tag: object) -> T:
        with self._lock:
            hit = self._items.get(key)
            if hit and fresh(hit[0], hit[1]):
                self._items.move_to_end(key)
                return hit[2]  # type: ignore[return-value]
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:  # one computation per key; the others wait for it and then hit
            with self._lock:
                hit = self._items.get(key)
                if hit and fresh(hit[0], hit[1]):
                    return hit[2]  # type: ignore[return-value]
            value = compute()
            with self._lock:
                self._items[key] = (time.monotonic(), tag, value)
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
