"""The one small interface every map layer implements, and GeoJSON helpers they share.

Why: the UI and the read API both ask a layer the same three questions — which features
at this moment for this filter, what the legend says, what one entity's drill-down holds
— so nothing outside ``layers/`` needs to know how a layer is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

GeoJSON = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """What the caller wants to see: a street, optionally one committee, at a moment."""

    street_id: str
    at: dt.datetime
    committee_id: str | None = None


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: the style key the client-side styling uses, its colour and label."""

    key: str
    label: str
    colour: str


class Layer(Protocol):
    """A map layer: identity, legend, features for a query, drill-down for one entity."""

    id: str
    title: str

    def legend(self) -> list[LegendEntry]: ...

    def features(self, session: Session, query: Query) -> GeoJSON: ...

    def detail(self, session: Session, entity_id: str) -> dict[str, Any] | None: ...


def feature(geom: BaseGeometry, **properties: Any) -> GeoJSON:
    """A GeoJSON Feature; ``id`` in the properties doubles as the feature id."""
    return {"type": "Feature", "id": properties.get("id"), "geometry": mapping(geom),
            "properties": properties}


def collection(features: Iterable[GeoJSON]) -> GeoJSON:
    return {"type": "FeatureCollection", "features": list(features)}
