"""flt: faults an operator meets — poison entries, outages of the database and of Redis, a stalled
worker, duplicates and conflicts, work-order steps out of order — on real servers and real
processes, each on SQLite and PostgreSQL. Every test asserts exact SQL rows, exact Redis
counters, an empty pending list and dead letters only for the bad events."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import redis
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url

import layers
from data.domain.labels import refusal
from data.models import Alert, CheckIn, ProcessedEvent, WorkOrder
from data.pipeline import dead, streams
from data.pipeline.dead import iter_dead
from data.pipeline.ingest import STATUS_KEY, Worker, pending_total, waiting
from data.pipeline.redis_server import EmbeddedRedis
from data.settings import PROJECT_ROOT, load
from data.store import make_engine, session_factory
from layers.base import Query
from tests import servers
from tests.conftest import person_id, wait_for
from tests.ingesting import INGEST, at, checkin, count, drain, stop, tag, worker_env

OUTAGE_S = float(os.environ.get("OPSMAP_TEST_OUTAGE_S", "8"))  # how long the database stays cut off
def gate_total(client: redis.Redis, day: str = "2022-04-10") -> int:
    return sum(int(v) for k, v in client.hgetall(f"{{opsmap:checkins}}:count:{day}").items()
               if k.startswith(b"gate:"))


def in_transaction(engine) -> bool:
    """Whether another process holds a write transaction open now (a worker stopped there would
    block every writer — on SQLite the whole file — until it runs again)."""
    if engine.dialect.name == "sqlite":
        probe = sqlite3.connect(engine.url.database, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND state LIKE 'idle in transaction%'")).scalar())


# --- poison --------------------------------------------------------------------------------------


def test_flt001_poison_entries_are_parked_alone_and_never_hold_a_batch(loaded, client, config):
    engine, data = loaded
    t, gate = tag(), data.gates[20]
    good = [checkin(f"{t}-{i}", gate.id, person_id(i)) for i in range(50)]
    long_id = f"{t}-" + "x" * (64 - len(t) - 1)  # the longest event_id the contract takes
    watched = person_id(4242, "19650101")
    poison = {
        "deep": '{"event_id": "p1", "ts": "' + at() + '", "gate_id": ' + "[" * 5000 + "]" * 5000 + "}",
        "bigint": checkin(f"{t}-p2", gate.id, person_id(60), temperature=10 ** 400),
        "nul": checkin(f"{t}-p3", gate.id, person_id(61), origin="北京\u0000"),
        "surrogate": checkin(f"{t}-p4", gate.id, person_id(62)).replace('"resident"',
                                                                       '"resident", "origin": "\\ud800"'),
        "inf": checkin(f"{t}-p5", gate.id, person_id(63)).replace("36.5", "1e400"),
        "array": "[1, 2, 3]",
        "bytes": b"\xff\xfe{not utf-8",
        "huge": checkin(f"{t}-p6", gate.id, person_id(64), origin="长" * 20_000),
        "hash-in-id": checkin(f"{t}#p7", gate.id, person_id(65)),
    }
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-obs", "ts": at(-60), "person_id": watched,
                                                 "category": "home_observation", "compound_id": gate.compound_id})])
    entries = [*good[:25], *poison.values(), *good[25:],
               checkin(long_id, gate.id, watched, direction="out")]  # the urgent alert needs its auto-<id> order
    streams.append(client, "checkins", entries)
    w = Worker(engine, client, config, consumer=f"flt-{t}")
    w.step(block_ms=50)  # one batch each (cases, then checkins): nothing waits for a retry
    w.step(block_ms=50)
    assert pending_total(client) == 0
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 51  # 50 good + the walk-out
    parked = [d for d in iter_dead(client) if d["stream"] == "opsmap:checkins"]
    assert len(parked) == len(poison)
    reasons = " | ".join(d["reason"] for d in parked)
    for expected in ("nested too deeply", "temperature: must be a finite number", "U+0000", "U+D800",
                     "must be a JSON object", "not JSON", "larger than 16384 bytes", "may not contain spaces or '#'"):
        assert expected in reasons, (expected, reasons)
    with session_factory(engine)() as s:
        order = s.get(WorkOrder, f"auto-{long_id}")
        assert order is not None and order.state == "dispatched"
        assert s.scalar(select(Alert.kind).where(Alert.event_id == long_id)) == "quarantine_violation"
    assert gate_total(client) >= 51


# --- duplicates and conflicts -------------------------------------------------------------------------


def test_flt002_dedupe_by_stream_and_event_id_with_conflicts_refused(loaded, client, config):
    engine, data = loaded
    t, gate = tag(), data.gates[21].id
    w = Worker(engine, client, config, consumer=f"flt-{t}")
    # a rejected first copy and its corrected resend in one batch: the resend is stored
    streams.append(client, "checkins", [checkin(f"{t}-fix{i}", "no-such-gate", person_id(i)) for i in range(100)]
                   + [checkin(f"{t}-fix{i}", gate, person_id(i)) for i in range(100)])
    drain(w, client)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-fix%")) == 100
    # the same id on another stream is another event
    streams.append(client, "work", [json.dumps({"event_id": f"{t}-fix0", "ts": at(), "task": "screening",
                                                "target_id": data.compounds[0].id, "count": 3, "reporter": "x"})])
    drain(w, client)
    with session_factory(engine)() as s:
        assert {r.stream for r in s.scalars(select(ProcessedEvent).where(
            ProcessedEvent.event_id == f"{t}-fix0"))} == {"checkins", "work"}
    # the same id again: the same content is a duplicate, other content a conflict, parked with the reason
    same, other = checkin(f"{t}-fix1", gate, person_id(1)), checkin(f"{t}-fix1", gate, person_id(1), temperature=39.0)
    ids = streams.append(client, "checkins", [same, other], reply=True)
    drain(w, client)
    assert streams.wait_reply(client, "checkins", ids[0], 5) == {"ok": True, "duplicate": True}
    refused = streams.wait_reply(client, "checkins", ids[1], 5)
    assert refused["ok"] is False and refused["reason"].startswith("event_id: conflict")
    assert [d["entry_id"] for d in iter_dead(client) if d["reason"].startswith("event_id: conflict")] == [ids[1]]
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-fix%")) == 100
    assert gate_total(client) == 100  # the conflict and the duplicate changed no counter


# --- work orders: one fold by time ------------------------------------------------------------------


def _order_steps(t: str, data) -> list[dict]:
    c = data.compounds[7]
    base = {"order_id": f"O-{t}"}
    return [{**base, "event_id": f"{t}-1", "ts": at(0), "action": "create", "category": "medical_need",
             "priority": "normal", "description": "缺药", "lat": c.lat, "lng": c.lng},
            {**base, "event_id": f"{t}-2", "ts": at(1), "action": "dispatch", "committee_id": c.committee_id,
             "assignee": "王五"},
            {**base, "event_id": f"{t}-3", "ts": at(2), "action": "accept"},
            {**base, "event_id": f"{t}-4", "ts": at(3), "action": "resolve", "note": "已送药"}]


def _states(engine, order_id: str, street_id: str) -> tuple[str, str, str]:
    """The order's state in SQL, on the map (the layer, from history) and in the drill-down."""
    q = Query.from_config(load(environ={}), street_id, dt.datetime.fromisoformat(at(10)))
    layer = layers.BY_ID["workorders"]
    with session_factory(engine)() as s:
        sql = s.get(WorkOrder, order_id).state
        on_map = {f["properties"]["id"]: f["properties"]["kind"]
                  for f in layer.features(s, q)["features"]}.get(order_id, "not shown")
        drill = layer.detail(s, order_id, q)["state"]
    return sql, on_map, drill


