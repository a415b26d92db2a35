"""Cases layer: case reports by category over the recent window, clustered in the browser;
a cluster takes the colour of the most serious category inside it (assets/map.js)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from data.models import Case, Compound
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso, street_boundary

id = "cases"
title = "病例与重点人员"
#: category → (label, colour, seriousness: the higher wins a cluster's colour)
CATEGORIES = {"confirmed": ("确诊", "#c92a2a", 5), "suspected": ("疑似", "#e8590c", 4),
              "close_contact": ("密接", "#f59f00", 3), "home_observation": ("居家观察", "#7048e8", 2),
              "released": ("解除观察", "#868e96", 1)}


def legend() -> list[LegendEntry]:
    return [LegendEntry(k, label, colour) for k, (label, colour, _) in CATEGORIES.items()]


def features(session: Session, query: Query) -> GeoJSON:
    """Cases reported in ``query.case_window`` up to ``query.at`` that have a location."""
    boundary = street_boundary(session, query.street_id)
    rows = session.execute(
        select(Case, Compound.street_id, Compound.committee_id)
        .outerjoin(Compound, Compound.id == Case.compound_id)
        .where(Case.reported_at <= query.at, Case.reported_at > query.at - query.case_window,
               Case.geom.is_not(None), or_(Compound.street_id == query.street_id, Case.compound_id.is_(None)))
        .order_by(Case.reported_at)).all()
    return collection(
        feature(c.geom, id=str(c.id), kind=c.category, severity=CATEGORIES[c.category][2],
                name=f"{CATEGORIES[c.category][0]} · {c.address or ''}", reported_at=iso(c.reported_at),
                committee_id=committee)
        for c, street, committee in rows
        if (street is not None or (boundary is not None and boundary.covers(c.geom)))
        and (query.committee_id is None or committee == query.committee_id))


def detail(session: Session, entity_id: str) -> dict[str, Any] | None:
    case = session.get(Case, int(entity_id)) if entity_id.isdigit() else None
    if case is None:
        return None
    return {"id": case.id, "category": case.category, "label": CATEGORIES[case.category][0],
            "address": case.address, "compound_id": case.compound_id, "reported_at": iso(case.reported_at),
            "source": case.source}
