"""Redis Streams plumbing: append, consumer group, read, claim, acknowledge, dead-letter.

Why a thin wrapper named after the Redis verbs: the ingest worker and the tests speak
in the same terms as the Redis docs, and the one version difference that matters —
XAUTOCLAIM answers 2 elements on Redis 6.2 (the embedded server) and 3 on 7.x — is
handled in one place.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from data.events import DEAD, GROUP, STREAMS, stream_key

Entry = tuple[str, str, dict[bytes, bytes]]  # (stream key, entry id, fields)
CHANGES = "opsmap:changes"  # capped stream of change notices, one per ingested batch
CHANGES_KEEP = 1000  # about: enough for a page to catch up after a reconnect
FEED_STREAMS = (*STREAMS, "alerts")
LAG_COUNT_CAP = 100_000  # on Redis 6.2 lag is counted entry by entry; beyond this it reads as the cap


LONGEST_BLOCK_S = 15  # the longest blocking read here (the change stream's wait for a notice)


@functools.cache
def connect(url: str) -> redis.Redis:
    """The process's client for ``url`` (one connection pool, shared by threads, so a request
    does not open a TCP connection); decoding is left off so payload bytes pass unchanged.
    Its socket timeout outlasts every blocking read here: redis-py's default of 5 s broke
    a change stream after 5 quiet seconds, and the page then waited for its reconnect."""
    return redis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True,
                                socket_timeout=LONGEST_BLOCK_S + 10)


def append(client: redis.Redis, stream: str, events: Iterable[str | bytes], reply: bool = False) -> list[str]:
    """XADD each serialised event to ``opsmap:<stream>`` in one round trip; returns entry ids.

    With ``reply`` the worker reports each entry's outcome for ``wait_reply`` (officer actions
    wait for it; bulk producers do not ask, so ingest does no extra work for them)."""
    pipe = client.pipeline(transaction=False)
    fields = {"reply": "1"} if reply else {}
    for event in events:
        pipe.xadd(stream_key(stream), {"event": event, **fields})
    return [i.decode() for i in pipe.execute()]


def reply_key(key: str, entry_id: str) -> str:
    """Where the outcome of entry ``entry_id`` of stream ``key`` is pushed (same slot as the stream)."""
    return f"{{{key}}}:reply:{entry_id}"


def wait_reply(client: redis.Redis, stream: str, entry_id: str, timeout_s: float) -> dict[str, Any] | None:
    """The outcome ingest reported for an entry appended with ``reply``, or None after the timeout."""
    got = client.blpop([reply_key(stream_key(stream), entry_id)], timeout=timeout_s)
    return None if got is None else json.loads(got[1])


def ensure_group(client: redis.Redis, streams: Sequence[str] = STREAMS) -> None:
    """Create the consumer group on every stream (and the stream itself); idempotent."""
    for name in streams:
        try:
            client.xgroup_create(stream_key(name), GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def read(client: redis.Redis, consumer: str, count: int, block_ms: int | None,
         pending: bool = False) -> list[Entry]:
    """New entries for ``consumer`` (or, with ``pending``, those it holds unacknowledged)."""
    start = "0" if pending else ">"
    reply = client.xreadgroup(GROUP, consumer, {stream_key(s): start for s in STREAMS},
                              count=count, block=None if pending else block_ms)
    return [(key.decode(), eid.decode(), fields) for key, entries in reply or [] for eid, fields in entries
            if fields is not None]


def autoclaim(client: redis.Redis, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
    """Take over entries another consumer left pending longer than ``min_idle_ms``.

    Entries deleted from the stream while pending come back as ``None`` (6.2) or in a
    third list (7.x); they are acknowledged here since nothing is left to process.
    """
    out: list[Entry] = []
    for name in STREAMS:
        key = stream_key(name)
        cursor = "0-0"
        while True:
            reply = client.xautoclaim(key, GROUP, consumer, min_idle_ms, start_id=cursor, count=count)
            cursor, entries = reply[0], reply[1]  # reply[2] (7.x only): ids already deleted
            gone = [eid for eid, fields in entries if fields is None] + list(reply[2] if len(reply) > 2 else [])
            if gone:
                client.xack(key, GROUP, *gone)
            out += [(key, eid.decode(), fields) for eid, fields in entries if fields is not None]
            if cursor in (b"0-0", "0-0") or len(out) >= count:
                break
    return out


def deliveries(client: redis.Redis, key: str, entry_id: str) -> int:
    """How many times the group has delivered this entry (1 on first delivery)."""
    info = client.xpending_range(key, GROUP, min=entry_id, max=entry_id, count=1)
    return int(info[0]["times_delivered"]) if info else 0


def dead_letter(pipe: redis.client.Pipeline, key: str, entry_id: str, redacted_event: str, reason: str) -> None:
    """Park an entry in ``opsmap:dead`` with its reason (the event already redacted)."""
    pipe.xadd(DEAD, {"stream": key, "entry_id": entry_id, "reason": reason[:1000],
                     "event": redacted_event, "parked_at": str(time.time())})


def lag(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Per stream: entries not yet delivered to the group (lag) and delivered but unacked (pending)."""
    out = {}
    for name in STREAMS:
        key = stream_key(name)
        try:
            groups = client.xinfo_groups(key)
        except redis.ResponseError:
            continue
        for g in groups:
            if g["name"] in (GROUP, GROUP.encode()):
                length = client.xlen(key)
                last = g["last-delivered-id"]
                last = last.decode() if isinstance(last, bytes) else last
                undelivered = g.get("lag")
                if undelivered is None:  # Redis 6.2 has no lag field: count what follows (capped)
                    undelivered = len(client.xrange(key, min="(" + last, count=LAG_COUNT_CAP)) if length else 0
                out[name] = {"length": length, "lag": int(undelivered), "pending": int(g["pending"])}
    return out


