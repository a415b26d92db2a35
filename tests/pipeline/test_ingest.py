"""ing: the ingest worker on a real Redis and real databases — exactly-once effect, dead
letters with reasons, rules, crash recovery, and no raw personal numbers anywhere."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from data.models import (
    Alert,
    Case,
    CheckIn,
    Gate,
    HomeObservation,
    ProcessedEvent,
    ReturneeRegistration,
    StateChange,
    WorkOrder,
    WorkReport,
)
from data.pipeline import streams
from data.pipeline.dead import iter_dead
from data.pipeline.events import DEAD
from data.pipeline.ingest import Effects, Worker, pending_total
from data.store import session_factory
from tests.conftest import NO_SWEEP, config_for, file_bytes, person_id, phone, wait_for
from tests.ingesting import INGEST, at, checkin, count, drain, tag, worker_env


@pytest.fixture
def worker(loaded, client, config):
    engine, _ = loaded
    return Worker(engine, client, config, consumer=f"test-{uuid.uuid4().hex[:6]}")


def test_ing001_quarantine_violation_story_from_events_alone(loaded, worker, client):
    engine, data = loaded
    t, pid = tag(), person_id(701, "19800312")
    comp = data.compounds[10]
    gate = next(g for g in data.gates if g.compound_id == comp.id)
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-obs", "ts": at(-60 * 24), "person_id": pid,
                                                 "category": "home_observation", "compound_id": comp.id})])
    drain(worker, client)
    streams.append(client, "checkins", [checkin(f"{t}-out", gate.id, pid, direction="out", ts=at(30))])
    drain(worker, client)
    with session_factory(engine)() as s:
        alert = s.scalar(select(Alert).where(Alert.event_id == f"{t}-out", Alert.kind == "quarantine_violation"))
        assert alert is not None and alert.severity == "urgent" and "第2/14天" in alert.message
        order = s.get(WorkOrder, f"auto-{t}-out")
        assert order.priority == "urgent" and order.category == "quarantine_violation"
        assert order.state == "dispatched" and order.committee_id == comp.committee_id
        assert [e.action for e in order.events] == ["create", "dispatch"]
    feed = [json.loads(x) for x in client.lrange("{opsmap:alerts}:feed", 0, -1)]
    assert any(f["kind"] == "alert:quarantine_violation" for f in feed)


def test_ing002_duplicates_are_stored_once(loaded, worker, client):
    engine, data = loaded
    t, gate = tag(), data.gates[0].id
    events = [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(50)]
    streams.append(client, "checkins", events)
    streams.append(client, "checkins", events[:20] + events[:5])  # producer resends
    drain(worker, client)
    streams.append(client, "checkins", events[10:30])  # and again, much later
    drain(worker, client)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 50
    day = client.hgetall("{opsmap:checkins}:count:2022-04-10")
    assert int(day[f"gate:{gate}:in".encode()]) >= 50
    assert client.xlen(DEAD) == 0


def test_ing003_malformed_events_go_to_dead_letters_with_a_reason(loaded, worker, client):
    engine, data = loaded
    t, gates = tag(), [g.id for g in data.gates[:20]]
    good = [checkin(f"{t}-g{i}", gates[i % 20], person_id(i)) for i in range(10_000)]
    bad_kinds = [
        lambda i: checkin(f"{t}-b{i}", gates[0], person_id(i), temperature="hot"),
        lambda i: checkin(f"{t}-b{i}", gates[0], person_id(i)[:17] + "Z"),
        lambda i: checkin(f"{t}-b{i}", "no-such-gate", person_id(i)),
        lambda i: "{broken",
        lambda i: checkin(f"{t}-b{i}", gates[0], person_id(i), direction="up"),
    ]
    bad = [bad_kinds[i % len(bad_kinds)](i) for i in range(1000)]
    mixed = [x for pair in zip(good[:1000], bad, strict=True) for x in pair] + good[1000:]
    for i in range(0, len(mixed), 2000):
        streams.append(client, "checkins", mixed[i:i + 2000])
    drain(worker, client, limit=120)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-g%")) == 10_000
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-b%")) == 0
    dead = list(iter_dead(client))
    assert len(dead) == 1000
    reasons = [d["reason"] for d in dead]
    for expected, n in (("temperature: must be a number", 200), ("person_id: must be 17 digits", 200),
                        ("gate_id: unknown gate 'no-such-gate'", 200), ("event: not JSON", 200),
                        ("direction: must be one of in, out", 200)):
        assert sum(r.startswith(expected) for r in reasons) == n, expected


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"event_id": st.text(max_size=70), "ts": st.text(max_size=30),
                           "gate_id": st.text(max_size=40), "direction": st.sampled_from(["in", "out", "x"]),
                           "person_id": st.text(max_size=20), "category": st.text(max_size=10),
                           "temperature": st.floats(allow_nan=True)}).map(lambda d: json.dumps(d).encode()),
), stream=st.sampled_from(["checkins", "workorders", "cases", "health", "facilities", "work"]))
def test_ing004_fuzzed_events_never_kill_the_worker(loaded, redis_url, tmp_path_factory, payload, stream):
    engine, _ = loaded
    client = redis.Redis.from_url(redis_url)
    cfg = config_for(tmp_path_factory.mktemp("v"))
    w = Worker(engine, client, cfg, consumer="fuzz")
    client.xadd(f"opsmap:{stream}", {"event": payload})
    w.step(block_ms=10)
    assert pending_total(client) == 0  # acknowledged: applied or parked, never stuck


def test_ing005_crash_between_commit_and_ack_replays_redis_side_once(loaded, client, config):
    engine, data = loaded
    t, gate = tag(), data.gates[1].id

    class CrashAfterCommit(Worker):
        def _finish(self, out, ahead=False):
            raise SystemExit("killed after the SQL commit, before the Redis MULTI")

    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(100)])
    with pytest.raises(SystemExit):
        CrashAfterCommit(engine, client, config, consumer="doomed").step(block_ms=10)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 100  # committed
    assert streams.lag(client)["checkins"]["pending"] == 100  # but not acknowledged
    time.sleep(0.6)  # past OPSMAP_INGEST_CLAIM_IDLE_MS
    drain(Worker(engine, client, config, consumer="rescuer"), client)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 100
    assert int(client.hget("{opsmap:checkins}:count:2022-04-10", f"gate:{gate}:in")) == 100


def test_ing006_kill_9_of_an_ingest_process_loses_and_doubles_nothing(loaded, redis_url, client, tmp_path):
    engine, data = loaded
    t, gates = tag(), [g.id for g in data.gates[:50]]
    env = worker_env(engine, redis_url, tmp_path)
    n = 20_000  # killed after 5,000: a quarter in, as flt005 does on PostgreSQL
    events = [checkin(f"{t}-{i}", gates[i % 50], person_id(i), ts=at(i / 1000)) for i in range(n)]
    streams.ensure_group(client)
    first = subprocess.Popen([*INGEST, "--consumer", "first"], env=env)
    try:  # a failed assertion must not leave a worker behind, consuming the next tests' events
        for i in range(0, n, 5000):
            streams.append(client, "checkins", events[i:i + 5000])
        wait_for(lambda: count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) >= 5000, 120, "mid-stream")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    stored_at_kill = count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%"))
    assert stored_at_kill < n
    second = subprocess.Popen([*INGEST, "--consumer", "second"], env=env)
    try:
        wait_for(lambda: second.poll() is not None or pending_total(client) == 0, 240, "the second worker")
        assert second.poll() is None, streams.lag(client)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    with session_factory(engine)() as s:
        ids = s.scalars(select(CheckIn.event_id).where(CheckIn.event_id.like(f"{t}-%"))).all()
    assert len(ids) == len(set(ids)) == n
    assert count(engine, ProcessedEvent, ProcessedEvent.event_id.like(f"{t}-%")) == n
    lag = streams.lag(client)["checkins"]
    assert lag["lag"] == 0 and lag["pending"] == 0
    total = sum(int(v) for k, v in client.hgetall("{opsmap:checkins}:count:2022-04-10").items()
                if k.startswith(b"gate:"))
    assert total == n  # aggregates exactly once too


def test_ing007_illegal_work_order_step_is_kept_refused_and_changes_nothing(loaded, worker, client):
    engine, data = loaded
    t = tag()
    create = {"event_id": f"{t}-1", "ts": at(), "order_id": f"O-{t}", "action": "create", "category": "supplies",
              "priority": "normal", "description": "独居老人缺药", "address": data.compounds[3].address}
    resolve = {"event_id": f"{t}-2", "ts": at(5), "order_id": f"O-{t}", "action": "resolve", "note": "done"}
    streams.append(client, "workorders", [json.dumps(create), json.dumps(resolve)])
    drain(worker, client)
    with session_factory(engine)() as s:
        order = s.get(WorkOrder, f"O-{t}")
        assert order.state == "created" and [e.action for e in order.steps] == ["create"]
        assert order.committee_id == data.compounds[3].committee_id  # placed by its address
        refused = order.events[-1]
        assert (refused.action, refused.refused) == ("resolve", "created")  # the state where it stands
    assert not [d for d in iter_dead(client) if f"{t}-2" in d["event"]]  # in the order's history, not parked


def test_ing008_work_order_lifecycle_with_dispatch(loaded, worker, client):
    engine, data = loaded
    t, com = tag(), data.committees[2].id
    steps = [{"action": "create", "category": "medical_need", "priority": "urgent", "description": "透析",
              "lat": data.compounds[0].lat, "lng": data.compounds[0].lng},
             {"action": "dispatch", "committee_id": com, "assignee": "张三"}, {"action": "accept"},
             {"action": "arrive"}, {"action": "resolve", "note": "已送医"}, {"action": "close"}]
    streams.append(client, "workorders", [json.dumps({"event_id": f"{t}-{i}", "ts": at(i * 3),
                                                      "order_id": f"O-{t}", **s}) for i, s in enumerate(steps)])
    drain(worker, client)
    with session_factory(engine)() as s:
        order = s.get(WorkOrder, f"O-{t}")
        assert order.state == "closed" and order.committee_id == com and order.assignee == "张三"
        assert [(e.from_state, e.to_state) for e in order.events][-1] == ("resolved", "closed")


def test_ing009_facility_reports_change_state_and_history(loaded, worker, client):
    engine, data = loaded
    t, gate = tag(), data.gates[5]
    report = {"event_id": f"{t}-f", "ts": at(), "facility_id": gate.id, "status": "closed", "guards_on_duty": 3,
              "reporter": "李四"}
    older = {**report, "event_id": f"{t}-old", "ts": at(-120), "status": "open"}
    streams.append(client, "facilities", [json.dumps(report), json.dumps(older)])
    drain(worker, client)
    streams.append(client, "checkins", [checkin(f"{t}-scan", gate.id, person_id(5), ts=at(10))])
    drain(worker, client)
    with session_factory(engine)() as s:
        g = s.get(Gate, gate.id)
        assert (g.status, g.guards_on_duty) == ("closed", 3)  # the older report did not win
        assert s.scalar(select(func.count()).select_from(StateChange).where(
            StateChange.entity_id == gate.id, StateChange.source == "event")) >= 2
        assert s.scalar(select(Alert).where(Alert.event_id == f"{t}-scan")).kind == "closed_gate_scan"
    streams.append(client, "facilities", [json.dumps({**report, "event_id": f"{t}-bad", "status": "unverified"})])
    drain(worker, client)
    assert any(d["reason"] == "status: a gate is one of open, closed, restricted (got 'unverified')"
               for d in iter_dead(client))


def test_ing010_fever_and_health_code_alerts(loaded, worker, client):
    engine, data = loaded
    t, gate = tag(), data.gates[7].id
    streams.append(client, "checkins", [checkin(f"{t}-hot", gate, person_id(1), temperature=37.3),
                                        checkin(f"{t}-ok", gate, person_id(2), temperature=37.2),
                                        checkin(f"{t}-red", gate, person_id(3), health_code="red")])
    drain(worker, client)
    with session_factory(engine)() as s:
        kinds = {a.event_id: a.kind for a in s.scalars(select(Alert).where(Alert.event_id.like(f"{t}-%")))}
    assert kinds == {f"{t}-hot": "fever", f"{t}-red": "health_code"}


def test_ing011_returnee_registration_required_once_then_linked(loaded, worker, client):
    engine, data = loaded
    t, gate, pid = tag(), data.gates[8].id, person_id(808, "19750505")
    streams.append(client, "checkins", [
        checkin(f"{t}-1", gate, pid, category="returnee", origin="江苏苏州", ts=at(0)),
        checkin(f"{t}-2", gate, pid, category="returnee", origin="江苏苏州", ts=at(60)),
        checkin(f"{t}-3", gate, person_id(809), category="returnee", origin="上海浦东", ts=at(60))])
    drain(worker, client)
    with session_factory(engine)() as s:
        regs = s.scalars(select(ReturneeRegistration).where(ReturneeRegistration.gate_id == gate)).all()
        assert len(regs) == 1 and regs[0].status == "required" and regs[0].person_masked.endswith(pid[-4:])
        linked = s.scalars(select(CheckIn.registration_id).where(CheckIn.event_id.like(f"{t}-%"))).all()
        assert sorted(linked, key=str) == sorted([regs[0].id, regs[0].id, None], key=str)
        assert count(engine, Alert, Alert.kind == "registration_required", Alert.event_id.like(f"{t}-%")) == 1


def test_ing012_observation_health_checkins_release_and_missed_sweep(loaded, worker, client):
    engine, data = loaded
    t, pid, comp = tag(), person_id(612, "19660606"), data.compounds[20]
    start = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-o", "ts": start.isoformat(), "person_id": pid,
                                                 "category": "home_observation", "address": comp.address})])
    drain(worker, client)
    day2 = start + dt.timedelta(days=1, hours=2)
    streams.append(client, "health", [json.dumps({"event_id": f"{t}-h1", "ts": day2.isoformat(), "person_id": pid,
                                                  "temperature": 37.8, "symptoms": "咳嗽"}),
                                      json.dumps({"event_id": f"{t}-h2", "ts": day2.isoformat(),
                                                  "person_id": person_id(613), "temperature": 36.5})])
    drain(worker, client)
    with session_factory(engine)() as s:
        obs = s.scalar(select(HomeObservation).where(HomeObservation.start_at == start))
        assert obs.compound_id == comp.id and obs.planned_end_at == start + dt.timedelta(days=14)
        assert [h.temperature for h in obs.checkins] == [37.8]
        assert "第2/14天" in s.scalar(select(Alert).where(Alert.event_id == f"{t}-h1")).message
    assert any(d["reason"].startswith("person_id: no home observation") for d in iter_dead(client))
    day3_late = start + dt.timedelta(days=2, hours=3)  # 12:00 on day 3, nothing reported that day
    assert worker.sweep_missed_checkins(day3_late) >= 1
    assert worker.sweep_missed_checkins(day3_late) == 0  # once per observation per day
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-r", "ts": (start + dt.timedelta(days=5)).isoformat(),
                                                 "person_id": pid, "category": "released",
                                                 "compound_id": comp.id})])
    drain(worker, client)
    with session_factory(engine)() as s:
        obs = s.get(HomeObservation, obs.id)
        assert obs.end_reason == "released" and obs.ended_at == start + dt.timedelta(days=5)
        assert count(engine, Case, Case.event_id.like(f"{t}-%")) == 2


def test_ing027_a_check_in_recorded_in_error_is_corrected_not_erased(loaded, worker, client, config):
    """45.0 °C confirmed by mistake: a correction (``corrects``: its event id) replaces the value —
    the drill-down shows 36.6 with the 45.0 it replaced, the day counts one check-in, the feed
    says the fever alert was entered in error; the fever alert stays in history. A correction of
    another observation's check-in, or one stamped before it, is refused naming ``corrects``."""
    from layers import observations
    from layers.base import Query

    engine, data = loaded
    t, pid = tag(), person_id(627, "19670707")
    start = dt.datetime(2030, 2, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    day2 = start + dt.timedelta(days=1, hours=1)
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-o", "ts": start.isoformat(), "person_id": pid,
                                                 "category": "home_observation",
                                                 "compound_id": data.compounds[21].id})])
    streams.append(client, "health", [json.dumps({"event_id": f"{t}-h", "ts": day2.isoformat(), "person_id": pid,
                                                  "temperature": 45.0})])
    drain(worker, client)
    fixed = day2 + dt.timedelta(minutes=3)
    streams.append(client, "health", [
        json.dumps({"event_id": f"{t}-c", "ts": fixed.isoformat(), "person_id": pid, "temperature": 36.6,
                    "corrects": f"{t}-h"}),
        json.dumps({"event_id": f"{t}-x", "ts": fixed.isoformat(), "person_id": pid, "temperature": 36.6,
                    "corrects": "nobody-s-check-in"}),
        json.dumps({"event_id": f"{t}-e", "ts": (day2 - dt.timedelta(minutes=1)).isoformat(), "person_id": pid,
                    "temperature": 36.6, "corrects": f"{t}-h"})])
    drain(worker, client)
    with session_factory(engine)() as s:
        obs = s.scalar(select(HomeObservation).where(HomeObservation.start_at == start))
        got = observations.detail(s, str(obs.id), Query(data.street.id, fixed))
        before = observations.detail(s, str(obs.id), Query(data.street.id, fixed - dt.timedelta(minutes=1)))
    assert [(c["temperature"], c["corrected_from"]) for c in got["checkins"]] == [(36.6, 45.0)]
    assert [(c["temperature"], c["corrected_from"]) for c in before["checkins"]] == [(45.0, None)]  # as it stood
    assert count(engine, Alert, Alert.event_id == f"{t}-h", Alert.kind == "fever") == 1
    assert count(engine, Alert, Alert.event_id == f"{t}-c") == 0
    assert any("体温更正 45.0→36.6°C" in item["text"] and "此前发热预警系误录" in item["text"]
               for item in streams.feed(client, 50))
    assert int(client.hget(f"{{opsmap:health}}:count:{day2.date()}", "checkins")) == 1
    reasons = {json.loads(d["event"])["event_id"]: d["reason"] for d in iter_dead(client) if t in d["event"]}
    assert reasons[f"{t}-x"].startswith("corrects: no check-in") and "later than" in reasons[f"{t}-e"]


