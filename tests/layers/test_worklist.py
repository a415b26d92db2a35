"""work: an officer's list holds the committee's points that need someone, most urgent first."""

from __future__ import annotations

from data.store import session_factory
from layers.base import Query
from layers.worklist import RANK, worklist


def _items(scn, committee: str, minutes: float):
    q = Query(scn["data"].street.id, scn["at"](minutes), committee, policy=scn["policy"])
    with session_factory(scn["engine"])() as s:
        return worklist(s, q)


def test_wrk001_overdue_order_comes_first_in_its_committee(scenario):
    scn = scenario
    oid = f"{scn['tag']}-O1"
    early = [i for i in _items(scn, scn["c4"].committee_id, 2) if i.entity_id == oid]
    late = _items(scn, scn["c4"].committee_id, 10)
    assert [(i.reason, i.layer) for i in early] == [("order", "workorders")]  # open, not yet overdue
    mine = next(i for i in late if i.entity_id == oid)
    assert (mine.reason, mine.note) == ("overdue", "待派单 · 超时 5 分钟")
    assert late[0].reason == "overdue"  # overdue orders lead the list (other tests may add older ones)
    assert [i.reason for i in late] == sorted((i.reason for i in late), key=RANK.__getitem__)


def test_wrk002_alerts_then_understaffed_gate_in_the_gate_committee(scenario):
    scn = scenario
    committee = next(c.committee_id for c in scn["data"].compounds if c.id == scn["gate"].compound_id)
    items = _items(scn, committee, 10)
    reasons = [i.reason for i in items]
    assert reasons == sorted(reasons, key=RANK.__getitem__)
    assert [i.layer for i in items if i.reason == "alert"] == ["alerts", "alerts"]  # fever, then closed-gate scan
    assert any(i.reason == "understaffed" and i.entity_id == scn["gate"].id for i in items)
    other = next(c.id for c in scn["data"].committees if c.id != committee)
    assert not any(i.reason == "alert" for i in _items(scn, other, 10))  # alerts stay in their committee


def test_wrk003_missed_checkin_lists_the_observation(scenario):
    scn = scenario
    missed = [i for i in _items(scn, scn["c2"].committee_id, 15) if i.reason == "missed_checkin"]
    assert [i.title for i in missed] == [scn["c2"].address]
    assert missed[0].note == "第3/14天"
    done = [i for i in _items(scn, scn["c1"].committee_id, 15) if i.reason == "missed_checkin"]
    assert scn["c1"].address not in [i.title for i in done]  # P checked in at T0+10m


def test_wrk004_alerts_of_one_kind_at_one_place_are_one_line_in_shanghai_time(loaded, client, config):
    """Twelve fever scans at one gate are one line "发热 ×12：<gate>", opening the newest; its time
    is Shanghai's (it read 01:54 for 09:54)."""
    import datetime as dt

    from data.pipeline import streams
    from data.pipeline.ingest import Worker
    from data.settings import load
    from tests.conftest import person_id
    from tests.ingesting import checkin, drain, tag

    engine, data = loaded
    t, gate = tag(), data.gates[33]
    at = dt.datetime(2030, 6, 3, 9, 54, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate.id, person_id(i), temperature=38.6,
                                                ts=(at + dt.timedelta(seconds=i)).isoformat()) for i in range(12)])
    drain(Worker(engine, client, config, consumer=f"wrk-{t}"), client)
    committee = next(c.committee_id for c in data.compounds if c.id == gate.compound_id)
    with session_factory(engine)() as s:
        q = Query.from_config(load(environ={}), data.street.id, at + dt.timedelta(minutes=1), committee)
        items = [i for i in worklist(s, q) if i.reason == "alert"]
    assert [(i.title, i.note) for i in items] == [(f"发热 ×12：{gate.name}", "09:54")]
