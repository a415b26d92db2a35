"""The audit trail: append-only lines of who did what, when, to what, from where, allowed or not.

Recorded: sign-ins (ok and failed), sign-outs, every officer action (done or refused), every
export, every view of person-level details, every change of users, tokens and screens. Nothing
updates or deletes a line but the retention purge (OPSMAP_AUDIT_RETENTION_DAYS).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, delete, select

from data.access.models import AuditEntry
from data.store import session_factory, transaction

TARGET_MAX = 160


def record(engine: Engine, actor: str, action: str, target: str | None = None, ok: bool = True,
           address: str | None = None, **detail: Any) -> None:
    """Append one line (its own transaction: a refused action is recorded although nothing else is written)."""
    with transaction(engine) as session:
        session.add(AuditEntry(ts=dt.datetime.now(dt.UTC), actor=actor[:96], action=action[:48],
                               target=target[:TARGET_MAX] if target else None, ok=ok,
                               address=(address or "")[:64] or None, detail=detail or None))


def entries(engine: Engine, since: dt.datetime | None = None, actor: str | None = None, action: str | None = None,
            limit: int = 500) -> list[AuditEntry]:
    """Lines newest first; ``actor`` matches the name with or without its kind (``alice`` or ``user:alice``)."""
    stmt = select(AuditEntry).order_by(AuditEntry.ts.desc(), AuditEntry.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEntry.ts >= since)
    if actor:
        stmt = stmt.where(AuditEntry.actor.in_([actor, *(f"{k}:{actor}" for k in ("user", "screen", "token"))]))
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action))
    with session_factory(engine)() as session:
        return list(session.scalars(stmt))


def purge(engine: Engine, retention_days: float) -> int:
    """Delete lines older than the retention; returns how many."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
    with transaction(engine) as session:
        return session.execute(delete(AuditEntry).where(AuditEntry.ts < cutoff)).rowcount or 0


def line(entry: AuditEntry) -> str:
    """One entry as a line of text (``opsmap audit``)."""
    detail = " ".join(f"{k}={v}" for k, v in (entry.detail or {}).items())
    return "\t".join([f"{entry.ts:%Y-%m-%d %H:%M:%S}Z", entry.actor, entry.action, entry.target or "-",
                      "ok" if entry.ok else "REFUSED", entry.address or "-", detail])
