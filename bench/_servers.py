"""The servers a benchmark talks to: the machine's PostgreSQL and Redis when they answer at the
usual addresses, else throwaway ones started for the run from Debian's packages (which
``make bench`` installs, as ``make test`` does; ``tests/servers.py`` starts them), so the
benchmarks run on a fresh machine too. A throwaway PostgreSQL syncs its commits to disk like
an installed one (the tests' does not), so its figures mean the same."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from tests.servers import Postgres, RedisServer, reachable, redis_ready

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379"
_started: dict[str, str] = {}  # what was asked for → the throwaway server answering instead


def _throwaway(url: str, start: Callable[[], Postgres | RedisServer]) -> str:
    """The address of the throwaway server standing in for ``url`` (started at the first call,
    stopped when the run ends)."""
    if url not in _started:
        server = start()
        _started[url] = server.start()
        atexit.register(server.stop)
        print(f"({url} did not answer: a throwaway server stands in for this run)")
    return _started[url]


def _redis() -> RedisServer:
    """A Redis that keeps nothing on disk, as the machine's does; its directory goes at the end."""
    directory = tempfile.mkdtemp(prefix="opsmap-bench-redis-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)  # after the server stops (last in, first out)
    return RedisServer(Path(directory), appendonly=False)


def redis_db(server: str, db: int) -> str:
    """Database ``db`` of the Redis at ``server`` (its own database number, if any, is replaced),
    or of a throwaway one."""
    def numbered(url: str) -> str:
        return urlsplit(url)._replace(path=f"/{db}").geturl()
    if redis_ready(numbered(server)):
        return numbered(server)
    return numbered(_throwaway(urlsplit(server)._replace(path="").geturl(), _redis))  # one per server, any db


@contextmanager
def pg_schema_url(pg_url: str = PG) -> Iterator[str]:
    """A URL whose connections use a fresh schema, dropped afterwards."""
    server = pg_url if pg_url not in _started and reachable(pg_url) else _throwaway(
        pg_url, lambda: Postgres(fsync=True))
    schema = f"opsmap_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{server}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
