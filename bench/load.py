"""How long `opsmap load` takes for one street, first load and reload, on each engine.

Run: ``make bench`` or ``.venv/bin/python bench/load.py [STREET] [POSTGRES_URL]``.
PostgreSQL is measured when the URL (default: 127.0.0.1:5432 database test) answers; the
run uses its own schema and drops it.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.loader import build, load_street
from data.settings import PROJECT_ROOT
from data.store import make_engine

DATASETS = PROJECT_ROOT / "data" / "datasets"


def timed(label: str, fn) -> None:
    t0 = time.perf_counter()
    fn()
    print(f"{label:<34} {time.perf_counter() - t0:6.2f} s")


def main(street: str = "南京东路", pg_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test") -> None:
    timed(f"build {street} in memory", lambda: build(DATASETS, street, 20220410))
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        timed("sqlite: first load", lambda: load_street(engine, DATASETS, street, 20220410, False))
        timed("sqlite: reload", lambda: load_street(engine, DATASETS, street, 20220410, False))
    schema = f"opsmap_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError:
        print("postgresql: not reachable, skipped")
        return
    try:
        engine = make_engine(pg_url, connect_args={"options": f"-csearch_path={schema}"})
        timed("postgresql: first load", lambda: load_street(engine, DATASETS, street, 20220410, False))
        timed("postgresql: reload", lambda: load_street(engine, DATASETS, street, 20220410, False))
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main(*sys.argv[1:])
