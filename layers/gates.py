"""Gates layer: every compound gate, open / closed / restricted at the moment asked, with the
guards of its rostered shift (or last reported); marked when understaffed, when its status was
last confirmed too long ago, and greyed when open but silent (no scan within its hours)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.labels import label
from data.models import Alert, CheckIn, Compound, Gate
from data.pipeline.events import public_alert
from data.read import queries
from data.store import states_as_of
from layers.base import GeoJSON, LegendEntry, Query, collection, entity_as_of, feature, iso, parse_time, status_history

id = "gates"
title = "小区出入口"
#: notice topics that may change its features (facility reports of gates; unconfirmed ones go stale with time)
changed_by = frozenset({"kind:gate", "stream:duty", "clock"})


def legend() -> list[LegendEntry]:
    return [*(LegendEntry(s, label(s), colour) for s, colour in
              (("open", "#2f9e44"), ("restricted", "#f59f00"), ("closed", "#e03131"))),
            LegendEntry("understaffed", "值守不足（红框）", "#c92a2a"),
            LegendEntry("stale", "状态待确认（虚框）", "#868e96"),
            LegendEntry("silent", "长时间无扫码（灰）", "#adb5bd")]


def features(session: Session, query: Query) -> GeoJSON:
    """Gates as they were at ``query.at`` (rebuilt from their state history)."""
    stmt = (select(Gate, Compound.committee_id, Compound.name).join(Compound)
            .where(Compound.street_id == query.street_id).order_by(Gate.id))
    if query.committee_id:
        stmt = stmt.where(Compound.committee_id == query.committee_id)
    rows = session.execute(stmt).all()
    states = states_as_of(session, "gate", query.at, [g.id for g, _, _ in rows])
    on_duty = queries.guards_on_duty(session, states, query.at)
    scans = queries.last_scans(session, states, query.at)
    out = []
    for gate, committee_id, compound_name in rows:
        state = states.get(gate.id)
        if state is None:
            continue
        confirmed = parse_time(state.get("confirmed_at"))
        silent = state["status"] == "open" and queries.silent_since(scans.get(gate.id), query.at, query.gate_silent,
                                                                    query.gate_hours) is not None
        out.append(feature(gate.geom, id=gate.id, kind=state["status"], name=gate.name, compound=compound_name,
                           committee_id=committee_id, guards_on_duty=on_duty[gate.id],
                           guards_required=gate.guards_required, understaffed=on_duty[gate.id] < gate.guards_required,
                           stale=confirmed is None or query.at - confirmed > query.gate_stale_after,
                           silent=silent, confirmed_at=iso(confirmed)))
    return collection(out)


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Outside the scope a gate's drill-down has no scans (who passed) and its alerts say what and where."""
    return {**{k: v for k, v in detail.items() if k != "checkins"},
            "alerts": [{**a, "message": public_alert(a["kind"], detail["name"])} for a in detail["alerts"]]}


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """The gate at ``query.at``: status history, guards and roster, the last 20 check-ins
    (masked) and its alerts up to then."""
    found = entity_as_of(session, Gate, "gate", entity_id, query.at)
    if found is None:
        return None
    gate, state = found
    checkins = session.scalars(select(CheckIn).where(CheckIn.gate_id == entity_id, CheckIn.ts <= query.at)
                               .order_by(CheckIn.ts.desc()).limit(20))
    alerts = session.scalars(select(Alert).where(Alert.entity_kind == "gate", Alert.entity_id == entity_id,
                                                 Alert.ts <= query.at).order_by(Alert.ts.desc()).limit(20))
    shift = queries.duty_shifts(session, [gate.id], query.at).get(gate.id)
    duty = ({"on_duty": "、".join(shift.guards) or "（无人）",
             "shift": f"{shift.starts_at.astimezone(rules.SHANGHAI):%m-%d %H:%M}–"
                      f"{shift.ends_at.astimezone(rules.SHANGHAI):%H:%M}"} if shift else {})
    return {"id": gate.id, "name": gate.name, "compound": gate.compound.name, "status": state["status"],
            "guards_on_duty": queries.guards_on_duty(session, {gate.id: state}, query.at)[gate.id],
            "guards_required": gate.guards_required, **duty, "roster": gate.roster,
            "confirmed_at": state.get("confirmed_at"), "synthetic": gate.synthetic,
            "history": status_history(session, "gate", entity_id, query.at),
            "checkins": [{"ts": iso(c.ts), "direction": c.direction, "person": c.person_masked,
                          "phone": c.phone_masked, "category": c.category, "temperature": c.temperature,
                          "health_code": c.health_code} for c in checkins],
            "alerts": [{"ts": iso(a.ts), "kind": a.kind, "severity": a.severity, "message": a.message}
                       for a in alerts]}
