"""act: officer actions become events through the same validation and ingest, and say why they fail."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import func, select

from data.models import Case, Gate, HomeObservation, Shop, WorkOrder, WorkOrderEvent
from data.pipeline import actions, streams
from data.pipeline.ingest import Worker
from data.read import queries
from data.store import session_factory
from tests.conftest import ENGINES, own_street, person_id

OFFICER = "张三"


@pytest.fixture(scope="module", params=ENGINES)
def street(request, tmp_path_factory):
    """A street of its own: actions write at the present moment, which other tests read."""
    yield from own_street(request.param, tmp_path_factory.mktemp(f"act-{request.param}"), request)


@pytest.fixture
def live(street, client, config):
    """The street with an ingest worker consuming, as under ``opsmap serve``."""
    engine, data = street
    stop = threading.Event()
    worker = Worker(engine, client, config, consumer="act-test")
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"block_ms": 50})
    thread.start()
    yield {"engine": engine, "data": data, "client": client, "config": config, "sessions": session_factory(engine)}
    stop.set()
    thread.join()


def submit(live, action, entity, **form):
    return actions.submit(live["engine"], live["client"], live["config"], action, str(entity), form, OFFICER)


def new_order(live, dispatch: bool) -> str:
    """An order created (and dispatched) by the hotline, through the stream, applied."""
    data, oid = live["data"], f"ord-{dt.datetime.now().timestamp()}"
    c = data.compounds[10]
    now = dt.datetime.now(dt.UTC).isoformat()
    evs = [{"event_id": f"{oid}-c", "ts": now, "order_id": oid, "action": "create", "category": "supplies",
            "priority": "normal", "description": "缺药", "lat": c.lat, "lng": c.lng}]
    if dispatch:
        evs.append({"event_id": f"{oid}-d", "ts": now, "order_id": oid, "action": "dispatch",
                    "committee_id": c.committee_id, "assignee": "居委"})
    ids = streams.append(live["client"], "workorders", [json.dumps(e, ensure_ascii=False) for e in evs], reply=True)
    for entry in ids:
        assert streams.wait_reply(live["client"], "workorders", entry, 10) == {"ok": True}
    return oid


def test_act001_accept_arrive_resolve(live):
    oid = new_order(live, dispatch=True)
    results = [submit(live, "accept", oid), submit(live, "arrive", oid, note="已到小区门口"),
               submit(live, "resolve", oid, note="药已送到")]
    assert [(r.ok, r.pending) for r in results] == [(True, False)] * 3, [r.message for r in results]
    with live["sessions"]() as s:
        assert s.get(WorkOrder, oid).state == "resolved"
        steps = s.scalars(select(WorkOrderEvent).where(WorkOrderEvent.order_id == oid)
                          .order_by(WorkOrderEvent.id)).all()
    assert [e.action for e in steps] == ["create", "dispatch", "accept", "arrive", "resolve"]
    assert steps[-1].note == "药已送到" and steps[-1].assignee == OFFICER


def test_act002_resolving_an_undispatched_order_is_refused_and_changes_nothing(live):
    oid = new_order(live, dispatch=False)
    before = {k: live["client"].xlen(f"opsmap:{k}") for k in ("workorders", "dead")}
    result = submit(live, "resolve", oid, note="已处理")
    assert not result.ok
    assert result.message == "action: 办结未生效：当时工单待派单（可做：撤销、派单、升级）"
    assert [e.field for e in result.errors] == ["action"]
    assert {k: live["client"].xlen(f"opsmap:{k}") for k in before} == before  # nothing appended, nothing parked
    with live["sessions"]() as s:
        assert s.get(WorkOrder, oid).state == "created"
        assert s.scalar(select(func.count()).select_from(WorkOrderEvent).where(WorkOrderEvent.order_id == oid)) == 1


def test_act003_bad_input_names_the_field(live):
    oid = new_order(live, dispatch=True)
    assert [e.field for e in submit(live, "resolve", oid).errors] == ["note"]  # a result must be written
    bad = submit(live, "gate_status", live["data"].gates[0].id, status="closed", guards_on_duty="两个")
    assert not bad.ok and bad.message == "guards_on_duty: must be a number"
    nobody = actions.submit(live["engine"], live["client"], live["config"], "accept", oid, {}, " ")
    assert not nobody.ok and nobody.errors[0].field == "reporter"
    unknown = submit(live, "shop_status", "no-such-shop", status="open")
    assert not unknown.ok and unknown.message.startswith("facility_id: unknown gate, shop or site")


def test_act004_gate_and_shop_reports(live):
    gate, shop = live["data"].gates[3], live["data"].shops[3]
    assert submit(live, "gate_status", gate.id, status="restricted", guards_on_duty="1").ok
    assert submit(live, "shop_status", shop.id, status="closed").ok
    with live["sessions"]() as s:
        g, sh = s.get(Gate, gate.id), s.get(Shop, shop.id)
        assert (g.status, g.guards_on_duty, sh.status) == ("restricted", 1, "closed")


def test_act005_observation_start_checkin_extend_end(live):
    compound = live["data"].compounds[20]
    assert submit(live, "start_observation", compound.id, person_id=person_id(777, "19800101")).ok
    with live["sessions"]() as s:
        obs = s.scalars(select(HomeObservation).where(HomeObservation.compound_id == compound.id)
                        .order_by(HomeObservation.id.desc())).first()
    assert submit(live, "health_checkin", obs.id, temperature="36.6").ok
    before_extension = dt.datetime.now(dt.UTC)
    extended = submit(live, "extend", obs.id, days="7", note="密接复核")
    assert extended.ok, extended.message
    with live["sessions"]() as s:
        o = s.get(HomeObservation, obs.id)
        assert o.planned_end_at - o.start_at == dt.timedelta(days=21)
        assert len(o.checkins) == 1
        then = queries.observation_periods(s, [o], before_extension)[o.id]
        now = queries.observation_periods(s, [o], dt.datetime.now(dt.UTC))[o.id]
    assert (then.days, now.days, now.day) == (14, 21, 1)  # the past stays as it was
    assert submit(live, "end", obs.id, reason="released").ok
    late = submit(live, "health_checkin", obs.id, temperature="36.6")
    assert not late.ok and late.message == f"observation_id: home observation {obs.id} has already ended at ts"
    with live["sessions"]() as s:
        o = s.get(HomeObservation, obs.id)
        assert o.end_reason == "released" and o.ended_at is not None
        assert s.scalar(select(func.count()).select_from(Case).where(
            Case.person_id == o.person_id, Case.category == "released")) == 1


def test_act006_ingest_reports_its_refusal_to_a_waiting_producer(live):
    event = {"event_id": "reply-1", "ts": dt.datetime.now(dt.UTC).isoformat(), "gate_id": "no-gate",
             "direction": "in", "person_id": person_id(9), "category": "resident", "temperature": 36.5}
    entry = streams.append(live["client"], "checkins", [json.dumps(event)], reply=True)[0]
    assert streams.wait_reply(live["client"], "checkins", entry, 10) == {
        "ok": False, "reason": "gate_id: unknown gate 'no-gate'"}
