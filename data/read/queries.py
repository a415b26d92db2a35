"""Read-side questions about a street that panels and the API share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from data.domain import rules
from data.domain.deadlines import Deadlines
from data.models import (
    Case,
    CheckIn,
    Committee,
    Compound,
    DutyShift,
    Gate,
    HealthCheckIn,
    HomeObservation,
    Street,
    WorkOrder,
)
from data.store import among, states_as_of


def streets(session: Session) -> list[Street]:
    """Loaded streets, by name."""
    return list(session.scalars(select(Street).order_by(Street.name)))


def compounds_of(session: Session, street_id: str, committee_id: str | None = None) -> list[Compound]:
    """A street's compounds, or one committee's, by name (the map's compound selector)."""
    stmt = select(Compound).where(Compound.street_id == street_id).order_by(Compound.name, Compound.id)
    return list(session.scalars(stmt if committee_id is None else stmt.where(Compound.committee_id == committee_id)))


def shown_street(loaded: list[Street], name: str) -> Street | None:
    """The street pages open on: the configured one (OPSMAP_STREET), else the first loaded."""
    return next((s for s in loaded if s.name == name), loaded[0] if loaded else None)


def compound_tiers(session: Session, street_id: str, at: dt.datetime) -> dict[str, str]:
    """Every compound's 2022 three-zone tier at moment ``at``: from the confirmed cases of the
    14 days to that day, reported up to ``at`` (a case later that day does not count yet)."""
    day = rules.local_day(at)
    newest = newest_positive(session, street_id, dt.datetime.combine(day - dt.timedelta(days=13), dt.time(),
                                                                     rules.SHANGHAI), at)
    ids = session.scalars(select(Compound.id).where(Compound.street_id == street_id))
    return {cid: rules.tier([rules.local_day(newest[cid])] if cid in newest else [], day) for cid in ids}


def newest_positive(session: Session, street_id: str, since: dt.datetime, at: dt.datetime) -> dict[str, dt.datetime]:
    """Each compound's newest positive case (rules.POSITIVE) reported in [since, at]: the tier goes by
    the youngest case's age, so one index seek per compound (a max in a correlated subquery over
    ix_case_report_compound_category_reported), not a grouping of every case — a street with
    100,000 case reports answers in milliseconds."""
    newest = select(func.max(Case.reported_at)).where(
        Case.compound_id == Compound.id, Case.category.in_(rules.POSITIVE), Case.reported_at >= since,
        Case.reported_at <= at).correlate(Compound).scalar_subquery()
    rows = session.execute(select(Compound.id, newest).where(Compound.street_id == street_id))
    return {cid: t for cid, t in rows if t is not None}


def order_clocks(order: WorkOrder, state: dict[str, Any], at: dt.datetime, policy: Deadlines) -> list[rules.Clock]:
    """An order's clocks at ``at``, given its state then (``states_as_of``) and steps: the targets
    of the priority in force at ``at`` (an escalation makes it urgent) and the deadline of its kind
    (``deadline``, met by the first resolve)."""
    milestones: dict[str, dt.datetime] = {}
    closed_at = None
    for e in order.steps:
        if e.ts > at:
            break
        if e.action in rules.MILESTONE_OF:
            milestones.setdefault(rules.MILESTONE_OF[e.action], e.ts)
        closed_at = e.ts if e.to_state in ("closed", "cancelled") else None
    targets = {**policy.sla[state.get("priority", order.priority)],
               "deadline": policy.due(order.category, order.created_at) - order.created_at}
    if "resolve" in milestones:
        milestones["deadline"] = milestones["resolve"]
    return rules.sla_clocks(order.created_at, targets, milestones, at, closed_at)


def clock_text(policy: Deadlines, clocks: list[rules.Clock], at: dt.datetime) -> str:
    """An open order's clocks as one phrase, the same on the map, the officer's list, the drill-down
    and the briefing: 超时 3 小时 0 分 when any is late, else what is left to the deadline."""
    late = max((c.overdue_by for c in clocks), default=dt.timedelta(0))
    if late > dt.timedelta(0):
        return f"超时 {rules.duration_text(late)}"
    deadline = next((c for c in clocks if c.milestone == "deadline" and c.met_at is None), None)
    return "" if deadline is None else policy.remaining(deadline.deadline, at)


#: ``session.info`` key of the orders read during ``one_reading``
_READ_ORDERS = "opsmap_street_orders"


@contextmanager
def one_reading(session: Session) -> Iterator[Session]:
    """Within the block, ``street_orders`` of one street and moment is read once. Why: the
    briefing counts orders for its headline (the summary), its tables and its map; read once,
    they are the same orders (ingest may commit between reads) and are loaded once, not three times.
    A block within another is part of the outer reading."""
    if _READ_ORDERS in session.info:
        yield session
        return
    session.info[_READ_ORDERS] = {}
    try:
        yield session
    finally:
        del session.info[_READ_ORDERS]


def street_orders(session: Session, street_id: str, at: dt.datetime) -> list[tuple[WorkOrder, dict[str, Any]]]:
    """Orders placed in the street and existing at ``at``, each with its state then."""
    read = session.info.get(_READ_ORDERS)
    if read is None:
        return _street_orders(session, street_id, at)
    if (street_id, at) not in read:
        read[(street_id, at)] = _street_orders(session, street_id, at)
    return read[(street_id, at)]


def _street_orders(session: Session, street_id: str, at: dt.datetime) -> list[tuple[WorkOrder, dict[str, Any]]]:
    street = session.get(Street, street_id)
    orders = [o for o in session.scalars(select(WorkOrder).where(WorkOrder.created_at <= at,
                                                                 WorkOrder.geom.is_not(None))
                                         .order_by(WorkOrder.created_at, WorkOrder.id)
                                         .options(selectinload(WorkOrder.events)))
              if street is not None and street.geom.covers(o.geom)]
    states = states_as_of(session, "work_order", at, [o.id for o in orders])
    return [(o, states.get(o.id, {})) for o in orders]


def work_order_counts(session: Session, street_id: str, at: dt.datetime, policy: Deadlines) -> dict[str, Any]:
    """Open orders by state and how many are overdue; opened and closed in the last 24 h; the open
    ones marked 催办 or 督办 (the supervision list), 督办 first, each with its committee and clock."""
    by_state: dict[str, int] = {}
    overdue = opened = closed = 0
    marked = []
    names = dict(session.execute(select(Committee.id, Committee.name)).all())  # type: ignore[arg-type]
    for order, state in street_orders(session, street_id, at):
        name = state.get("state", order.state)
        opened += order.created_at > at - dt.timedelta(hours=24)
        if name in rules.OPEN_STATES:
            by_state[name] = by_state.get(name, 0) + 1
            clocks = order_clocks(order, state, at, policy)
            overdue += any(c.overdue for c in clocks)
            if state.get("level"):
                marked.append({"order": order.id, "category": order.category, "level": state["level"],
                               "committee": names.get(state.get("committee_id")),
                               "remaining": clock_text(policy, clocks, at)})
        elif name == "closed" and any(e.to_state == "closed" and at - dt.timedelta(hours=24) < e.ts <= at
                                      for e in order.steps):
            closed += 1
    marked.sort(key=lambda m: (m["level"] != "supervised", m["order"]))
    return {"open": sum(by_state.values()), "by_state": by_state, "overdue": overdue,
            "opened_24h": opened, "closed_24h": closed, "marked": marked}


@dataclass(frozen=True)
class Period:
    """A home observation as it stood at a moment: its (possibly extended) end and whether it ran."""

    planned_end: dt.datetime
    ended_at: dt.datetime | None
    active: bool
    day: int  # day N at that moment, 1-based, capped at ``days``
    days: int  # planned length: 14 plus any extension recorded by then


def observation_periods(session: Session, observations: list[HomeObservation],
                        at: dt.datetime) -> dict[int, Period]:
    """Each observation as of ``at``, from its history: an extension or an end recorded after
    ``at`` does not count, so a replay or a briefing frozen at a cut-off stays the same."""
    states = states_as_of(session, "observation", at, [str(o.id) for o in observations])
    out = {}
    for o in observations:
        state = states.get(str(o.id), {})
        planned = (dt.datetime.fromisoformat(state["planned_end_at"]) if "planned_end_at" in state
                   else rules.planned_end(o.start_at))
        ended = (dt.datetime.fromisoformat(state["ended_at"]) if state.get("ended_at")
                 else o.ended_at if o.ended_at is not None and o.ended_at <= at else None)
        days = rules.observation_days(o.start_at, planned)
        out[o.id] = Period(planned, ended, rules.observation_active(o.start_at, planned, ended, at),
                           max(1, min(rules.observation_day(o.start_at, at), days)), days)
    return out


def effective_checkins(checkins: Iterable[HealthCheckIn], at: dt.datetime) -> list[tuple[HealthCheckIn, float | None]]:
    """An observation's check-ins up to ``at`` as they stand, newest first: one corrected by a later
    one (``corrects``) gives way to it, which carries the value it replaced."""
    upto = [c for c in checkins if c.ts <= at]
    replaced = {c.corrects: c for c in upto if c.corrects}
    by_event = {c.event_id: c for c in upto}
    kept = [(c, by_event[c.corrects].temperature if c.corrects in by_event else None)
            for c in upto if c.event_id not in replaced]
    return sorted(kept, key=lambda pair: pair[0].ts, reverse=True)


def latest_checkin(session: Session, observation_id: int) -> str | None:
    """The event id of an observation's latest check-in as it stands (what an officer may correct)."""
    rows = session.scalars(select(HealthCheckIn).where(HealthCheckIn.observation_id == observation_id)).all()
    kept = effective_checkins(rows, dt.datetime.max.replace(tzinfo=dt.UTC))
    return kept[0][0].event_id if kept else None


def duty_shifts(session: Session, gate_ids: Iterable[str], at: dt.datetime) -> dict[str, DutyShift]:
    """Each gate's rostered shift at ``at``, as the roster stood then (a later event for the same
    gate and shift start replaces an earlier one from its own time on)."""
    ids = list(gate_ids)
    rows = session.scalars(select(DutyShift).where(among(DutyShift.gate_id, ids), DutyShift.starts_at <= at,
                                                   DutyShift.ends_at > at, DutyShift.ts <= at)
                           .order_by(DutyShift.ts, DutyShift.id)).all() if ids else []
    newest = {(r.gate_id, r.starts_at): r for r in rows}  # the latest word on each shift
    return {gid: shift for (gid, _), shift in sorted(newest.items(), key=lambda kv: kv[0][1])}


def guards_on_duty(session: Session, states: dict[str, dict[str, Any]], at: dt.datetime) -> dict[str, int]:
    """Guards at each gate at ``at``: the rostered shift's when one covers that moment, else the
    number last reported (``guards_on_duty`` in a facility report)."""
    shifts = duty_shifts(session, states, at)
    return {gid: len(shifts[gid].guards) if gid in shifts else int(state.get("guards_on_duty", 0))
            for gid, state in states.items()}


def last_scans(session: Session, gate_ids: Iterable[str], at: dt.datetime) -> dict[str, dt.datetime]:
    """Each gate's latest scan up to ``at`` (gates never scanned are absent). One index seek per gate
    (a max per gate, not a grouping of every scan: a busy day holds millions)."""
    ids = list(gate_ids)
    if not ids:
        return {}
    latest = select(func.max(CheckIn.ts)).where(CheckIn.gate_id == Gate.id, CheckIn.ts <= at).scalar_subquery()
    return {gid: ts for gid, ts in session.execute(select(Gate.id, latest).where(among(Gate.id, ids)))
            if ts is not None}


def silent_since(last_scan: dt.datetime | None, at: dt.datetime, quiet: dt.timedelta,
                 hours: tuple[dt.time, dt.time]) -> dt.datetime | None:
    """When a gate's silence began, if at ``at`` it has had no scan for ``quiet`` within its
    ``hours`` (counted from the later of its last scan and today's opening, or from the last scan
    alone for hours round the clock); None when not silent. A gate never scanned has no scanner to
    fall silent: it is not watched."""
    local = at.astimezone(rules.SHANGHAI)
    if last_scan is None or not hours[0] <= local.time() < hours[1]:
        return None
    round_the_clock = (hours[0], hours[1]) == (dt.time(0), dt.time.max)
    since = last_scan if round_the_clock else max(last_scan, dt.datetime.combine(local.date(), hours[0],
                                                                                  rules.SHANGHAI))
    return since if at - since >= quiet else None
