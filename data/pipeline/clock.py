"""The rules of the clock: what falls due with time alone — an order's 催办 at its deadline and
督办 a further period later, a gate gone silent — raised as events on the streams.

Why events: ingest then applies them like any other (history, as-of moments, the feed, change
notices, notifications), and exactly once: each event's id is fixed by what it is about (the
order and the mark; the gate and when its silence began), so every worker may sweep, each as
often as it likes, and a second copy is a duplicate in the ledger, not a second 催办.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from data.domain import deadlines, rules
from data.domain.deadlines import OfficeHours
from data.models import Gate, WorkOrder
from data.read import queries
from data.settings import Config

PREFIX = "opsmap."  # the ids of the events the clock raises


def _event_id(*parts: str) -> str:
    """``opsmap.remind.<order>``; hashed when an order id would make it longer than the contract allows."""
    plain = PREFIX + ".".join(parts)
    return plain if len(plain) <= 64 else PREFIX + parts[0] + "." + hashlib.sha256(plain.encode()).hexdigest()[:40]


def marks_due(session: Session, policy: deadlines.Deadlines, now: dt.datetime) -> list[dict[str, Any]]:
    """催办 for every open order past its deadline, 督办 for every one past the further period,
    each stamped at the moment it fell due (so an as-of view shows it from then on)."""
    out = []
    orders = session.scalars(select(WorkOrder).where(WorkOrder.state.in_(rules.OPEN_STATES))
                             .options(selectinload(WorkOrder.events)))
    for order in orders:
        marked = {e.action for e in order.events if e.action in rules.MARKS}  # refused ones too: sent once
        due = policy.due(order.category, order.created_at)
        for action, at in (("remind", due), ("supervise", policy.add(due, policy.supervise_after))):
            if now >= at and action not in marked:
                out.append({"event_id": _event_id(action, order.id), "ts": at.isoformat(), "order_id": order.id,
                            "action": action})
    return out


def silent_gates(session: Session, config: Config, now: dt.datetime) -> list[dict[str, Any]]:
    """One event per open gate whose silence (no scan within its hours) has lasted the set minutes."""
    hours = OfficeHours.parse(config.gate_hours)
    quiet = dt.timedelta(minutes=config.gate_silent_minutes)
    open_gates = list(session.scalars(select(Gate.id).where(Gate.status == "open")))
    out = []
    for gate_id, last in queries.last_scans(session, open_gates, now).items():
        since = queries.silent_since(last, now, quiet, (hours.start, hours.end))
        if since is not None:
            out.append({"event_id": _event_id("silent", gate_id, str(int(since.timestamp()))),
                        "ts": (since + quiet).isoformat(), "rule": "silent_gate", "gate_id": gate_id,
                        "since": since.isoformat()})
    return out
