"""A small in-process cache of computed answers (layers, summaries), keyed by data version.

Why: twenty screens asking for the same layer should cost one computation. Live answers
are keyed by the data version ingest bumps after every applied batch (so an event shows
at once) and live at most ``live_max_age_s`` (time alone changes overdue flags and alert
windows); answers about a past moment never change and live until evicted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Mapping
from typing import TypeVar

import redis

T = TypeVar("T")
VERSION_KEY = "opsmap:version"
#: change-notice topic → the data version of the last batch that touched it (same hash slot)
TOPICS_KEY = "{opsmap:version}:topics"
#: the rows inserted by each version's batch, by table, as stream entries "<version>-1"; and below
#: which version entries may have been trimmed away (same hash slot)
ADDED_KEY = "{opsmap:version}:added"
ADDED_FLOOR_KEY = "{opsmap:version}:added:floor"
ADDED_KEEP = 1000  # batches with new rows a growing layer can be brought forward over; past that it is rebuilt
_BUMP = """local v = redis.call('INCR', KEYS[1])
for i = 3, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], v) end
if ARGV[2] ~= '{}' then
  local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if #top > 0 and tonumber(string.match(top[1][1], '^%d+')) >= v then
    redis.call('DEL', KEYS[3])  -- the counter was reset: what the stream says is of other versions
    redis.call('SET', KEYS[4], v - 1)
  end
  redis.call('XADD', KEYS[3], v .. '-1', 'rows', ARGV[2])
  if redis.call('XTRIM', KEYS[3], 'MAXLEN', ARGV[1]) > 0 then
    local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
    redis.call('SET', KEYS[4], tonumber(string.match(first[1][1], '^%d+')) - 1)
  end
end
return v"""
LIVE_MAX_AGE_S = 30.0
LIVE_STALE_S = 1.0


class Cache:
    """Thread-safe LRU with per-entry expiry; concurrent misses on one key compute once."""

    def __init__(self, size: int = 512, live_max_age_s: float = LIVE_MAX_AGE_S) -> None:
        self._live_max_age_s = live_max_age_s
        self._items: OrderedDict[Hashable, tuple[float, object, object]] = OrderedDict()  # made, tag, value
        self._size = size
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, ttl_s: float, compute: Callable[[], T]) -> T:
        """The value under ``key`` if younger than ``ttl_s``, else computed (once) and kept."""
        return self._get(key, lambda made, _: time.monotonic() - made < ttl_s, compute, None)

    def get_live(self, key: Hashable, version: int, compute: Callable[[], T], min_version: int = 0,
                 max_age_s: float | None = None) -> T:
        """A live answer: fresh for its data version up to ``max_age_s`` (default
        ``live_max_age_s``); after a newer version, still served while younger than
        LIVE_STALE_S — unless it predates ``min_version`` (a client told of a change must see it)."""
        max_age = self._live_max_age_s if max_age_s is None else max_age_s

        def fresh(made: float, made_version: object) -> bool:
            if not isinstance(made_version, int) or made_version < min_version:
                return False
            age = time.monotonic() - made
            return age < (max_age if made_version == version else LIVE_STALE_S)
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


def bump_version(client: redis.Redis, topics: Collection[str],
                 added: Mapping[str, Collection[int]] | None = None) -> int:
    """The next data version, recorded for each topic the batch touched in the same atomic
    step, so a topic's version never goes backwards when workers run side by side; with it,
    the ids of the rows the batch inserted, by table (``added_since`` reads them back)."""
    rows = json.dumps({table: sorted(ids) for table, ids in (added or {}).items() if ids}, separators=(",", ":"))
    return int(client.eval(_BUMP, 4, VERSION_KEY, TOPICS_KEY, ADDED_KEY, ADDED_FLOOR_KEY, ADDED_KEEP, rows, *topics))


def added_since(client: redis.Redis, base: int, version: int, table: str) -> list[int] | None:
    """The ids of ``table`` rows inserted by the batches of versions ``base`` + 1 to
    ``version``; None when Redis may no longer hold all of them (or cannot say).

    Why it is sound with several ingest workers: a batch's rows are committed before its
    version is taken, and the version and its rows are written in one atomic step, so a
    reader that sees a version also sees everything that version and those before added."""
    if version <= base:
        return []
    try:
        floor = int(client.get(ADDED_FLOOR_KEY) or 0)
        if base < floor:
            return None
        entries = client.xrange(ADDED_KEY, min=f"({base}-1", max=f"{version}-1")
    except (redis.RedisError, OSError):
        return None
    return [i for _, fields in entries for i in json.loads(fields[b"rows"]).get(table, [])]


def data_version(client: redis.Redis | None, topics: Collection[str] | None = None) -> int:
    """The counter ingest increments after each applied batch (0 without Redis); with
    ``topics``, the newest version of a batch that touched any of them — what an answer
    that depends on those topics alone (a layer) is keyed by, so unrelated events (a
    check-in) do not make it be computed again."""
    if client is None:
        return 0
    try:
        if topics is None:
            return int(client.get(VERSION_KEY) or 0)
        return max((int(v) for v in client.hmget(TOPICS_KEY, list(topics)) if v is not None), default=0) \
            if topics else 0
    except (redis.RedisError, OSError):
        return -1  # unknown: callers should not serve live answers from the cache
