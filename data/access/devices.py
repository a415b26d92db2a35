"""Devices: producer tokens (gate scanners, the 12345 system, the health system) and paired
kiosk screens.

A token or a pairing code is shown once, when made; only its digest is kept. A screen is
paired by opening ``/screen/pair/<code>`` once: the code is spent and the browser receives a
long-lived device cookie (a web session of the screen), which ``revoke`` ends at once.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from data.access.accounts import AccessError, digest, find_street
from data.access.models import ProducerToken, ScreenDevice, WebSession
from data.access.policy import Actor, Role
from data.pipeline.events import STREAMS
from data.store import session_factory, transaction

TOKEN_PREFIX = "opsmap_"
PAIRING_TTL = dt.timedelta(hours=24)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_token(engine: Engine, name: str, streams: list[str], street: str | None = None) -> str:
    """A new producer token for ``streams`` (and one street, when given); returns it, once."""
    unknown = [s for s in streams if s not in STREAMS]
    if not streams or unknown:
        raise AccessError(f"streams: one or more of {', '.join(STREAMS)} (unknown: {', '.join(unknown) or 'none'})")
    if not name.strip() or len(name) > 64:
        raise AccessError("name: 1 to 64 characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(engine) as session:
        if session.scalar(select(ProducerToken.id).where(ProducerToken.name == name)) is not None:
            raise AccessError(f"name: a token {name!r} exists already")
        session.add(ProducerToken(name=name, token_hash=digest(secret), streams=",".join(streams),
                                  street_id=find_street(session, street).id if street else None, created_at=_now()))
    return secret


def tokens(engine: Engine) -> list[ProducerToken]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(ProducerToken).order_by(ProducerToken.name)))


def revoke_token(engine: Engine, name: str) -> None:
    with transaction(engine) as session:
        token = session.scalar(select(ProducerToken).where(ProducerToken.name == name))
        if token is None:
            raise AccessError(f"name: no token {name!r}")
        token.revoked_at = token.revoked_at or _now()


def actor_of_token(session: Session, secret: str) -> Actor | None:
    """The producer behind a bearer token; None when unknown or revoked."""
    token = session.scalar(select(ProducerToken).where(ProducerToken.token_hash == digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    roles = (Role("producer", token.street_id),) if token.street_id else ()
    return Actor("token", token.name, roles, streams=frozenset(token.streams.split(",")))


def add_screen(engine: Engine, name: str, street: str) -> tuple[ScreenDevice, str]:
    """A screen of a street and its one-time pairing code (valid PAIRING_TTL)."""
    code = secrets.token_urlsafe(24)
    with transaction(engine) as session:
        device = ScreenDevice(name=name.strip()[:64] or "screen", street_id=find_street(session, street).id,
                              code_hash=digest(code), code_expires_at=_now() + PAIRING_TTL, created_at=_now())
        session.add(device)
    return device, code


def pair_screen(engine: Engine, code: str) -> ScreenDevice | None:
    """The screen a pairing code belongs to, once (the code is spent); None when unknown, used or expired."""
    with transaction(engine) as session:
        device = session.scalar(select(ScreenDevice).where(ScreenDevice.code_hash == digest(code)))
        if device is None or device.revoked_at is not None or (device.code_expires_at or _now()) < _now():
            return None
        device.code_hash, device.code_expires_at, device.paired_at = None, None, _now()
        return device


def screens(engine: Engine) -> list[ScreenDevice]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(ScreenDevice).order_by(ScreenDevice.id)))


def revoke_screen(engine: Engine, screen_id: int) -> None:
    """Revoke a screen: its device cookie stops working at once."""
    with transaction(engine) as session:
        device = session.get(ScreenDevice, screen_id)
        if device is None:
            raise AccessError(f"id: no screen {screen_id}")
        device.revoked_at = device.revoked_at or _now()
        device.code_hash = None
        session.execute(delete(WebSession).where(WebSession.screen_id == screen_id))