def test_ing013_work_reports_count_against_targets(loaded, worker, client):
    engine, data = loaded
    t, comp = tag(), data.compounds[30]
    streams.append(client, "work", [json.dumps({"event_id": f"{t}-{i}", "ts": at(i), "task": "screening",
                                                "target_id": comp.id, "count": 12, "reporter": "王五"})
                                    for i in range(3)])
    drain(worker, client)
    assert count(engine, WorkReport, WorkReport.event_id.like(f"{t}-%")) == 3
    got = client.hget("{opsmap:work}:count:2022-04-10", f"screening:compound:{comp.id}")
    assert int(got) == 36


def test_ing014_no_raw_personal_number_in_database_logs_or_dead_letters(loaded, worker, client, caplog):
    engine, data = loaded
    t, gate = tag(), data.gates[9].id
    raw_ids = [person_id(900 + i, "19881212") for i in range(20)]
    raw_phones = [phone(77_000_000 + i) for i in range(20)]
    caplog.set_level(logging.DEBUG)
    good = [checkin(f"{t}-{i}", gate, raw_ids[i], phone=raw_phones[i], temperature=38.0) for i in range(10)]
    bad = [checkin(f"{t}-b{i}", "nope", raw_ids[i], phone=raw_phones[i]) for i in range(10, 20)]
    broken = ['{"person_id": "' + raw_ids[0] + '", "phone": "' + raw_phones[0] + '"']
    streams.append(client, "checkins", good + bad + broken)
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-c", "ts": at(), "person_id": raw_ids[1],
                                                 "category": "confirmed", "compound_id": data.compounds[0].id})])
    drain(worker, client)
    blob = _stored_bytes(engine)
    dead = json.dumps(list(iter_dead(client)), ensure_ascii=False)
    logs = caplog.text
    for raw in raw_ids + raw_phones:
        assert raw.encode() not in blob, "raw number in the database file"
        assert raw not in dead, "raw number in opsmap:dead"
        assert raw not in logs, "raw number in the logs"
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 10


