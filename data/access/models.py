"""Tables of the access package: accounts and their grants, one-time links, web sessions,
producer tokens, paired screens and the audit trail.

Secrets are never stored: passwords as argon2 hashes, links, session cookies, tokens and
pairing codes as SHA-256 digests of random values (a stolen database opens no door).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from data.models import Base, UTCDateTime


class Account(Base):
    """A person who signs in: by password (argon2), by one-time link, or through single sign-on."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(128))
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    grants: Mapped[list[Grant]] = relationship(back_populates="account", cascade="all, delete-orphan",
                                               lazy="selectin")


class Grant(Base):
    """One role of an account, scoped: ``commander``/``viewer`` of a street, ``officer`` of a
    committee (its street recorded beside it), ``admin`` unscoped."""

    __tablename__ = "account_grant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    street_id: Mapped[str | None] = mapped_column(String(16))
    committee_id: Mapped[str | None] = mapped_column(String(24))

    account: Mapped[Account] = relationship(back_populates="grants")


class SignInLink(Base):
    """A one-time sign-in link (first start, demo accounts, a forgotten password)."""

    __tablename__ = "signin_link"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser (an account) or a paired kiosk (a screen): the cookie's digest,
    its CSRF token and its expiry. Deleting the row signs the browser out."""

    __tablename__ = "web_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    screen_id: Mapped[int | None] = mapped_column(ForeignKey("screen_device.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    address: Mapped[str | None] = mapped_column(String(64))


class ProducerToken(Base):
    """A bearer token for a producer (gate scanners, the 12345 system, the health system):
    which streams it may post to, and in which street (None: any)."""

    __tablename__ = "producer_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    streams: Mapped[str] = mapped_column(String(255))  # comma-separated stream names
    street_id: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ScreenDevice(Base):
    """A kiosk paired to one street: a one-time pairing code sets its long-lived device cookie."""

    __tablename__ = "screen_device"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    street_id: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    paired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One line of the append-only audit trail: who, when, what, on what, from where, allowed or not."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(96), index=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    target: Mapped[str | None] = mapped_column(String(160))
    ok: Mapped[bool] = mapped_column(Boolean)
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