def to_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def feed_key(stream: str) -> str:
    """Feed and counters share the stream's hash slot, so one MULTI covers them and the XACK."""
    return f"{{{stream_key(stream)}}}:feed"


def feed(client: redis.Redis, n: int = 50) -> list[dict[str, Any]]:
    """The newest ``n`` feed items of all streams and alerts, newest first."""
    pipe = client.pipeline(transaction=False)
    for name in FEED_STREAMS:
        pipe.lrange(feed_key(name), 0, n - 1)
    items = [json.loads(raw) for chunk in pipe.execute() for raw in chunk]
    return sorted(items, key=lambda item: dt.datetime.fromisoformat(item["ts"]), reverse=True)[:n]


def freshness(client: redis.Redis, now: dt.datetime) -> dict[str, Any]:
    """Seconds since the newest event was appended to any stream, and the group's total lag."""
    newest = 0
    for name in STREAMS:
        last = client.xrevrange(stream_key(name), count=1)
        if last:
            newest = max(newest, int(last[0][0].split(b"-")[0]))
    lags = lag(client).values()
    return {"age_s": (now.timestamp() - newest / 1000) if newest else None,
            "lag": sum(v["lag"] + v["pending"] for v in lags)}


def topics(changed_streams: Iterable[str], kinds: Iterable[str]) -> set[str]:
    """A batch's change-notice topics: ``stream:<name>`` per stream with an applied event or
    alert, ``kind:<entity>`` per kind of entity a facility report changed (layers name theirs)."""
    return {f"stream:{s}" for s in changed_streams} | {f"kind:{k}" for k in kinds}


def announce(pipe: redis.client.Pipeline, notice: dict[str, Any]) -> None:
    """Queue a change notice on ``pipe`` (ingest sends it in the MULTI of its batch)."""
    pipe.xadd(CHANGES, {"notice": to_json(notice)}, maxlen=CHANGES_KEEP, approximate=True)


def changes_top(client: redis.Redis) -> str:
    """The id of the newest change notice ("0-0" before the first): where a page starts listening."""
    newest = client.xrevrange(CHANGES, count=1)
    return newest[0][0].decode() if newest else "0-0"


def changes_since(client: redis.Redis, since: str, block_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """The notices after ``since`` (waiting up to ``block_ms`` for one), oldest first."""
    reply = client.xread({CHANGES: since}, block=block_ms)
    return [(eid.decode(), json.loads(fields[b"notice"])) for _, entries in reply or [] for eid, fields in entries]


def merge_notices(notices: list[dict[str, Any]]) -> dict[str, Any]:
    """Several change notices as one (what changed in any of them, every urgent alert)."""
    merged = dict(notices[0])
    for more in notices[1:]:
        for key in ("applied", "dead"):
            merged[key] += more[key]
        for key in ("streams", "kinds"):
            merged[key] = sorted(set(merged[key]) | set(more[key]))
        merged["urgent"] = merged["urgent"] + more["urgent"]
        merged["version"] = max(merged.get("version") or 0, more.get("version") or 0)
        merged["at"] = more["at"]
    return merged