@pytest.mark.parametrize("arrival", ["one batch", "resolve before accept", "reversed"])
def test_flt003_work_order_state_is_one_fold_whatever_the_arrival(loaded, client, config, arrival):
    engine, data = loaded
    t = tag()
    steps = _order_steps(t, data)
    w = Worker(engine, client, config, consumer=f"flt-{t}")
    batches = {"one batch": [steps], "resolve before accept": [steps[:2], [steps[3]], [steps[2]]],
               "reversed": [[s] for s in reversed(steps)]}[arrival]
    for batch in batches:
        streams.append(client, "workorders", [json.dumps(s) for s in batch])
        w.step(block_ms=50)
    drain(w, client)  # steps whose create was late are retried until it is there
    assert _states(engine, f"O-{t}", data.street.id) == ("resolved", "resolved", "resolved")
    assert not [d for d in iter_dead(client) if t in d["event"]]
    # a late step takes its place in time: a cancel stamped between accept and resolve makes the
    # resolve after it impossible, which the history then says
    streams.append(client, "workorders", [json.dumps({"event_id": f"{t}-5", "ts": at(2.5), "order_id": f"O-{t}",
                                                      "action": "cancel", "note": "家属已处理"})])
    drain(w, client)
    assert _states(engine, f"O-{t}", data.street.id)[0] == "cancelled"
    with session_factory(engine)() as s:
        resolve = s.get(WorkOrder, f"O-{t}").events[-1]
        assert (resolve.action, resolve.refused) == ("resolve", "cancelled")
        assert refusal(resolve.action, resolve.refused) == "办结未生效：当时工单已撤销（可做：无）"


