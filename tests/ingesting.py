"""Writing events and driving ingest workers, in-process (``drain``) or as processes (``INGEST``,
``worker_env``, ``stop``): shared by the pipeline tests and by those of what ingest feeds."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import redis
from sqlalchemy import func, select

from data.pipeline import streams
from data.pipeline.ingest import Worker, pending_total
from data.settings import PROJECT_ROOT
from data.store import session_factory
from tests.conftest import KEY, NO_SWEEP

TS = dt.datetime(2022, 4, 10, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
INGEST = [sys.executable, str(PROJECT_ROOT / "app.py"), "ingest"]


def tag() -> str:
    return uuid.uuid4().hex[:8]


def at(minutes: float = 0) -> str:
    return (TS + dt.timedelta(minutes=minutes)).isoformat()


def checkin(eid: str, gate: str, pid: str, **over) -> str:
    return json.dumps({"event_id": eid, "ts": at(), "gate_id": gate, "direction": "in", "person_id": pid,
                       "category": "resident", "temperature": 36.5, **over})


def drain(w: Worker, client: redis.Redis, limit: float = 60) -> None:
    """Step the worker until every stream is fully delivered and acknowledged."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        w.step(block_ms=20)
        if pending_total(client) == 0:
            return
    raise TimeoutError(f"not drained: {streams.lag(client)}")


def count(engine, model, *where) -> int:
    with session_factory(engine)() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def worker_env(engine, redis_url: str, tmp_path, **extra: str) -> dict[str, str]:
    """The environment of an ``opsmap ingest`` process on ``engine`` and ``redis_url``: quick
    claims and backoff, no sweeps."""
    return {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False), "REDIS_URL": redis_url,
            "OPSMAP_VAR_DIR": str(tmp_path), "OPSMAP_HMAC_KEY": KEY, "OPSMAP_INGEST_CLAIM_IDLE_MS": "1000",
            "OPSMAP_INGEST_BACKOFF_MAX_S": "1", "OPSMAP_LOG_LEVEL": "WARNING", **NO_SWEEP, **extra}


def stop(proc: subprocess.Popen) -> None:
    """Stop a process as an operator would (SIGTERM), resuming it first if it was paused."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
