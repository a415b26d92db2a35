"""prd: the HTTP intake, the simulator and the 2022 replay, through the real pipeline."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import select

from dashboard.app import create_app
from data.domain import deadlines, rules
from data.models import Case, CompoundAddress, WorkOrder
from data.pipeline import streams
from data.pipeline.dead import iter_dead
from data.pipeline.ingest import Worker
from data.read import queries
from data.settings import PROJECT_ROOT
from data.sources.geodata import read_case_addresses
from data.sources.loader import load_street
from data.sources.simulator import HOURLY, hourly_rate, replay_2022, simulate
from data.store import session_factory
from layers import workorders
from layers.base import Query
from tests.conftest import DATASETS, DROPPED_SIGTERM, SEED, config_for, person_id, signed_in
from tests.ingesting import at, checkin, drain, tag


@pytest.fixture
def http(loaded, redis_url, client, tmp_path):
    engine, _ = loaded
    cfg = config_for(tmp_path, engine)
    return signed_in(create_app(cfg, redis_url).server)


def test_prd001_intake_accepts_a_batch_and_appends_it(loaded, http, client):
    _, data = loaded
    t = tag()
    batch = [json.loads(checkin(f"{t}-{i}", data.gates[0].id, person_id(i))) for i in range(5)]
    resp = http.post("/api/v1/events/checkins", json=batch)
    assert resp.status_code == 202
    body = resp.get_json()
    assert [a["index"] for a in body["accepted"]] == list(range(5)) and body["rejected"] == []
    assert [e[0].decode() for e in client.xrange("opsmap:checkins")] == [a["id"] for a in body["accepted"]]


def test_prd002_intake_says_exactly_which_were_refused_and_why(loaded, http, client):
    _, data = loaded
    t = tag()
    good = json.loads(checkin(f"{t}-ok", data.gates[0].id, person_id(1)))
    bad = {**good, "event_id": f"{t}-bad", "temperature": "warm", "direction": "up"}
    resp = http.post("/api/v1/events/checkins", json=[good, bad, "nonsense"])
    assert resp.status_code == 422
    body = resp.get_json()
    assert [(a["index"], a["event_id"]) for a in body["accepted"]] == [(0, f"{t}-ok")]
    assert body["rejected"][0]["index"] == 1
    assert {e["field"] for e in body["rejected"][0]["errors"]} == {"temperature", "direction"}
    assert body["rejected"][1]["errors"][0]["field"] == "event"
    assert client.xlen("opsmap:checkins") == 1  # only the valid one went in


def test_prd003_intake_limits(http):
    assert http.post("/api/v1/events/nope", json={}).status_code == 404
    assert http.post("/api/v1/events/checkins", data="not json",
                     content_type="application/json").status_code == 400
    assert http.post("/api/v1/events/checkins", json=[{}] * 1001).status_code == 413


def test_prd004_replay_2022_matches_the_published_list(engine, client, config):
    data = load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)  # no other test's cases here
    day = dt.date(2022, 4, 10)
    sent = dict(replay_2022(engine, client, DATASETS, "南京东路", dt.date(2022, 3, 27), day, None))
    again = dict(replay_2022(engine, client, DATASETS, "南京东路", day, day, None))  # replaying twice adds nothing
    drain(Worker(engine, client, config, consumer="replay"), client, limit=120)
    source = read_case_addresses(DATASETS, data.street.geom)
    that_day = source[source["date"] == day]
    with session_factory(engine)() as s:
        compound_of = dict(s.execute(select(CompoundAddress.address, CompoundAddress.compound_id)).all())
        expected = {compound_of[a] for a in that_day["address"]}
        start = dt.datetime.combine(day, dt.time(), rules.SHANGHAI)
        got = set(s.scalars(select(Case.compound_id).where(Case.source == "上海发布 2022", Case.reported_at >= start,
                                                           Case.reported_at < start + dt.timedelta(days=1))))
        assert got == expected and len(got) == sent[day] == again[day] == that_day["address"].nunique()
        tiers = queries.compound_tiers(s, data.street.id, dt.datetime.combine(day, dt.time(23, 59), rules.SHANGHAI))
        week = source[(source["date"] > day - dt.timedelta(days=7)) & (source["date"] <= day)]
        assert {c for c, t in tiers.items() if t == "sealed"} == {compound_of[a] for a in week["address"]}
        assert set(tiers.values()) <= {"sealed", "controlled", "precaution"}


def test_prd005_simulated_traffic_flows_and_bad_events_are_parked(loaded, client, config):
    engine, _ = loaded
    # at 10:00 (an average hour), whatever the hour CI runs: at 01:00 in Shanghai it would send a fifth
    assert hourly_rate(300, 10) == pytest.approx(300 * 1.0 / HOURLY.mean())
    assert hourly_rate(300, 2) < hourly_rate(300, 10) < hourly_rate(300, 8)
    sent = simulate(engine, client, "南京东路", rate=300, duration=2.0, seed=7, malformed=0.05, hour=10)
    assert 0.6 * hourly_rate(300, 10) * 2.0 < sent <= hourly_rate(300, 10) * 2.0
    lengths = {name: client.xlen(f"opsmap:{name}") for name in streams.STREAMS}
    assert lengths["checkins"] > sent / 2 and sum(lengths.values()) == sent
    drain(Worker(engine, client, config, consumer="sim"), client, limit=120)
    dead = list(iter_dead(client))
    assert 0 < len(dead) < sent * 0.2
    assert all(":" in d["reason"] for d in dead)  # each reason names its field


#: ``opsmap simulate`` whose SIGTERM is dropped mid-traffic (tests.conftest.DROPPED_SIGTERM)
DROPPED_EXIT = DROPPED_SIGTERM + """
from data.sources import simulator

