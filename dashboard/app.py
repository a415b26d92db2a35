"""The Dash app factory: one function builds the app for ``opsmap serve``, gunicorn and tests."""

from __future__ import annotations

from dash import Dash

from dashboard import map_page
from dashboard.api import api
from data.privacy import Hasher
from data.settings import PROJECT_ROOT, Config
from data.store import make_engine, migrate, session_factory


def create_app(config: Config, redis_url: str | None = None) -> Dash:
    """Build the app on the configured database; ``redis_url`` is what /healthz checks."""
    engine = make_engine(config.sqlalchemy_url)
    migrate(engine)
    sessions = session_factory(engine)
    app = Dash(__name__, title="opsmap 战疫图", assets_folder=str(PROJECT_ROOT / "assets"),
               serve_locally=True, update_title=None)
    app.server.config.update(OPSMAP_ENGINE=engine, OPSMAP_SESSIONS=sessions, OPSMAP_REDIS_URL=redis_url,
                             OPSMAP_HASHER=Hasher.from_config(config), OPSMAP_CONFIG=config)
    app.server.register_blueprint(api)
    app.layout = lambda: map_page.layout(sessions, config)
    map_page.register(app, sessions, config, redis_url)
    return app

