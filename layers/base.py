"""The one small interface every map layer implements, and GeoJSON helpers they share.

Why: the UI and the read API both ask a layer the same three questions — which features
at this moment for this filter, what the legend says, what one entity's drill-down holds
— so nothing outside ``layers/`` needs to know how a layer is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import astuple, dataclass, field
from typing import Any, Protocol

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from data.domain import deadlines
from data.domain.deadlines import Deadlines, OfficeHours
from data.models import StateChange, Street
from data.settings import Config, load
from data.store import states_as_of

GeoJSON = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """What the caller wants to see — a street, optionally one committee, at a moment — and
    the time windows that decide what counts as stale, recent or overdue (from settings)."""

    street_id: str
    at: dt.datetime
    committee_id: str | None = None
    gate_stale_after: dt.timedelta = dt.timedelta(hours=24)
    alert_window: dt.timedelta = dt.timedelta(minutes=60)
    case_window: dt.timedelta = dt.timedelta(days=14)
    gate_silent: dt.timedelta = dt.timedelta(minutes=60)
    gate_hours: tuple[dt.time, dt.time] = (dt.time(7), dt.time(21))
    policy: Deadlines = field(default_factory=lambda: deadlines.of(load(environ={})))

    @classmethod
    def from_config(cls, config: Config, street_id: str, at: dt.datetime, committee_id: str | None = None) -> Query:
        """A query with the windows and order deadlines the settings give."""
        return cls(street_id, at, committee_id, gate_stale_after=dt.timedelta(hours=config.gate_stale_hours),
                   alert_window=dt.timedelta(minutes=config.alert_window_minutes),
                   case_window=dt.timedelta(days=config.case_window_days), policy=deadlines.of(config),
                   gate_silent=dt.timedelta(minutes=config.gate_silent_minutes),
                   gate_hours=astuple(OfficeHours.parse(config.gate_hours)))


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: the style key the client-side styling uses, its colour and label."""

    key: str
    label: str
    colour: str


class Layer(Protocol):
    """A map layer: identity, legend, features for a query, drill-down for one entity, and
    which change-notice topics may change its features (``stream:<name>`` — an event on that
    stream; ``kind:<entity>`` — a facility report on that kind; ``clock`` — time alone), so
    a page re-asks only the layers a notice concerns."""

    id: str
    title: str
    changed_by: frozenset[str]

    def legend(self) -> list[LegendEntry]: ...

    def features(self, session: Session, query: Query) -> GeoJSON: ...

    def detail(self, session: Session, entity_id: str, query: Query) -> dict[str, Any] | None: ...


class Growing(Layer, Protocol):
    """A layer whose features are rows of one table that ingest only ever inserts, each shown
    until a moment (the end of its window). Ingest names the rows each data version added
    (``data.read.cache.added_since``), so a new version is the previous one plus those rows, less
    the features whose moment has passed: on a 100,000-point layer a new case costs its own
    row, not a rebuild of the layer (``dashboard.answers.Growth``)."""

    grows_by: str  # the table, as ingest names it (``Effects.inserted``)

    def features(self, session: Session, query: Query, ids: Collection[int] | None = None) -> GeoJSON:
        """As ``Layer.features``; with ``ids``, only the features among those rows."""

    def shown_until(self, feature: GeoJSON, query: Query) -> dt.datetime:
        """The moment ``feature`` leaves the layer (time alone takes it off)."""


class Personal(Layer, Protocol):
    """A layer whose features or drill-downs name persons (an observation's address, a masked ID
    in an alert, a resident's words in a work order). ``data.access.policy`` gives an actor the
    full answer only inside the actor's person-level scope (features carry ``committee_id``, which
    decides it); outside, the layer's public form: ``public`` turns such features into what anyone
    of the street may see (counts at a compound, what happened at which gate), ``public_detail``
    does the same for a drill-down. A layer defines the one(s) it needs."""

    def public(self, features: list[GeoJSON]) -> list[GeoJSON]: ...

    def public_detail(self, detail: dict[str, Any]) -> dict[str, Any]: ...


def feature(geom: BaseGeometry, **properties: Any) -> GeoJSON:
    """A GeoJSON Feature; ``id`` in the properties doubles as the feature id."""
    return {"type": "Feature", "id": properties.get("id"), "geometry": mapping(geom),
            "properties": properties}


def collection(features: Iterable[GeoJSON]) -> GeoJSON:
    return {"type": "FeatureCollection", "features": list(features)}


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def parse_time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def status_history(session: Session, kind: str, entity_id: str, until: dt.datetime,
                   limit: int = 50) -> list[dict[str, Any]]:
    """An entity's recorded state changes up to ``until``, newest first (drill-downs show them)."""
    rows = session.scalars(select(StateChange).where(StateChange.entity_kind == kind,
                                                     StateChange.entity_id == entity_id, StateChange.at <= until)
                           .order_by(StateChange.at.desc(), StateChange.id.desc()).limit(limit))
    return [{"at": iso(r.at), **r.attrs, "source": r.source} for r in rows]


def entity_as_of(session: Session, model: type[Any], kind: str, entity_id: str,
                 at: dt.datetime) -> tuple[Any, dict[str, Any]] | None:
    """An entity and its recorded state at ``at``; None when unknown or not yet there then."""
    entity = session.get(model, entity_id)
    state = states_as_of(session, kind, at, [entity_id]).get(entity_id) if entity is not None else None
    return None if state is None else (entity, state)


def street_boundary(session: Session, street_id: str) -> BaseGeometry | None:
    """The street polygon, for entities placed by coordinates rather than by compound."""
    street = session.get(Street, street_id)
    return None if street is None else street.geom
