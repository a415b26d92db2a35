"""`opsmap ingest`: consume the streams into SQL, raise alerts, keep aggregates in Redis.

How nothing is lost or counted twice, whatever fails:
1. A batch is read with XREADGROUP; every entry is validated. One that cannot be read or is
   invalid, whatever it holds, is parked alone in ``opsmap:dead`` with its reason.
2. The valid ones are applied in one SQL transaction, in time order, together with their rows
   in the ``processed_event`` ledger, keyed by (stream, event_id) with a digest of the content:
   the same event again is a duplicate (no effect), the same id with other content a conflict
   (parked). A rejected event leaves no row, so its corrected resend is applied.
3. After commit, one atomic Redis step per hash slot updates the aggregates and the feed and
   acknowledges the entries, fenced: if another worker finished some of them meanwhile (this
   one stalled past the claim time), the step writes nothing and the rest are read again. A
   crash between 2 and 3 leaves the entries pending; redelivered, the ledger shows the same
   entry, so only 3 is redone. Catching up, the worker applies its next batch while Redis runs 3.
4. An outage (database or Redis unreachable, locked, full) is waited out with a capped backoff
   and counts against no event. If the batch fails otherwise, each event is applied alone; one
   that keeps failing by itself is parked after OPSMAP_INGEST_MAX_TRIES. Entries of a dead
   worker are claimed with XAUTOCLAIM after OPSMAP_INGEST_CLAIM_IDLE_MS, and the dead consumer
   is then removed from the group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from redis.exceptions import RedisClusterException
from shapely.geometry import Point
from sqlalchemy import Engine, and_, delete, or_, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, selectinload

from data.domain import deadlines, rules
from data.domain.labels import label, refusal
from data.domain.privacy import Hasher
from data.models import (
    Alert,
    Case,
    CheckIn,
    Committee,
    Compound,
    CompoundAddress,
    DutyShift,
    Gate,
    HealthCheckIn,
    HomeObservation,
    Person,
    ProcessedEvent,
    ReturneeRegistration,
    Shop,
    Site,
    StateChange,
    WorkOrder,
    WorkOrderEvent,
    WorkReport,
)
from data.pipeline import clock, notify, streams
from data.pipeline.events import (
    AUTO_ORDER,
    CASE_LABELS,
    Event,
    EventError,
    public_alert,
    seal_personal,
    sealed,
    stream_key,
    validate,
)
from data.read import queries
from data.read.cache import bump_version
from data.settings import Config
from data.store import among, bulk_insert, record_changes, session_factory

log = logging.getLogger(__name__)
DUTY_OFFICER = "居委值班干部"
REPLY_TTL_S = 300
COUNTER_TTL_S = 60 * 60 * 24 * 30


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


@functools.lru_cache(maxsize=1024)
def _count_key(stream: str, day: dt.date) -> str:
    """The hash of a stream's daily counters, beside the stream (a check-in counts four times)."""
    return f"{{{stream_key(stream)}}}:count:{day.isoformat()}"


@dataclass(slots=True)
class Effects:
    """What one event changes outside SQL, applied after commit: counters, feed, change notices.
    Kept in the event's ledger row (``to_json``), so a crash before the Redis side replays it."""

    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # hash key → field → n
    feed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    added: dict[str, list[int]] = field(default_factory=dict)  # table → ids inserted

    def count(self, stream: str, day: dt.date, key: str, n: int = 1) -> None:
        fields = self.counters.setdefault(_count_key(stream, day), {})
        fields[key] = fields.get(key, 0) + n

    def say(self, stream: str, ts: dt.datetime, kind: str, text: str, **extra: Any) -> None:
        self.feed.append((stream, {"ts": _iso(ts), "kind": kind, "text": text, **extra}))

    def inserted(self, table: str, row_id: int) -> None:
        """A row of a growing layer's table (layers.base.Growing): its version names it."""
        self.added.setdefault(table, []).append(row_id)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"counters": self.counters}
        if self.feed:
            doc["feed"] = self.feed
        if self.added:
            doc["added"] = self.added
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Effects:
        doc = doc or {}
        counters = doc.get("counters", {})
        if isinstance(counters, list):  # a ledger row written before counters were keyed by hash
            eff = cls()
            for k, f, n in counters:
                fields = eff.counters.setdefault(k, {})
                fields[f] = fields.get(f, 0) + n
        else:
            eff = cls(counters={k: dict(v) for k, v in counters.items()})
        eff.feed = [(stream, item) for stream, item in doc.get("feed", [])]
        eff.added = {table: list(ids) for table, ids in doc.get("added", {}).items()}
        return eff


@dataclass(frozen=True)
class GateInfo:
    """What check-ins need of a gate, cached per worker (whether it is closed is read per batch)."""

    id: str
    name: str
    compound_id: str
    committee_id: str
    street_id: str
    geom: Point

    @property
    def where(self) -> Where:
        return Where(self.name, self.street_id, self.committee_id)

    @functools.cached_property
    def counters_in(self) -> tuple[str, ...]:
        """The daily counters a scan in counts in: the gate's, its compound's, committee's, street's."""
        return self._counters("in")

    @functools.cached_property
    def counters_out(self) -> tuple[str, ...]:
        return self._counters("out")

    def _counters(self, direction: str) -> tuple[str, ...]:
        return (f"gate:{self.id}:{direction}", f"compound:{self.compound_id}:{direction}",
                f"committee:{self.committee_id}:{direction}", f"street:{self.street_id}:checkins")


@dataclass(frozen=True)
class Where:
    """Where something happened, for the audiences that may not know who: the place's name (a
    gate, a compound) and its street and committee (which decide who sees the person-level text)."""

    place: str | None = None
    street_id: str | None = None
    committee_id: str | None = None

    @classmethod
    def of(cls, compound: Compound | None) -> Where:
        return cls(compound.name, compound.street_id, compound.committee_id) if compound is not None else cls()

    def feed(self) -> dict[str, Any]:
        """The feed item's fields that let ``data.access.policy`` choose its text per reader."""
        return {k: v for k, v in (("street", self.street_id), ("committee", self.committee_id)) if v}


