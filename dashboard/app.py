"""The Dash app factory: one function builds the app for ``opsmap serve``, gunicorn and tests."""

from __future__ import annotations

import html as html_text
import json
import logging
import re
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import Flask, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

import layers
from dashboard import access, admin, briefing, gzipping, hardening, map_page, officer_page, screen_page, signin
from dashboard.answers import Growth
from dashboard.api import StreamSlots, api
from dashboard.i18n import tr
from data.access.policy import Actor, Role
from data.domain.privacy import Hasher, secret_file
from data.read import queries
from data.read.cache import LIVE_MAX_AGE_S, Cache
from data.settings import PROJECT_ROOT, Config
from data.store import make_engine, migrate, session_factory

log = logging.getLogger(__name__)
PREFETCH_ID = "opsmap-prefetch"  # the element assets/layers.js reads
#: the page's scripts that start its layers: loaded in the head (OpsmapDash), not after Dash's bundles
EARLY_SCRIPTS = ("geojson.js", "layers.js")
POLYFILL = re.compile(  # Dash's @babel/polyfill script tag (see OpsmapDash)
    r'<script src="[^"]*/deps/polyfill@[^"]*"></script>\s*')
PAGES: dict[str, ModuleType] = {"/": map_page, "/screen": screen_page, "/officer": officer_page}


def page_of(path: str | None) -> ModuleType | None:
    """The page module a path shows (a trailing slash is ignored); None for an unknown path."""
    return PAGES.get((path or "/").rstrip("/") or "/")


