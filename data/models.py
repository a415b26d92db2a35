"""The data model: the street's geography, its live entities and every state change.

Why this shape:
- Map entities (gates, shops, sites, compounds …) keep their *current* state in their own
  row for fast reads, and every change of that state in ``state_change`` with its time, so
  the state at any past moment is a query (time replay, the frozen morning briefing).
- Geometry is WGS-84 (EPSG:4326) stored as WKT text, which SQLite and PostgreSQL read
  alike; shapely objects come in and out.
- Times are stored as UTC and always returned timezone-aware.
- Identity and phone numbers never appear raw: only a keyed hash and a masked form.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class Geometry(TypeDecorator[BaseGeometry]):
    """A shapely geometry in WGS-84, stored as WKT (7 decimals ≈ 1 cm)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> str | None:
        return None if value is None else shapely.to_wkt(value, rounding_precision=7)

    def process_result_value(self, value: str | None, dialect: Dialect) -> BaseGeometry | None:
        return None if value is None else _parsed(value)


@functools.lru_cache(maxsize=20_000)
def _parsed(wkt: str) -> BaseGeometry:
    """A geometry read before, not parsed again (shapely's are immutable, so one may be shared).
    Why: the map's layers read the same outlines and points at every change they show; parsing
    the street's 344 compound outlines was a third of the compounds layer's time."""
    return shapely.from_wkt(wkt)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every engine (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, the text SQLAlchemy's DATETIME stores (``2022-04-10 00:00:00.000000``) made
        in one step: ingest binds two datetimes per check-in, and the two-step chain was a tenth
        of its time. Other engines take the datetime itself."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime: give a timezone")
            return value.astimezone(dt.UTC).isoformat(" ", "microseconds")[:26]
        return process


#: ids opsmap derives from a producer's (``auto-<event_id>``, ``<event_id>#released``): the
#: contract's 64 characters plus a prefix or suffix, so no engine refuses them for length
DERIVED_ID = 80


class Base(DeclarativeBase):
    """Declarative base; ``DYNAMIC`` names the columns that events change after loading."""

    DYNAMIC: ClassVar[tuple[str, ...]] = ()


# --- enumerations (stored as their string values) -------------------------------------


class GateStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    RESTRICTED = "restricted"


class ShopStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    UNVERIFIED = "unverified"


class SiteKind(enum.StrEnum):
    CONSTRUCTION = "construction_site"
    ELDERLY_CARE = "elderly_care"
    OFFICE = "office_building"
    MARKET = "market"
    METRO_ENTRANCE = "metro_entrance"
    PARK = "park"


class CaseCategory(enum.StrEnum):
    POSITIVE = "positive"  # 阳性感染者: confirmed or asymptomatic, as the 2022 address lists published them
    CONFIRMED = "confirmed"  # 确诊
    SUSPECTED = "suspected"  # 疑似
    CLOSE_CONTACT = "close_contact"  # 密接
    HOME_OBSERVATION = "home_observation"  # 居家观察
    RELEASED = "released"  # 解除观察


class WorkTask(enum.StrEnum):
    SCREENING = "screening"
    DISINFECTION = "disinfection"
    MASK_RESERVATION = "mask_reservation"
    MASK_DISTRIBUTION = "mask_distribution"
    KEY_PERSON_VISIT = "key_person_visit"


def _enum(e: type[enum.StrEnum]) -> String:
    """Enums as plain strings: portable, and new values need no ALTER TYPE."""
    return String(max(len(m.value) for m in e))


# --- geography ---------------------------------------------------------------------------


class Street(Base):
    """A township (街道/镇): the unit a command center runs."""

    __tablename__ = "street"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    district: Mapped[str] = mapped_column(String(32))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    area_km2: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    committees: Mapped[list[Committee]] = relationship(back_populates="street")


