"""Sites layer: construction sites, elderly care, office buildings, markets, metro, parks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.domain.labels import label
from data.models import Site
from data.store import states_as_of
from layers.base import GeoJSON, LegendEntry, Query, collection, entity_as_of, feature, status_history

id = "sites"
title = "重点场所"
#: notice topics that may change its features (facility reports of sites)
changed_by = frozenset({"kind:site"})
#: site kinds by name (data/domain/labels.py) and colour
KINDS = {k: (label(k), colour) for k, colour in (
    ("construction_site", "#d9480f"), ("elderly_care", "#ae3ec9"), ("office_building", "#1971c2"),
    ("market", "#2b8a3e"), ("metro_entrance", "#364fc7"), ("park", "#5c940d"))}


def legend() -> list[LegendEntry]:
    return [LegendEntry(k, label, colour) for k, (label, colour) in KINDS.items()]


def features(session: Session, query: Query) -> GeoJSON:
    stmt = select(Site).where(Site.street_id == query.street_id).order_by(Site.id)
    if query.committee_id:
        stmt = stmt.where(Site.committee_id == query.committee_id)
    sites = session.scalars(stmt).all()
    states = states_as_of(session, "site", query.at, [s.id for s in sites])
    return collection(feature(s.geom, id=s.id, kind=s.kind, status=states[s.id]["status"], name=s.name,
                              label=KINDS[s.kind][0], committee_id=s.committee_id, synthetic=s.synthetic)
                      for s in sites if s.id in states)


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """The site at ``query.at`` and its status reports up to then."""
    found = entity_as_of(session, Site, "site", entity_id, query.at)
    if found is None:
        return None
    site, state = found
    return {"id": site.id, "name": site.name, "kind": site.kind, "label": KINDS[site.kind][0],
            "status": state["status"], "source_ref": site.source_ref, "synthetic": site.synthetic,
            "reports": status_history(session, "site", entity_id, query.at)}
