"""srv: the same app under gunicorn on shared engines (REDIS_URL set, no embedded Redis)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from data.access import accounts
from data.access.policy import Role
from data.redis_server import redis_url as resolve_redis
from data.settings import PROJECT_ROOT, load
from data.store import make_engine
from tests.conftest import free_port, shared_deployment, wait_healthy

GUNICORN = Path(sys.executable).with_name("gunicorn")


def test_srv001_redis_url_setting_starts_no_embedded_server(tmp_path, redis_url):
    cfg = load(environ={"REDIS_URL": redis_url, "OPSMAP_VAR_DIR": str(tmp_path)})
    with resolve_redis(cfg) as url:
        assert url == redis_url
    assert not (tmp_path / "redis").exists()


def test_srv002_gunicorn_serves_app_server_on_shared_engines(tmp_path, redis_url):
    env = shared_deployment(tmp_path, redis_url)
    port = free_port()
    proc = subprocess.Popen([str(GUNICORN), "--no-control-socket", "-k", "gthread", "-w", "2",
                             "-b", f"127.0.0.1:{port}", "app:server"], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        health = wait_healthy(url, proc)
        assert {k: health[k] for k in ("status", "database", "redis")} == {"status": "ok", "database": "ok",
                                                                           "redis": "ok"}
        assert set(health["ingest"]) == {"lag", "pending", "dead", "waiting"}
        engine = make_engine(env["DATABASE_URL"])
        account = accounts.add_user(engine, "srv", [Role("viewer", "S195")])
        opened = accounts.open_session(engine, dt.timedelta(hours=1), account_id=account.id)
        req = urllib.request.Request(url + "/api/v1/layers/boundaries?street=S195",
                                     headers={"Cookie": f"opsmap_session={opened.secret}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            fc = json.load(resp)
        assert fc["features"][0]["properties"]["name"] == "外滩"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not (tmp_path / "redis").exists()
