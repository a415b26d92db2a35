"""How long `opsmap load` takes for one street, first load and reload, on each engine.

Run: ``make bench`` or ``.venv/bin/python bench/load.py [STREET] [POSTGRES_URL]``.
PostgreSQL is measured when the URL (default: 127.0.0.1:5432 database test) answers; the
run uses its own schema and drops it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _servers import PG, pg_schema_url

from data.settings import PROJECT_ROOT
from data.sources.loader import build, load_street
from data.store import make_engine

DATASETS = PROJECT_ROOT / "data" / "datasets"


def timed(label: str, fn) -> None:
    t0 = time.perf_counter()
    fn()
    print(f"{label:<34} {time.perf_counter() - t0:6.2f} s")


def main(street: str = "南京东路", pg_url: str = PG) -> None:
    timed(f"build {street} in memory", lambda: build(DATASETS, street, 20220410))
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        timed("sqlite: first load", lambda: load_street(engine, DATASETS, street, 20220410, False))
        timed("sqlite: reload", lambda: load_street(engine, DATASETS, street, 20220410, False))
    with pg_schema_url(pg_url) as url:
        engine = make_engine(url)
        timed("postgresql: first load", lambda: load_street(engine, DATASETS, street, 20220410, False))
        timed("postgresql: reload", lambda: load_street(engine, DATASETS, street, 20220410, False))
        engine.dispose()

if __name__ == "__main__":
    main(*sys.argv[1:])