class Rejected(Exception):
    """A domain problem with one event (unknown gate, unknown committee …): park it."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")


class NotYet(Rejected):
    """An event that may become valid when another arrives (a step of an order whose create is
    late): retried like a failure of its own, parked with the reason after the last try."""


def checkin_row(ev: Event, registration_id: int | None = None) -> dict[str, Any]:
    """The ``checkin`` row of a validated check-in (its gate checked by the caller)."""
    d = ev.data
    return {"event_id": ev.event_id, "gate_id": d["gate_id"], "ts": ev.ts, "direction": d["direction"],
            "person_hash": d["person_id_hash"], "person_masked": d["person_id_masked"],
            "phone_masked": d.get("phone_masked"), "category": d["category"], "temperature": d["temperature"],
            "health_code": d.get("health_code"), "origin": d.get("origin"), "registration_id": registration_id}


class Batch:
    """One SQL transaction's worth of events, with per-batch lookups and collected effects."""

    def __init__(self, session: Session, config: Config, gate_cache: dict[str, GateInfo]) -> None:
        self.s = session
        self.config = config
        self.effects = Effects()  # of the event being handled; see ``handle``
        self._gate_cache = gate_cache
        self._gates: dict[str, GateInfo] = {}
        self._closed: set[str] = set()  # of the gates in this batch
        self.checkin_rows: list[dict[str, Any]] = []  # inserted together by ``flush``
        self.alert_rows: list[dict[str, Any]] = []  # likewise
        self._observed: set[str] = set()
        self._observed_complete = False
        self.seq = ""  # of the event being handled
        self.refused: str | None = None  # of the event being handled: why the fold refused it

    # --- lookups ---------------------------------------------------------------------

    def preload(self, events: list[Event]) -> None:
        """Fetch, in one query each, the batch's gates (with compounds) and which out-scanning
        persons have any observation at all — so most check-ins need no query of their own."""
        checkins = [e for e in events if e.stream == "checkins"]
        ids = {e.data["gate_id"] for e in checkins}
        if ids:
            unknown = ids - self._gate_cache.keys()
            if unknown:
                for g in self.s.scalars(select(Gate).where(among(Gate.id, unknown))
                                        .options(selectinload(Gate.compound))):
                    self._gate_cache[g.id] = GateInfo(g.id, g.name, g.compound_id, g.compound.committee_id,
                                                      g.compound.street_id, g.geom)
            statuses = self.s.execute(select(Gate.id, Gate.status).where(among(Gate.id, ids))).all()
            self._gates = {gid: self._gate_cache[gid] for gid, _ in statuses}
            self._closed = {gid for gid, status in statuses if status == "closed"}
        out = {e.data["person_id_hash"] for e in checkins if e.data["direction"] == "out"}
        if out:
            self._observed = set(self.s.scalars(
                select(Person.id_hash).join(HomeObservation, HomeObservation.person_id == Person.id)
                .where(among(Person.id_hash, out))))
        # cases and observations in this same batch may add persons: those are checked directly
        self._observed_complete = not any(e.stream == "cases" for e in events)

    def gate(self, gate_id: str) -> GateInfo:
        gate = self._gates.get(gate_id)
        if gate is None:
            raise Rejected("gate_id", f"unknown gate {gate_id!r}")
        return gate

    def committee_of_point(self, pt: Point) -> str | None:
        for com in self.s.scalars(select(Committee)):
            if com.geom.covers(pt):
                return com.id
        return None

    def active_observation(self, person_hash: str, at: dt.datetime) -> HomeObservation | None:
        return self.s.scalar(
            select(HomeObservation).join(Person, Person.id == HomeObservation.person_id)
            .where(Person.id_hash == person_hash, HomeObservation.start_at <= at,
                   HomeObservation.planned_end_at > at,
                   or_(HomeObservation.ended_at.is_(None), HomeObservation.ended_at > at))
            .order_by(HomeObservation.start_at.desc()).limit(1))

    def person(self, data: dict[str, Any]) -> Person:
        p = self.s.scalar(select(Person).where(Person.id_hash == data["person_id_hash"]))
        if p is None:
            p = Person(id_hash=data["person_id_hash"], id_masked=data["person_id_masked"])
            self.s.add(p)
            self.s.flush()
        return p

    def alert(self, ev: Event, kind: str, severity: str, message: str, entity: tuple[str, str] | None,
              geom: Point | None, where: Where) -> None:
        """Raise an alert: ``message`` may name the person (masked); its public form names only the place."""
        self.alert_rows.append({"event_id": ev.event_id, "kind": kind, "severity": severity, "ts": ev.ts,
                                "entity_kind": entity[0] if entity else None,
                                "entity_id": entity[1] if entity else None, "geom": geom, "message": message,
                                "place": where.place, "committee_id": where.committee_id})
        extra = {"lng": geom.x, "lat": geom.y} if geom is not None else {}
        self.effects.say("alerts", ev.ts, f"alert:{kind}", message, severity=severity,
                         entity=f"{entity[0]}:{entity[1]}" if entity else None,
                         public=public_alert(kind, where.place), **where.feed(), **extra)
        self.effects.count("alerts", rules.local_day(ev.ts), f"alert:{kind}")

    def handle(self, ev: Event, seq: str = "") -> Effects:
        """Apply one event (``seq``: its stream entry's ``sequence``, which orders steps at the same ts);
        returns what it changes outside SQL. Rejected leaves no trace; a step the work-order fold
        refuses is kept in the order's history and named in ``refused``."""
        self.effects, self.seq, self.refused = Effects(), seq, None
        buffered = len(self.checkin_rows), len(self.alert_rows)
        try:
            if ev.stream == "checkins":  # hot path: its handler checks everything before writing
                self.checkins(ev)
            else:
                with self.s.begin_nested():
                    getattr(self, ev.stream)(ev)
        except BaseException:  # its rows go with its savepoint
            del self.checkin_rows[buffered[0]:], self.alert_rows[buffered[1]:]
            raise
        return self.effects

    def flush(self) -> None:
        """Write the rows buffered for bulk insertion (one round trip each for all check-ins and alerts)."""
        for table, rows in ((CheckIn.__table__, self.checkin_rows), (Alert.__table__, self.alert_rows)):
            bulk_insert(self.s, table, rows)
            rows.clear()

    # --- handlers, one per stream ---------------------------------------------------------------

    def checkins(self, ev: Event) -> None:
        d, gate = ev.data, self.gate(ev.data["gate_id"])
        registration_id = None
        if d["category"] == "returnee" and rules.is_outside_shanghai(d.get("origin")):
            registration_id = self._registration(ev, gate)
        self.checkin_rows.append(checkin_row(ev, registration_id))
        who = d["person_id_masked"]
        if d["temperature"] >= rules.FEVER_C:
            self.alert(ev, "fever", "high", f"发热 {d['temperature']:.1f}°C：{gate.name}（{who}）",
                       ("gate", gate.id), gate.geom, gate.where)
        if d.get("health_code") in rules.ALERT_CODES:
            colour = {"yellow": "黄码", "red": "红码"}[d["health_code"]]
            self.alert(ev, "health_code", rules.ALERT_CODES[d["health_code"]], f"{colour}：{gate.name}（{who}）",
                       ("gate", gate.id), gate.geom, gate.where)
        if gate.id in self._closed:
            self.alert(ev, "closed_gate_scan", "medium", f"关闭出入口扫码：{gate.name}（{who}）",
                       ("gate", gate.id), gate.geom, gate.where)
        if d["direction"] == "out" and (d["person_id_hash"] in self._observed or not self._observed_complete):
            obs = self.active_observation(d["person_id_hash"], ev.ts)
            if obs is not None:
                self._quarantine_violation(ev, gate, obs)
        self.effects.counters[_count_key("checkins", rules.local_day(ev.ts))] = dict.fromkeys(
            gate.counters_in if d["direction"] == "in" else gate.counters_out, 1)

    def _registration(self, ev: Event, gate: GateInfo) -> int:
        since = ev.ts - dt.timedelta(days=14)
        reg = self.s.scalar(select(ReturneeRegistration).where(
            ReturneeRegistration.person_hash == ev.data["person_id_hash"],
            ReturneeRegistration.created_at >= since).order_by(ReturneeRegistration.created_at.desc()).limit(1))
        if reg is None:
            reg = ReturneeRegistration(person_hash=ev.data["person_id_hash"], person_masked=ev.data["person_id_masked"],
                                       phone_masked=ev.data.get("phone_masked"), origin=ev.data["origin"],
                                       gate_id=gate.id, committee_id=gate.committee_id, status="required",
                                       created_at=ev.ts)
            self.s.add(reg)
            self.s.flush()
            self.alert(ev, "registration_required", "medium",
                       f"外省返沪需登记：{ev.data['person_id_masked']} 来自 {ev.data['origin']}（{gate.name}）",
                       ("gate", gate.id), gate.geom, gate.where)
        return reg.id

    def _quarantine_violation(self, ev: Event, gate: GateInfo, obs: HomeObservation) -> None:
        """The seed story: someone under observation walks out; the committee is sent at once."""
        committee_id = (obs.compound.committee_id if obs.compound_id and obs.compound else None) \
            or gate.committee_id
        day = rules.observation_progress(obs.start_at, obs.planned_end_at, ev.ts)
        msg = f"居家观察人员外出：{ev.data['person_id_masked']} {day}，{gate.name}"
        self.alert(ev, "quarantine_violation", "urgent", msg, ("gate", gate.id), gate.geom,
                   Where(gate.name, gate.street_id, committee_id))
        order_id = f"{AUTO_ORDER}{ev.event_id}"
        order = WorkOrder(id=order_id, category="quarantine_violation", priority="urgent", state="created",
                          address=obs.address, geom=gate.geom, description=msg, created_at=ev.ts, updated_at=ev.ts)
        self.s.add(order)
        self.s.add_all([
            WorkOrderEvent(event_id=f"{order_id}#create", order_id=order_id, action="create", ts=ev.ts, seq=self.seq,
                           to_state="created", committee_id=committee_id, priority="urgent",
                           note="由门岗扫码规则自动生成"),
            WorkOrderEvent(event_id=f"{order_id}#dispatch", order_id=order_id, action="dispatch", ts=ev.ts,
                           seq=self.seq, to_state="dispatched", committee_id=committee_id, assignee=DUTY_OFFICER,
                           note="自动派单"),
        ])
        self._fold(order, ev.event_id)
        committee = self.s.get(Committee, committee_id) if committee_id else None
        self.effects.say("workorders", ev.ts, "workorder:dispatched",
                         f"紧急工单已派至{committee.name if committee else '居委'}：{gate.name}",
                         entity=f"work_order:{order_id}", lng=gate.geom.x, lat=gate.geom.y,
                         **Where(gate.name, gate.street_id, committee_id).feed())
        self.effects.count("workorders", rules.local_day(ev.ts), "created:quarantine_violation")

    def workorders(self, ev: Event) -> None:
        """Add the step to the order's history; the order is then the fold of its history (``_fold``)."""
        d = ev.data
        order = self.s.get(WorkOrder, d["order_id"])
        if order is None and d["action"] != "create":
            raise NotYet("order_id", f"no order {d['order_id']!r}: its create has not arrived")
        if order is not None and d["action"] == "create":
            raise Rejected("order_id", f"order {order.id!r} exists already (created {_iso(order.created_at)})")
        if d["action"] == "dispatch" and self.s.get(Committee, d["committee_id"]) is None:
            raise Rejected("committee_id", f"unknown committee {d['committee_id']!r}")
        step = WorkOrderEvent(event_id=ev.event_id, action=d["action"], ts=ev.ts, seq=self.seq, to_state="",
                              committee_id=d.get("committee_id"), assignee=d.get("assignee"), note=d.get("note"),
                              priority="urgent" if d["action"] == "escalate" else d.get("priority"))
        if order is None:
            geom = Point(d["lng"], d["lat"]) if "lng" in d else self._address_point(d.get("address"))
            order = WorkOrder(id=d["order_id"], category=d["category"], priority=d["priority"], state="created",
                              address=d.get("address"), geom=geom, description=d["description"],
                              created_at=ev.ts, updated_at=ev.ts)
            step.committee_id = self.committee_of_point(geom) if geom is not None else None
            self.s.add(order)
        step.order_id = order.id
        self.s.add(step)
        self._fold(order, ev.event_id)
        if step.refused:
            self.refused = f"action: {refusal(step.action, step.refused)}"
            return
        extra = {"lng": order.geom.x, "lat": order.geom.y} if order.geom is not None else {}
        self.effects.say("workorders", ev.ts, f"workorder:{order.state}",
                         f"工单 {order.id}（{label(order.category)}）{label(d['action'])}，"
                         f"{label(order.state, 'state')}",
                         entity=f"work_order:{order.id}", **extra)
        self.effects.count("workorders", rules.local_day(ev.ts), f"{d['action']}:{order.category}")
        if d["action"] in notify.TOLD:
            notify.enqueue(self.s, self.config, order, step)

    def _fold(self, order: WorkOrder, event_id: str | None) -> None:
        """The order's state as one fold of its steps by (ts, stream id): the same whatever the
        arrival order or batch boundaries. A step the fold cannot take where it stands in time is
        kept, refused with the reason, and counts again when an earlier step arrives to allow it.
        Its state history (``state_change``, what the map and an as-of moment read) is rewritten."""
        self.s.flush()
        steps = self.s.scalars(select(WorkOrderEvent).where(WorkOrderEvent.order_id == order.id)
                               .order_by(WorkOrderEvent.ts, WorkOrderEvent.seq, WorkOrderEvent.id)).all()
        state: str | None = None
        now = {"priority": order.priority, "committee_id": None, "assignee": None}
        history = []
        for e in steps:
            e.from_state = state
            try:
                e.to_state = rules.next_state(state, e.action)
            except rules.IllegalTransition:
                e.to_state = rules.TRANSITIONS[e.action][1] if e.action in rules.TRANSITIONS else state or "created"
                e.refused = state or "none"
                continue
            e.refused, state = None, e.to_state
            change: dict[str, Any] = {"state": state}
            if e.action == "create":
                change |= {"priority": e.priority or order.priority, "committee_id": e.committee_id}
            if e.action == "dispatch":
                change |= {"committee_id": e.committee_id, "assignee": e.assignee}
            if e.action == "escalate":
                change["priority"] = "urgent"
            if e.action in rules.MARKS:
                change["level"] = rules.raised_level(now.get("level"), e.action)
            now |= change
            history.append((order.id, e.ts, change, e.event_id))
        order.state, order.priority = state or "created", now["priority"]
        order.committee_id, order.assignee = now["committee_id"], now["assignee"]
        order.level = now.get("level")
        order.updated_at = history[-1][1] if history else order.created_at
        self.s.execute(delete(StateChange).where(StateChange.entity_kind == "work_order",
                                                 StateChange.entity_id == order.id))
        for entity_id, at, change, step_id in history:
            record_changes(self.s, "work_order", [(entity_id, at, change)], source="event",
                           event_id=step_id or event_id)

    def _address_point(self, address: str | None) -> Point | None:
        if not address:
            return None
        row = self.s.scalar(select(CompoundAddress).where(CompoundAddress.address == address).limit(1))
        return Point(row.lng, row.lat) if row else None

    def cases(self, ev: Event) -> None:
        d = ev.data
        compound = None
        if "compound_id" in d:
            compound = self.s.get(Compound, d["compound_id"])
            if compound is None:
                raise Rejected("compound_id", f"unknown compound {d['compound_id']!r}")
        elif "address" in d:
            row = self.s.scalar(select(CompoundAddress).where(CompoundAddress.address == d["address"]).limit(1))
            compound = row.compound if row else None
        geom = Point(d["lng"], d["lat"]) if "lng" in d else (Point(compound.lng, compound.lat) if compound else None)
        person = self.person(d)
        if compound is not None:
            person.compound_id, person.committee_id = compound.id, compound.committee_id
        self._case(Case(event_id=ev.event_id, person_id=person.id, category=d["category"],
                        compound_id=compound.id if compound else None, address=d.get("address") or
                        (compound.address if compound else None), geom=geom, reported_at=ev.ts,
                        source=d.get("source")))
        active = self.active_observation(d["person_id_hash"], ev.ts)
        if d["category"] == "home_observation" and active is None:
            if geom is None:
                raise Rejected("address", "home observation needs a known address, compound_id or lat/lng")
            self.s.add(HomeObservation(person_id=person.id, compound_id=compound.id if compound else None,
                                       address=d.get("address") or (compound.address if compound else None),
                                       geom=geom, start_at=ev.ts, planned_end_at=rules.planned_end(ev.ts)))
        elif d["category"] == "released" and active is not None:
            active.ended_at, active.end_reason = ev.ts, "released"
            record_changes(self.s, "observation", [(str(active.id), ev.ts, {"ended_at": _iso(ev.ts),
                                                                             "end_reason": "released"})],
                           source="event", event_id=ev.event_id)
        label = CASE_LABELS[d["category"]]
        where = compound.name if compound else (d.get("address") or "坐标点")
        extra = {"lng": geom.x, "lat": geom.y} if geom is not None else {}
        if compound is None and d.get("address"):  # an address of its own is person-level
            extra["public"] = f"{label}：坐标点"
        self.effects.say("cases", ev.ts, f"case:{d['category']}", f"{label}：{where}", **Where.of(compound).feed(),
                         **extra)
        scope = f"committee:{compound.committee_id}" if compound else "committee:unknown"
        self.effects.count("cases", rules.local_day(ev.ts), f"{scope}:{d['category']}")

    def _case(self, case: Case) -> None:
        """Insert a case report; its id goes out with the batch's version (the cases layer grows by it)."""
        self.s.add(case)
        self.s.flush()
        self.effects.inserted("case", case.id)

    def health(self, ev: Event) -> None:
        d = ev.data
        if "observation_id" in d:  # taken by an officer who sees the point, not the ID number
            obs = self.observation(d["observation_id"], ev.ts)
        else:
            obs = self.active_observation(d["person_id_hash"], ev.ts)
            if obs is None:
                raise Rejected("person_id", "no home observation is active for this person at ts")
        earlier = self._corrected(d.get("corrects"), obs, ev.ts)
        self.s.add(HealthCheckIn(event_id=ev.event_id, observation_id=obs.id, ts=ev.ts,
                                 temperature=d["temperature"], symptoms=d.get("symptoms"), corrects=d.get("corrects")))
        day, where = rules.observation_progress(obs.start_at, obs.planned_end_at, ev.ts), Where.of(obs.compound)
        fever = d["temperature"] >= rules.FEVER_C
        if fever and (earlier is None or earlier.temperature < rules.FEVER_C):  # a correction to fever is news
            self.alert(ev, "fever", "high", f"居家观察人员发热 {d['temperature']:.1f}°C（{day}）",
                       ("observation", str(obs.id)), obs.geom, where)
        if earlier is None:
            text = f"健康打卡 {d['temperature']:.1f}°C：{obs.address or obs.id}（{day}）"
            self.effects.count("health", rules.local_day(ev.ts), "checkins")
        else:  # the same check-in, its value put right: not another one
            text = (f"体温更正 {earlier.temperature:.1f}→{d['temperature']:.1f}°C：{obs.address or obs.id}（{day}）"
                    + ("，此前发热预警系误录" if earlier.temperature >= rules.FEVER_C and not fever else ""))
        self.effects.say("health", ev.ts, "health:checkin", text,
                         public=f"健康打卡：{where.place or '居家观察点'}", entity=f"observation:{obs.id}",
                         lng=obs.geom.x, lat=obs.geom.y, **where.feed())

    def _corrected(self, event_id: str | None, obs: HomeObservation, at: dt.datetime) -> HealthCheckIn | None:
        """The check-in a correction replaces: one of the same observation, recorded before it."""
        if event_id is None:
            return None
        earlier = self.s.scalar(select(HealthCheckIn).where(HealthCheckIn.event_id == event_id))
        if earlier is None or earlier.observation_id != obs.id:
            raise Rejected("corrects", f"no check-in {event_id!r} of home observation {obs.id}")
        if earlier.ts > at:
            raise Rejected("corrects", f"check-in {event_id!r} is later than this correction's ts")
        return earlier

    def observation(self, observation_id: int, at: dt.datetime) -> HomeObservation:
        """An observation by id that is running at ``at`` (else the event is parked, saying why)."""
        obs = self.s.get(HomeObservation, observation_id)
        if obs is None:
            raise Rejected("observation_id", f"unknown home observation {observation_id}")
        if not rules.observation_active(obs.start_at, obs.planned_end_at, obs.ended_at, at):
            state = "not started" if at < obs.start_at else "already ended"
            raise Rejected("observation_id", f"home observation {observation_id} has {state} at ts")
        return obs

    def observations(self, ev: Event) -> None:
        """Extend a running observation by N days, or end it (released, hospitalised, moved out)."""
        d = ev.data
        obs = self.observation(d["observation_id"], ev.ts)
        if d["action"] == "extend":
            obs.planned_end_at += dt.timedelta(days=d["days"])
            change: dict[str, Any] = {"planned_end_at": _iso(obs.planned_end_at)}
            text = f"居家观察延长 {d['days']} 天至 {obs.planned_end_at.astimezone(rules.SHANGHAI):%m-%d}"
        else:
            obs.ended_at, obs.end_reason = ev.ts, d["reason"]
            change = {"ended_at": _iso(ev.ts), "end_reason": d["reason"]}
            text = f"居家观察结束（{label(d['reason'])}）"
            if d["reason"] == "released":  # counted like a released case report
                self._case(Case(event_id=f"{ev.event_id}#released", person_id=obs.person_id, category="released",
                                compound_id=obs.compound_id, address=obs.address, geom=obs.geom, reported_at=ev.ts,
                                source=f"officer:{d['reporter']}"))
                self.effects.count("cases", rules.local_day(ev.ts), f"{self._committee_scope(obs)}:released")
        record_changes(self.s, "observation", [(str(obs.id), ev.ts, change)], source="event", event_id=ev.event_id)
        where = Where.of(obs.compound)
        self.effects.say("observations", ev.ts, f"observation:{d['action']}", f"{text}：{obs.address or obs.id}",
                         public=f"{text}：{where.place or '居家观察点'}", entity=f"observation:{obs.id}",
                         lng=obs.geom.x, lat=obs.geom.y, **where.feed())

    def _committee_scope(self, obs: HomeObservation) -> str:
        return f"committee:{obs.compound.committee_id}" if obs.compound is not None else "committee:unknown"

    def facilities(self, ev: Event) -> None:
        d = ev.data
        fid = d["facility_id"]
        entity = self.s.get(Gate, fid) or self.s.get(Shop, fid) or self.s.get(Site, fid)
        if entity is None:
            raise Rejected("facility_id", f"unknown gate, shop or site {fid!r}")
        kind = {Gate: "gate", Shop: "shop", Site: "site"}[type(entity)]
        allowed = {"gate": ("open", "closed", "restricted"), "shop": ("open", "closed", "unverified"),
                   "site": ("open", "closed", "restricted")}[kind]
        if d["status"] not in allowed:
            raise Rejected("status", f"a {kind} is one of {', '.join(allowed)} (got {d['status']!r})")
        change: dict[str, Any] = {"status": d["status"], "reporter": d["reporter"]}
        latest = True
        if isinstance(entity, Gate):
            latest = ev.ts >= entity.confirmed_at
            change["confirmed_at"] = _iso(ev.ts)
            if "guards_on_duty" in d:
                change["guards_on_duty"] = d["guards_on_duty"]
        elif isinstance(entity, Shop):
            latest = entity.last_report_at is None or ev.ts >= entity.last_report_at
            change["last_report_at"] = _iso(ev.ts)
        if latest:  # an older report goes into history only
            entity.status = d["status"]
            if isinstance(entity, Gate):
                entity.confirmed_at = ev.ts
                entity.guards_on_duty = d.get("guards_on_duty", entity.guards_on_duty)
                if d["status"] == "closed":  # later scans in this batch must see it
                    self._closed.add(fid)
                else:
                    self._closed.discard(fid)
            if isinstance(entity, Shop):
                entity.last_report_at = ev.ts
        record_changes(self.s, kind, [(fid, ev.ts, change)], source="event", event_id=ev.event_id)
        self.effects.say("facilities", ev.ts, f"{kind}:{d['status']}", f"{entity.name}：{label(d['status'])}",
                         entity=f"{kind}:{fid}", lng=entity.geom.x, lat=entity.geom.y)
        self.effects.count("facilities", rules.local_day(ev.ts), f"{kind}:{d['status']}")

    def duty(self, ev: Event) -> None:
        """A gate's shift as the roster gives it: while it runs, its guards are the gate's."""
        d = ev.data
        if self.s.get(Gate, d["gate_id"]) is None:
            raise Rejected("gate_id", f"unknown gate {d['gate_id']!r}")
        self.s.add(DutyShift(event_id=ev.event_id, ts=ev.ts, gate_id=d["gate_id"], starts_at=d["starts_at"],
                             ends_at=d["ends_at"], guards=d.get("guards", [])))
        self.effects.count("duty", rules.local_day(d["starts_at"]), "shifts")

    def rules(self, ev: Event) -> None:
        """What the clock raised (``data.pipeline.clock``): a silent gate's one alert. A scan that came in
        meanwhile means it was not silent after all: nothing is raised."""
        d = ev.data
        gate = self.s.get(Gate, d["gate_id"])
        if gate is None:
            raise Rejected("gate_id", f"unknown gate {d['gate_id']!r}")
        last = queries.last_scans(self.s, [gate.id], ev.ts).get(gate.id)
        if last is not None and last > d["since"]:
            return
        since = d["since"].astimezone(rules.SHANGHAI)
        self.alert(ev, "silent_gate", "medium", f"出入口长时间无扫码：{gate.compound.name} {gate.name}"
                                                f"（{since:%H:%M} 起无扫码，扫码设备故障或无人值守？）",
                   ("gate", gate.id), gate.geom,
                   Where(f"{gate.compound.name} {gate.name}", gate.compound.street_id, gate.compound.committee_id))

    def work(self, ev: Event) -> None:
        d = ev.data
        target = d["target_id"]
        kind = next((k for k, model in (("compound", Compound), ("committee", Committee), ("site", Site),
                                        ("shop", Shop)) if self.s.get(model, target) is not None), None)
        if kind is None:
            raise Rejected("target_id", f"unknown compound, committee, site or shop {target!r}")
        self.s.add(WorkReport(event_id=ev.event_id, ts=ev.ts, task=d["task"], target_kind=kind, target_id=target,
                              count=d["count"], reporter=d["reporter"]))
        self.effects.count("work", rules.local_day(ev.ts), f"{d['task']}:{kind}:{target}", d["count"])
        self.effects.count("work", rules.local_day(ev.ts), f"{d['task']}:total", d["count"])