real, fired = simulator.Simulator.event, []

def event(self):
    if not fired:
        fired.append(True)
        Dropped()  # made and gone at once: its __del__ runs here, mid-traffic
        print("signalled", flush=True)
    return real(self)

simulator.Simulator.event = event
sys.exit(app.main(["simulate", "--rate", "30", "--duration", "120", "--malformed", "0"]))
"""


def test_prd010_simulate_stops_at_sigterm_even_when_python_drops_its_exit(loaded, redis_url, client, tmp_path):
    """The handler also sets an event the simulator's loop watches, so the command ends within a
    beat of its SIGTERM wherever the signal lands (it ran on for its whole duration before)."""
    engine, _ = loaded  # client: the test Redis, emptied after of what the simulator sent
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False), "REDIS_URL": redis_url,
           "OPSMAP_VAR_DIR": str(tmp_path), "OPSMAP_LOG_LEVEL": "WARNING"}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", DROPPED_EXIT], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert "Exception ignored" in done.stderr and "SystemExit" in done.stderr  # the exit was dropped
    assert "signalled" in done.stdout and "sent " in done.stdout and done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - t0 < 30  # not the 120 s asked for


def test_prd006_sla_at_any_moment_from_history(loaded, client, config):
    engine, data = loaded
    t = tag()
    steps = [{"action": "create", "category": "supplies", "priority": "normal", "description": "缺菜",
              "lat": data.compounds[0].lat, "lng": data.compounds[0].lng, "ts": at(0)},
             {"action": "escalate", "ts": at(20)},
             {"action": "dispatch", "committee_id": data.committees[0].id, "assignee": "赵六", "ts": at(50)}]
    streams.append(client, "workorders", [json.dumps({"event_id": f"{t}-{i}", "order_id": f"O-{t}", **s})
                                          for i, s in enumerate(steps)])
    drain(Worker(engine, client, config, consumer="sla"), client)
    policy = deadlines.of(config)
    minute = dt.timedelta(minutes=1)
    created = dt.datetime.fromisoformat(at(0))

    def clocks(when: dt.datetime) -> tuple[str | None, dict[str, dict]]:
        d = workorders.detail(s, f"O-{t}", Query(data.street.id, when, policy=policy))
        return (d["state"], {c["milestone"]: c for c in d["sla"]}) if d else (None, {})

    with session_factory(engine)() as s:
        state, got = clocks(created + 10 * minute)
        assert state == "created" and not any(c["overdue"] for c in got.values())  # normal: 30 min to dispatch
        state, got = clocks(created + 25 * minute)
        assert state == "escalated" and got["dispatch"]["overdue_minutes"] == 20  # urgent now: 5 min deadline
        state, got = clocks(created + 3 * 60 * minute)
        assert state == "dispatched" and got["dispatch"]["overdue_minutes"] == 45
        assert dt.datetime.fromisoformat(got["deadline"]["deadline"]) == policy.due("supplies", created)  # 1 work day
        assert not got["deadline"]["overdue"]
        assert clocks(created - minute) == (None, {})
        assert s.get(WorkOrder, f"O-{t}").priority == "urgent"


def test_prd007_simulator_ids_are_valid_and_deterministic():
    from data.domain.privacy import id_problem
    from data.sources.simulator import resident_id, stable_id

    rng = np.random.default_rng(1)
    assert all(id_problem(resident_id(rng)) is None for _ in range(200))
    assert stable_id("S194", "2022-04-10", "九江路558号") == stable_id("S194", "2022-04-10", "九江路558号")
    assert id_problem(stable_id("a")) is None
