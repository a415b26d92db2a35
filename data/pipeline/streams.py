"""Redis Streams plumbing: append, consumer group, read, claim, acknowledge, dead-letter.

Why a thin wrapper named after the Redis verbs: the ingest worker and the tests speak
in the same terms as the Redis docs, and the one version difference that matters —
XAUTOCLAIM answers 2 elements on Redis 6.2 (the embedded server) and 3 on 7.x — is
handled in one place.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from redis.crc import key_slot

from data.pipeline.events import DEAD, GROUP, STREAMS, stream_key

Entry = tuple[str, str, dict[bytes, bytes]]  # (stream key, entry id, fields)
CHANGES = "opsmap:changes"  # capped stream of change notices, one per ingested batch
CHANGES_KEEP = 1000  # about: enough for a page to catch up after a reconnect
FEED_STREAMS = (*STREAMS, "alerts")
LAG_COUNT_CAP = 100_000  # on Redis 6.2 lag is counted entry by entry; beyond this it reads as the cap


LONGEST_BLOCK_S = 15  # the longest blocking read here (the change stream's wait, OPSMAP_STREAM_KEEPALIVE_S at most)
CLUSTER_WAIT_MS = 50  # in a cluster, how long a worker waits on one stream before looking at all again


Client = redis.Redis | redis.RedisCluster
_clients: dict[str, Client] = {}
_clients_lock = threading.Lock()


def connect(url: str) -> Client:
    """The process's client for ``url`` (one connection pool, shared by threads, so a request
    does not open a TCP connection); decoding is left off so payload bytes pass unchanged.
    Its socket timeout outlasts every blocking read here: redis-py's default of 5 s broke
    a change stream after 5 quiet seconds, and the page then waited for its reconnect."""
    with _clients_lock:
        known = _clients.get(url)
    if known is not None:
        return known
    client, sure = client_for(url, socket_keepalive=True, socket_timeout=LONGEST_BLOCK_S + 10)
    if sure:  # a server that did not answer is asked again next time (it may be a cluster)
        with _clients_lock:
            client = _clients.setdefault(url, client)
    return client


def client_for(url: str, **options: Any) -> tuple[Client, bool]:
    """A client of ``url`` — a RedisCluster when the server is a cluster node, so REDIS_URL may
    name any node of a cluster — and whether the server answered the question."""
    probe = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        clustered, sure = bool(probe.info("cluster").get("cluster_enabled")), True
    except (redis.RedisError, OSError):
        clustered, sure = False, False
    finally:
        probe.close()
    if clustered:
        return redis.RedisCluster.from_url(url, **options), sure
    return redis.Redis.from_url(url, health_check_interval=30, **options), sure


def is_cluster(client: Client) -> bool:
    return isinstance(client, redis.RedisCluster)


def append(client: redis.Redis, stream: str, events: Iterable[str | bytes], reply: bool = False,
           sealed: bool = False) -> list[str]:
    """XADD each serialised event to ``opsmap:<stream>`` in one round trip; returns entry ids.

    With ``reply`` the worker reports each entry's outcome for ``wait_reply`` (officer actions
    wait for it; bulk producers do not ask, so ingest does no extra work for them). ``sealed``
    marks events already in their hashed form (``events.sealed``): the worker deletes every other
    entry from its stream when it acknowledges it, so no raw personal number rests in Redis."""
    pipe = client.pipeline(transaction=False)
    fields = {"reply": "1"} if reply else {}
    if sealed:
        fields["sealed"] = "1"
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


def read(client: Client, consumer: str, count: int, block_ms: int | None,
         pending: bool = False) -> list[Entry]:
    """New entries for ``consumer`` (or, with ``pending``, those it holds unacknowledged).

    A cluster refuses one read across hash slots: there each stream is read on its own, and
    when all are empty the worker waits on one of them at a time, CLUSTER_WAIT_MS each, so an
    event on another waits at most that long."""
    start = "0" if pending else ">"
    if not is_cluster(client):
        return _entries(client.xreadgroup(GROUP, consumer, {stream_key(s): start for s in STREAMS},
                                          count=count, block=None if pending else block_ms))
    out: list[Entry] = []
    for name in STREAMS:
        out += _entries(client.xreadgroup(GROUP, consumer, {stream_key(name): start}, count=count))
    if out or pending or not block_ms:
        return out
    wait = min(block_ms, CLUSTER_WAIT_MS)
    name = STREAMS[int(time.monotonic() * 1000 / wait) % len(STREAMS)]
    return _entries(client.xreadgroup(GROUP, consumer, {stream_key(name): start}, count=count, block=wait))


def _entries(reply: Any) -> list[Entry]:
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


#: removes a consumer only while it holds nothing pending (atomic: a read cannot slip in between)
_FORGET = """if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1"""


def forget_consumers(client: Client, me: str, idle_ms: int) -> list[str]:
    """Remove from the group the consumers idle longer than ``idle_ms`` that hold nothing (their
    entries were claimed): a dead worker's name does not stay in XINFO forever."""
    forgotten = []
    for name in STREAMS:
        key = stream_key(name)
        for c in client.xinfo_consumers(key, GROUP):
            consumer = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if consumer != me and int(c["idle"]) > idle_ms and int(c["pending"]) == 0 \
                    and int(client.eval(_FORGET, 1, key, GROUP, consumer)) >= 0:
                forgotten.append(consumer)
    return forgotten