# --- outages: waited out, never counted ---------------------------------------------------------------


def test_flt004_sqlite_disk_full_is_an_outage_not_dead_letters(tmp_path, client, config):
    """A real SQLITE_FULL (the file capped with max_page_count on every connection of the
    worker's engine): the worker waits and says why; when space is back it resumes alone."""
    from data.sources.loader import load_street
    from tests.conftest import DATASETS, SEED

    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")
    data = load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
    full = {"on": True}

    @event.listens_for(engine, "connect")
    def cap(dbapi_conn, _record):
        if full["on"]:
            pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
            dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    engine.dispose()
    t, gate = tag(), data.gates[3].id
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i), origin="上海" * 30)
                                        for i in range(3000)])
    w = Worker(engine, client, config, consumer=f"flt-{t}")
    halt = threading.Event()
    thread = threading.Thread(target=w.run, args=(halt, 50), daemon=True)
    thread.start()
    try:
        said = wait_for(lambda: waiting(client, config.ingest_backoff_max_s), 60, "the worker to say it waits")
        assert "database or disk is full" in said[0]["cause"]
        report = lambda: json.loads(client.hget(STATUS_KEY, w.consumer))  # noqa: E731
        # tries for 2 s, backing off 0.2, 0.4, 0.8, 1, 1 s: more than OPSMAP_INGEST_MAX_TRIES (3), none may count
        wait_for(lambda: report()["at"] - report()["since"] >= 2, 30, "several tries", every=0.2)
        assert client.xlen("opsmap:dead") == 0
        full["on"] = False
        engine.dispose()  # new connections come without the cap
        wait_for(lambda: pending_total(client) == 0, 60, "the backlog to drain")
        wait_for(lambda: not waiting(client, config.ingest_backoff_max_s), 10, "the waiting report to clear")
    finally:
        halt.set()
        thread.join(timeout=30)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 3000
    assert gate_total(client) == 3000 and client.xlen("opsmap:dead") == 0


def test_flt005_postgresql_cut_off_mid_stream_loses_and_doubles_nothing(pg_url, redis_url, client, tmp_path):
    """Two ingest processes reach PostgreSQL through a relay that is cut off (connections closed,
    new ones refused) for OPSMAP_TEST_OUTAGE_S, then restored."""
    from data.sources.loader import load_street
    from tests.conftest import DATASETS, SEED, _engine

    url = make_url(pg_url)
    relay = servers.Proxy(url.host, url.port or 5432)
    relay.start()
    schema = _engine("postgresql", tmp_path, url=pg_url)
    engine = next(schema)
    try:
        data = load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)
        via = engine.url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        env = {**worker_env(engine, redis_url, tmp_path, OPSMAP_INGEST_MAX_TRIES="2"), "DATABASE_URL": via}
        t, gates = tag(), [g.id for g in data.gates[:50]]
        n = 20_000
        events = [checkin(f"{t}-{i}", gates[i % 50], person_id(i), ts=at(i / 1000)) for i in range(n)]
        streams.ensure_group(client)
        procs = [subprocess.Popen([*INGEST, "--consumer", f"pg{k}"], env=env) for k in range(2)]
        try:
            for i in range(0, n, 2000):
                streams.append(client, "checkins", events[i:i + 2000])
            wait_for(lambda: count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) >= 2000, 120, "mid-stream")
            relay.cut()
            said = wait_for(lambda: waiting(client, 1), 30, "a worker to say it waits")
            assert said[0]["cause"].startswith("database:")
            time.sleep(OUTAGE_S)
            relay.restore()
            wait_for(lambda: pending_total(client) == 0, 240, "the backlog to drain", every=0.2)
            wait_for(lambda: not waiting(client, 1), 15, "the waiting reports to clear")
        finally:
            for p in procs:
                stop(p)
            relay.cut()
        with session_factory(engine)() as s:
            ids = s.scalars(select(CheckIn.event_id).where(CheckIn.event_id.like(f"{t}-%"))).all()
        assert len(ids) == len(set(ids)) == n
        assert gate_total(client) == n and client.xlen("opsmap:dead") == 0
    finally:
        next(schema, None)  # drops the test's schema


