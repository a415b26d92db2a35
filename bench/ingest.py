"""End-to-end ingest throughput: 200,000 check-ins appended while one worker consumes them.

Measures read, validate, store, aggregate and acknowledge in one process, on SQLite and on
PostgreSQL, and prints events/s and the p50/p99 of the time from XADD to acknowledgement
(after commit). Run: ``make bench`` or
``.venv/bin/python bench/ingest.py [N] [REDIS_URL] [POSTGRES_URL]``.
Uses Redis database 13 of REDIS_URL's server (flushed) and a throwaway PostgreSQL schema;
REDIS_URL may name a node of a Redis Cluster instead (``redis://host:port/0``: the whole
cluster is flushed).
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _pg import PG, pg_schema_url

from data import streams
from data.ingest import Worker, pending_total
from data.loader import load_street
from data.privacy import id_check_char
from data.settings import PROJECT_ROOT, load
from data.store import make_engine


def person(n: int) -> str:
    first = f"310101{1950 + n % 50}0{1 + n % 9}1{n % 10}{n % 1000:03d}"
    return first + id_check_char(first)


def produce(redis_url: str, gates: list[str], run_id: str, n: int) -> None:
    """The producer, in its own process so the worker's process is measured alone."""
    client = streams.connect(redis_url)
    persons = [person(i) for i in range(5000)]
    for start in range(0, n, 1000):
        streams.append(client, "checkins", [json.dumps({
            "event_id": f"{run_id}-{i}", "ts": "2022-04-10T08:00:00+08:00", "gate_id": gates[i % len(gates)],
            "direction": "in" if i % 2 else "out", "person_id": persons[i % len(persons)],
            "category": "resident", "temperature": 36.4 + (i % 7) / 10}) for i in range(start, min(n, start + 1000))])


def run(label: str, engine: sa.Engine, redis_url: str, n: int) -> None:
    client = streams.connect(redis_url)
    if streams.is_cluster(client):
        label += " on a cluster"
    data = load_street(engine, PROJECT_ROOT / "data" / "datasets", "南京东路", 20220410, False)
    gates = [g.id for g in data.gates]
    client.flushdb()
    config = load(environ={"OPSMAP_VAR_DIR": tempfile.mkdtemp(), "OPSMAP_HMAC_KEY": "bench-key-0123456789abcdef",
                           "OPSMAP_INGEST_BATCH": "1000"})
    worker = Worker(engine, client, config, consumer="bench")
    run_id = uuid.uuid4().hex[:6]
    latencies: list[float] = []
    producer = multiprocessing.Process(target=produce, args=(redis_url, gates, run_id, n))
    t0 = time.perf_counter()
    producer.start()
    done = 0
    while done < n:
        entries = streams.read(client, "bench", 1000, 100)
        if not entries:
            continue
        out = worker.handle(entries)
        now_ms = time.time() * 1000
        latencies += [now_ms - int(eid.split("-")[0]) for _, eid, _ in out.applied]
        done += len(out.applied) + len(out.dead) + len(out.duplicates)
    elapsed = time.perf_counter() - t0
    producer.join()
    assert pending_total(client) == 0
    q = statistics.quantiles(latencies, n=100)
    print(f"{label:<22} {n:>8,} events  {n / elapsed:>9,.0f} events/s  "
          f"append→commit+ack p50 {q[49]:7.0f} ms  p99 {q[98]:7.0f} ms")


def main(n: int = 200_000, redis_url: str = "redis://127.0.0.1:6379/13", pg_url: str = PG) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", make_engine(f"sqlite:///{tmp}/bench.db"), redis_url, n)
    with pg_schema_url(pg_url) as url:
        if url is not None:
            run("postgresql", make_engine(url), redis_url, n)
    streams.connect(redis_url).flushdb()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 200_000, *args[1:])
