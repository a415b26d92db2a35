"""Boundaries layer: the street outline and its neighbourhood committees' areas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from data.models import Committee, Compound, Street
from layers.base import GeoJSON, LegendEntry, Query, collection, feature

id = "boundaries"
title = "街道与居委"
#: notice topics that may change its features (geography: nothing live changes it)
changed_by: frozenset[str] = frozenset()


def legend() -> list[LegendEntry]:
    return [LegendEntry("street", "街道边界", "#e8590c"),
            LegendEntry("committee", "居委会辖区（合成）", "#4dabf7")]


def features(session: Session, query: Query) -> GeoJSON:
    """The street polygon, then each committee polygon (only the chosen one when filtered)."""
    street = session.get(Street, query.street_id)
    if street is None:
        return collection([])
    stmt = select(Committee).where(Committee.street_id == street.id).order_by(Committee.id)
    if query.committee_id:
        stmt = stmt.where(Committee.id == query.committee_id)
    out = [feature(street.geom, id=street.id, kind="street", name=street.name, district=street.district)]
    out += [feature(c.geom, id=c.id, kind="committee", name=c.name, synthetic=c.synthetic)
            for c in session.scalars(stmt)]
    return collection(out)


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """A committee's or street's name and how many compounds and households it holds."""
    entity = session.get(Committee, entity_id) or session.get(Street, entity_id)
    if entity is None:
        return None
    column = Compound.committee_id if isinstance(entity, Committee) else Compound.street_id
    n, households = session.execute(select(func.count(), func.coalesce(func.sum(Compound.households), 0))
                                    .where(column == entity_id)).one()
    return {"id": entity.id, "name": entity.name, "compounds": n, "households": int(households)}