class OpsmapDash(Dash):
    """Dash whose page HTML carries the layer sources the page opens on (``<script type=
    "application/json" id="opsmap-prefetch">``) and, in its head, the scripts that load them
    (EARLY_SCRIPTS), so assets/layers.js fetches them — and the cluster worker fetches and
    indexes the 100,000-point case layer — while Dash's own scripts boot (~0.6 s of the
    page's main thread), instead of after them or after the page's first callbacks; and leaves out
    Dash's @babel/polyfill: ~0.1 s of main-thread work per page load (it also swaps native
    String.prototype.trim for a slower one) for browsers the command center does not use —
    first paint with a 100,000-point layer is bound by that thread, not by the network."""

    def __init__(self, *args: Any, opening: Callable[[str], dict[str, Any] | None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opening = opening
        # each with its modification time, as Dash fingerprints its own assets at start: a new
        # file is a new URL, so browsers never run a stale one
        self._early = "".join(
            f'<script src="{html_text.escape(self.get_asset_url(name))}?m='
            f'{(PROJECT_ROOT / "assets" / name).stat().st_mtime:.0f}"></script>' for name in EARLY_SCRIPTS)

    def interpolate_index(self, **kwargs: str) -> str:
        sources = self._opening(request.path)
        named = json.dumps(sources).replace("</", "<\\/")
        tag = f'<script type="application/json" id="{PREFETCH_ID}">{named}</script>'
        # no <link rel=preload> for the layers: layers.js asks for them from the head, the cluster
        # worker's first (six connections per host: preloads queued its scripts behind them)
        tag += self._early
        kwargs["metas"] = kwargs.get("metas", "") + tag
        kwargs["scripts"] = POLYFILL.sub("", kwargs.get("scripts", ""))
        return super().interpolate_index(**kwargs)


def sources_by_path(sessions: sessionmaker[Session], config: Config) -> Callable[[str], dict[str, Any] | None]:
    """path → the layer sources its page opens on (None when the page chooses them later, or
    when the database cannot say: the page then loads them as usual)."""
    def sources(path: str) -> dict[str, Any] | None:
        page = page_of(path)
        if page is None:
            return None
        try:
            with sessions() as session:
                street = access.shown_street(session, config)
        except SQLAlchemyError as exc:
            log.warning("no layers named in the page: %s", type(exc).__name__)
            return None
        return page.opening_sources(config, street and street.id)

    return sources


def live_max_age(config: Config) -> float:
    """How long a live answer may be served: pages re-ask time-dependent layers every half
    OPSMAP_MAP_REFRESH_S, so with answers at most that old they lag the clock by at most the setting."""
    return config.map_refresh_s / 2 if config.map_refresh_s > 0 else LIVE_MAX_AGE_S


def create_app(config: Config, redis_url: str | None = None) -> Dash:
    """Build the app on the configured database; ``redis_url`` is what /healthz checks."""
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    sessions = session_factory(engine)
    app = OpsmapDash(__name__, title="opsmap 战疫图", assets_folder=str(PROJECT_ROOT / "assets"),
                     assets_path_ignore=["worker"],  # the cluster worker's scripts: not the page's
                     assets_ignore="^(" + "|".join(map(re.escape, EARLY_SCRIPTS)) + ")$",  # in the head
                     serve_locally=True, update_title=None, suppress_callback_exceptions=True,
                     opening=sources_by_path(sessions, config))
    app.server.config.update(OPSMAP_ENGINE=engine, OPSMAP_SESSIONS=sessions, OPSMAP_REDIS_URL=redis_url,
                             OPSMAP_HASHER=Hasher.from_config(config), OPSMAP_CONFIG=config,
                             OPSMAP_CACHE=Cache(live_max_age_s=live_max_age(config)), OPSMAP_GROWTH=Growth(),
                             OPSMAP_STREAM_SLOTS=StreamSlots())
    server = app.server
    server.secret_key = config.secret_key or secret_file(config.var_path / "secret.key")
    server.config.update(SESSION_COOKIE_NAME="opsmap_sso", SESSION_COOKIE_HTTPONLY=True,
                         SESSION_COOKIE_SAMESITE="Lax")
    access.install(server)  # before the rate limiter: it counts per producer token the guard found
    signin.limiter_for(server, config, redis_url)
    server.register_blueprint(signin.blueprint(server, config, redis_url))
    server.register_blueprint(admin.routes)
    server.register_blueprint(api)
    server.register_blueprint(briefing.routes)
    def page_at(path: str | None) -> Any:
        page = page_of(path)
        if page is None:
            return html.H1("404：没有这个页面")
        if not access.actor().may_open(page.PAGE):  # the path comes from the browser: asked again here
            return html.H1(tr("无权打开此页面", config.language))
        return page.layout(sessions, config)

    def shell() -> html.Div:
        """The page already in Dash's layout when its request names it (the Referer of the
        renderer's layout request; same-origin by policy): one callback round trip and one
        render less before the map. Otherwise ``route`` draws it, as a routed page would."""
        path = None
        if has_request_context() and request.referrer:
            seen = urlsplit(request.referrer)
            path = seen.path if seen.netloc == request.host else None
        return html.Div([dcc.Location(id="page-url"), dcc.Store(id="page-opened", data=path),
                         html.Div(id="page", children=page_at(path) if path is not None else None)])

    app.layout = shell

    @app.callback(Output("page", "children"), Input("page-url", "pathname"), State("page-opened", "data"))
    def route(path: str | None, opened: str | None) -> Any:
        return no_update if path == opened else page_at(path)

    for page in PAGES.values():
        page.register(app, sessions, config, redis_url)
    hardening.install(app, config)
    gzipping.install(app.server)
    return app


def warm(app: Dash, config: Config) -> None:
    """Compute the shown street's live layers and numbers in the background, through the
    same routes and cache as the pages, so the first page after a start does not wait for
    them (the cases layer can hold 100,000 points), and load the briefing's PDF renderer.
    Until then /healthz answers 503 ``layers: computing``: a start is ready when its first
    page, and its first briefing, is as fast as the next."""
    warmed = app.server.config["OPSMAP_WARMED"] = threading.Event()

    def run() -> None:
        try:
            try:
                _warm_layers(app.server, config)
            except Exception:  # a database that cannot answer yet: /healthz then says why, pages compute their own
                log.exception("warming the layers failed")
            try:
                briefing.warm()
            except Exception:  # no Pango or CJK font here: the map works, /briefing.pdf will say why
                log.warning("the briefing's PDF renderer could not be loaded", exc_info=True)
        finally:
            warmed.set()

    threading.Thread(target=run, name="opsmap-warm", daemon=True).start()


def _warm_layers(server: Flask, config: Config) -> None:
    """Every layer of the shown street and its summary, asked as its commander through the routes
    the pages use, so the answers land in the cache the pages read."""
    with server.config["OPSMAP_SESSIONS"]() as session:
        street = queries.shown_street(queries.streets(session), config.street)
    if street is None:
        return
    paths = [f"/api/v1/layers/{layer.id}?street={street.id}" for layer in layers.LAYERS]
    paths += [f"/api/v1/layers/{key}?street={street.id}&form=columns" for key in map_page.CLUSTERED]
    for path in [*paths, f"/api/v1/summary?street={street.id}"]:
        with server.test_request_context(path, headers={"Accept-Encoding": "gzip"}):  # as browsers ask
            access.act_as(Actor("system", "warm", (Role("commander", street.id),)))
            answer = server.full_dispatch_request()
        if answer.status_code != 200:
            log.warning("warming %s: HTTP %s", path, answer.status_code)
