"""The Dash app factory: one function builds the app for ``opsmap serve``, gunicorn and tests."""

from __future__ import annotations

import logging
import threading
from typing import Any

from dash import Dash, Input, Output, dcc, html

import layers
from dashboard import briefing, map_page, officer_page, screen_page
from dashboard.api import api
from data import queries
from data.cache import LIVE_MAX_AGE_S, Cache
from data.privacy import Hasher
from data.settings import PROJECT_ROOT, Config
from data.store import make_engine, migrate, session_factory


def live_max_age(config: Config) -> float:
    """How long a live answer may be served: pages re-ask time-dependent layers every half
    OPSMAP_MAP_REFRESH_S, so with answers at most that old they lag the clock by at most the setting."""
    return config.map_refresh_s / 2 if config.map_refresh_s > 0 else LIVE_MAX_AGE_S


def create_app(config: Config, redis_url: str | None = None) -> Dash:
    """Build the app on the configured database; ``redis_url`` is what /healthz checks."""
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    sessions = session_factory(engine)
    app = Dash(__name__, title="opsmap 战疫图", assets_folder=str(PROJECT_ROOT / "assets"),
               serve_locally=True, update_title=None, suppress_callback_exceptions=True)
    app.server.config.update(OPSMAP_ENGINE=engine, OPSMAP_SESSIONS=sessions, OPSMAP_REDIS_URL=redis_url,
                             OPSMAP_HASHER=Hasher.from_config(config), OPSMAP_CONFIG=config,
                             OPSMAP_CACHE=Cache(live_max_age_s=live_max_age(config)))
    app.server.register_blueprint(api)
    app.server.register_blueprint(briefing.routes)
    pages = {"/": map_page, "/screen": screen_page, "/officer": officer_page}
    app.layout = html.Div([dcc.Location(id="page-url"), html.Div(id="page")])

    @app.callback(Output("page", "children"), Input("page-url", "pathname"))
    def route(path: str | None) -> Any:
        page = pages.get((path or "/").rstrip("/") or "/")
        return page.layout(sessions, config) if page else html.H1("404：没有这个页面")

    for page in pages.values():
        page.register(app, sessions, config, redis_url)
    return app


def warm(app: Dash, config: Config) -> None:
    """Compute the shown street's live layers and numbers in the background, through the
    same routes and cache as the pages, so the first page after a start does not wait for
    them (the cases layer can hold 100,000 points)."""
    def run() -> None:
        with app.server.config["OPSMAP_SESSIONS"]() as session:
            street = queries.shown_street(queries.streets(session), config.street)
        if street is None:
            return
        client = app.server.test_client()
        for path in [f"/api/v1/layers/{layer.id}" for layer in layers.LAYERS] + ["/api/v1/summary"]:
            answer = client.get(f"{path}?street={street.id}")
            if answer.status_code != 200:
                logging.getLogger(__name__).warning("warming %s: HTTP %s", path, answer.status_code)

    threading.Thread(target=run, name="opsmap-warm", daemon=True).start()