class Committee(Base):
    """A neighbourhood committee (居委会); the partition is synthetic (no public data)."""

    __tablename__ = "committee"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    street_id: Mapped[str] = mapped_column(ForeignKey("street.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=True)

    street: Mapped[Street] = relationship(back_populates="committees")


class Compound(Base):
    """A residential compound (小区; in old Shanghai mostly a lane, 弄).

    ``geom`` is the real geometry: the published address point(s), or the estate outline
    where one matched. ``footprint`` is the area gates stand on: the outline, or a
    synthetic plot around the point where no outline exists.
    """

    __tablename__ = "compound"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    street_id: Mapped[str] = mapped_column(ForeignKey("street.id"), index=True)
    committee_id: Mapped[str] = mapped_column(ForeignKey("committee.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(128))
    road: Mapped[str] = mapped_column(String(64))
    lane_no: Mapped[str | None] = mapped_column(String(16))  # 弄 number
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    footprint: Mapped[BaseGeometry] = mapped_column(Geometry)
    has_outline: Mapped[bool] = mapped_column(Boolean)
    outline_name: Mapped[str | None] = mapped_column(String(128))
    households: Mapped[int] = mapped_column(Integer)  # synthetic: no public count
    lng: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)

    addresses: Mapped[list[CompoundAddress]] = relationship(back_populates="compound",
                                                            cascade="all, delete-orphan")
    gates: Mapped[list[Gate]] = relationship(back_populates="compound")


class CompoundAddress(Base):
    """A published 2022 case address merged into a compound (replay maps addresses here)."""

    __tablename__ = "compound_address"
    __table_args__ = (UniqueConstraint("compound_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    compound_id: Mapped[str] = mapped_column(ForeignKey("compound.id"), index=True)
    address: Mapped[str] = mapped_column(String(128), index=True)
    lng: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)

    compound: Mapped[Compound] = relationship(back_populates="addresses")


class Gate(Base):
    """A compound gate (出入口): where residents scan in and guards stand."""

    __tablename__ = "gate"
    DYNAMIC = ("status", "guards_on_duty", "confirmed_at")

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    compound_id: Mapped[str] = mapped_column(ForeignKey("compound.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    status: Mapped[str] = mapped_column(_enum(GateStatus))
    guards_on_duty: Mapped[int] = mapped_column(Integer)
    guards_required: Mapped[int] = mapped_column(Integer)
    roster: Mapped[list[str]] = mapped_column(JSON)
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=True)

    compound: Mapped[Compound] = relationship(back_populates="gates")


class Site(Base):
    """A point the street watches that is not housing: sites, care homes, offices, metro."""

    __tablename__ = "site"
    DYNAMIC = ("status",)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    street_id: Mapped[str] = mapped_column(ForeignKey("street.id"), index=True)
    committee_id: Mapped[str] = mapped_column(ForeignKey("committee.id"), index=True)
    kind: Mapped[str] = mapped_column(_enum(SiteKind))
    name: Mapped[str] = mapped_column(String(128))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    status: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str | None] = mapped_column(String(32))  # e.g. the Amap POI id
    synthetic: Mapped[bool] = mapped_column(Boolean)


class Shop(Base):
    """A street shop (商铺) whose open/closed state officers verify."""

    __tablename__ = "shop"
    DYNAMIC = ("status", "last_report_at")

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    street_id: Mapped[str] = mapped_column(ForeignKey("street.id"), index=True)
    committee_id: Mapped[str] = mapped_column(ForeignKey("committee.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    status: Mapped[str] = mapped_column(_enum(ShopStatus))
    last_report_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    source_ref: Mapped[str | None] = mapped_column(String(32))
    synthetic: Mapped[bool] = mapped_column(Boolean)


class WorkTarget(Base):
    """What a day's work is measured against (households to screen in a compound, …)."""

    __tablename__ = "work_target"
    __table_args__ = (UniqueConstraint("task", "target_kind", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    street_id: Mapped[str] = mapped_column(ForeignKey("street.id"), index=True)
    task: Mapped[str] = mapped_column(_enum(WorkTask))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(32))
    target: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(16))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=True)


# --- people and events ----------------------------------------------------------------------


class Person(Base):
    """A person known to the street, by keyed hash; raw ID and phone are never stored."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_masked: Mapped[str] = mapped_column(String(18))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    compound_id: Mapped[str | None] = mapped_column(ForeignKey("compound.id"), index=True)
    committee_id: Mapped[str | None] = mapped_column(ForeignKey("committee.id"), index=True)


class Case(Base):
    """A case report by category (确诊/疑似/密接/居家观察/解除观察), at a compound or address."""

    __tablename__ = "case_report"
    #: each compound's newest positive case in one seek (queries.newest_positive; migration 0009)
    __table_args__ = (Index("ix_case_report_compound_category_reported", "compound_id", "category", "reported_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(DERIVED_ID), unique=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    category: Mapped[str] = mapped_column(_enum(CaseCategory))
    compound_id: Mapped[str | None] = mapped_column(ForeignKey("compound.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(128))
    geom: Mapped[BaseGeometry | None] = mapped_column(Geometry)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(64))


class HomeObservation(Base):
    """A 14-day home observation (居家观察) at an address; day N of 14 is derived."""

    __tablename__ = "home_observation"
    DYNAMIC = ("planned_end_at", "ended_at", "end_reason")

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    compound_id: Mapped[str | None] = mapped_column(ForeignKey("compound.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(128))
    geom: Mapped[BaseGeometry] = mapped_column(Geometry)
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    planned_end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))

    checkins: Mapped[list[HealthCheckIn]] = relationship(back_populates="observation")
    compound: Mapped[Compound | None] = relationship()
    person: Mapped[Person] = relationship()


class HealthCheckIn(Base):
    """The daily health check-in of a person under home observation."""

    __tablename__ = "health_checkin"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("home_observation.id"), index=True)
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    temperature: Mapped[float] = mapped_column(Float)
    symptoms: Mapped[str | None] = mapped_column(String(256))
    #: the check-in this one corrects (its event_id): a value recorded in error is replaced, not erased
    corrects: Mapped[str | None] = mapped_column(String(64))

    observation: Mapped[HomeObservation] = relationship(back_populates="checkins")


class WorkOrder(Base):
    """A 12345 hotline work order; its state is the result of its events."""

    __tablename__ = "work_order"
    DYNAMIC = ("state", "committee_id", "assignee", "updated_at", "level")

    id: Mapped[str] = mapped_column(String(DERIVED_ID), primary_key=True)  # the producer's order_id or auto-…
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), index=True)
    committee_id: Mapped[str | None] = mapped_column(ForeignKey("committee.id"), index=True)
    assignee: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(128))
    geom: Mapped[BaseGeometry | None] = mapped_column(Geometry)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    level: Mapped[str | None] = mapped_column(String(16))  # None, reminded (催办) or supervised (督办)

    events: Mapped[list[WorkOrderEvent]] = relationship(
        back_populates="order", order_by=lambda: (WorkOrderEvent.ts, WorkOrderEvent.seq, WorkOrderEvent.id))

    @property
    def steps(self) -> list[WorkOrderEvent]:
        """The events that count, in time order (a refused one stays in ``events`` with its reason)."""
        return [e for e in self.events if e.refused is None]


class WorkOrderEvent(Base):
    """One step of a work order (create, dispatch, accept … close), with its time."""

    __tablename__ = "work_order_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(DERIVED_ID), unique=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("work_order.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: the stream entry id, zero-padded, so events at the same ts keep their order in the fold
    seq: Mapped[str] = mapped_column(String(40), default="", server_default="")
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))  # the action's target, also when refused
    #: when the fold cannot take this step where it stands in time: the order's state there
    #: (``none`` before its create); the reason is told from it (``labels.refusal``). None: it counts
    refused: Mapped[str | None] = mapped_column(String(16))
    committee_id: Mapped[str | None] = mapped_column(String(24))
    assignee: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(8))  # what a create or an escalate sets
    note: Mapped[str | None] = mapped_column(Text)

    order: Mapped[WorkOrder] = relationship(back_populates="events")


class CheckIn(Base):
    """A QR scan at a gate; the person is kept only as a keyed hash and a masked ID."""

    __tablename__ = "checkin"
    __table_args__ = (Index("ix_checkin_gate_ts", "gate_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: not unique here: the ledger (``ProcessedEvent``, same transaction) keeps a check-in to one row,
    #: and a second index keyed by random ids cost a third of each scan's SQL time at a million rows (0011)
    event_id: Mapped[str] = mapped_column(String(64))
    gate_id: Mapped[str] = mapped_column(ForeignKey("gate.id"))
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)  # retention anonymises by time
    direction: Mapped[str] = mapped_column(String(3))
    person_hash: Mapped[str] = mapped_column(String(64))  # no index: no read asks scans by person (0010)
    person_masked: Mapped[str] = mapped_column(String(18))
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    category: Mapped[str] = mapped_column(String(16))
    temperature: Mapped[float] = mapped_column(Float)
    health_code: Mapped[str | None] = mapped_column(String(8))
    origin: Mapped[str | None] = mapped_column(String(64))
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("returnee_registration.id", name="fk_checkin_registration_id"))


class ReturneeRegistration(Base):
    """A returnee from outside Shanghai who must register (or has); check-ins link to it."""

    __tablename__ = "returnee_registration"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_hash: Mapped[str] = mapped_column(String(64), index=True)
    person_masked: Mapped[str] = mapped_column(String(18))
    phone_masked: Mapped[str | None] = mapped_column(String(11))
    origin: Mapped[str] = mapped_column(String(64))
    gate_id: Mapped[str | None] = mapped_column(ForeignKey("gate.id"))
    committee_id: Mapped[str | None] = mapped_column(ForeignKey("committee.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # required | registered
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ProcessedEvent(Base):
    """The ledger that makes delivery at-least-once but the effect exactly-once.

    Written in the same transaction as the event's effect; ``entry_id`` tells a
    redelivery of the same stream entry (commit done, Redis side pending) from a
    producer's duplicate.
    """

    __tablename__ = "processed_event"

    # the key leads with event_id: a batch looks up its ids (migration 0008)
    event_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: sha-256 of the event as stored (sealed form): a resend with other content is a conflict
    digest: Mapped[str | None] = mapped_column(String(64))
    entry_id: Mapped[str] = mapped_column(String(32))
    processed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    effects: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # Redis side, replayed after a crash


class Alert(Base):
    """Something a rule raised (fever, quarantine violation, scan at a closed gate …)."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(8))
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    entity_kind: Mapped[str | None] = mapped_column(String(16))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    geom: Mapped[BaseGeometry | None] = mapped_column(Geometry)
    message: Mapped[str] = mapped_column(Text)  # may name a person (masked ID): person-level
    place: Mapped[str | None] = mapped_column(String(160))  # where, never who: what screens and viewers read
    committee_id: Mapped[str | None] = mapped_column(String(24), index=True)


class WorkReport(Base):
    """A reported piece of daily work (households screened, places disinfected, masks …)."""

    __tablename__ = "work_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    task: Mapped[str] = mapped_column(_enum(WorkTask))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(32), index=True)
    count: Mapped[int] = mapped_column(Integer)
    reporter: Mapped[str | None] = mapped_column(String(64))


class StateChange(Base):
    """One change of a map entity's state, with its time: the history replay reads.

    ``attrs`` holds only the attributes that changed (``{"status": "closed"}``); the state
    at moment T is the fold of all changes with ``at <= T``.
    """

    __tablename__ = "state_change"
    __table_args__ = (Index("ix_state_change_entity_at", "entity_kind", "entity_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(DERIVED_ID))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16))  # "load" or "event"
    event_id: Mapped[str | None] = mapped_column(String(DERIVED_ID))



class DutyShift(Base):
    """Who stands at a gate for one shift, as a roster event gave it. A later event for the same
    gate and shift start replaces it from its own time on (the roster as it stood at a moment)."""

    __tablename__ = "duty_shift"
    __table_args__ = (Index("ix_duty_shift_gate_start", "gate_id", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # when the roster said so
    gate_id: Mapped[str] = mapped_column(ForeignKey("gate.id"))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    guards: Mapped[list[str]] = mapped_column(JSON)  # the guards' names (staff, not residents)


class NotifyTarget(Base):
    """Where a committee's dispatches, 催办 and 督办 are sent: a WeCom/政务微信 group robot or a
    signed JSON webhook (``secret`` signs the body)."""

    __tablename__ = "notify_target"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    committee_id: Mapped[str] = mapped_column(ForeignKey("committee.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # wecom | json
    url: Mapped[str] = mapped_column(String(512))
    secret: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Notification(Base):
    """One message to one target, written by ingest in the same transaction as the step it tells
    of (an outbox: exactly one per step and target), then sent and retried until delivered."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_due", "delivered_at", "next_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(DERIVED_ID * 2), unique=True)  # <step event id>><target id>
    target_id: Mapped[int] = mapped_column(ForeignKey("notify_target.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[str] = mapped_column(String(DERIVED_ID))
    kind: Mapped[str] = mapped_column(String(16))  # dispatch | remind | supervise
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the next try; a sender holds it by moving it on
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
