"""Fixtures on real servers: Redis at 127.0.0.1:6379 when reachable (else an embedded
redis-server), SQLite always, PostgreSQL at 127.0.0.1:5432 database ``test`` when reachable.

Each PostgreSQL run gets its own schema, dropped afterwards, so tests never see other
runs' tables. Set ``OPSMAP_TEST_PG_URL`` to point at another server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy import Engine

from data.loader import StreetData, load_street
from data.redis_server import EmbeddedRedis
from data.settings import PROJECT_ROOT
from data.store import make_engine

DATASETS = PROJECT_ROOT / "data" / "datasets"
SEED = 20220410
PG_URL = os.environ.get("OPSMAP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOCAL_REDIS = os.environ.get("OPSMAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def _pg_reachable() -> bool:
    try:
        with sa.create_engine(PG_URL, connect_args={"connect_timeout": 2}).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means: not here
        return False


PG_AVAILABLE = _pg_reachable()
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_AVAILABLE, reason=f"PostgreSQL not reachable at {PG_URL}"))]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the local server's db 15 (flushed), or an embedded server."""
    try:
        client = redis.Redis.from_url(LOCAL_REDIS, socket_connect_timeout=1)
        client.ping()
    except (redis.RedisError, OSError):
        server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
        yield server.start()
        server.stop()
        return
    client.flushdb()
    yield LOCAL_REDIS
    client.flushdb()


def _engine(kind: str, tmp: Path) -> Iterator[Engine]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp / 'opsmap.db'}")
        yield engine
        engine.dispose()
        return
    schema = f"opsmap_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")  # the URL alone reaches the schema
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind, fresh per test."""
    yield from _engine(request.param, tmp_path)


@pytest.fixture(scope="session", params=ENGINES)
def loaded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, StreetData]]:
    """南京东路 loaded once per engine kind, shared by the read-only tests."""
    for engine in _engine(request.param, tmp_path_factory.mktemp(request.param)):
        yield engine, load_street(engine, DATASETS, "南京东路", SEED, show_progress=False)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    """Poll /healthz until it answers; fail fast if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:  # 503: up but degraded — show why
            return json.load(err)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("app did not become healthy")


def person_id(n: int, birth: str = "19900101") -> str:
    """A valid 18-character resident ID (黄浦 region code, given birth date, sequence n)."""
    from data.privacy import id_check_char

    first = f"310101{birth}{n % 1000:03d}"
    return first + id_check_char(first)


def phone(n: int) -> str:
    return f"139{n % 100_000_000:08d}"
