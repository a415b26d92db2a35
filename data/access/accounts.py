"""People: accounts with their scoped roles, passwords (argon2), one-time sign-in links,
single sign-on provisioning, and the web sessions a sign-in (or a screen's pairing) opens.

Why sessions in SQL, not a signed cookie alone: disabling an account, revoking a screen or
signing out must end access at once, in every app process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.orm import Session

from data.access.models import Account, Grant, SignInLink, WebSession
from data.access.policy import ROLES, Actor, Role
from data.models import Committee, Street
from data.store import session_factory, transaction

LINK_TTL = dt.timedelta(hours=24)
NAME_MAX = 64
PASSWORD_MIN = 10
_argon2 = PasswordHasher()
#: verified against when an account does not exist, so a wrong name costs the same time as a wrong password
_DUMMY_HASH = _argon2.hash("opsmap-no-such-account")


class AccessError(ValueError):
    """A request about accounts that cannot be done; the message names the field and the problem."""


def digest(secret: str) -> str:
    """What is stored of a random secret (link, session cookie, token, pairing code)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def find_street(session: Session, name_or_id: str) -> Street:
    """A loaded street by id or name (with or without 街道)."""
    found = session.get(Street, name_or_id) or session.scalar(
        select(Street).where(Street.name.in_([name_or_id, name_or_id + "街道", name_or_id.removesuffix("街道")])))
    if found is None:
        raise AccessError(f"street: no loaded street {name_or_id!r}")
    return found


def parse_roles(session: Session, role: str, streets: Iterable[str] = (), committees: Iterable[str] = ()) -> list[Role]:
    """Roles for ``--role R --street A,B --committee X,Y``: commanders and viewers need streets,
    officers committees, admins neither."""
    streets, committees = [s for s in streets if s], [c for c in committees if c]
    if role not in ROLES:
        raise AccessError(f"role: one of {', '.join(ROLES)} (got {role!r})")
    if role == "admin":
        return [Role("admin")]
    if role == "officer":
        if not committees:
            raise AccessError("committee: an officer needs --committee ID[,ID…]")
        found = []
        for cid in committees:
            committee = session.get(Committee, cid)
            if committee is None:
                raise AccessError(f"committee: no committee {cid!r}")
            found.append(Role("officer", committee.street_id, committee.id))
        return found
    if not streets:
        raise AccessError(f"street: a {role} needs --street NAME[,NAME…]")
    return [Role(role, find_street(session, s).id) for s in streets]


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or any(c.isspace() or c in "<>&'\"/" for c in name):
        raise AccessError(f"name: 1 to {NAME_MAX} characters, no spaces, quotes, slashes or <>& (got {name!r})")
    return name


def add_user(engine: Engine, name: str, roles: list[Role], display_name: str | None = None,
             password: str | None = None) -> Account:
    """A new account with its roles; a password is optional (a one-time link signs in without one)."""
    name = _check_name(name)
    with transaction(engine) as session:
        if session.scalar(select(Account).where(Account.name == name)) is not None:
            raise AccessError(f"name: an account {name!r} exists already")
        account = Account(name=name, display_name=(display_name or name)[:NAME_MAX], created_at=_now(),
                          password_hash=_hash_password(password) if password is not None else None, disabled=False)
        account.grants = [Grant(role=r.role, street_id=r.street_id, committee_id=r.committee_id) for r in roles]
        session.add(account)
    return account


def _hash_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise AccessError(f"password: at least {PASSWORD_MIN} characters")
    return _argon2.hash(password)


def set_password(engine: Engine, name: str, password: str) -> None:
    with transaction(engine) as session:
        account = _account(session, name)
        account.password_hash = _hash_password(password)


def _account(session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise AccessError(f"name: no account {name!r}")
    return account


def set_disabled(engine: Engine, name: str, disabled: bool = True) -> None:
    """Disable (or enable again) an account; disabling ends its sessions at once."""
    with transaction(engine) as session:
        account = _account(session, name)
        account.disabled = disabled
        if disabled:
            session.execute(delete(WebSession).where(WebSession.account_id == account.id))


def accounts(engine: Engine) -> list[Account]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(Account).order_by(Account.name)))


def has_accounts(engine: Engine) -> bool:
    with session_factory(engine)() as session:
        return session.scalar(select(Account.id).limit(1)) is not None


def verify_password(engine: Engine, name: str, password: str) -> Account | None:
    """The account when the name and password match and it is enabled; None otherwise (in the
    same time whether or not the account exists)."""
    with session_factory(engine)() as session:
        account = session.scalar(select(Account).where(Account.name == name))
    stored = account.password_hash if account is not None and account.password_hash else _DUMMY_HASH
    try:
        _argon2.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if account is None or account.disabled or not account.password_hash:
        return None
    if _argon2.check_needs_rehash(stored):
        set_password(engine, name, password)
    return account


