"""lab: every code of the event contract has a name, and no raw code reaches a person — in the
live feed or in a drill-down (issue 15: `restricted`, `quarantine_violation`, `S194-J03` were read)."""

from __future__ import annotations

import datetime as dt
import json
import re

from dashboard import components
from data.domain.labels import label
from data.pipeline import streams
from data.pipeline.events import codes
from data.pipeline.ingest import Worker
from data.settings import load
from data.store import session_factory
from layers import gates, workorders
from layers.base import Query
from tests.conftest import person_id
from tests.ingesting import at, checkin, drain, tag


def _codes_in(text: str) -> set[str]:
    """The contract codes that stand as words in ``text`` (``in``, ``out`` and ``end`` are too
    common in ids to tell; they are named wherever they are shown as values)."""
    return {c for c in codes() - {"in", "out", "end"} if re.search(rf"(?<![A-Za-z_]){c}(?![A-Za-z_])", text)}


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), ensure_ascii=False, default=lambda c: c.to_plotly_json())


def test_lab001_every_contract_code_has_a_chinese_name():
    unnamed = sorted(c for c in codes() if label(c) == c)
    assert unnamed == []
    assert label("closed", "state") == "已关闭" and label("closed") == "关闭"  # an order's, a gate's


def test_lab002_feed_and_drill_downs_name_codes_and_committees(loaded, client, config):
    engine, data = loaded
    t, gate, c = tag(), data.gates[25], data.compounds[11]
    watched = person_id(777, "19600101")
    order = f"O-{t}"
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-o", "ts": at(-60), "person_id": watched,
                                                 "category": "home_observation", "compound_id": gate.compound_id})])
    streams.append(client, "facilities", [json.dumps({"event_id": f"{t}-f", "ts": at(1), "facility_id": gate.id,
                                                      "status": "restricted", "reporter": "巡查"})])
    streams.append(client, "checkins", [checkin(f"{t}-out", gate.id, watched, direction="out", ts=at(2))])
    streams.append(client, "workorders", [json.dumps(e) for e in (
        {"event_id": f"{t}-1", "ts": at(0), "order_id": order, "action": "create", "category": "medical_need",
         "priority": "normal", "description": "缺药", "lat": c.lat, "lng": c.lng},
        {"event_id": f"{t}-2", "ts": at(1), "order_id": order, "action": "dispatch", "committee_id": c.committee_id,
         "assignee": "王五"},
        {"event_id": f"{t}-3", "ts": at(0.5), "order_id": order, "action": "resolve", "note": "早了"})])
    drain(Worker(engine, client, config, consumer=f"lab-{t}"), client)
    feed = " | ".join(i["text"] for i in streams.feed(client, 50))
    assert "限制通行" in feed and "就医需求" in feed and "紧急工单已派至" in feed
    q = Query.from_config(load(environ={}), data.street.id, dt.datetime.fromisoformat(at(10)))
    with session_factory(engine)() as s:
        shown = [components.detail_panel(layer.id, layer.title, layer.detail(s, entity, q))
                 for layer, entity in ((workorders, order), (workorders, f"auto-{t}-out"), (gates, gate.id))]
    text = feed + " ".join(_text(p) for p in shown)
    assert _codes_in(text) == set(), text
    headers = re.findall(r'"children": "([^"]*)"\}, "type": "Th"', text)
    assert [h for h in headers if re.fullmatch(r"[A-Za-z_ ]+", h)] == [], "a column named by its English key"
    committees = {com.id for com in data.committees}
    assert not [cid for cid in committees if cid in text], "a committee shown by its id, not its name"
    assert "未生效（原因）" in text  # the resolve stamped before its dispatch is kept, with the reason