# --- a stalled worker -------------------------------------------------------------------------------


def test_flt006_a_worker_stalled_past_the_claim_time_doubles_no_redis_side(loaded, redis_url, client, tmp_path):
    """SIGSTOP of a worker holding entries (outside a transaction: inside one, the other could
    only wait for it), longer than the claim-idle time, several times: the other claims and
    finishes them; the stalled one wakes, and its Redis step is fenced off."""
    engine, data = loaded
    t, gates = tag(), [g.id for g in data.gates[:50]]
    n = 20_000
    events = [checkin(f"{t}-{i}", gates[i % 50], person_id(i), ts=at(i / 1000),
                      temperature=38.5 if i % 133 == 0 else 36.5) for i in range(n)]
    fevers = len(range(0, n, 133))
    env = worker_env(engine, redis_url, tmp_path, OPSMAP_LOG_LEVEL="WARNING")
    streams.ensure_group(client)
    log = tmp_path / "a.log"
    with log.open("w") as sink:
        a = subprocess.Popen([*INGEST, "--consumer", "stalled"], env=env, stderr=sink)
        b = subprocess.Popen([*INGEST, "--consumer", "steady"], env=env)
        try:
            for i in range(0, n, 2000):
                streams.append(client, "checkins", events[i:i + 2000])
            stalls = 0
            while stalls < 4 and pending_total(client) > 0:
                held = client.xpending_range("opsmap:checkins", streams.GROUP, "-", "+", 1, consumername="stalled")
                if not held:
                    time.sleep(0.002)
                    continue
                a.send_signal(signal.SIGSTOP)
                if in_transaction(engine):  # stopped inside its transaction: the other could only wait
                    a.send_signal(signal.SIGCONT)
                    continue
                stalls += 1
                wait_for(lambda: not client.xpending_range("opsmap:checkins", streams.GROUP, "-", "+", 1,
                                                           consumername="stalled"), 60, "its entries to be claimed")
                a.send_signal(signal.SIGCONT)
            wait_for(lambda: pending_total(client) == 0, 240, "the backlog to drain", every=0.2)
        finally:  # once both have exited, nothing more can be written: what is counted below is final
            stop(a)
            stop(b)
    assert stalls >= 1
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == n
    assert gate_total(client) == n
    assert int(client.hget("{opsmap:alerts}:count:2022-04-10", "alert:fever")) == fevers
    feed = [(a["ts"], a["text"]) for a in map(json.loads, client.lrange(streams.feed_key("alerts"), 0, -1))]
    assert len(feed) == len(set(feed))  # the feed holds each alert once
    assert client.xlen("opsmap:dead") == 0
    print(f"flt006: {stalls} stalls; fenced Redis steps: {log.read_text().count('finished by another worker')}")


# --- Redis killed and restarted -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["6.2", "7"])
def test_flt007_redis_killed_and_restarted_on_its_append_only_file(loaded, tmp_path, version):
    engine, data = loaded
    from data.pipeline.redis_server import binary

    server = servers.RedisServer(tmp_path / "redis", binary() if version == "6.2" else servers.DEBIAN_REDIS)
    url = server.start()
    client = redis.Redis.from_url(url)
    assert client.info("server")["redis_version"].startswith(version)
    t, gates = tag(), [g.id for g in data.gates[:50]]
    n = 10_000
    events = [checkin(f"{t}-{i}", gates[i % 50], person_id(i), ts=at(i / 1000)) for i in range(n)]
    streams.ensure_group(client)
    proc = subprocess.Popen([*INGEST, "--consumer", "survivor"], env=worker_env(engine, url, tmp_path))
    try:
        for i in range(0, n, 1000):
            streams.append(client, "checkins", events[i:i + 1000])
        wait_for(lambda: count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) >= 1000, 120, "mid-stream")
        for _ in range(2):
            server.kill()
            server.start()  # same directory and port: the append-only file brings the streams back
        wait_for(lambda: pending_total(client) == 0, 240, "the backlog to drain", every=0.2)
    finally:
        stop(proc)
        server.stop()
        server.start()
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == n
    assert gate_total(client) == n and client.xlen("opsmap:dead") == 0
    server.stop()


