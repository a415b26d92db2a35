"""The web side of access: every request passes ``guard`` before any route or Dash callback.

It finds who is asking — a person's or a screen's session cookie, or a producer's bearer token
on the intake — and refuses early what ``data.access.policy`` would refuse anyway:
- no actor: 401 (JSON) for the API and Dash's own requests, the sign-in page for pages;
- a state-changing request (Dash callbacks included) without the session's CSRF token, or
  from another origin: 403 — dash-renderer sends the ``_csrf_token`` cookie back as the
  ``X-CSRFToken`` header by itself, forms carry it as a hidden field;
- a page the actor's roles do not open: 403 (a screen is sent to /screen).
Routes and callbacks then ask ``policy`` about streets, committees and person-level details
through ``actor()``; what they may not show is removed from the answer.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import time
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, abort, current_app, g, jsonify, redirect, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from data.access import accounts, audit, devices, policy
from data.access.policy import Actor, Place
from data.models import Street
from data.pipeline.events import STREAMS
from data.read import queries
from data.settings import Config
from layers.base import Query

SESSION_COOKIE = "opsmap_session"
CSRF_COOKIE = "_csrf_token"  # the name dash-renderer reads; it sends the value as X-CSRFToken
CSRF_HEADER = "X-CSRFToken"
#: paths anyone may reach: sign-in itself, pairing a screen, static files, health
OPEN = ("/signin", "/screen/pair/", "/assets/", "/_dash-component-suites/", "/_favicon.ico", "/healthz")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: path prefix → the page it belongs to (what ``Actor.may_open`` is asked)
PAGES = (("/admin", "admin"), ("/briefing", "briefing"), ("/officer", "officer"), ("/screen", "screen"))
#: API reads a screen needs for its page (it opens no drill-down, no export)
SCREEN_API = ("/api/v1/layers/", "/api/v1/summary", "/api/v1/feed", "/api/v1/stream")


def actor() -> Actor:
    """Who is asking (set by ``guard``; routes outside the guard's reach have none)."""
    return g.opsmap_actor


def _config() -> Config:
    return current_app.config["OPSMAP_CONFIG"]


def address() -> str:
    return request.remote_addr or "-"


def record(action: str, target: str | None = None, ok: bool = True, who: str | None = None, **detail: object) -> None:
    """Append to the audit trail for the current request's actor (or ``who``)."""
    name = who or (g.opsmap_actor.label if getattr(g, "opsmap_actor", None) else "anonymous")
    audit.record(current_app.config["OPSMAP_ENGINE"], name, action, target, ok, address(), **detail)


def page_of(path: str) -> str | None:
    """The page a path belongs to; None for the API and Dash's own routes."""
    if path.startswith(("/api/", "/_dash-")):
        return None
    return next((page for prefix, page in PAGES if path == prefix or path.startswith(prefix + "/")
                 or path.startswith(prefix + ".") or path.startswith(prefix + "?")), "map")


def _refuse(status: int, message: str, page: bool) -> Response:
    if page:
        from dashboard.signin import message_page

        return message_page(message, status)
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="opsmap"'
    return response


def same_origin() -> bool:
    """An Origin (or, lacking one, a Referer) naming another host is a cross-site request."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return True  # non-browser clients send neither; they still need the CSRF token
    return urlsplit(source).netloc == request.host


def csrf_ok(who: Actor) -> bool:
    """The request carries the session's CSRF token (header or form field) and comes from this origin."""
    sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf", "")
    return bool(who.csrf) and hmac.compare_digest(sent, who.csrf) and same_origin()


def _bearer(session_factory: object) -> Actor | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    with session_factory() as session:  # type: ignore[operator]
        return devices.actor_of_token(session, header.removeprefix("Bearer ").strip())


def session_actor(session_factory: object) -> Actor | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    with session_factory() as session:  # type: ignore[operator]
        return accounts.actor_of_session(session, secret)


def act_as(who: Actor) -> None:
    """Run the current in-process request as ``who`` (warming the cache at start-up): the guard
    then leaves it alone. A client cannot reach this: ``g`` is made fresh for every request."""
    g.opsmap_actor = who


def guard() -> Response | None:
    """Flask ``before_request``: who asks, and the refusals that need no more than that."""
    path = request.path
    if path.startswith(OPEN) or getattr(g, "opsmap_actor", None) is not None:
        return None
    sessions = current_app.config["OPSMAP_SESSIONS"]
    try:
        if path.startswith("/api/v1/events/"):  # producers: a bearer token, nothing else
            who = _bearer(sessions)
            if who is None:
                return _refuse(401, "Authorization: a valid producer token is required (Bearer)", False)
            stream = path.removeprefix("/api/v1/events/").strip("/")
            if stream in STREAMS and stream not in who.streams:  # an unknown stream: the route's 404
                return _refuse(403, f"token {who.name!r} may not post to stream {stream!r}", False)
            g.opsmap_actor = who
            return None
        who = session_actor(sessions)
    except SQLAlchemyError:
        return _refuse(503, "the database cannot be reached: sign-in is unavailable", page_of(path) is not None)
    page = page_of(path)
    if who is None:
        if request.method not in SAFE_METHODS:  # a state-changing request with no session: refused as forged
            return _refuse(403, "CSRF: no session, so no session token: sign in first", page is not None)
        if page is None:
            return _refuse(401, "sign in first", False)
        return redirect(f"/signin?next={quote(request.full_path.rstrip('?'), safe='/?=&')}")
    g.opsmap_actor = who
    if request.method not in SAFE_METHODS and not csrf_ok(who):
        return _refuse(403, "CSRF: the request does not carry this session's token, or comes from another site",
                       page is not None)
    if page is not None and not who.may_open(page):
        if who.kind == "screen":
            return redirect("/screen")
        return _refuse(403, "your roles do not open this page", True)
    if page is None and who.kind == "screen" and path.startswith("/api/") and not path.startswith(SCREEN_API):
        return _refuse(403, "a screen reads only what its page shows", False)
    return None


def still_valid(who: Actor, sessions: object) -> bool:
    """Whether a long-lived request's session still stands (a change stream checks between
    messages: signing out, disabling an account or revoking a screen ends its stream too)."""
    if who.session_id is None:
        return True
    with sessions() as session:  # type: ignore[operator]
        return accounts.session_alive(session, who.session_id)


def shown_street(session: Session, config: Config) -> Street | None:
    """The street a page opens on: the configured one if the actor sees it, else the first it sees."""
    return queries.shown_street([s for s in queries.streets(session) if may_view(s.id)], config.street)


def detail(layer: Any, entity_id: str, at: dt.datetime, street_id: str | None = None) -> dict[str, Any] | None:
    """One entity's drill-down as the actor may see it (the API's and the pages' one path): None
    when unknown or in a street the actor does not see; person-level views go to the audit trail."""
    config = _config()
    with current_app.config["OPSMAP_SESSIONS"]() as session:
        place = policy.place_of(session, layer.id, entity_id)
        street = place.street_id if place is not None else street_id
        if not may_view(street):
            return None
        found = layer.detail(session, entity_id, Query.from_config(config, street or "", at))
    if found is None:
        return None
    shown, personal = policy.detail(actor(), layer, place, found)
    if personal:
        record("view.person", f"{layer.id}:{entity_id}")
    return shown


#: a person-level layer fetched again and again (every change notice) is recorded once per this many seconds
LAYER_VIEW_AUDIT_S = 600.0
_layer_views: dict[tuple[str, str, str], float] = {}


def record_layer_view(layer_id: str, street_id: str) -> None:
    """Audit that the actor received a layer with person-level features — once per session,
    layer and street every LAYER_VIEW_AUDIT_S (a live page re-asks it on every change)."""
    who, now = actor(), time.monotonic()
    key = (who.session_id or who.label, layer_id, street_id)
    if now - _layer_views.get(key, -LAYER_VIEW_AUDIT_S) < LAYER_VIEW_AUDIT_S:
        return
    if len(_layer_views) > 10_000:  # bounded: forgetting only means one more audit line
        _layer_views.clear()
    _layer_views[key] = now
    record("view.layer", f"{layer_id}:{street_id}", scope=who.person_scope(street_id).key)


def may_view(street_id: str | None) -> bool:
    return actor().may_view(street_id)


def require_street(street_id: str | None) -> None:
    """Abort with 403 (JSON) unless the actor sees ``street_id``."""
    if not may_view(street_id):
        abort(_refuse(403, f"street: not one of your streets ({(street_id or '')[:40]!r})", False))


def may_act(place: Place | None) -> bool:
    return actor().may_act(place)


def cookie_secure(config: Config) -> bool:
    """OPSMAP_COOKIE_SECURE: ``auto`` sends cookies over plain HTTP only to a loopback address."""
    if config.cookie_secure != "auto":
        return config.cookie_secure == "true"
    host = request.host.rsplit(":", 1)[0].strip("[]")
    try:
        return not (host == "localhost" or ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return True


def set_session_cookies(response: Response, opened: accounts.Opened) -> Response:
    """The session cookie (HttpOnly, SameSite=Lax: a link from elsewhere arrives signed in) and its
    CSRF cookie (readable by dash-renderer, SameSite=Strict: never sent by another site)."""
    config = _config()
    secure = cookie_secure(config)
    max_age = int((opened.expires_at - dt.datetime.now(dt.UTC)).total_seconds())
    response.set_cookie(SESSION_COOKIE, opened.secret, max_age=max_age, httponly=True, secure=secure,
                        samesite="Lax", path="/")
    response.set_cookie(CSRF_COOKIE, opened.csrf, max_age=max_age, httponly=False, secure=secure,
                        samesite="Strict", path="/")
    return response


def clear_session_cookies(response: Response) -> Response:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")
    return response


def install(server: Flask) -> None:
    """Put the guard in front of every route of the app."""
    server.before_request(guard)
