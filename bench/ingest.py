"""Ingest throughput side by side, in one run on the same entries: a bare consumer (XREADGROUP
1,000 + JSON decode + XACK, no validation, no storage), the least a worker that keeps every event
does (``least``: validation and two inserts, no rules), and opsmap's worker on SQLite (its batches
held at OPSMAP_INGEST_BATCH, then growing as shipped) and on PostgreSQL (one worker, then two
worker processes), the ratio to the bare consumer, the worker's CPU time per event, and the
append→acknowledgement latency at 10,000 events/s offered. The worker runs on the shipped settings.

The first runs start from an empty check-in table, with ids in order (``<run>-<n>``): the best
case. ``at scale`` runs on a SQLite database already holding STORED_AT_SCALE check-ins (four
weeks of a busy street) with random (UUID) event ids, as many producers send them: each id then
lands on its own page of the ledger's key.

Run: ``make bench`` or ``.venv/bin/python bench/ingest.py [N] [REDIS_URL] [POSTGRES_URL]``.
Uses Redis database 13 of REDIS_URL's server (flushed) and throwaway PostgreSQL schemas
(``_servers``: throwaway servers where none answers).
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _servers import PG, REDIS, pg_schema_url, redis_db

from data.domain.privacy import Hasher, id_check_char
from data.models import CheckIn, ProcessedEvent
from data.pipeline import streams
from data.pipeline.events import validate
from data.pipeline.ingest import Outcome, Worker, checkin_row, pending_total, settle_heap
from data.settings import PROJECT_ROOT, load
from data.sources.loader import load_street
from data.store import bulk_insert, make_engine, session_factory, transaction

PACED_RATE = 10_000  # events/s offered in the latency run
PACED_S = 5
STORED_AT_SCALE = 1_000_000


def person(n: int) -> str:
    first = f"310101{1950 + n % 50}0{1 + n % 9}1{n % 10}{n % 1000:03d}"
    return first + id_check_char(first)


def checkins(gates: list[str], run_id: str, start: int, stop: int, random_ids: bool = False) -> list[str]:
    return [json.dumps({"event_id": uuid.uuid4().hex if random_ids else f"{run_id}-{i}",
                        "ts": "2022-04-10T08:00:00+08:00", "gate_id": gates[i % len(gates)],
                        "direction": "in" if i % 2 else "out",
                        "person_id": person(i % 5000), "category": "resident", "temperature": 36.4 + (i % 7) / 10})
            for i in range(start, stop)]


def emptied(redis_url: str) -> streams.Client:
    """A client of the bench's Redis database, flushed, with the consumer group in place."""
    client = streams.connect(redis_url)
    client.flushdb()
    streams.ensure_group(client)
    return client


def fill(redis_url: str, gates: list[str], run_id: str, n: int, rate: float | None = None,
         random_ids: bool = False) -> None:
    """Append ``n`` check-ins, 1,000 per round trip; with ``rate``, paced to that many a second."""
    client = streams.connect(redis_url)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        if rate:
            time.sleep(max(0.0, t0 + start / rate - time.perf_counter()))
        streams.append(client, "checkins", checkins(gates, run_id, start, min(n, start + 1000), random_ids))


def config(fixed_batch: bool = False):
    """The shipped batch settings, or (``fixed_batch``) batches that never grow past
    OPSMAP_INGEST_BATCH: the baseline of catching up."""
    environ = {"OPSMAP_VAR_DIR": tempfile.mkdtemp(), "OPSMAP_HMAC_KEY": "bench-key-0123456789abcdef",
               "OPSMAP_SWEEP_S": "1e9"}
    shipped = load(environ=environ)
    return load(environ={**environ, "OPSMAP_INGEST_BATCH_MAX": str(shipped.ingest_batch)}) if fixed_batch else shipped


def bare(redis_url: str, gates: list[str], n: int) -> float:
    """The baseline: what the stream delivers to a consumer that does nothing with the events."""
    client = emptied(redis_url)
    fill(redis_url, gates, "bare", n)
    key, done, t0 = streams.stream_key("checkins"), 0, time.perf_counter()
    while done < n:
        reply = client.xreadgroup(streams.GROUP, "bare", {key: ">"}, count=1000)
        ids = [eid for _, entries in reply for eid, fields in entries if orjson.loads(fields[b"event"])]
        client.xack(key, streams.GROUP, *ids)
        done += len(ids)
    return n / (time.perf_counter() - t0)