def _stored_bytes(engine) -> bytes:
    """All the database holds: SQLite's file and WAL byte for byte; on PostgreSQL every row of
    every table of the test's schema as text."""
    if engine.dialect.name == "sqlite":
        engine.dispose()  # flush the WAL into the file
        path = engine.url.database
        return b"".join(file_bytes(p) for p in (path, path + "-wal") if os.path.exists(p))
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars()
        return b"".join(str(row[0]).encode() for t in tables.all()
                        for row in conn.execute(text(f'SELECT t::text FROM "{t}" t')))


def test_ing015_restart_of_embedded_redis_loses_no_appended_event(loaded, tmp_path, config):
    from data.pipeline.redis_server import EmbeddedRedis

    engine, data = loaded
    t, gate = tag(), data.gates[11].id
    server = EmbeddedRedis(tmp_path / "redis")
    client = redis.Redis.from_url(server.start())
    w = Worker(engine, client, config, consumer="r1")
    events = [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(4000)]
    streams.append(client, "checkins", events[:2000])
    w.step(block_ms=10)  # some ingested, most not
    stored = count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%"))
    os.kill(server.process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
    server.stop()  # reaps the dead process and releases the directory
    again = EmbeddedRedis(tmp_path / "redis")
    client = redis.Redis.from_url(again.start())
    try:
        # what was stored was acknowledged and, written raw, deleted (no raw ID rests in Redis); the rest survived
        assert 0 < stored < 2000 and client.xlen("opsmap:checkins") == 2000 - stored
        streams.append(client, "checkins", events[2000:])
        time.sleep(0.6)
        drain(Worker(engine, client, config, consumer="r2"), client)
        assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 4000
    finally:
        again.stop()


def test_ing016_an_event_that_keeps_failing_is_parked_after_n_tries(loaded, client, config):
    engine, data = loaded
    t, gate = tag(), data.gates[12].id
    poison = f"{t}-poison"

    class Buggy(Worker):
        """A worker with a bug that only this one event triggers (fault injection)."""

        def _apply(self, items, out):
            if any(ev.event_id == poison for _, _, ev in items):
                raise RuntimeError("boom")
            super()._apply(items, out)

    events = [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(10)]
    streams.append(client, "checkins", [*events[:5], checkin(poison, gate, person_id(99)), *events[5:]])
    w = Buggy(engine, client, config, consumer="buggy")
    deadline = time.monotonic() + 30
    while pending_total(client) and time.monotonic() < deadline:
        w.step(block_ms=20)
        time.sleep(0.1)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 10  # the others were not held back
    dead = [d for d in iter_dead(client) if poison in d["event"]]
    assert len(dead) == 1 and dead[0]["reason"] == "failed 3 times: RuntimeError: boom"
    assert pending_total(client) == 0


def test_ing017_a_scan_after_a_closing_report_in_the_same_batch_sees_the_gate_closed(loaded, worker, client):
    engine, data = loaded
    t, gate = tag(), data.gates[13]
    new = "closed" if gate.status != "closed" else "open"
    streams.append(client, "facilities", [json.dumps({"event_id": f"{t}-f", "ts": at(1), "facility_id": gate.id,
                                                      "status": new, "reporter": "巡查"})])
    streams.append(client, "checkins", [checkin(f"{t}-c", gate.id, person_id(1), ts=at(2))])
    drain(worker, client)  # one read takes both streams: one batch
    with session_factory(engine)() as s:
        raised = s.scalar(select(Alert.kind).where(Alert.event_id == f"{t}-c"))
    assert raised == ("closed_gate_scan" if new == "closed" else None)


def test_ing018_a_ledger_row_of_the_earlier_form_replays_the_same_counters():
    """Counters in ledger rows were once a list of [hash, field, n]: a row written then, replayed
    after an upgrade (its commit done, its Redis side not), counts what it counted."""
    key = "{opsmap:checkins}:count:2022-04-10"
    earlier = {"counters": [[key, "gate:G1:in", 1], [key, "street:S:checkins", 1], [key, "gate:G1:in", 2]],
               "feed": [["alerts", {"kind": "alert:fever"}]], "added": {"case": [7]}}
    eff = Effects.from_json(earlier)
    assert eff.counters == {key: {"gate:G1:in": 3, "street:S:checkins": 1}}
    assert eff.feed == [("alerts", {"kind": "alert:fever"})] and eff.added == {"case": [7]}
    assert Effects.from_json(json.loads(json.dumps(eff.to_json()))) == eff


def test_ing019_a_backlog_is_read_in_growing_batches_a_caught_up_worker_in_small_ones(loaded, client, tmp_path):
    """Catching up, each full batch doubles the next up to OPSMAP_INGEST_BATCH_MAX (fewer commits
    and Redis steps per event); the first short read brings back OPSMAP_INGEST_BATCH (an event
    waits for its batch's commit). A batch whose double would take longer than ``grow_under_s`` or
    a tenth of the claim time does not grow. The time limits are set here far beyond or far below
    what any batch takes, so the sizes do not depend on the machine's speed."""
    engine, data = loaded
    t, gates, ids = tag(), [g.id for g in data.gates[:20]], itertools.count()

    def append(n: int) -> None:
        streams.append(client, "checkins", [checkin(f"{t}-{next(ids)}", gates[i % 20], person_id(i)) for i in range(n)])

    def sizes(claim_idle_ms: int, grow_under_s: float, backlog: int) -> list[int]:
        """What each step reads: the backlog, then one event, then 60 (of which the first step reads some)."""
        config = config_for(tmp_path, OPSMAP_INGEST_BATCH="50", OPSMAP_INGEST_BATCH_MAX="300",
                            OPSMAP_INGEST_CLAIM_IDLE_MS=str(claim_idle_ms), OPSMAP_MAX_FUTURE_MINUTES="60", **NO_SWEEP)
        w, read = Worker(engine, client, config, consumer=f"catch-up-{claim_idle_ms}-{grow_under_s}"), []
        w.grow_under_s = grow_under_s
        append(backlog)
        while pending_total(client):
            read.append(w.step(block_ms=20))
        for n in (1, 60):
            append(n)
            read.append(w.step(block_ms=20))
        drain(w, client)
        return read

    assert sizes(10_000_000, 1000, 1000) == [50, 100, 200, 300, 300, 50, 1, 50]
    # a tenth of a millisecond (claim time) or a microsecond (grow_under_s): no batch is that quick
    assert sizes(1, 1000, 300) == [50] * 6 + [1, 50]
    assert sizes(10_000_000, 1e-6, 300) == [50] * 6 + [1, 50]
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == next(ids) == 1000 + 2 * 300 + 3 * 61


def gate_in(client: redis.Redis, gate: str) -> int:
    """Entries counted at ``gate`` on the tests' day (the Redis side of their batches)."""
    return int(client.hget("{opsmap:checkins}:count:2022-04-10", f"gate:{gate}:in") or 0)


def held_by(client: redis.Redis, consumer: str) -> int:
    """Check-in entries delivered to ``consumer`` and not acknowledged."""
    return len(client.xpending_range("opsmap:checkins", streams.GROUP, "-", "+", 10_000, consumername=consumer))


def fixed_batches(tmp_path, size: int, **extra: str):
    return config_for(tmp_path, OPSMAP_INGEST_BATCH=str(size), OPSMAP_INGEST_BATCH_MAX=str(size),
                      OPSMAP_MAX_FUTURE_MINUTES="60", **NO_SWEEP, **extra)


def test_ing020_catching_up_the_next_batch_is_read_while_redis_writes_the_last(loaded, client, tmp_path):
    """A step with a full batch reads the next one before sending its own Redis side, and leaves
    that side's answer to the next step: the side lands with no further step (Redis writes it
    while the worker would apply the next batch), the next batch waits with this worker, and a
    short batch is answered before its step returns."""
    engine, data = loaded
    t, gate = tag(), data.gates[15].id
    before = gate_in(client, gate)
    w = Worker(engine, client, fixed_batches(tmp_path, 50), consumer=f"ahead-{t}")
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(120)])
    assert w.step(block_ms=10) == 50
    wait_for(lambda: gate_in(client, gate) - before == 50 and held_by(client, w.consumer) == 50, 10,
             "the first batch counted and acknowledged, the second held")
    assert w.step(block_ms=10) == 50  # the batch read ahead
    assert w.step(block_ms=10) == 20
    assert gate_in(client, gate) - before == 120 and held_by(client, w.consumer) == 0