def issue_link(engine: Engine, name: str, ttl: dt.timedelta = LINK_TTL) -> str:
    """A one-time sign-in secret for an account (the link is ``/signin/link/<secret>``)."""
    secret = secrets.token_urlsafe(32)
    with transaction(engine) as session:
        account = _account(session, name)
        if account.disabled:
            raise AccessError(f"name: account {name!r} is disabled")
        session.add(SignInLink(token_hash=digest(secret), account_id=account.id, expires_at=_now() + ttl))
    return secret


def redeem_link(engine: Engine, secret: str) -> Account | None:
    """The link's account, once: a used, expired or unknown link gives None."""
    with transaction(engine) as session:
        link = session.get(SignInLink, digest(secret))
        if link is None or link.used_at is not None or link.expires_at < _now():
            return None
        link.used_at = _now()
        account = session.get(Account, link.account_id)
        return None if account is None or account.disabled else account


def provision_sso(engine: Engine, subject: str, name: str, display_name: str, roles: list[Role]) -> Account:
    """The account of a single-sign-on subject, created on first sign-in; its roles follow the
    provider's claim at every sign-in (the provider is the source of truth for SSO accounts)."""
    with transaction(engine) as session:
        account = session.scalar(select(Account).where(Account.oidc_subject == subject))
        if account is None:
            base, n = _check_name(name.replace(" ", "_")[:NAME_MAX - 4]), 1
            unique = base
            while session.scalar(select(Account.id).where(Account.name == unique)) is not None:
                n += 1
                unique = f"{base}-{n}"
            account = Account(name=unique, display_name=display_name[:NAME_MAX], oidc_subject=subject,
                              created_at=_now(), disabled=False)
            session.add(account)
        account.display_name = display_name[:NAME_MAX]
        account.grants = [Grant(role=r.role, street_id=r.street_id, committee_id=r.committee_id) for r in roles]
    return account


# --- web sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A new session: the cookie's secret (shown to the browser only) and its CSRF token."""

    secret: str
    csrf: str
    expires_at: dt.datetime


def open_session(engine: Engine, lifetime: dt.timedelta, account_id: int | None = None,
                 screen_id: int | None = None, address: str | None = None) -> Opened:
    secret, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), _now()
    with transaction(engine) as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))  # housekeeping, cheap
        session.add(WebSession(id_hash=digest(secret), account_id=account_id, screen_id=screen_id, csrf=csrf,
                               created_at=now, expires_at=now + lifetime, address=(address or "")[:64]))
    return Opened(secret, csrf, now + lifetime)


def close_session(engine: Engine, session_id: str) -> None:
    with transaction(engine) as session:
        session.execute(delete(WebSession).where(WebSession.id_hash == session_id))


def session_alive(session: Session, session_id: str) -> bool:
    """A session (by its digest) that has been neither closed nor expired."""
    row = session.get(WebSession, session_id)
    return row is not None and row.expires_at > _now()


#: one statement for the question every request asks: a session row with its account's grants,
#: or with its screen (plain SQL: a fifth of the cost of the ORM's loading on this hot path)
_SESSION_SQL = text("""
SELECT s.id_hash, s.csrf, s.expires_at, s.screen_id, a.name, a.display_name, a.disabled,
       g.role, g.street_id, g.committee_id, d.name, d.street_id, d.revoked_at
FROM web_session s
LEFT JOIN account a ON a.id = s.account_id
LEFT JOIN account_grant g ON g.account_id = a.id
LEFT JOIN screen_device d ON d.id = s.screen_id
WHERE s.id_hash = :id""")


def actor_of_session(session: Session | Connection, secret: str) -> Actor | None:
    """The person or screen behind a session cookie; None when unknown, expired, disabled or revoked."""
    rows = session.execute(_SESSION_SQL, {"id": digest(secret)}).all()
    if not rows:
        return None
    (id_hash, csrf, expires_at, screen_id, name, display, disabled, _, _, _, screen_name, screen_street,
     revoked_at) = rows[0]
    if _utc(expires_at) < _now():
        return None
    if screen_id is not None:
        if revoked_at is not None or screen_name is None:
            return None
        return Actor("screen", f"{screen_id}-{screen_name}", (Role("screen", screen_street),), csrf=csrf,
                     session_id=id_hash, display=screen_name)
    if name is None or disabled:
        return None
    roles = tuple(Role(role, street, committee) for *_, role, street, committee, _, _, _ in rows if role is not None)
    return Actor("user", name, roles, csrf=csrf, session_id=id_hash, display=display)


def _utc(value: dt.datetime | str) -> dt.datetime:
    """A stored (naive UTC) time read by plain SQL: SQLite gives text, PostgreSQL a datetime."""
    return (dt.datetime.fromisoformat(value) if isinstance(value, str) else value).replace(tzinfo=dt.UTC)
