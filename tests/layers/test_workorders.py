"""lay-w: open work orders by state; overdue ones flagged by their SLA at that moment."""

from __future__ import annotations

from data.store import session_factory
from layers import workorders
from layers.base import Query


def test_layw001_overdue_follows_the_clock(scenario):
    scn = scenario
    oid = f"{scn['tag']}-O1"
    with session_factory(scn["engine"])() as s:
        q = lambda m: {f["id"]: f["properties"] for f in workorders.features(  # noqa: E731
            s, Query(scn["data"].street.id, scn["at"](m), policy=scn["policy"]))["features"]}
        early, late = q(2)[oid], q(10)[oid]
        assert oid not in q(-1)  # not created yet
        at = lambda m: Query(scn["data"].street.id, scn["at"](m), policy=scn["policy"])  # noqa: E731
        detail, before = workorders.detail(s, oid, at(10)), workorders.detail(s, oid, at(-1))
        on_time = workorders.detail(s, oid, at(2))
    assert early["kind"] == "created" and not early["overdue"]
    assert late["overdue"] and late["overdue_minutes"] == 5  # urgent: dispatch due in 5 min
    assert [t["action"] for t in detail["timeline"]] == ["create"]
    assert before is None  # the drill-down answers for the moment asked
    clocks = {c["milestone"]: c for c in detail["sla"]}
    assert set(clocks) == set(scn["policy"].sla["urgent"]) | {"deadline"}  # medical_need: due in 2 h
    assert not clocks["deadline"]["overdue"] and detail["remaining"] == "超时 5 分钟"
    assert clocks["dispatch"]["overdue"] and clocks["dispatch"]["overdue_minutes"] == 5
    assert clocks["dispatch"]["met_at"] is None
    assert not any(c["overdue"] for c in on_time["sla"])
