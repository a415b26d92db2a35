"""Compounds layer: every residential compound (小区/弄) of the street, real positions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from data.domain import rules
from data.models import Case, Compound, HomeObservation
from data.pipeline.events import CASE_LABELS
from data.read import queries
from data.store import states_as_of
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso

id = "compounds"
title = "小区"
#: notice topics that may change its features (tiers follow the cases, and age with the days)
changed_by = frozenset({"stream:cases", "clock"})
TIER_DAYS = 14  # days of tier history a drill-down shows


def legend() -> list[LegendEntry]:
    return [LegendEntry("precaution", "防范区", "#2f9e44"), LegendEntry("controlled", "管控区", "#f59f00"),
            LegendEntry("sealed", "封控区", "#e03131"), LegendEntry("chosen", "选中的小区（蓝圈）", "#1c7ed6")]


def features(session: Session, query: Query) -> GeoJSON:
    """One feature per compound — its outline where known, else its published address point —
    with its three-zone tier (封控/管控/防范) on the day of ``query.at``."""
    stmt = select(Compound).where(Compound.street_id == query.street_id).order_by(Compound.id)
    if query.committee_id:
        stmt = stmt.where(Compound.committee_id == query.committee_id)
    tiers = queries.compound_tiers(session, query.street_id, query.at)
    return collection(
        feature(c.geom, id=c.id, kind="outline" if c.has_outline else "point", tier=tiers.get(c.id, "precaution"),
                name=c.name, committee_id=c.committee_id, households=c.households)
        for c in session.scalars(stmt))


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Outside the scope a compound's observations are a count, not a list of (masked) persons."""
    return {**detail, "observations": len(detail["observations"])}


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """The compound at ``query.at``: its tier then and on each of the 14 days before (封控 for
    seven days after a positive case, 管控 for the seven after that), its gates as they were,
    its cases of the case window and the home observations running then (day N/14, masked)."""
    c = session.scalar(select(Compound).where(Compound.id == entity_id)
                       .options(selectinload(Compound.addresses), selectinload(Compound.gates)))
    if c is None:
        return None
    at, day = query.at, rules.local_day(query.at)
    first = rules.day_start(query.at) - dt.timedelta(days=2 * TIER_DAYS)  # cases that tier the first day shown
    cases = session.execute(select(Case.category, Case.reported_at).where(
        Case.compound_id == c.id, Case.reported_at > min(first, at - query.case_window), Case.reported_at <= at)
        .order_by(Case.reported_at.desc())).all()
    positive = [rules.local_day(t) for category, t in cases if category in rules.POSITIVE]
    history = [{"date": d.isoformat(), "tier": rules.tier(positive, d)}
               for d in (day - dt.timedelta(days=n) for n in range(TIER_DAYS - 1, -1, -1))]
    gates = sorted(c.gates, key=lambda g: g.id)
    states = states_as_of(session, "gate", at, [g.id for g in gates])
    observations = session.scalars(select(HomeObservation).where(HomeObservation.compound_id == c.id,
                                                                 HomeObservation.start_at <= at)).all()
    periods = queries.observation_periods(session, list(observations), at)
    return {"id": c.id, "name": c.name, "address": c.address, "committee_id": c.committee_id,
            "households": c.households, "has_outline": c.has_outline,
            "tier": history[-1]["tier"], "tier_history": history,
            "addresses": [a.address for a in c.addresses],
            "gates": [{"id": g.id, "name": g.name, "status": states[g.id]["status"],
                       "guards_on_duty": states[g.id].get("guards_on_duty", 0)} for g in gates if g.id in states],
            "cases": [{"label": CASE_LABELS[category], "reported_at": iso(t)} for category, t in cases
                      if t > at - query.case_window],
            "observations": [{"person": o.person.id_masked, "start_at": iso(o.start_at),
                              "day": f"{periods[o.id].day}/{periods[o.id].days}"}
                             for o in sorted(observations, key=lambda o: o.start_at) if periods[o.id].active]}
