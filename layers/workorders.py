"""Work-order layer: 12345 orders by state at the moment asked; overdue ones stand out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from data import rules
from data.models import WorkOrder
from data.store import states_as_of
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso, street_boundary

id = "workorders"
title = "12345 工单"
STATES = {"created": ("待派单", "#f08c00"), "dispatched": ("已派单", "#1c7ed6"), "accepted": ("已接单", "#1098ad"),
          "arrived": ("已到场", "#0ca678"), "resolved": ("已办结", "#37b24d"), "reopened": ("重办", "#e8590c"),
          "escalated": ("升级", "#c2255c")}


def legend() -> list[LegendEntry]:
    return [*(LegendEntry(k, label, colour) for k, (label, colour) in STATES.items()),
            LegendEntry("overdue", "超时（闪烁）", "#e03131")]


def features(session: Session, query: Query) -> GeoJSON:
    """Orders existing and not closed or cancelled at ``query.at``, in the street."""
    boundary = street_boundary(session, query.street_id)
    orders = [o for o in session.scalars(select(WorkOrder).where(WorkOrder.created_at <= query.at,
                                                                 WorkOrder.geom.is_not(None))
                                         .options(selectinload(WorkOrder.events)))
              if boundary is not None and boundary.covers(o.geom)]
    states = states_as_of(session, "work_order", query.at, [o.id for o in orders])
    out = []
    for o in orders:
        st = states.get(o.id, {})
        state = st.get("state")
        committee = st.get("committee_id", o.committee_id)
        if state not in rules.OPEN_STATES and state != "resolved":
            continue
        if query.committee_id and committee != query.committee_id:
            continue
        clocks = _clocks(o, st, query)
        overdue = max((c.overdue_by for c in clocks), default=None)
        out.append(feature(o.geom, id=o.id, kind=state, name=f"{o.category} · {o.description[:20]}",
                           priority=st.get("priority", o.priority), committee_id=committee,
                           overdue=bool(overdue and overdue.total_seconds() > 0),
                           overdue_minutes=int(overdue.total_seconds() // 60) if overdue else 0))
    return collection(out)


def _clocks(order: WorkOrder, state: dict[str, Any], query: Query) -> list[rules.Clock]:
    sla = query.sla.get(state.get("priority", order.priority), {})
    milestones: dict[str, Any] = {}
    for e in order.events:
        if e.ts <= query.at and e.action in rules.MILESTONE_OF:
            milestones.setdefault(rules.MILESTONE_OF[e.action], e.ts)
    return rules.sla_clocks(order.created_at, sla, milestones, query.at)


def detail(session: Session, entity_id: str) -> dict[str, Any] | None:
    """The order, its timeline and its SLA clocks now (urgent and normal deadlines from settings)."""
    order = session.get(WorkOrder, entity_id)
    if order is None:
        return None
    return {"id": order.id, "category": order.category, "priority": order.priority, "state": order.state,
            "committee_id": order.committee_id, "assignee": order.assignee, "address": order.address,
            "description": order.description, "created_at": iso(order.created_at),
            "timeline": [{"ts": iso(e.ts), "action": e.action, "to_state": e.to_state, "note": e.note,
                          "committee_id": e.committee_id, "assignee": e.assignee} for e in order.events]}

