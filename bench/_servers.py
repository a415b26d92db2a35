"""A throwaway PostgreSQL schema for a benchmark run (None when the server is not reachable)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def pg_schema_url(pg_url: str = PG) -> Iterator[str | None]:
    """A URL whose connections use a fresh schema, dropped afterwards; None if unreachable."""
    schema = f"opsmap_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError:
        print("postgresql: not reachable, skipped")
        yield None
        return
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
