"""Alembic environment: runs against the engine the caller passes (see data.store.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import data.access.models  # noqa: F401 - the access tables join Base.metadata
from data.models import Base
from data.settings import load

config = context.config
engine: Engine | None = config.attributes.get("engine")
if engine is None:  # the alembic CLI: open the configured database
    from data.store import make_engine

    engine = make_engine(load().sqlalchemy_url)

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    context.run_migrations()