def least(engine_url: str, redis_url: str, gates: list[str], n: int) -> float:
    """The least a worker that keeps every event does, on the same entries as ``bare``: each
    validated, its check-in and ledger row inserted in one transaction per read of the worker's
    largest batch, then acknowledged. No rule, lookup, counter, feed or change notice: the ceiling
    of opsmap's ratio to the bare consumer."""
    client = emptied(redis_url)
    fill(redis_url, gates, "least", n)
    settings = config()
    sessions, hasher = session_factory(make_engine(engine_url), write=True), Hasher.from_config(settings)
    key, done, t0 = streams.stream_key("checkins"), 0, time.perf_counter()
    while done < n:
        reply = client.xreadgroup(streams.GROUP, "least", {key: ">"}, count=settings.ingest_batch_max)
        read = [(eid, validate("checkins", fields[b"event"], hasher))
                for _, entries in reply for eid, fields in entries]
        with sessions() as session, session.begin():
            bulk_insert(session, CheckIn.__table__, [checkin_row(ev) for _, ev in read])
            bulk_insert(session, ProcessedEvent.__table__, [{"event_id": ev.event_id, "entry_id": eid.decode()}
                                                            for eid, ev in read],
                        stream="checkins", processed_at=dt.datetime.now(dt.UTC))
        client.xack(key, streams.GROUP, *(eid for eid, _ in read))
        done += len(read)
    return n / (time.perf_counter() - t0)


def consume(engine_url: str, redis_url: str, name: str, fixed_batch: bool, out: multiprocessing.Queue) -> None:
    """One worker process: consumes until nothing is pending; reports events handled and CPU seconds."""
    worker = Worker(make_engine(engine_url), streams.connect(redis_url), config(fixed_batch), consumer=name)
    settle_heap()  # as Worker.run does
    cpu0, handled = time.process_time(), 0
    while True:  # filled before the workers start: done when a read finds nothing and nothing is pending
        read = worker.step(block_ms=50)
        handled += read
        if not read and pending_total(worker.client) == 0:
            break
    out.put((handled, time.process_time() - cpu0))


