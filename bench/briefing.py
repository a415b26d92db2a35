"""How long the morning briefing takes for one street: the frozen report, the A4 PDF and the
workbook, on SQLite and PostgreSQL. Goal (issue 17): the PDF of one street ≤ 1.5 s — the report
and the PDF, as /briefing.pdf makes them (the workbook is a download of its own).

The street is 南京东路 with the published 2022 case lists of 03-19 … 05-31 replayed (the
longest real history the data has) and a few hundred observations and work orders, all
ingested through the real worker. Run: ``make bench`` or
``.venv/bin/python bench/briefing.py [REDIS_URL] [POSTGRES_URL]``.
Uses Redis database 12 of REDIS_URL's server (flushed) and a throwaway PostgreSQL schema
(``_servers``: throwaway servers where none answers).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _servers import PG, REDIS, pg_schema_url, redis_db

from dashboard import briefing
from data.domain.privacy import id_check_char
from data.pipeline import streams
from data.pipeline.ingest import Worker
from data.read.report import cutoff_at
from data.settings import PROJECT_ROOT, load
from data.sources.loader import load_street
from data.sources.simulator import replay_2022
from data.store import make_engine

DATASETS = PROJECT_ROOT / "data" / "datasets"
DAY = dt.date(2022, 4, 20)
TZ = dt.timezone(dt.timedelta(hours=8))
RUNS = 5


def person(n: int) -> str:
    first = f"310101198001{n % 28 + 1:02d}{n % 1000:03d}"
    return first + id_check_char(first)


def fill(engine, client: redis.Redis, config) -> None:
    data = load_street(engine, DATASETS, "南京东路", 20220410, False)
    list(replay_2022(engine, client, DATASETS, "南京东路", dt.date(2022, 3, 19), dt.date(2022, 5, 31), None))
    events: dict[str, list[dict]] = {"cases": [], "workorders": [], "health": []}
    for i in range(300):
        start = dt.datetime(2022, 4, 6 + i % 14, 9, i % 60, tzinfo=TZ)
        c = data.compounds[i % len(data.compounds)]
        events["cases"].append({"event_id": f"o{i}", "ts": start.isoformat(), "person_id": person(i),
                                "category": "home_observation", "compound_id": c.id})
        events["health"].append({"event_id": f"h{i}", "ts": (start + dt.timedelta(hours=2)).isoformat(),
                                 "person_id": person(i), "temperature": 36.6})
        events["workorders"].append({"event_id": f"w{i}", "ts": start.isoformat(), "order_id": f"W{i}",
                                     "action": "create", "category": "supplies", "priority": "normal",
                                     "description": "物资", "lat": c.lat, "lng": c.lng})
    for stream, evs in events.items():
        streams.append(client, stream, [json.dumps(e, ensure_ascii=False) for e in evs])
    worker = Worker(engine, client, config, consumer="bench")
    while worker.step(block_ms=50):
        pass


def measure(label: str, engine, config) -> None:
    street = briefing.street_id_of(engine, config, "南京东路")
    cutoff = cutoff_at(DAY)
    times = {"report": [], "pdf": [], "workbook": []}
    for _ in range(RUNS):
        t0 = time.perf_counter()
        r = briefing.make(engine, config, street, cutoff)
        t1 = time.perf_counter()
        briefing.pdf(engine, config, r)
        t2 = time.perf_counter()
        briefing.workbook(r)
        t3 = time.perf_counter()
        times["report"].append(t1 - t0)
        times["pdf"].append(t2 - t1)
        times["workbook"].append(t3 - t2)
    total = [sum(x) for x in zip(*times.values(), strict=True)]
    download = [r + p for r, p in zip(times["report"], times["pdf"], strict=True)]  # what /briefing.pdf does
    parts = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in times.items())
    print(f"{label:<11} briefing {DAY}: the PDF (report + PDF) median {statistics.median(download):.2f} s, "
          f"max {max(download):.2f} s  goal ≤ 1.5 s; with the workbook {statistics.median(total):.2f} s; "
          f"over {RUNS} runs ({parts})")


def main(redis_base: str = REDIS, pg_url: str = PG) -> None:
    client = redis.Redis.from_url(redis_db(redis_base, 12))
    with tempfile.TemporaryDirectory() as tmp:
        config = load(environ={"OPSMAP_VAR_DIR": tmp, "OPSMAP_HMAC_KEY": "bench-hmac-key-0123456789abcdef"})
        client.flushdb()
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        fill(engine, client, config)
        t0 = time.perf_counter()
        briefing.warm()  # as a start does before it says ready (dashboard.app.warm)
        print(f"loading the PDF renderer (weasyprint, Pango, the CJK font), done once at a start: "
              f"{time.perf_counter() - t0:.2f} s")
        measure("sqlite", engine, config)
        with pg_schema_url(pg_url) as url:
            client.flushdb()
            engine = make_engine(url)
            fill(engine, client, config)
            measure("postgresql", engine, config)
        client.flushdb()


if __name__ == "__main__":
    main(*sys.argv[1:])