def dead_letter(plan: Plan, key: str, entry_id: str, redacted_event: str, reason: str) -> None:
    """Park an entry in ``opsmap:dead`` with its reason (the event already redacted)."""
    plan.write((key, entry_id), "XADD", DEAD, "*", "stream", key, "entry_id", entry_id, "reason", reason[:1000],
               "event", redacted_event, "parked_at", time.time())


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


def announce(plan: Plan, notice: dict[str, Any]) -> None:
    """Put a change notice in ``plan`` (ingest sends it with the rest of its batch)."""
    plan.write(None, "XADD", CHANGES, "MAXLEN", "~", CHANGES_KEEP, "*", "notice", to_json(notice))


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
        merged["at"], merged["read"] = more["at"], more.get("read")
    return merged


#: how long the marker of a guarded write is kept: a redelivery later than this would repeat the write
DONE_TTL_S = 7 * 24 * 3600
#: ARGV[1]: {"fence": [[key index, entry id], …], "guarded": [[marker key index, ops], …], "ops": ops},
#: an op being [command, key index, arg, …]; ARGV[3]: the group. The fence: when an entry to be
#: acknowledged here is no longer pending (another worker finished it while this one stalled),
#: nothing is written and those entries are returned, so the caller leaves their effects out.
_APPLY = """local plan = cjson.decode(ARGV[1])
local gone = {}
for _, f in ipairs(plan.fence) do
  if #redis.call('XPENDING', KEYS[f[1]], ARGV[3], f[2], f[2], 1) == 0 then
    gone[#gone + 1] = KEYS[f[1]] .. ' ' .. f[2]
  end
end
if #gone > 0 then return gone end
local function run(ops)
  for _, op in ipairs(ops) do
    local args = {}
    for i = 3, #op do args[#args + 1] = op[i] end
    redis.call(op[1], KEYS[op[2]], unpack(args))
  end
end
for _, g in ipairs(plan.guarded) do
  if redis.call('SET', KEYS[g[1]], '1', 'NX', 'EX', ARGV[2]) then run(g[2]) end
end
run(plan.ops)
return gone"""
_ARGS_PER_OP = 1000  # unpack() in Redis's Lua takes a few thousand values at most


