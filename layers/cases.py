"""Cases layer: case reports by category over the recent window, clustered in the browser;
a cluster takes the colour of the most serious category inside it (assets/worker/clusters.js).
A feature names its category and compound, never an address: the layer goes to every viewer
of the street; the address and the source text stay in the drill-down (person-level)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from shapely.geometry import Point
from sqlalchemy import Text, or_, select, type_coerce
from sqlalchemy.orm import Session

from data.models import Case, Compound
from data.pipeline.events import CASE_LABELS
from layers.base import GeoJSON, LegendEntry, Query, collection, iso, street_boundary

id = "cases"
title = "病例与重点人员"
#: notice topics that may change its features (a released observation also records a released case;
#: a case leaves the map when the clock takes it out of the case window)
changed_by = frozenset({"stream:cases", "stream:observations", "clock"})
#: case reports are only ever inserted, each shown for the case window: a new version is grown
#: from the previous one by the ids ingest names (layers.base.Growing)
grows_by = "case"
#: category → (label, colour, seriousness: the higher wins a cluster's colour)
CATEGORIES = {c: (CASE_LABELS[c], colour, severity) for c, (colour, severity) in {
    "confirmed": ("#c92a2a", 6), "positive": ("#f03e3e", 5), "suspected": ("#e8590c", 4),
    "close_contact": ("#f59f00", 3), "home_observation": ("#7048e8", 2), "released": ("#868e96", 1)}.items()}
SEVEREST = max(severity for _, _, severity in CATEGORIES.values())
#: clustered in the browser, off the page's main thread (assets/worker/clusters.js): supercluster's
#: radius in pixels, and the seriousness at which the search for a cluster's colour can stop
CLUSTER = {"radius": 40, "severest": SEVEREST}


def legend() -> list[LegendEntry]:
    return [LegendEntry(k, label, colour) for k, (label, colour, _) in CATEGORIES.items()]


def features(session: Session, query: Query, ids: Collection[int] | None = None) -> GeoJSON:
    """Cases reported in ``query.case_window`` up to ``query.at`` that have a location
    (with ``ids``, those among these case ids: layers.base.Growing).

    Why raw columns: this layer can hold 100,000 points; reading the WKT as text and
    building the point dicts directly is ~20× faster than a shapely object per row.
    """
    boundary = street_boundary(session, query.street_id)
    chosen = select(Case.id, Case.category, Compound.name, Case.reported_at, type_coerce(Case.geom, Text),
                    Compound.street_id, Compound.committee_id) \
        .outerjoin(Compound, Compound.id == Case.compound_id) \
        .where(Case.reported_at <= query.at, Case.reported_at > query.at - query.case_window,
               Case.geom.is_not(None), or_(Compound.street_id == query.street_id, Case.compound_id.is_(None)))
    rows = session.execute((chosen if ids is None else chosen.where(Case.id.in_(ids))).order_by(Case.reported_at))
    out = []
    for case_id, category, compound, reported_at, wkt, street, committee in rows:
        if query.committee_id is not None and committee != query.committee_id:
            continue
        if not wkt.startswith("POINT"):
            continue
        lng, lat = map(float, wkt[wkt.index("(") + 1:wkt.index(")")].split())
        if street is None and (boundary is None or not boundary.covers(Point(lng, lat))):
            continue
        label, _, severity = CATEGORIES[category]
        out.append({"type": "Feature", "id": str(case_id), "geometry": {"type": "Point", "coordinates": [lng, lat]},
                    "properties": {"id": str(case_id), "kind": category, "severity": severity,
                                   "name": f"{label} · {compound or '坐标点'}", "reported_at": iso(reported_at),
                                   "committee_id": committee}})
    return collection(out)


def shown_until(feature: GeoJSON, query: Query) -> dt.datetime:
    """A case leaves the map when its report is older than the case window."""
    return dt.datetime.fromisoformat(feature["properties"]["reported_at"]) + query.case_window


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Outside the scope a case is its category, compound and time: no address, no source text."""
    return {k: v for k, v in detail.items() if k not in {"address", "source"}}


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    case = session.get(Case, int(entity_id)) if entity_id.isdigit() else None
    if case is None:
        return None
    return {"id": case.id, "category": case.category, "label": CATEGORIES[case.category][0],
            "address": case.address, "compound_id": case.compound_id, "reported_at": iso(case.reported_at),
            "source": case.source}