def stored(engine_url: str, redis_url: str, gates: list[str], n: int, workers: int = 1,
           fixed_batch: bool = False, random_ids: bool = False) -> tuple[float, float]:
    """opsmap's worker(s) on ``n`` entries appended beforehand: events/s and CPU ms per event."""
    emptied(redis_url)
    fill(redis_url, gates, uuid.uuid4().hex[:6], n, random_ids=random_ids)
    results: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=consume, args=(engine_url, redis_url, f"bench-{i}", fixed_batch, results))
             for i in range(workers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    got = [results.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    assert sum(h for h, _ in got) == n, got
    return n / elapsed, sum(c for _, c in got) / n * 1000


class Timed(Worker):
    """The worker as shipped, noting when each applied entry was acknowledged (ms after its XADD):
    when the answer to its batch's Redis side is read, on or after the acknowledgement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latencies: list[float] = []
        self._sent: list[list[str]] = []  # the applied entry ids of each Redis side in flight, oldest first

    def _finish(self, out: Outcome, ahead: bool = False) -> None:
        self._sent.append([eid for _, eid, _ in out.applied])
        super()._finish(out, ahead)

    def _settle(self) -> bool:
        settled = super()._settle()
        if settled:
            now_ms = time.time() * 1000
            self.latencies += [now_ms - int(eid.split("-")[0]) for eid in self._sent.pop(0)]
        return settled


def paced(engine_url: str, redis_url: str, gates: list[str]) -> tuple[float, float]:
    """p50 and p99 ms from XADD to acknowledgement (after commit) at PACED_RATE events/s offered."""
    client = emptied(redis_url)
    worker = Timed(make_engine(engine_url), client, config(), consumer="paced")
    settle_heap()
    n = PACED_RATE * PACED_S
    producer = multiprocessing.Process(target=fill, args=(redis_url, gates, uuid.uuid4().hex[:6], n, PACED_RATE))
    producer.start()
    while len(worker.latencies) < n:
        worker.step(block_ms=50)
    producer.join()
    q = statistics.quantiles(worker.latencies, n=100)
    return q[49], q[98]


def history(url: str, gates: list[str], n: int) -> None:
    """``n`` check-ins of the four weeks before the bench's day, with their ledger rows, stored as
    the worker would have stored them (UUID ids), in bulk: the table a street has after a month."""
    engine, start = make_engine(url), dt.datetime(2022, 3, 13, tzinfo=dt.UTC)
    for first in range(0, n, 100_000):
        ids = [uuid.uuid4().hex for _ in range(first, min(n, first + 100_000))]
        with transaction(engine) as session:
            bulk_insert(session, CheckIn.__table__, [
                {"event_id": e, "gate_id": gates[i % len(gates)], "ts": start + dt.timedelta(seconds=(first + i) * 2.4),
                 "direction": "in", "person_hash": f"{i:064x}", "person_masked": "310101********1234",
                 "category": "resident", "temperature": 36.5} for i, e in enumerate(ids)])
            bulk_insert(session, ProcessedEvent.__table__, [{"event_id": e} for e in ids], stream="checkins",
                        digest="0" * 64, entry_id="0-1", processed_at=start, effects={"counters": {}})
    engine.dispose()


def loaded(url: str) -> list[str]:
    data = load_street(make_engine(url), PROJECT_ROOT / "data" / "datasets", "南京东路", 20220410, False)
    return [g.id for g in data.gates]


def main(n: int = 200_000, redis_base: str = REDIS, pg_url: str = PG) -> None:
    redis_url = redis_db(redis_base, 13)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{tmp}/bench.db"
        gates = loaded(sqlite)
        base = bare(redis_url, gates, n)
        print(f"{'bare consumer':<26} {n:>8,} events  {base:>9,.0f} events/s  (XREADGROUP 1000 + decode + XACK)")
        least_db = f"sqlite:///{tmp}/least.db"
        rate = least(least_db, redis_url, loaded(least_db), n)
        print(f"{'validate + store only':<26} {n:>8,} events  {rate:>9,.0f} events/s  {rate / base:5.2f} of bare  "
              "(the bare consumer + validation + check-in and ledger rows on SQLite: no rule, counter or feed)")
        rate, cpu = stored(sqlite, redis_url, gates, n, fixed_batch=True)
        print(f"{'opsmap sqlite, fixed batch':<26} {n:>8,} events  {rate:>9,.0f} events/s  {rate / base:5.2f} of bare  "
              f"CPU {cpu * 1000:4.0f} µs/event  (batches never grow past OPSMAP_INGEST_BATCH)")
        rate, cpu = stored(sqlite, redis_url, gates, n)
        p50, p99 = paced(sqlite, redis_url, gates)
        print(f"{'opsmap sqlite':<26} {n:>8,} events  {rate:>9,.0f} events/s  {rate / base:5.2f} of bare  "
              f"CPU {cpu * 1000:4.0f} µs/event  at {PACED_RATE:,}/s offered: append→ack p50 {p50:4.0f} ms  "
              f"p99 {p99:4.0f} ms")
        at_scale = f"sqlite:///{tmp}/at-scale.db"
        gates = loaded(at_scale)
        history(at_scale, gates, STORED_AT_SCALE)
        rate, cpu = stored(at_scale, redis_url, gates, n, random_ids=True)
        print(f"{'opsmap sqlite at scale':<26} {n:>8,} events  {rate:>9,.0f} events/s  {rate / base:5.2f} of bare  "
              f"CPU {cpu * 1000:4.0f} µs/event  ({STORED_AT_SCALE:,} check-ins stored before, UUID event ids)")
    for workers in (1, 2):
        with pg_schema_url(pg_url) as url:
            gates = loaded(url)
            rate, cpu = stored(url, redis_url, gates, n, workers)
            extra = ""
            if workers == 1:
                p50, p99 = paced(url, redis_url, gates)
                extra = f"  at {PACED_RATE:,}/s offered: append→ack p50 {p50:4.0f} ms  p99 {p99:4.0f} ms"
            print(f"{f'opsmap postgresql ×{workers}':<26} {n:>8,} events  {rate:>9,.0f} events/s  "
                  f"{rate / base:5.2f} of bare  CPU {cpu * 1000:4.0f} µs/event{extra}")
    streams.connect(redis_url).flushdb()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 200_000, *args[1:])
