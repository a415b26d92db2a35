"""lay-g: gates at any moment — status from history, understaffed and stale marks, drill-down."""

from __future__ import annotations

from data.store import session_factory
from layers import gates
from layers.base import Query


def _by_id(s, scn, minutes, **kw):
    fc = gates.features(s, Query(scn["data"].street.id, scn["at"](minutes), **kw))
    return {f["id"]: f["properties"] for f in fc["features"]}


def test_layg001_status_follows_history(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        before, after = _by_id(s, scn, 0), _by_id(s, scn, 2)
    gate = scn["gate"].id
    assert after[gate]["kind"] == "closed" and after[gate]["understaffed"] and not after[gate]["stale"]
    assert before[gate]["stale"]  # last confirmed at load time, years earlier
    assert before[gate]["kind"] == scn["gate"].status  # the loaded status, before the report
    assert len(after) == len(scn["data"].gates)


def test_layg002_committee_filter(scenario):
    scn = scenario
    com = scn["data"].committees[0].id
    with session_factory(scn["engine"])() as s:
        got = _by_id(s, scn, 2, committee_id=com)
    assert got and {p["committee_id"] for p in got.values()} == {com}


def test_layg003_drill_down_has_history_masked_checkins_and_alerts(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        d = gates.detail(s, scn["gate"].id, Query(scn["data"].street.id, scn["at"](120)))
    assert d["history"][0]["status"] == "closed" and d["history"][0]["source"] == "event"
    assert d["checkins"][0]["person"].count("*") == 10 and d["checkins"][0]["temperature"] == 38.1
    assert {a["kind"] for a in d["alerts"]} >= {"fever", "closed_gate_scan"}
    assert len(d["roster"]) == 2 * d["guards_required"]