# --- the embedded Redis is supervised; start-up failures are one line ------------------------------------


def test_flt008_the_embedded_redis_is_restarted_on_its_data(tmp_path, caplog):
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        server.supervise(interval_s=0.1)
        client = redis.Redis.from_url(url)
        client.xadd("opsmap:checkins", {"event": "kept"})
        server.process.kill()  # what the OOM killer or a crash does
        wait_for(lambda: "runs again" in caplog.text, 15, "the supervisor to say it restarted the server")
        assert "exited with code -9" in caplog.text
        assert client.xlen("opsmap:checkins") == 1  # same port and password, same data
    finally:
        server.stop()


@pytest.mark.parametrize("setting,cause", [
    ({"OPSMAP_VAR_DIR": "/sys/opsmap-cannot-write"}, "is not writable"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": "sqlite:///{tmp}/x.db"}, "does not answer"),
    ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "cannot be used"),
])
def test_flt009_a_failure_to_start_is_one_line_with_the_cause_and_the_fix(tmp_path, setting, cause):
    env = {**os.environ, "OPSMAP_VAR_DIR": str(tmp_path), **{k: v.format(tmp=tmp_path) for k, v in setting.items()}}
    done = subprocess.run([*INGEST], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and cause in lines[0] and lines[1].startswith("  fix: "), done.stderr
    assert "Traceback" not in done.stderr


# --- dead letters fed back; dead consumers forgotten --------------------------------------------------------


def test_flt010_dead_letters_replayed_after_a_fix_exactly_once(loaded, redis_url, client, config, tmp_path):
    engine, data = loaded
    t, c = tag(), data.compounds[9]
    order = f"O-{t}"
    late = {"event_id": f"{t}-2", "ts": at(1), "order_id": order, "action": "dispatch",
            "committee_id": c.committee_id, "assignee": "赵六"}
    w = Worker(engine, client, config, consumer=f"flt-{t}")
    streams.append(client, "workorders", [json.dumps(late)])
    drain(w, client, limit=30)  # its create never came within the tries: parked, saying why
    assert [d["reason"] for d in iter_dead(client) if t in d["event"]] == [
        f"failed 3 times: order_id: no order {order!r}: its create has not arrived"]
    streams.append(client, "workorders", [json.dumps(
        {"event_id": f"{t}-1", "ts": at(0), "order_id": order, "action": "create", "category": "supplies",
         "priority": "normal", "description": "送菜", "lat": c.lat, "lng": c.lng})])
    drain(w, client)
    env = worker_env(engine, redis_url, tmp_path)
    cli = [sys.executable, str(PROJECT_ROOT / "app.py"), "dead"]
    listed = subprocess.run([*cli, "list", "--reason", "no order"], env=env, capture_output=True, text=True,
                            check=True).stdout
    assert order in listed
    for expected in ("sent 1 parked events back", "sent 0 parked events back"):  # the second finds none
        out = subprocess.run([*cli, "replay", "--reason", "no order", "--stream", "workorders"], env=env,
                             capture_output=True, text=True, check=True).stdout
        assert expected in out
    drain(w, client)
    with session_factory(engine)() as s:
        assert s.get(WorkOrder, order).state == "dispatched"
        assert [e.action for e in s.get(WorkOrder, order).steps] == ["create", "dispatch"]
    assert not list(dead.letters(client, reason="no order"))


def test_flt011_a_dead_consumer_is_removed_once_its_entries_are_claimed(loaded, client, config):
    engine, data = loaded
    t, gate = tag(), data.gates[30].id

    class CrashAfterRead(Worker):
        def _apply(self, items, out):
            raise SystemExit("killed holding its entries")

    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(20)])
    with pytest.raises(SystemExit):
        CrashAfterRead(engine, client, config, consumer=f"dead-{t}").step(block_ms=10)
    names = lambda: {c["name"].decode() for c in client.xinfo_consumers("opsmap:checkins", streams.GROUP)}  # noqa: E731
    assert f"dead-{t}" in names()
    rescuer = Worker(engine, client, config, consumer=f"alive-{t}")
    wait_for(lambda: rescuer.step(block_ms=20) is not None and f"dead-{t}" not in names(), 30,
             "the dead consumer to be removed", every=0.1)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 20
    assert pending_total(client) == 0
