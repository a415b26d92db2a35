"""Retention: person-level rows older than OPSMAP_PII_RETENTION_DAYS lose the person, the audit
trail older than OPSMAP_AUDIT_RETENTION_DAYS goes; ``opsmap serve`` does both once a day and
``opsmap purge --before DATE`` on demand.

Why anonymise rather than delete check-ins and registrations: the counts of past days (scans per
gate, returnees per committee) stay true; what goes is who — the keyed hash that would link a
scan to a person, the masked numbers, the origin. Health check-ins go whole (their counts are
kept in the day counters): a temperature and symptoms tied to an observation are the person.

What a scan said about its person elsewhere goes at the same age: an alert's message becomes
its public form (what happened and where: "发热：<gate>"), the live feed's items likewise, a
closed order opsmap opened for a quarantine violation loses the masked number and the home
address, and the ledger drops its copy of what a batch sent to Redis (kept only to replay it
after a crash between the commit and the acknowledgement), counted from when it was stored.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Any

import redis
from sqlalchemy import ColumnElement, Engine, case, delete, func, null, update
from sqlalchemy.exc import SQLAlchemyError

from data.access import audit
from data.models import Alert, CheckIn, HealthCheckIn, ProcessedEvent, ReturneeRegistration, WorkOrder
from data.pipeline import streams
from data.pipeline.events import ALERT_LABELS, AUTO_ORDER
from data.settings import Config
from data.store import transaction

log = logging.getLogger(__name__)
GONE = "已清除"  # what a masked number reads once its row is anonymised
#: alerts whose message names nobody (a gate gone silent): they keep it
NAMES_NOBODY = ("silent_gate",)
#: what a closed quarantine-violation order says once it no longer names the person
VIOLATION = ALERT_LABELS["quarantine_violation"]


def _public_message() -> ColumnElement[str]:
    """``events.public_alert`` in SQL: the alert's label, then its place when it has one."""
    label = case(ALERT_LABELS, value=Alert.kind, else_=Alert.kind)
    return case((func.coalesce(Alert.place, "") == "", label), else_=label + "：" + Alert.place)


def anonymise(engine: Engine, before: dt.datetime) -> dict[str, int]:
    """Anonymise check-ins, registrations, alerts and closed violation orders, delete health
    check-ins, older than ``before``; drop the effects of ledger rows stored before it."""
    with transaction(engine) as session:
        scans = session.execute(update(CheckIn).where(CheckIn.ts < before, CheckIn.person_hash != "").values(
            person_hash="", person_masked=GONE, phone_masked=None, origin=None)).rowcount
        registrations = session.execute(update(ReturneeRegistration).where(
            ReturneeRegistration.created_at < before, ReturneeRegistration.person_hash != "").values(
            person_hash="", person_masked=GONE, phone_masked=None)).rowcount
        health = session.execute(delete(HealthCheckIn).where(HealthCheckIn.ts < before)).rowcount
        public = _public_message()
        alerts = session.execute(update(Alert).where(
            Alert.ts < before, Alert.kind.not_in(NAMES_NOBODY), Alert.message != public,
        ).values(message=public)).rowcount
        orders = session.execute(update(WorkOrder).where(
            WorkOrder.id.startswith(AUTO_ORDER, autoescape=True), WorkOrder.state.in_(("closed", "cancelled")),
            WorkOrder.updated_at < before, WorkOrder.description != VIOLATION).values(
            description=VIOLATION, address=GONE)).rowcount
        ledger = session.execute(update(ProcessedEvent).where(
            ProcessedEvent.processed_at < before, ProcessedEvent.effects.is_not(None)).values(effects=null())).rowcount
    return {"checkins": scans or 0, "registrations": registrations or 0, "health_checkins": health or 0,
            "alerts": alerts or 0, "violation_orders": orders or 0, "ledger_effects": ledger or 0}


#: replace each (old, new) pair of items in a list where the old one still is (a worker may
#: have pushed or trimmed meanwhile); one key, so a Redis Cluster runs it too
_REPLACE = """local n = 0
for i = 1, #ARGV, 2 do
  local at = redis.call('LPOS', KEYS[1], ARGV[i])
  if at then redis.call('LSET', KEYS[1], at, ARGV[i + 1]); n = n + 1 end
end
return n"""


def anonymise_feed(client: redis.Redis, before: dt.datetime) -> int:
    """Items of the live feed older than ``before`` that name a person (those with a ``public``
    form) say only that; returns how many."""
    changed = 0
    for name in streams.FEED_STREAMS:
        key = streams.feed_key(name)
        pairs: list[bytes | str] = []
        for raw in client.lrange(key, 0, -1):
            item = json.loads(raw)
            if _names_someone(item, before):
                pairs += [raw, streams.to_json({**item, "text": item["public"]})]
        if pairs:
            changed += int(client.eval(_REPLACE, 1, key, *pairs))
    return changed


def _names_someone(item: dict[str, Any], before: dt.datetime) -> bool:
    """A feed item older than ``before`` whose text is not its public form (only items that can
    name a person carry one: alerts, health check-ins, observations)."""
    return ("public" in item and item.get("text") != item["public"]
            and dt.datetime.fromisoformat(item["ts"]) < before)


def keep(engine: Engine, client: redis.Redis, config: Config, stop: threading.Event, every_s: float = 86_400) -> None:
    """Apply both retentions now and then once a period until ``stop`` (a thread of ``opsmap serve``)."""
    while True:
        now = dt.datetime.now(dt.UTC)
        before = now - dt.timedelta(days=config.pii_retention_days)
        try:
            done = anonymise(engine, before)
            done["feed"] = anonymise_feed(client, before)
            purged = audit.purge(engine, config.audit_retention_days)
        except (SQLAlchemyError, redis.RedisError) as exc:  # the database or Redis is away: next period
            log.warning("retention pass failed: %s", type(exc).__name__)
        else:
            if purged or any(done.values()):
                log.info("retention: %s anonymised or deleted; %d audit lines purged", done, purged)
        if stop.wait(every_s):
            return