@dataclass
class Outcome:
    """What happened to each entry of a batch, for the Redis side and the tests."""

    applied: list[tuple[str, str, Event]] = field(default_factory=list)  # key, entry id, event
    replayed: list[tuple[str, str]] = field(default_factory=list)  # committed earlier, Redis side pending
    effects: list[tuple[tuple[str, str], Effects]] = field(default_factory=list)  # by (key, entry id)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    dead: list[tuple[str, str, str, str]] = field(default_factory=list)  # key, entry id, redacted, reason
    retry: list[tuple[str, str]] = field(default_factory=list)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # stored, but the fold refused it: why
    wants_reply: set[tuple[str, str]] = field(default_factory=set)  # key, entry id
    raw: set[tuple[str, str]] = field(default_factory=set)  # entries not sealed: deleted when acknowledged
    redelivered: set[tuple[str, str]] = field(default_factory=set)  # may have tries counted: forgotten at ack
    failing: list[tuple[tuple[str, str, Event], Exception]] = field(default_factory=list)  # own failures
    read_at: float = 0.0  # when the batch was read (epoch s): the change notice's "read"

    def acked(self) -> list[tuple[str, str]]:
        return [(k, i) for k, i, *_ in (*self.applied, *self.dead)] + [*self.replayed, *self.duplicates]


