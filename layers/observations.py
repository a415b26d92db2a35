"""Home-observation layer: each point under observation with day N/14, marked when today's
health check-in is missing; released ones stay a few days, faded."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from data.domain import rules
from data.models import Compound, HealthCheckIn, HomeObservation
from data.read import queries
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso, street_boundary

id = "observations"
title = "居家观察"
#: notice topics that may change its features (day N/14 and missed check-ins move with the clock)
changed_by = frozenset({"stream:cases", "stream:health", "stream:observations", "clock"})
FADE_DAYS = 3


def legend() -> list[LegendEntry]:
    return [LegendEntry("active", "观察中（第N/M天）", "#7048e8"),
            LegendEntry("missing", "今日未打卡", "#e03131"),
            LegendEntry("released", "已解除", "#adb5bd")]


def _in_scope(session: Session, query: Query) -> list[tuple[HomeObservation, Compound | None]]:
    boundary = street_boundary(session, query.street_id)
    since = query.at - dt.timedelta(days=FADE_DAYS)
    rows = session.execute(
        select(HomeObservation, Compound)
        .outerjoin(Compound, Compound.id == HomeObservation.compound_id)
        .where(HomeObservation.start_at <= query.at, HomeObservation.planned_end_at > since,
               or_(HomeObservation.ended_at.is_(None), HomeObservation.ended_at > since))).all()
    return [(obs, compound) for obs, compound in rows
            if ((compound is not None and compound.street_id == query.street_id)
                or (compound is None and boundary is not None and boundary.covers(obs.geom)))
            and (query.committee_id is None or (compound is not None and compound.committee_id == query.committee_id))]


def features(session: Session, query: Query) -> GeoJSON:
    rows = _in_scope(session, query)
    periods = queries.observation_periods(session, [o for o, _ in rows], query.at)
    day_start = rules.day_start(query.at)
    reported = set(session.scalars(select(HealthCheckIn.observation_id).where(
        HealthCheckIn.ts >= day_start, HealthCheckIn.ts <= query.at,
        HealthCheckIn.observation_id.in_([o.id for o, _ in rows]))))
    out = []
    for obs, compound in rows:
        p = periods[obs.id]
        out.append(feature(obs.geom, id=str(obs.id), kind="active" if p.active else "released",
                           day=p.day, days=p.days, label=f"{p.day}/{p.days}" if p.active else "解除",
                           missing=p.active and obs.id not in reported, address=obs.address,
                           ends_today=p.active and rules.local_day(p.planned_end) == rules.local_day(query.at),
                           committee_id=compound and compound.committee_id, name=obs.address or f"观察点 {obs.id}",
                           compound_id=compound and compound.id, compound=compound and compound.name,
                           compound_at=compound and [compound.lng, compound.lat]))
    return collection(out)


def public(features: list[GeoJSON]) -> list[GeoJSON]:
    """Observations as counts: one point per compound (at the compound, not at a home) with how
    many are observed there and how many missed today's check-in. A point with no compound is
    an address of its own: it is left out (the panels still count it)."""
    by_compound: dict[str, list[dict[str, Any]]] = {}
    for f in features:
        if f["properties"].get("compound_id"):
            by_compound.setdefault(f["properties"]["compound_id"], []).append(f["properties"])
    out = []
    for compound_id, props in by_compound.items():
        first, active = props[0], [p for p in props if p["kind"] == "active"]
        missing = sum(bool(p["missing"]) for p in active)
        out.append({"type": "Feature", "id": f"c-{compound_id}",
                    "geometry": {"type": "Point", "coordinates": first["compound_at"]},
                    "properties": {"id": f"c-{compound_id}", "kind": "active" if active else "released",
                                   "aggregate": True, "count": len(active), "missing_count": missing,
                                   "missing": missing > 0, "ends_today": False, "day": 0, "days": 0,
                                   "label": f"{len(active)}人", "committee_id": first["committee_id"],
                                   "name": f"{first['compound']} · 居家观察 {len(active)} 人",
                                   "compound_id": compound_id, "compound": first["compound"]}})
    return out


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Outside the scope a drill-down says only where (the compound) and how far along."""
    return {k: detail[k] for k in ("id", "compound_id", "active", "day", "days", "checked_in_today")}


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """The observation at ``query.at``: day N/M, whether today's check-in came, check-ins so far
    (a corrected one as put right, with the value it replaced)."""
    obs = session.get(HomeObservation, int(entity_id)) if entity_id.isdigit() else None
    if obs is None or obs.start_at > query.at:
        return None
    p = queries.observation_periods(session, [obs], query.at)[obs.id]
    day_start = rules.day_start(query.at)
    checkins = queries.effective_checkins(obs.checkins, query.at)
    return {"id": obs.id, "address": obs.address, "compound_id": obs.compound_id, "person": obs.person.id_masked,
            "start_at": iso(obs.start_at), "planned_end_at": iso(p.planned_end), "ended_at": iso(p.ended_at),
            "end_reason": obs.end_reason if p.ended_at is not None else None, "active": p.active,
            "day": p.day, "days": p.days, "checked_in_today": any(c.ts >= day_start for c, _ in checkins),
            "checkins": [{"ts": iso(c.ts), "temperature": c.temperature, "symptoms": c.symptoms,
                          "corrected_from": before} for c, before in checkins]}
