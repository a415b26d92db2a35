"""Retention: person-level rows older than OPSMAP_PII_RETENTION_DAYS lose the person, the audit
trail older than OPSMAP_AUDIT_RETENTION_DAYS goes; ``opsmap serve`` does both once a day and
``opsmap purge --before DATE`` on demand.

Why anonymise rather than delete check-ins and registrations: the counts of past days (scans per
gate, returnees per committee) stay true; what goes is who — the keyed hash that would link a
scan to a person, the masked numbers, the origin. Health check-ins go whole (their counts are
kept in the day counters): a temperature and symptoms tied to an observation are the person.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import SQLAlchemyError

from data.access import audit
from data.models import CheckIn, HealthCheckIn, ReturneeRegistration
from data.settings import Config
from data.store import transaction

log = logging.getLogger(__name__)
GONE = "已清除"  # what a masked number reads once its row is anonymised


def anonymise(engine: Engine, before: dt.datetime) -> dict[str, int]:
    """Anonymise check-ins and registrations, delete health check-ins, older than ``before``."""
    with transaction(engine) as session:
        scans = session.execute(update(CheckIn).where(CheckIn.ts < before, CheckIn.person_hash != "").values(
            person_hash="", person_masked=GONE, phone_masked=None, origin=None)).rowcount
        registrations = session.execute(update(ReturneeRegistration).where(
            ReturneeRegistration.created_at < before, ReturneeRegistration.person_hash != "").values(
            person_hash="", person_masked=GONE, phone_masked=None)).rowcount
        health = session.execute(delete(HealthCheckIn).where(HealthCheckIn.ts < before)).rowcount
    return {"checkins": scans or 0, "registrations": registrations or 0, "health_checkins": health or 0}


def keep(engine: Engine, config: Config, stop: threading.Event, every_s: float = 86_400) -> None:
    """Apply both retentions now and then once a period until ``stop`` (a thread of ``opsmap serve``)."""
    while True:
        now = dt.datetime.now(dt.UTC)
        try:
            done = anonymise(engine, now - dt.timedelta(days=config.pii_retention_days))
            purged = audit.purge(engine, config.audit_retention_days)
        except SQLAlchemyError as exc:  # the database is away: try again next period
            log.warning("retention pass failed: %s", type(exc).__name__)
        else:
            if purged or any(done.values()):
                log.info("retention: %s anonymised or deleted; %d audit lines purged", done, purged)
        if stop.wait(every_s):
            return