class Outage(Exception):
    """The database or Redis cannot be used now (unreachable, locked, full): no event's fault."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


#: Redis errors that are the server's state, not a command's: loading, out of memory, disk full …
_REDIS_BUSY = ("LOADING", "MISCONF", "OOM", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "NOREPLICAS")


def outage_cause(exc: BaseException) -> str | None:
    """Why ``exc`` means the store or Redis is out of service (one line), or None when it is
    the event's own failure. Outages are waited out and never count against an event."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | RedisClusterException) or (
            isinstance(exc, redis.ResponseError) and str(exc).startswith(_REDIS_BUSY)):
        return f"Redis: {type(exc).__name__}: {str(exc)[:160]}"
    if (isinstance(exc, sa_exc.DBAPIError) and (exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError))) or isinstance(
            exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"database: {type(exc).__name__}: {first[:160]}"
    return None


def digest(ev: Event) -> str:
    """The event's content as stored, hashed: tells a producer's resend from a conflicting reuse of its id."""
    body = orjson.dumps({"event_id": ev.event_id, "ts": ev.ts, **ev.data}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


def same_content(stored: str | None, ev: Event) -> bool:
    """Whether a ledger row's digest is this event's: by ``digest``, or — for rows written before
    it — by the standard library's serialisation the ledger used until then."""
    if stored is None or stored == digest(ev):
        return True
    body = json.dumps({"event_id": ev.event_id, "ts": _iso(ev.ts), **ev.data}, sort_keys=True, ensure_ascii=False,
                      default=str)
    return stored == hashlib.sha256(body.encode()).hexdigest()


def sequence(entry_id: str) -> str:
    """A stream entry id as text that sorts like the id (``1700000000000-3`` → zero-padded)."""
    if not entry_id:
        return ""
    ms, _, n = entry_id.partition("-")
    return f"{int(ms):015d}-{int(n or 0):06d}"


#: where each worker says it is waiting out an outage (field: consumer; value: JSON), for /healthz
#: and the staleness indicator; a field is removed when its worker resumes
STATUS_KEY = "opsmap:ingest:waiting"


class Backoff:
    """Capped exponential waits while an outage lasts, and the worker's public status meanwhile."""

    def __init__(self, client: redis.Redis, consumer: str, cap_s: float) -> None:
        self.client, self.consumer, self.cap_s = client, consumer, cap_s
        self.since: float | None = None
        self.wait_s = 0.0

    def failed(self, cause: str) -> float:
        """Record an outage; returns how long to wait before the next try."""
        if self.since is None:
            self.since = time.time()
            log.warning("ingest %s waits: %s", self.consumer, cause)
        self.wait_s = min(self.cap_s, max(0.2, self.wait_s * 2))
        with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):  # Redis may be the outage
            self.client.hset(STATUS_KEY, self.consumer, streams.to_json(
                {"cause": cause, "since": self.since, "at": time.time(), "retry_s": self.wait_s}))
        return self.wait_s

    def resumed(self) -> None:
        if self.since is None:
            return
        try:
            self.client.hdel(STATUS_KEY, self.consumer)
        except (redis.RedisError, RedisClusterException, OSError):
            return  # said again after the next good step
        log.warning("ingest %s resumed after %.1f s", self.consumer, time.time() - self.since)
        self.since, self.wait_s = None, 0.0


def waiting(client: redis.Redis, cap_s: float) -> list[dict[str, Any]]:
    """Workers waiting out an outage now (a report older than two retries is a dead worker's)."""
    now, out = time.time(), []
    for consumer, raw in client.hgetall(STATUS_KEY).items():
        doc = json.loads(raw)
        if now - doc["at"] <= 2 * max(cap_s, doc.get("retry_s", 0)) + 5:
            out.append({"consumer": consumer.decode(), "cause": doc["cause"], "since": doc["since"]})
    return out


def settle_heap() -> None:
    """Make the garbage collector's work proportional to what a batch allocates. Why: a batch
    holds ~10 objects per event until it commits; at the default thresholds that set off
    collections of the young generations hundreds of times per batch and full ones over the
    whole heap (ORM, geometries, caches) every few batches — a quarter of the worker's CPU in
    ``bench/ingest.py``. What the process holds once started is frozen out of collection; the
    young generations are collected every 100,000 allocations (still many times a minute)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class Worker:
    """One ingest consumer in the ``opsmap-ingest`` group."""

    #: after deleting raw entries, have Redis rewrite its append-only file at most this often, so
    #: the raw numbers leave the disk too (the file otherwise keeps every XADD until it grows)
    compact_every_s = 600.0
    #: a batch doubles while the doubled one would take less (``_resize``): at 10,000 events/s
    #: offered, batches let grow to 4,000 (~300 ms) raised append→ack p99 on PostgreSQL from ~170 to ~290 ms
    grow_under_s = 0.1

    def __init__(self, engine: Engine, client: redis.Redis, config: Config, consumer: str | None = None) -> None:
        self.engine, self.client, self.config = engine, client, config
        self.sessions = session_factory(engine, write=True)
        self.reads = session_factory(engine)  # the sweeps only read: they take no write lock
        self.hasher = Hasher.from_config(config)
        self.future = dt.timedelta(minutes=config.max_future_minutes)
        self.policy = deadlines.of(config)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 10000}"
        self.backoff = Backoff(client, self.consumer, config.ingest_backoff_max_s)
        self._last_claim = 0.0
        self._last_sweep = time.monotonic()  # the first sweep after one period: the backlog comes first
        self._last_missed = 0.0
        self._last_compact = time.monotonic()
        self._raw_deleted = False
        self._own_pending = True  # a restarted consumer (same name) first takes what it held
        self._gate_cache: dict[str, GateInfo] = {}
        self.batch = config.ingest_batch  # entries the next read asks for: see ``_resize``
        self._ahead: list[streams.Entry] = []  # read before the last batch's Redis side was sent: see ``step``
        self._ahead_at = 0.0
        self._in_flight: tuple[list[tuple[str, str]], Callable[[], set[tuple[str, str]]]] | None = None  # see _finish
        streams.ensure_group(client)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, block_ms: int = 1000) -> None:
        """Consume until ``stop`` is set. An outage of the database or Redis is waited out
        (capped backoff, shown in /healthz), never counted against the events."""
        log.info("ingest worker %s started", self.consumer)
        settle_heap()
        while not stop.is_set():
            try:
                self.step(block_ms)
                self.backoff.resumed()
            except Exception as exc:
                cause = exc.cause if isinstance(exc, Outage) else outage_cause(exc)
                if cause is None:
                    log.exception("ingest step failed; retrying")
                    cause = f"error: {type(exc).__name__}: {str(exc)[:160]}"
                self._let_go()
                stop.wait(self.backoff.failed(cause))
        try:
            self.finish_up()
        except Exception:  # what is left stays pending: this consumer or another takes it
            log.exception("ingest worker %s stopped with entries pending", self.consumer)
            self._let_go()
        log.info("ingest worker %s stopped", self.consumer)

    def finish_up(self) -> None:
        """The batch read ahead applied and every Redis side answered: what a stopping worker
        holds goes through, as it would have in the next step."""
        if self._ahead:
            entries, self._ahead = self._ahead, []
            self._finish(self._process(entries, False, self._ahead_at))
        self._settle()

    def _let_go(self) -> None:
        """After a failed step: the entries this worker holds are read again from its pending list
        (``_own_pending``), and a Redis side in flight is answered or its connection closed."""
        self._own_pending, self._ahead = True, []
        with contextlib.suppress(Exception):  # unanswered: its entries are pending, replayed from the ledger
            self._settle()

    def step(self, block_ms: int = 1000) -> int:
        """One read-process-ack cycle (plus claims of dead workers' entries when due).

        Catching up (a full batch of new entries), the next batch is read before this one's Redis
        side is sent, and that side's answer is read in the next step: Redis runs it while the
        worker applies the next batch. Its writes (acknowledgements, counters, the change notice)
        are not delayed, only the wait for them is gone; sent after the next read, so that read does
        not queue behind them. A short batch is answered before the step returns."""
        now = time.monotonic()
        entries, self._ahead = self._ahead, []
        redelivered, read_at = False, self._ahead_at if entries else None
        if not entries and self._own_pending:  # after an outage: what this consumer read but did not finish
            entries = streams.read(self.client, self.consumer, self.batch, None, pending=True)
            self._own_pending = bool(entries)
            redelivered = True
        if not entries and now - self._last_claim > self.config.ingest_claim_idle_ms / 2000:
            self._last_claim = now
            entries = streams.autoclaim(self.client, self.consumer, self.config.ingest_claim_idle_ms, self.batch)
            streams.forget_consumers(self.client, self.consumer, self.config.ingest_claim_idle_ms * 4)
            redelivered = True
        if not entries:
            entries = streams.read(self.client, self.consumer, self.batch, block_ms)
            redelivered = False
        if entries:
            full = not redelivered and len(entries) >= self.batch
            out = self._process(entries, redelivered, read_at or time.time())
            self._resize(len(entries), time.monotonic() - now)
            self._finish(out, ahead=full)
        else:
            self._resize(0, time.monotonic() - now)
        if now - self._last_sweep > self.config.sweep_s:
            self._last_sweep = now
            self.sweep(dt.datetime.now(dt.UTC))
        if self._raw_deleted and now - self._last_compact >= self.compact_every_s:
            self._compact()
        return len(entries)

    def _resize(self, read: int, took_s: float) -> None:
        """The next batch: doubled after a full one (a backlog: per event, a batch's commit, lookups
        and Redis step cost less the more events share them), up to OPSMAP_INGEST_BATCH_MAX and
        while the doubled one would take under ``grow_under_s`` and a tenth of the claim time
        (longer ones keep their events waiting for the commit, or would look stalled to the other
        workers); after a short one, OPSMAP_INGEST_BATCH again."""
        if read < self.batch:
            self.batch = self.config.ingest_batch
        elif took_s * 2 < min(self.grow_under_s, self.config.ingest_claim_idle_ms / 10_000):
            self.batch = max(self.config.ingest_batch, min(self.batch * 2, self.config.ingest_batch_max))

    def _compact(self) -> None:
        """BGREWRITEAOF where Redis keeps an append-only file (the embedded one does): the rewritten
        file holds the data as it is, without the raw entries deleted since. Where the server will
        not say or not do it (a managed Redis, a cluster), that is its operator's retention."""
        self._last_compact, self._raw_deleted = time.monotonic(), False
        try:
            if not streams.is_cluster(self.client) and self.client.info("persistence").get("aof_enabled"):
                self.client.bgrewriteaof()
        except redis.ResponseError as exc:  # refused (ACL, a rewrite already running): next time
            log.info("append-only rewrite not done: %s", exc)

    # --- one batch --------------------------------------------------------------------------------

    def _process(self, entries: list[streams.Entry], redelivered: bool, read_at: float) -> Outcome:
        """Validate each entry, apply the valid ones in one transaction (one by one when that
        fails). Whatever one entry holds, it is parked alone, with the reason."""
        out = Outcome(read_at=read_at)
        valid: list[tuple[str, str, Event]] = []
        for key, entry_id, fields in entries:
            if redelivered:
                out.redelivered.add((key, entry_id))
            if fields.get(b"reply"):
                out.wants_reply.add((key, entry_id))
            if not fields.get(b"sealed"):
                out.raw.add((key, entry_id))
            raw = fields.get(b"event", b"")
            try:
                ev = validate(key.removeprefix("opsmap:"), raw, self.hasher, self.future)
            except EventError as exc:
                out.dead.append((key, entry_id, seal_personal(key.removeprefix("opsmap:"), raw, self.hasher),
                                 str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - whatever an entry holds, it cannot stop a batch
                out.dead.append((key, entry_id, seal_personal(key.removeprefix("opsmap:"), raw, self.hasher),
                                 f"event: could not be read ({type(exc).__name__})"))
                continue
            valid.append((key, entry_id, ev))
        try:
            self._apply(valid, out)
        except Exception as exc:
            if (cause := outage_cause(exc)) is not None:
                raise Outage(cause) from exc
            log.warning("batch of %d failed (%s); applying one by one", len(valid), type(exc).__name__)
            for item in valid:
                try:
                    self._apply([item], out)
                except Exception as one_exc:
                    if (cause := outage_cause(one_exc)) is not None:
                        raise Outage(cause) from one_exc
                    out.failing.append((item, one_exc))
        for item, exc in out.failing:
            self._failed(item, exc, out)
        return out

    def _apply(self, items: list[tuple[str, str, Event]], out: Outcome) -> None:
        """One transaction: the ledger says what is stored already (by stream and event_id), the
        rest is applied in time order and recorded in it."""
        if not items:
            return
        applied, replayed, dupes, dead, later, refused = [], [], [], [], [], {}
        replayed_entries = []
        with self.sessions() as session, session.begin():
            ledger: dict[tuple[str, str], ProcessedEvent] = {}
            for stream in {ev.stream for _, _, ev in items}:
                ledger |= {(stream, row.event_id): row for row in session.scalars(select(ProcessedEvent).where(
                    ProcessedEvent.stream == stream,
                    among(ProcessedEvent.event_id, [ev.event_id for _, _, ev in items if ev.stream == stream])))}
            fresh = []
            for key, entry_id, ev in items:
                row = ledger.get((ev.stream, ev.event_id))
                if row is None:
                    fresh.append((key, entry_id, ev))
                elif row.entry_id == entry_id:  # committed, Redis side not done
                    replayed.append(Effects.from_json(row.effects))
                    replayed_entries.append((key, entry_id))
                elif not same_content(row.digest, ev):
                    dead.append((key, entry_id, sealed(ev), _conflict(row.entry_id)))
                else:
                    dupes.append((key, entry_id))
            batch = Batch(session, self.config, self._gate_cache)
            batch.preload([ev for _, _, ev in fresh])
            stored: dict[tuple[str, str], tuple[str, str]] = {}  # (stream, event_id) → digest, entry id
            now = dt.datetime.now(dt.UTC)
            for _, seq, key, entry_id, ev in sorted((ev.ts, sequence(entry_id), key, entry_id, ev)
                                                    for key, entry_id, ev in fresh):
                content, same = digest(ev), stored.get((ev.stream, ev.event_id))
                if same is not None:  # a second copy in this batch: the first was stored
                    if same[0] == content:
                        dupes.append((key, entry_id))
                    else:
                        dead.append((key, entry_id, sealed(ev), _conflict(same[1])))
                    continue
                try:
                    effects = batch.handle(ev, seq)
                except NotYet as exc:
                    later.append(((key, entry_id, ev), exc))
                    continue
                except Rejected as exc:
                    dead.append((key, entry_id, sealed(ev), str(exc)))
                    continue
                stored[(ev.stream, ev.event_id)] = (content, entry_id)
                if batch.refused:
                    refused[(key, entry_id)] = batch.refused
                applied.append(((key, entry_id, ev), effects))
            batch.flush()
            if applied:
                bulk_insert(session, ProcessedEvent.__table__, [
                    {"stream": ev.stream, "event_id": ev.event_id, "digest": stored[(ev.stream, ev.event_id)][0],
                     "entry_id": entry_id, "effects": eff.to_json()}
                    for (_, entry_id, ev), eff in applied], processed_at=now)
        out.applied += [item for item, _ in applied]
        out.effects += [((key, entry_id), eff) for (key, entry_id, _), eff in applied]
        out.effects += list(zip(replayed_entries, replayed, strict=True))
        out.replayed += replayed_entries
        out.duplicates += dupes
        out.dead += dead
        out.failing += later
        out.refused |= refused

    def _failed(self, item: tuple[str, str, Event], exc: Exception, out: Outcome) -> None:
        """An event's own failure: counted (in Redis, beside its stream); parked at the last try."""
        key, entry_id, ev = item
        tries = int(self.client.hincrby(tries_key(key), entry_id, 1))
        out.redelivered.add((key, entry_id))
        if tries >= self.config.ingest_max_tries:
            reason = str(exc) if isinstance(exc, Rejected) else f"{type(exc).__name__}: {exc}"
            out.dead.append((key, entry_id, sealed(ev), f"failed {tries} times: {reason}"[:500]))
        else:
            log.warning("event %s failed (try %d of %d): %s", ev.event_id, tries, self.config.ingest_max_tries,
                        type(exc).__name__)
            out.retry.append((key, entry_id))

    def _finish(self, out: Outcome, ahead: bool = False) -> None:
        """The Redis side, sent after the one before it was answered, and answered unless (with
        ``ahead``) the next batch is read first and found waiting. What stays in flight is only
        the answer's wait: holding a batch's objects through the next one cost ~6 % of the
        worker's CPU in ``bench/ingest.py`` (its allocations could not reuse their memory)."""
        self._settle()
        plan = self._plan(out)
        if ahead:
            self._ahead, self._ahead_at = streams.read(self.client, self.consumer, self.batch, None), time.time()
        self._in_flight = [(entry_id, reason) for _, entry_id, _, reason in out.dead], plan.send(self.client)
        if not self._ahead:
            self._settle()

    def _settle(self) -> bool:
        """The answer to the Redis side in flight (True if one was). Fenced: when another worker
        has acknowledged some of its entries meanwhile (this one was stalled past the claim
        time), nothing of it was written; the rest of its entries, still pending here, are read
        again, and their Redis side replayed from the ledger (``_apply``), the others' left out."""
        if self._in_flight is None:
            return False
        parked, answer = self._in_flight
        self._in_flight = None
        if gone := answer():
            log.warning("%d entries were finished by another worker meanwhile: nothing of their batch's Redis side "
                        "was written, its other entries are read again", len(gone))
            self._own_pending = True
            return True
        for entry_id, reason in parked:
            log.info("parked %s in opsmap:dead: %s", entry_id, reason)
        return True

    def _plan(self, out: Outcome) -> streams.Plan:
        """Counters, feed, dead letters, replies, XACK and the change notice as one atomic step
        per hash slot (``streams.Plan``): on a single server all happen or none; in a cluster
        each slot's step does, and a redelivered entry repeats none of its writes."""
        fed = [item for _, eff in out.effects for _, item in eff.feed]
        # a replayed entry (committed before a crash, Redis side not done) is announced as if new
        replayed = {key.removeprefix("opsmap:") for key, _ in out.replayed}
        alerted = {"alerts" for i in fed if i["kind"].startswith("alert:")}
        changed = sorted({ev.stream for _, _, ev in out.applied} | replayed | alerted)
        kinds = sorted({i["entity"].split(":")[0] for i in fed if i.get("entity")})
        added: dict[str, list[int]] = defaultdict(list)
        for _, eff in out.effects:
            for table, ids in eff.added.items():
                added[table] += ids
        # the new data version first, so the change notice can name it (a crash right after
        # only bumps it once more: harmless)
        version = bump_version(self.client, streams.topics(changed, kinds), added) \
            if out.applied or out.effects else None
        acks: dict[str, list[str]] = defaultdict(list)
        for key, entry_id in out.acked():
            acks[key].append(entry_id)
        plan = streams.Plan(streams.is_cluster(self.client), out.acked())
        for entry, eff in out.effects:
            for hkey, fields in eff.counters.items():
                plan.incr(entry, hkey, fields, COUNTER_TTL_S)
            for stream, item in eff.feed:
                plan.push(entry, streams.feed_key(stream), streams.to_json(item), self.config.feed_length)
        for key, entry_id, redacted, reason in out.dead:
            streams.dead_letter(plan, key, entry_id, redacted, reason)
        for key, ids in acks.items():
            plan.ack(key, streams.GROUP, ids)
            raw = [i for i in ids if (key, i) in out.raw]
            plan.delete(key, raw)
            self._raw_deleted |= bool(raw)
            tried = [i for i in ids if (key, i) in out.redelivered]
            if tried:
                plan.write(None, "HDEL", tries_key(key), *tried)
        self._replies(plan, out)
        if acks or out.effects:
            urgent = [{k: i[k] for k in ("ts", "text", "public", "street", "committee", "lng", "lat") if k in i}
                      for i in fed
                      if i.get("severity") == "urgent"]
            streams.announce(plan, {"applied": len(out.applied), "dead": len(out.dead), "streams": changed,
                                    "kinds": kinds, "urgent": urgent, "version": version, "read": out.read_at,
                                    "at": time.time()})
        return plan

    @staticmethod
    def _replies(plan: streams.Plan, out: Outcome) -> None:
        """The outcome of each entry whose producer waits for it (``streams.wait_reply``)."""
        if not out.wants_reply:
            return
        outcomes = [(k, i, {"ok": False, "reason": out.refused[(k, i)], "kept": True} if (k, i) in out.refused
                     else {"ok": True}) for k, i, _ in out.applied]
        outcomes += [(k, i, {"ok": True, "duplicate": True}) for k, i in out.duplicates]
        outcomes += [(k, i, {"ok": True}) for k, i in out.replayed]
        outcomes += [(k, i, {"ok": False, "reason": reason}) for k, i, _, reason in out.dead]
        for key, entry_id, outcome in outcomes:
            if (key, entry_id) in out.wants_reply:
                rkey = streams.reply_key(key, entry_id)
                plan.write((key, entry_id), "RPUSH", rkey, streams.to_json(outcome))
                plan.write((key, entry_id), "EXPIRE", rkey, REPLY_TTL_S)

    # --- rules of the clock ------------------------------------------------------------------

    def sweep(self, now: dt.datetime) -> int:
        """Raise what time alone made due: missed check-ins here; 催办, 督办 and silent gates as
        events on the streams (``data.pipeline.clock``), which this or any worker then applies once."""
        raised = 0
        if time.monotonic() - self._last_missed >= 60:  # a rule of the day: once a minute is plenty
            self._last_missed = time.monotonic()
            raised = self.sweep_missed_checkins(now)
        with self.reads() as session:
            due = {"workorders": clock.marks_due(session, self.policy, now),
                   "rules": clock.silent_gates(session, self.config, now)}
        for stream, events in due.items():
            if events:
                streams.append(self.client, stream, [json.dumps(e, ensure_ascii=False) for e in events])
        return raised + sum(map(len, due.values()))

    def sweep_missed_checkins(self, now: dt.datetime) -> int:
        """After the configured hour, alert once per observation that has no check-in today."""
        local = now.astimezone(rules.SHANGHAI)
        if local.hour < self.config.health_checkin_hour:
            return 0
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        raised = 0
        with self.sessions() as session, session.begin():
            active = session.scalars(select(HomeObservation).where(
                HomeObservation.start_at < day_start, HomeObservation.planned_end_at > now,
                or_(HomeObservation.ended_at.is_(None), HomeObservation.ended_at > now))).all()
            for obs in active:
                marker = f"missed:{obs.id}:{local.date().isoformat()}"
                if session.get(ProcessedEvent, {"stream": "rules", "event_id": marker}) is not None:
                    continue
                has = session.scalar(select(HealthCheckIn.id).where(and_(
                    HealthCheckIn.observation_id == obs.id, HealthCheckIn.ts >= day_start)).limit(1))
                if has is None:
                    where = Where.of(obs.compound)
                    session.add(Alert(event_id=marker, kind="missed_checkin", severity="medium", ts=now,
                                      entity_kind="observation", entity_id=str(obs.id), geom=obs.geom,
                                      place=where.place, committee_id=where.committee_id,
                                      message=f"未按时健康打卡："
                                              f"{rules.observation_progress(obs.start_at, obs.planned_end_at, now)} "
                                              f"{obs.address or ''}"))
                    raised += 1
                session.add(ProcessedEvent(event_id=marker, stream="rules", entry_id="-", processed_at=now))
        return raised


def dry_run(engine: Engine, config: Config, ev: Event) -> str | None:
    """What ingest would refuse about ``ev`` right now (``field: problem``), or None.

    The very handlers ingest uses run in a transaction that is always rolled back, so an
    officer's invalid action is refused at once, with ingest's own reason, and changes nothing.
    """
    with session_factory(engine, write=True)() as session:
        try:
            batch = Batch(session, config, {})
            batch.preload([ev])
            batch.handle(ev)
            batch.flush()
        except Rejected as exc:
            return str(exc)
        finally:
            session.rollback()
    return batch.refused  # a step the order's history would keep refused: refused at once here


def tries_key(key: str) -> str:
    """Where an entry's own failures are counted (the stream's slot: its XACK step forgets them)."""
    return f"{{{key}}}:tries"


def _conflict(first_entry: str) -> str:
    return (f"event_id: conflict: already stored with other content (entry {first_entry}); "
            "a new event needs a new event_id")


def run_workers(engine: Engine, redis_url: str, config: Config, stop: threading.Event,
                n: int = 1) -> list[threading.Thread]:
    """Start ``n`` worker threads (used by ``opsmap serve``); they end when ``stop`` is set."""
    threads = []
    for _ in range(n):
        worker = Worker(engine, streams.connect(redis_url), config)
        t = threading.Thread(target=worker.run, args=(stop,), name=f"ingest-{worker.consumer}", daemon=True)
        t.start()
        threads.append(t)
    return threads


def pending_total(client: redis.Redis) -> int:
    return sum(v["pending"] + v["lag"] for v in streams.lag(client).values())
