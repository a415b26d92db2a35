"""The one place that decides who may see and do what (roles scoped to streets and committees).

Every read route, Dash callback, layer answer, drill-down, feed, change stream and export asks
here, so a rule changes in one place. What a role may not see is taken out of the answer
(person-level features become their layer's public form — counts at a compound, what happened
at which gate — and person-level fields leave drill-downs, feed lines and banners); it is never
sent and hidden by CSS.

Roles (an account may hold several):
- ``admin``: users, tokens, screens, the audit trail — no map data by itself;
- ``commander`` of a street: everything of that street, person-level included; acts on any of its entities;
- ``officer`` of a committee: the whole street's map with person-level details of own committees only;
  acts only on entities of own committees;
- ``viewer`` of a street: map, panels and briefing without person-level details; no actions;
- ``screen`` (a paired kiosk, not an account): its street's /screen, aggregates and non-personal layers only.
A producer token posts to its streams (in its street, when it names one) and reads nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from data.models import Alert, Case, Committee, Compound, Gate, HomeObservation, Shop, Site, Street, WorkOrder

ROLES = ("admin", "commander", "officer", "viewer")
#: roles that see a street's map (an admin role sees none by itself; a producer token reads nothing)
VIEWING = frozenset({"commander", "officer", "viewer", "screen"})
#: pages and who may open them (a screen opens its kiosk page only)
PEOPLE_PAGES = frozenset({"map", "officer", "screen", "briefing"})


@dataclass(frozen=True)
class Role:
    """One role with its scope: a street for commanders and viewers (and screens), a committee
    (with its street) for officers, nothing for admins."""

    role: str
    street_id: str | None = None
    committee_id: str | None = None

    def __str__(self) -> str:
        return self.role + (f":{self.committee_id or self.street_id}" if self.street_id else "")


@dataclass(frozen=True)
class PersonScope:
    """Whose person-level details an actor sees in one street: all of them, or those of some committees."""

    everything: bool = False
    committees: frozenset[str] = frozenset()

    def covers(self, committee_id: str | None) -> bool:
        return self.everything or (committee_id is not None and committee_id in self.committees)

    @property
    def any(self) -> bool:
        """Whether the scope lets any person-level detail through."""
        return self.everything or bool(self.committees)

    @property
    def key(self) -> str:
        """A cache key part: answers differ only by what the scope lets through."""
        return "all" if self.everything else ",".join(sorted(self.committees)) or "none"


NOBODY = PersonScope()
EVERYONE = PersonScope(everything=True)


@dataclass(frozen=True)
class Actor:
    """Who is asking: a signed-in person (``user``), a paired kiosk (``screen``) or a producer
    (``token``); ``label`` is what the audit trail records."""

    kind: str
    name: str
    roles: tuple[Role, ...] = ()
    streams: frozenset[str] = frozenset()  # a token's streams
    csrf: str | None = None  # the session's CSRF token (people and screens)
    session_id: str | None = None  # the session's digest (sign-out deletes it)
    display: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    def _has(self, role: str) -> list[Role]:
        return [r for r in self.roles if r.role == role]

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and bool(self._has("admin"))

    @property
    def streets(self) -> frozenset[str]:
        """The streets whose map, panels and briefing this actor may see."""
        return frozenset(r.street_id for r in self.roles if r.role in VIEWING and r.street_id)

    def may_view(self, street_id: str | None) -> bool:
        return street_id is not None and street_id in self.streets

    def person_scope(self, street_id: str | None) -> PersonScope:
        """Whose person-level details this actor sees in ``street_id``."""
        if self.kind != "user" or street_id is None:
            return NOBODY
        if any(r.street_id == street_id for r in self._has("commander")):
            return EVERYONE
        return PersonScope(committees=frozenset(r.committee_id for r in self._has("officer")
                                                if r.street_id == street_id and r.committee_id))

    def may_act(self, place: Place | None) -> bool:
        """Commanders act on any entity of their streets, officers on those of their committees."""
        if self.kind != "user" or place is None:
            return False
        return any((r.role == "commander" and r.street_id == place.street_id)
                   or (r.role == "officer" and place.committee_id is not None and r.committee_id == place.committee_id)
                   for r in self.roles)

    def may_open(self, page: str) -> bool:
        """Pages: a screen opens only its kiosk page, a person every page of the streets it sees,
        an admin the admin page."""
        if page == "admin":
            return self.is_admin
        if self.kind == "screen":
            return page == "screen"
        return self.kind == "user" and page in PEOPLE_PAGES

    @property
    def scoped(self) -> bool:
        """A producer token limited to a street (its events must be placed there)."""
        return any(r.role == "producer" and r.street_id for r in self.roles)

    def may_post(self, stream: str, street_id: str | None = None) -> bool:
        """A producer token posts to its own streams; a token of one street only events placed in it."""
        if self.kind != "token" or stream not in self.streams:
            return False
        return not self.scoped or any(r.role == "producer" and r.street_id == street_id for r in self.roles)

    def committees_in(self, session: Session, street_id: str) -> list[Committee]:
        """The committees of a street this actor works with: all of them for those who see the
        whole street at person level or at aggregate level only, own ones for an officer alone."""
        found = list(session.scalars(select(Committee).where(Committee.street_id == street_id)
                                     .order_by(Committee.id)))
        scope = self.person_scope(street_id)
        whole = scope.everything or any(r.role == "viewer" and r.street_id == street_id for r in self.roles)
        return found if whole else [c for c in found if c.id in scope.committees]


@dataclass(frozen=True)
class Place:
    """Where an entity belongs: its street and (when it has one) its committee."""

    street_id: str
    committee_id: str | None = None


def _street_covering(session: Session, geom: Any) -> str | None:
    if geom is None:
        return None
    return next((s.id for s in session.scalars(select(Street)) if s.geom.covers(geom)), None)


def _of_committee(session: Session, committee_id: str | None, geom: Any = None) -> Place | None:
    committee = session.get(Committee, committee_id) if committee_id else None
    if committee is not None:
        return Place(committee.street_id, committee.id)
    street = _street_covering(session, geom)
    return Place(street) if street else None


def _of_compound(session: Session, compound_id: str | None, geom: Any = None) -> Place | None:
    compound = session.get(Compound, compound_id) if compound_id else None
    if compound is not None:
        return Place(compound.street_id, compound.committee_id)
    street = _street_covering(session, geom)
    return Place(street) if street else None


def _int(entity_id: str) -> int | None:
    return int(entity_id) if entity_id.isdigit() else None


#: layer id → how to find where one of its entities belongs
_PLACES: dict[str, Callable[[Session, str], Place | None]] = {
    "compounds": lambda s, i: _of_compound(s, i),
    "gates": lambda s, i: (lambda g: _of_compound(s, g.compound_id) if g else None)(s.get(Gate, i)),
    "shops": lambda s, i: (lambda x: Place(x.street_id, x.committee_id) if x else None)(s.get(Shop, i)),
    "sites": lambda s, i: (lambda x: Place(x.street_id, x.committee_id) if x else None)(s.get(Site, i)),
    "observations": lambda s, i: (lambda o: _of_compound(s, o.compound_id, o.geom) if o else None)(
        s.get(HomeObservation, _int(i)) if _int(i) is not None else None),
    "workorders": lambda s, i: (lambda o: _of_committee(s, o.committee_id, o.geom) if o else None)(
        s.get(WorkOrder, i)),
    "alerts": lambda s, i: (lambda a: _of_committee(s, a.committee_id, a.geom) if a else None)(
        s.get(Alert, _int(i)) if _int(i) is not None else None),
    "cases": lambda s, i: (lambda c: _of_compound(s, c.compound_id, c.geom) if c else None)(
        s.get(Case, _int(i)) if _int(i) is not None else None),
}


def place_of(session: Session, layer_id: str, entity_id: str) -> Place | None:
    """Where an entity of a layer belongs; None for an unknown entity or a layer of no entities."""
    find = _PLACES.get(layer_id)
    return find(session, entity_id) if find else None


#: stream → the event fields that name an entity, and the layer of that entity
_EVENT_PLACES: dict[str, tuple[tuple[str, str], ...]] = {
    "checkins": (("gate_id", "gates"),), "cases": (("compound_id", "compounds"),),
    "facilities": (("facility_id", "gates"), ("facility_id", "shops"), ("facility_id", "sites")),
    "health": (("observation_id", "observations"),), "observations": (("observation_id", "observations"),),
    "workorders": (("order_id", "workorders"),),
}


def event_street(session: Session, stream: str, data: dict[str, Any]) -> str | None:
    """The street an event happens in (for producer tokens of one street); None when it cannot be told."""
    for name, layer_id in _EVENT_PLACES.get(stream, ()):
        if data.get(name) is not None and (place := place_of(session, layer_id, str(data[name]))) is not None:
            return place.street_id
    if data.get("committee_id") and (place := _of_committee(session, str(data["committee_id"]))) is not None:
        return place.street_id
    if "lng" in data and "lat" in data:
        return _street_covering(session, Point(data["lng"], data["lat"]))
    return None


# --- what an actor receives ----------------------------------------------------------------------


def features(actor: Actor, layer: Any, street_id: str, fc: dict[str, Any]) -> dict[str, Any]:
    """A layer's FeatureCollection as ``actor`` may see it: person-level features outside its
    scope become the layer's public form (``layer.public``)."""
    scope = actor.person_scope(street_id)
    if not hasattr(layer, "public") or scope.everything:
        return fc
    inside, outside = [], []
    for f in fc["features"]:
        (inside if scope.covers(f["properties"].get("committee_id")) else outside).append(f)
    return {**fc, "features": inside + layer.public(outside)}


def detail(actor: Actor, layer: Any, place: Place | None, found: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A drill-down as ``actor`` may see it, and whether it holds person-level details."""
    if not hasattr(layer, "public_detail"):
        return found, False
    if place is not None and actor.person_scope(place.street_id).covers(place.committee_id):
        return found, True
    return layer.public_detail(found), False


def feed_items(actor: Actor, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feed lines (and urgent banners) as ``actor`` may see them: a line that names a person
    (it carries ``public``, its text without the person) shows its public text outside the
    actor's scope; lines of streets the actor does not see are left out."""
    out = []
    for item in items:
        street = item.get("street")
        if street is not None and not actor.may_view(street):
            continue
        public = item.get("public")
        shown = {k: v for k, v in item.items() if k != "public"}
        if public is not None and not actor.person_scope(street).covers(item.get("committee")):
            shown["text"] = public
        out.append(shown)
    return out