def _tag(key: str) -> str:
    """The part of ``key`` that decides its hash slot (its {hash tag}, else the whole key)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1:end] if start >= 0 and end > start + 1 else key


@dataclass
class _Step:
    """The writes of one hash slot: one atomic script."""

    keys: dict[str, int] = field(default_factory=dict)  # key → its 1-based index in KEYS
    ops: list[list[Any]] = field(default_factory=list)
    fence: list[list[Any]] = field(default_factory=list)  # [key index, entry id]: must still be pending
    guarded: dict[tuple[str, str], tuple[str, list[list[Any]]]] = field(default_factory=dict)  # entry → marker, ops
    acks: int = 0

    def key(self, key: str) -> int:
        return self.keys.setdefault(key, len(self.keys) + 1)

    def order(self) -> int:
        """Guarded writes first, then acknowledgements, then what needs neither (the notice)."""
        return 0 if not self.ops else 1 if self.acks else 2


class Plan:
    """One batch's Redis writes — counters, feed, dead letters, replies, acknowledgements and
    the change notice — applied as one atomic step per hash slot: on a single server all in
    one step, in a Redis Cluster (which runs a script only on keys of one slot) one per slot.

    Why guards: a write made on behalf of an entry whose acknowledgement is in another slot's
    step (an alert in the alerts feed, a dead letter in opsmap:dead) is done together with a
    marker of that entry, so when a crash between the steps has the entry redelivered, the
    write is skipped, not done twice; writes in the step of their entry's XACK need none.
    In a cluster the notice goes last: a crash before it delays the map to the next notice."""

    def __init__(self, cluster: bool, acked: Iterable[tuple[str, str]]) -> None:
        self._cluster = cluster
        self._acked = {entry: self._slot(entry[0]) for entry in acked}
        self._steps: dict[int, _Step] = {}
        # merged per key and guard, so a batch sends each counter and each feed once
        self._counts: dict[tuple[tuple[str, str] | None, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._pushes: dict[tuple[tuple[str, str] | None, str], list[str]] = defaultdict(list)
        self._ttl: dict[str, int] = {}  # by counter key: seconds the hash is kept
        self._keep: dict[str, int] = {}  # by list key: items kept

    def _slot(self, key: str) -> int:
        return key_slot(key.encode()) if self._cluster else 0

    def _step(self, key: str) -> _Step:
        return self._steps.setdefault(self._slot(key), _Step())

    def _guard(self, entry: tuple[str, str] | None, key: str) -> tuple[str, str] | None:
        """The entry whose marker must guard a write to ``key``; None when none is needed."""
        return None if entry is None or self._acked.get(entry) == self._slot(key) else entry

    def _ops(self, step: _Step, guard: tuple[str, str] | None, key: str) -> list[list[Any]]:
        if guard is None:
            return step.ops
        marker = f"{{{_tag(key)}}}:done:{guard[0]}:{guard[1]}"  # in the slot of the guarded write
        return step.guarded.setdefault(guard, (marker, []))[1]

    def write(self, entry: tuple[str, str] | None, command: str, key: str, *args: Any) -> None:
        """``command key *args`` for ``entry`` (None: for the batch as a whole)."""
        step = self._step(key)
        self._ops(step, self._guard(entry, key), key).append([command, step.key(key), *map(str, args)])

    def incr(self, entry: tuple[str, str], key: str, fields: Mapping[str, int], ttl_s: int) -> None:
        """HINCRBY of each field of a hash kept ``ttl_s`` seconds, merged with the batch's others."""
        counts = self._counts[(self._guard(entry, key), key)]
        for name, n in fields.items():
            counts[name] += n
        self._ttl[key] = ttl_s

    def push(self, entry: tuple[str, str], key: str, item: str, keep: int) -> None:
        """LPUSH onto a list of the newest ``keep`` items, merged with the batch's others."""
        self._pushes[(self._guard(entry, key), key)].append(item)
        self._keep[key] = keep

    def ack(self, key: str, group: str, ids: list[str]) -> None:
        """XACK, fenced: the step writes nothing if one of ``ids`` is no longer pending."""
        step = self._step(key)
        step.acks += len(ids)
        step.fence += [[step.key(key), i] for i in ids]
        for i in range(0, len(ids), _ARGS_PER_OP):
            step.ops.append(["XACK", step.key(key), group, *ids[i:i + _ARGS_PER_OP]])

    def delete(self, key: str, ids: list[str]) -> None:
        """XDEL entries, in the step of their acknowledgement (an entry is never gone unacknowledged)."""
        step = self._step(key)
        for i in range(0, len(ids), _ARGS_PER_OP):
            step.ops.append(["XDEL", step.key(key), *ids[i:i + _ARGS_PER_OP]])

    def send(self, client: Client) -> Callable[[], set[tuple[str, str]]]:
        """Apply the steps; the call returned gives the entries found no longer pending (then
        that step wrote nothing; steps already run are guarded). On a single server the batch's
        one step is only sent, so the worker applies its next batch while Redis runs it and
        waits for the answer after; in a cluster the steps run in turn here."""
        for (guard, key), counts in self._counts.items():
            step = self._step(key)
            ops = self._ops(step, guard, key)
            ops += [["HINCRBY", step.key(key), f, str(n)] for f, n in counts.items()]
            ops.append(["EXPIRE", step.key(key), str(self._ttl[key])])
        for (guard, key), items in self._pushes.items():
            step = self._step(key)
            ops = self._ops(step, guard, key)
            ops += [["LPUSH", step.key(key), *items[i:i + _ARGS_PER_OP]] for i in range(0, len(items), _ARGS_PER_OP)]
            ops.append(["LTRIM", step.key(key), "0", str(self._keep[key] - 1)])
        self._counts.clear()
        self._pushes.clear()
        calls = []
        for step in sorted(self._steps.values(), key=_Step.order):
            guarded = [[step.key(marker), ops] for marker, ops in step.guarded.values()]
            if step.ops or guarded:
                plan = orjson.dumps({"fence": step.fence, "guarded": guarded, "ops": step.ops})
                calls.append((_APPLY, len(step.keys), *step.keys, plan, DONE_TTL_S, GROUP))
        self._steps.clear()
        if not self._cluster and len(calls) == 1:
            return _sent(client, ("EVAL", *calls[0]))
        gone: set[tuple[str, str]] = set()
        for call in calls:
            gone = _gone(client.eval(*call))
            if gone:
                break
        return lambda: gone


def _gone(reply: list[bytes] | None) -> set[tuple[str, str]]:
    """The entries a step's fence found no longer pending, from its answer."""
    return {tuple(g.decode().split(" ", 1)) for g in reply or []}  # type: ignore[misc]


def _sent(client: redis.Redis, command: tuple[Any, ...]) -> Callable[[], set[tuple[str, str]]]:
    """``command`` sent on a connection of its own; the call returned reads its answer (once).
    A connection whose answer was not read in full is closed, never handed to another command."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command(*command)
    except BaseException:
        conn.disconnect()
        pool.release(conn)
        raise

    def reply() -> set[tuple[str, str]]:
        try:
            return _gone(conn.read_response())
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
    return reply
