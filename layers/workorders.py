"""Work-order layer: 12345 orders by state at the moment asked; overdue ones stand out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.labels import ORDER_STATES, label, refusal
from data.models import Committee, WorkOrder
from data.read import queries
from data.store import states_as_of
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso

id = "workorders"
title = "12345 工单"
#: notice topics that may change its features (orders turn overdue with the clock)
changed_by = frozenset({"stream:workorders", "clock"})
#: the states an order shows on the map in, by name (data/domain/labels.py) and colour
STATES = {s: (ORDER_STATES[s], colour) for s, colour in (
    ("created", "#f08c00"), ("dispatched", "#1c7ed6"), ("accepted", "#1098ad"), ("arrived", "#0ca678"),
    ("resolved", "#37b24d"), ("reopened", "#e8590c"), ("escalated", "#c2255c"))}


#: an order's 催办/督办 mark: a ring of its own around the state's dot
LEVELS = {"reminded": ("已催办（橙圈）", "#f76707"), "supervised": ("督办（紫圈）", "#862e9c")}


def legend() -> list[LegendEntry]:
    return [*(LegendEntry(k, label, colour) for k, (label, colour) in STATES.items()),
            LegendEntry("overdue", "超时（闪烁）", "#e03131"),
            *(LegendEntry(k, label, colour) for k, (label, colour) in LEVELS.items())]


def features(session: Session, query: Query) -> GeoJSON:
    """Orders open (or resolved, awaiting closure) at ``query.at``, in the street."""
    out = []
    for order, state in queries.street_orders(session, query.street_id, query.at):
        name = state.get("state")
        committee = state.get("committee_id", order.committee_id)
        if name not in rules.OPEN_STATES and name != "resolved":
            continue
        if query.committee_id and committee != query.committee_id:
            continue
        clocks = queries.order_clocks(order, state, query.at, query.policy)
        overdue = max((c.overdue_by for c in clocks), default=dt.timedelta(0))
        out.append(feature(order.geom, id=order.id, kind=name,
                           name=f"{label(order.category)} · {order.description[:20]}", category=order.category,
                           priority=state.get("priority", order.priority), committee_id=committee,
                           overdue=overdue > dt.timedelta(0), overdue_minutes=int(overdue.total_seconds() // 60),
                           level=state.get("level"), remaining=queries.clock_text(query.policy, clocks, query.at)))
    return collection(out)


def public(features: list[GeoJSON]) -> list[GeoJSON]:
    """Outside the scope an order says its kind and state, not the resident's words."""
    return [{**f, "properties": {**f["properties"], "name": label(f["properties"]["category"])}} for f in features]


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in detail.items() if k not in {"address", "description"}},
            "timeline": [{k: v for k, v in e.items() if k != "note"} for e in detail["timeline"]]}


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """The order as it stood at ``query.at``: state, 催办/督办, the time left, timeline so far, and each clock."""
    order = session.get(WorkOrder, entity_id)
    if order is None or order.created_at > query.at:
        return None
    state_then = states_as_of(session, "work_order", query.at, [order.id]).get(order.id, {})
    state, clocks = state_then.get("state"), queries.order_clocks(order, state_then, query.at, query.policy)
    names = dict(session.execute(select(Committee.id, Committee.name)).all())  # a committee by its name
    return {"id": order.id, "category": order.category, "priority": order.priority, "state": state,
            "level": state_then.get("level"),
            "remaining": queries.clock_text(query.policy, clocks, query.at) if state in rules.OPEN_STATES else None,
            "committee_id": order.committee_id, "committee": names.get(order.committee_id),
            "assignee": order.assignee, "address": order.address,
            "description": order.description, "created_at": iso(order.created_at),
            "sla": [{"milestone": c.milestone, "deadline": iso(c.deadline), "met_at": iso(c.met_at),
                     "overdue": c.overdue, "overdue_minutes": int(c.overdue_by.total_seconds() // 60)}
                    for c in clocks],
            "timeline": [{"ts": iso(e.ts), "action": e.action, "to_state": e.to_state, "note": e.note,
                          "committee": names.get(e.committee_id), "assignee": e.assignee,
                          **({"refused": refusal(e.action, e.refused)} if e.refused else {})}
                         for e in order.events if e.ts <= query.at]}
