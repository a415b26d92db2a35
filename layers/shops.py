"""Shops layer: street shops open / closed / unverified at the moment asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.models import Shop
from data.store import states_as_of
from layers.base import GeoJSON, LegendEntry, Query, collection, entity_as_of, feature, status_history

id = "shops"
title = "沿街商铺"
#: notice topics that may change its features (facility reports of shops)
changed_by = frozenset({"kind:shop"})


def legend() -> list[LegendEntry]:
    return [LegendEntry("open", "营业", "#1c7ed6"), LegendEntry("closed", "关闭", "#495057"),
            LegendEntry("unverified", "未核实", "#fab005")]


def features(session: Session, query: Query) -> GeoJSON:
    stmt = select(Shop).where(Shop.street_id == query.street_id).order_by(Shop.id)
    if query.committee_id:
        stmt = stmt.where(Shop.committee_id == query.committee_id)
    shops = session.scalars(stmt).all()
    states = states_as_of(session, "shop", query.at, [s.id for s in shops])
    return collection(feature(s.geom, id=s.id, kind=states[s.id]["status"], name=s.name, category=s.category,
                              committee_id=s.committee_id, last_report_at=states[s.id].get("last_report_at"),
                              synthetic=s.synthetic)
                      for s in shops if s.id in states)


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    """The shop at ``query.at`` and its status reports up to then, newest first."""
    found = entity_as_of(session, Shop, "shop", entity_id, query.at)
    if found is None:
        return None
    shop, state = found
    return {"id": shop.id, "name": shop.name, "category": shop.category, "status": state["status"],
            "last_report_at": state.get("last_report_at"), "synthetic": shop.synthetic,
            "reports": status_history(session, "shop", entity_id, query.at)}
