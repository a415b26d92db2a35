"""Compounds layer: every residential compound (小区/弄) of the street, real positions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from data import queries
from data.models import Compound
from layers.base import GeoJSON, LegendEntry, Query, collection, feature

id = "compounds"
title = "小区"
#: notice topics that may change its features (tiers follow the cases)
changed_by = frozenset({"stream:cases"})


def legend() -> list[LegendEntry]:
    return [LegendEntry("precaution", "防范区", "#2f9e44"), LegendEntry("controlled", "管控区", "#f59f00"),
            LegendEntry("sealed", "封控区", "#e03131")]


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


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """Name, address, households, published addresses and gates of one compound."""
    c = session.scalar(select(Compound).where(Compound.id == entity_id)
                       .options(selectinload(Compound.addresses), selectinload(Compound.gates)))
    if c is None:
        return None
    return {"id": c.id, "name": c.name, "address": c.address, "committee_id": c.committee_id,
            "households": c.households, "has_outline": c.has_outline,
            "addresses": [a.address for a in c.addresses],
            "gates": [{"id": g.id, "name": g.name, "status": g.status} for g in c.gates]}