def test_ing021_a_worker_stopped_while_catching_up_leaves_nothing_held(loaded, client, tmp_path):
    """The batch read ahead is applied and the last Redis side answered before ``run`` returns."""
    engine, data = loaded
    t, gate, n = tag(), data.gates[16].id, 4000
    before = gate_in(client, gate)
    w = Worker(engine, client, fixed_batches(tmp_path, 20), consumer=f"stopped-{t}")
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(n)])
    stop = threading.Event()
    runner = threading.Thread(target=w.run, args=(stop, 10))
    runner.start()
    wait_for(lambda: gate_in(client, gate) > before, 30, "a first batch counted", every=0.002)
    stop.set()
    runner.join(30)
    stored = count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%"))
    assert not runner.is_alive() and stored < n  # stopped while catching up
    assert held_by(client, w.consumer) == 0 and gate_in(client, gate) - before == stored


def test_ing022_entries_another_worker_finished_meanwhile_are_left_out_the_rest_replayed(loaded, client, tmp_path,
                                                                                        caplog):
    """A worker stalled past the claim time between its commit and its Redis side: another
    claimed half its batch and finished it. The fence writes nothing of the stalled one's side;
    its other half, still held by it, is read again and replayed from the ledger: every check-in
    and fever alert counted once."""
    engine, data = loaded
    t, gate, n = tag(), data.gates[17].id, 40
    fevers_key = "{opsmap:alerts}:count:2022-04-10"
    before, fevers_before = gate_in(client, gate), int(client.hget(fevers_key, "alert:fever") or 0)
    config = fixed_batches(tmp_path, 100, OPSMAP_INGEST_CLAIM_IDLE_MS="60000")
    rescuer = Worker(engine, client, config, consumer=f"rescuer-{t}")

    class Stalled(Worker):
        claimed = False

        def _finish(self, out, ahead=False):
            if not self.claimed:  # XCLAIM stands in for XAUTOCLAIM after the idle time
                self.claimed = True
                client.xclaim("opsmap:checkins", streams.GROUP, rescuer.consumer, 0,
                              [entry_id for _, entry_id, _ in out.applied][::2])
                assert rescuer.step(block_ms=10) == n // 2  # its own pending first: replayed from the ledger
            super()._finish(out, ahead)

    stalled = Stalled(engine, client, config, consumer=f"stalled-{t}")
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i), temperature=36.5 + 2.1 * (i % 4 == 0))
                                        for i in range(n)])
    with caplog.at_level(logging.WARNING, logger="data.pipeline.ingest"):
        assert stalled.step(block_ms=10) == n
    assert "finished by another worker meanwhile" in caplog.text
    assert held_by(client, stalled.consumer) == n // 2 and gate_in(client, gate) - before == n // 2
    assert stalled.step(block_ms=10) == n // 2  # its own pending, replayed
    assert held_by(client, stalled.consumer) == 0 and held_by(client, rescuer.consumer) == 0
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == n
    assert gate_in(client, gate) - before == n
    assert int(client.hget(fevers_key, "alert:fever") or 0) - fevers_before == n // 4
