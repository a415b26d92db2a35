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

with engine.connect() as connection:
    # SQLite rebuilds a table to alter it (batch mode): with foreign keys enforced, dropping a
    # referenced table would fail, so they are off while migrating (set outside a transaction, on
    # the driver's connection, as SQLite requires) and checked before they are on again
    sqlite = connection.dialect.name == "sqlite"
    raw = connection.connection.driver_connection if sqlite else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite,
                              compare_type=True)
            context.run_migrations()
            if raw is not None and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("a migration left rows whose foreign keys point nowhere")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")
