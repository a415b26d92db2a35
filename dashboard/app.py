"""The Dash app factory: one function builds the app for ``opsmap serve``, gunicorn and tests."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard import briefing, map_page, officer_page, screen_page
from dashboard.api import api
from data.cache import Cache
from data.privacy import Hasher
from data.settings import PROJECT_ROOT, Config
from data.store import make_engine, migrate, session_factory


def create_app(config: Config, redis_url: str | None = None) -> Dash:
    """Build the app on the configured database; ``redis_url`` is what /healthz checks."""
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    sessions = session_factory(engine)
    app = Dash(__name__, title="opsmap 战疫图", assets_folder=str(PROJECT_ROOT / "assets"),
               serve_locally=True, update_title=None, suppress_callback_exceptions=True)
    app.server.config.update(OPSMAP_ENGINE=engine, OPSMAP_SESSIONS=sessions, OPSMAP_REDIS_URL=redis_url,
                             OPSMAP_HASHER=Hasher.from_config(config), OPSMAP_CONFIG=config,
                             OPSMAP_CACHE=Cache())
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

